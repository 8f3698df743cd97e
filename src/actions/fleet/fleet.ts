import type { CinderClient } from '../../cinder/cinder-client';
import { BadInput, ConnectorMissing, InstanceChanged, LockedByAnotherRefresh, NotRefreshableOnline, NovaBdmError, RefreshFailed } from '../../errors';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { checkPrivateFileTarget, writePrivateFile } from '../../output/private-file';
import { newAdminContext } from '../../rpc/request-context';
import type { Connector } from '../../args/connector-schema';
import { parseConnectionInfo } from '../rules/connection-info';
import type { OnlineBlockerCode } from '../rules/online-eligibility';
import { Outage } from '../shared/outage';
import type { FleetFilters } from '../../selection';
import { planFleet, type PlannedBdm, type PlannedInstance } from './plan';
import { fleetSummary } from './summary';
import { Inspector, type InspectSettings } from '../refresh/inspect';
import { refreshInstance, type BdmOutcome, type PlannedRefresh } from '../refresh/instance';
import { connectionInfoDiff, listItemOf, masker, summaryOf, type ConnectionInfoDiff } from '../refresh/result';
import { expectationMismatch, predictedConnectionInfo, stillMismatchedMessage } from '../rules/staleness';
import { StepLog, type StepEntry } from '../shared/step-log';

// A fleet refresh: one plan (plan.ts), then the instances in parallel, at most
// maxParallel at once and perHostParallel per compute host, each under its own lock.

export interface FleetDeps {
  topology: NovaTopology;
  cinderFor(requestId: string): CinderClient;
  rpcFor(cell: Cell): Promise<OsloRpcClient>;
  connectorFor(host: string): Connector | NovaBdmError;
}

export interface FleetSettings extends InspectSettings {
  rpcTimeoutSeconds: number;
  localHost: string;
  revealSecrets: boolean;
  checkMode: boolean;
  diff: boolean;
  maxParallel: number;
  perHostParallel: number;
  maxFailures?: number;
  reportPath?: string;
  onProgress?: (p: FleetProgress) => void;
}

export type FleetProgress = { instancesDone: number; instances: number; refreshed: number; skipped: number; failed: number };

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
  /** One line for the counts, then one per BDM: what the role and the CLI print. */
  summary: string[];
};

export async function refreshFleet(deps: FleetDeps, filters: FleetFilters, settings: FleetSettings): Promise<FleetRefreshResult> {
  if (settings.reportPath) checkWritable(settings.reportPath);
  const mask = masker(settings.revealSecrets);
  const cinder = deps.cinderFor(newAdminContext().requestId);
  const inspector = new Inspector(deps.topology, cinder, deps.rpcFor, settings, deps.connectorFor);
  const planStarted = performance.now();
  const outage = new Outage();
  const plan = await planFleet(inspector, filters, settings.maxParallel, outage);
  const planSeconds = Math.round(performance.now() - planStarted) / 1000;
  const planCinderRequests = cinder.requestCount;

  const out: Pick<FleetRefreshResult, 'refreshed' | 'skips' | 'failures'> = { refreshed: [], skips: [], failures: [] };
  const hostsWithoutConnector = new Set<string>();
  const diffs: ConnectionInfoDiff[] = [];
  const warnings: string[] = [];
  const toRun: Array<{ instance: PlannedInstance; planned: PlannedRefresh[] }> = [];
  for (const instance of plan) {
    const planned: PlannedRefresh[] = [];
    for (const p of instance.bdms) {
      const d = p.decision;
      if (d.action === 'current') out.skips.push({ ...item(p), why: 'not stale' });
      else if (d.action === 'skip') out.skips.push({ ...item(p), why: d.why, ...(d.onlineBlocker ? { online_blocker: d.onlineBlocker } : {}) });
      else if (d.action === 'fail') {
        out.failures.push({ ...item(p), msg: firstLine(d.error.message), undone: [], remains: 'nothing was changed' });
        if (d.error instanceof ConnectorMissing && p.host) hostsWithoutConnector.add(p.host);
      }
      else if (settings.checkMode) {
        out.refreshed.push({ ...item(p), reasons: reasonCodes(d), old_attachment_id: p.bdm.attachment_id, new_attachment_id: null, seconds: 0, rpc_version: d.rpcVersion, ...(d.flow === 'online' ? { online: true as const } : {}) });
        if (settings.diff) {
          const old = parseConnectionInfo(p.bdm.connection_info);
          const predicted = predictedConnectionInfo(old, p.bdm.volume_id!, d, settings.expect);
          diffs.push(connectionInfoDiff(summary(p), mask(old), mask(predicted)));
        }
      } else planned.push({ bdm: p.bdm, decision: d });
    }
    if (planned.length > 0) toRun.push({ instance, planned });
  }

  const stepsOf = new Map<string, StepEntry[]>();
  let peakParallel = 0;
  if (!settings.checkMode) {
    peakParallel = await runInstances(toRun, settings, outage, (instance, planned, outcomes) => {
      for (const o of outcomes) record(instance, o);
      void planned;
    }, async (instance, planned) => {
      const steps = new StepLog();
      stepsOf.set(instance.instanceUuid, steps.entries);
      const run = await refreshInstance({
        inspector, cinder, cinderFor: deps.cinderFor, cell: instance.cell, instanceUuid: instance.instanceUuid, planned,
        eventHost: settings.localHost, rpcTimeoutSeconds: settings.rpcTimeoutSeconds, refuseLocked: settings.refuseLocked, steps, warnings,
      });
      return run.outcomes;
    });
  }

  function record(instance: PlannedInstance, o: BdmOutcome) {
    const p: PlannedBdm = { cell: instance.cell, bdm: o.bdm, instance: undefined, host: instance.host, decision: { action: 'current', reasons: [] } };
    switch (o.kind) {
      case 'current':
        out.skips.push({ ...item(p), why: 'not stale (after recovering an interrupted refresh)' });
        return;
      case 'skipped':
        out.skips.push({ ...item(p), why: o.why, ...(o.error instanceof NotRefreshableOnline ? { online_blocker: o.error.code as OnlineBlockerCode } : {}) });
        return;
      case 'failed':
        out.failures.push({ ...item(p), msg: firstLine(o.error.message), undone: o.undone, remains: o.remains });
        return;
      case 'refreshed': {
        const stillWrong = settings.expect ? expectationMismatch(o.newInfo, settings.expect) : undefined;
        if (stillWrong) {
          out.failures.push({
            ...item(p),
            msg: `refreshed, but ${stillMismatchedMessage(stillWrong)}`,
            undone: [],
            remains: `the BDM holds the new attachment ${o.newAttachmentId} with what Cinder hands out`,
          });
        }
        out.refreshed.push({
          ...item(p), reasons: o.forced ? ['forced'] : o.reasons.length ? o.reasons.map((r) => r.code) : ['interrupted'], old_attachment_id: o.bdm.attachment_id,
          new_attachment_id: o.newAttachmentId, seconds: o.seconds, rpc_version: o.rpcVersion,
          ...(o.onlineSteps ? { online: true as const } : {}),
          ...(stepsOf.has(instance.instanceUuid) ? { steps: stepsOf.get(instance.instanceUuid)! } : {}),
        });
        if (settings.diff) diffs.push(connectionInfoDiff(summary(p), mask(o.oldInfo), mask(o.newInfo)));
      }
    }
  }

  const counts = { refreshed: out.refreshed.length, skipped: out.skips.length, failed: out.failures.length };
  const total = counts.refreshed + counts.skipped + counts.failed;
  const verb = settings.checkMode ? 'would refresh' : 'refreshed';
  const result: FleetRefreshResult = {
    changed: counts.refreshed > 0,
    msg: `${verb} ${counts.refreshed} of ${total} selected BDMs; ${counts.skipped} skipped, ${counts.failed} failed`,
    counts,
    ...out,
    ...(settings.diff && diffs.length ? { diff: diffs } : {}),
    ...(warnings.length ? { warnings } : {}),
    plan_seconds: planSeconds,
    plan_cinder_requests: planCinderRequests,
    peak_parallel: peakParallel,
    hosts_without_connector: [...hostsWithoutConnector].sort(),
    summary: fleetSummary({ counts, ...out, report_path: settings.reportPath }, settings.checkMode),
  };
  if (counts.failed > 0) {
    result.failed = true;
    const first = out.failures[0]!;
    result.msg = `${counts.failed} of ${total} selected BDMs failed (first: BDM ${first.bdm_uuid} on ${first.host ?? 'no host'}: ${first.msg}); ${verb} ${counts.refreshed}, skipped ${counts.skipped}`;
  }
  if (settings.reportPath) {
    result.report_path = settings.reportPath;
    // Temp file + rename, 0600: a symlink planted at report_path is refused, never written through.
    writePrivateFile(settings.reportPath, `${JSON.stringify(result, null, 2)}\n`);
  }
  return result;
}

/**
 * The scheduler: start instances while fewer than maxParallel run and their host has fewer than
 * perHostParallel; after maxFailures failed BDMs, or once Cinder could not be reached (outage.ts),
 * start nothing new, let the running finish.
 */
async function runInstances(
  queue: Array<{ instance: PlannedInstance; planned: PlannedRefresh[] }>,
  settings: FleetSettings,
  outage: Outage,
  report: (instance: PlannedInstance, planned: PlannedRefresh[], outcomes: BdmOutcome[]) => void,
  work: (instance: PlannedInstance, planned: PlannedRefresh[]) => Promise<BdmOutcome[]>,
): Promise<number> {
  let peak = 0;
  const running = new Set<Promise<void>>();
  const perHost = new Map<string, number>();
  const progress: FleetProgress = { instancesDone: 0, instances: queue.length, refreshed: 0, skipped: 0, failed: 0 };
  const pending = [...queue];
  const stopped = () => outage.why !== undefined || (settings.maxFailures !== undefined && progress.failed >= settings.maxFailures);
  while (pending.length > 0 && !stopped()) {
    const index = running.size < settings.maxParallel ? pending.findIndex((q) => (perHost.get(q.instance.host ?? '') ?? 0) < settings.perHostParallel) : -1;
    if (index < 0) {
      await Promise.race(running);
      continue;
    }
    const { instance, planned } = pending.splice(index, 1)[0]!;
    const host = instance.host ?? '';
    perHost.set(host, (perHost.get(host) ?? 0) + 1);
    const job = work(instance, planned)
      .catch((err: unknown) => outcomesForLockError(planned, err))
      .then((outcomes) => {
        for (const o of outcomes) {
          if (o.kind === 'refreshed') progress.refreshed++;
          else if (o.kind === 'failed') {
            progress.failed++;
            outage.note(o.error);
          } else progress.skipped++;
        }
        progress.instancesDone++;
        report(instance, planned, outcomes);
        settings.onProgress?.(progress);
      })
      .finally(() => {
        perHost.set(host, perHost.get(host)! - 1);
        running.delete(job);
      });
    running.add(job);
    peak = Math.max(peak, running.size);
  }
  await Promise.all(running);
  for (const { instance, planned } of pending) {
    const why = outage.why ? `not started: ${outage.why}` : 'not started: max_failures reached';
    report(instance, planned, planned.map((p) => ({ kind: 'skipped', bdm: p.bdm, why, error: new NovaBdmError(why) })));
  }
  return peak;
}

/** The lock was not ours to take (another refresh, a state change) or taking it failed. */
function outcomesForLockError(planned: PlannedRefresh[], err: unknown): BdmOutcome[] {
  const error = err instanceof Error ? err : new Error(String(err));
  if (error instanceof LockedByAnotherRefresh) return planned.map((p) => ({ kind: 'skipped', bdm: p.bdm, why: 'locked by another refresh', error }));
  if (error instanceof InstanceChanged) return planned.map((p) => ({ kind: 'skipped', bdm: p.bdm, why: `changed meanwhile: ${error.why}`, error }));
  if (error instanceof RefreshFailed) {
    const { undone, remains } = error.details;
    return planned.map((p) => ({ kind: 'failed', bdm: p.bdm, error, undone, remains }));
  }
  return planned.map((p) => ({ kind: 'failed', bdm: p.bdm, error, undone: [], remains: 'the instance could not be locked; nothing was changed' }));
}

function reasonCodes(d: { reasons: Array<{ code: string }>; forced: boolean; interrupted: boolean }): string[] {
  if (d.reasons.length) return d.reasons.map((r) => r.code);
  return d.forced ? ['forced'] : d.interrupted ? ['interrupted'] : [];
}

function item(p: PlannedBdm): FleetItem {
  return listItemOf(p.bdm, p.host, p.cell);
}

function summary(p: PlannedBdm) {
  return summaryOf(p.bdm, p.host, p.cell);
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

function checkWritable(path: string): void {
  try {
    checkPrivateFileTarget(path);
  } catch (err) {
    throw new BadInput(`report_path: ${(err as Error).message}`);
  }
}
