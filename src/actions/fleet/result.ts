import type { ConnectionInfoDiff } from '../refresh/result';
import type { OnlineBlockerCode } from '../rules/online-eligibility';
import type { StepEntry } from '../shared/step-log';

// What a fleet refresh answers: fleet.ts builds it, summary.ts words it, the entry and the CLI
// return and render it. Types only, apart from fleet.ts, so that none of those imports the module
// that imports it, not even for a type.

export type FleetItem = { bdm_uuid: string; instance_uuid: string; volume_id: string; host: string | null; cell: string };
export type FleetRefreshed = FleetItem & {
  /** Stale reason codes, or ['forced'], or ['interrupted'] (recovering a refresh that was cut short). */
  reasons: string[];
  old_attachment_id: string | null;
  /** null in check mode. */
  new_attachment_id: string | null;
  seconds: number;
  /** null when refreshed (or, in check mode, to be refreshed) online: no RPC. */
  rpc_version: string | null;
  /** The instance is running and the BDM was (check mode: would be) refreshed online. */
  online?: true;
  /** Where the time went: the steps of its instance's run (lock, RabbitMQ, each BDM's work, unlock); absent in check mode. */
  steps?: StepEntry[];
};
export type FleetSkipped = FleetItem & {
  why: string;
  /** A BDM of a running instance the online flow cannot refresh: what its host holds (online-eligibility.ts). */
  online_blocker?: OnlineBlockerCode;
};
export type FleetFailure = FleetItem & { msg: string; undone: string[]; remains: string };

export type FleetRefreshResult = {
  changed: boolean;
  failed?: true;
  msg: string;
  counts: { refreshed: number; skipped: number; failed: number };
  refreshed: FleetRefreshed[];
  /** Not `skipped`: Ansible shows a task whose result holds a non-empty `skipped` as skipped and ignores its failed_when. */
  skips: FleetSkipped[];
  /** `failures`, not `failed`: Ansible reads `failed` as the task's outcome. */
  failures: FleetFailure[];
  diff?: ConnectionInfoDiff[];
  report_path?: string;
  warnings?: string[];
  /** Seconds spent selecting and inspecting every BDM before any work started. */
  plan_seconds: number;
  /** Requests the plan sent to Cinder: 2 per BDM, or a few pages when it read Cinder's listings in bulk. */
  plan_cinder_requests: number;
  /** The most instances refreshed at once (0 in check mode). */
  peak_parallel: number;
  /** The compute hosts of selected BDMs that need a connector and were given none (sorted). */
  hosts_without_connector: string[];
  /** With connector_attempts: each compute host none of whose get_connector sources gave a connector, and why. */
  connector_errors?: Record<string, string>;
  /** One line for the counts, then one per BDM: what the role and the CLI print. */
  summary: string[];
};
