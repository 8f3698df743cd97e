import type { Connector } from '../../connector';
import type { CinderClient } from '../../cinder/cinder-client';
import type { Selectable } from 'kysely';
import { BdmNotFound, ConnectorMissing, InstanceNotFound, NovaBdmError, RefreshFailed } from '../../errors';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import { findInstanceRow, systemMetadataOf } from '../../nova-db/refresh-reads';
import type { BdmRecord } from '../../nova-db/records';
import type { InstancesTable } from '../../nova-db/schema';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { newAdminContext } from '../../rpc/request-context';
import { parseConnectionInfo, type ConnectionInfo } from '../rules/connection-info';
import { locateOneBdm } from '../shared/locate-bdm';
import { hostConflict, inspectBdm, Inspector, type Decision, type InspectSettings } from './inspect';
import { refreshInstance, type BdmOutcome, type InstanceRun } from './instance';
import { lockWarnings } from './lock';
import {
  BdmRefreshFailed,
  buildResult,
  connectionInfoDiff,
  masker,
  summaryOf,
  type BdmSummary,
  type RefreshedResult,
  type SingleRefreshResult,
} from './result';
import { expectationMismatch, predictedConnectionInfo } from '../rules/staleness';
import { StepLog, type StepEntry } from '../shared/step-log';
import type { OneBdm } from '../../selection';

/** The outside systems refresh works with; tests hand it real ones pointed at local services. */
export interface RefreshDeps {
  topology: NovaTopology;
  /** A Cinder client that sends this request id (one per phase, like nova's contexts). */
  cinderFor(requestId: string): CinderClient;
  /** An RPC client on the cell's broker (kept open by the caller, which closes it). */
  rpcFor(cell: Cell): Promise<OsloRpcClient>;
}

export interface RefreshSettings extends InspectSettings {
  rpcTimeoutSeconds: number;
  /** [DEFAULT] host of this process: recorded on the api_lock/api_unlock events. */
  localHost: string;
  revealSecrets: boolean;
  checkMode: boolean;
  diff: boolean;
}

type SingleSettings = RefreshSettings & { connector: Connector | ((host: string) => Connector | NovaBdmError) };

/** The BDM to refresh, its instance and where they live. */
interface Target {
  cell: Cell;
  bdm: BdmRecord & { volume_id: string };
  instance: Selectable<InstancesTable>;
}

/** What every result of one BDM's refresh is built from. */
interface Reporting {
  summary: BdmSummary;
  /** The BDM as located, before any write. */
  bdm: Target['bdm'];
  oldInfo: ConnectionInfo | null;
  mask: (v: unknown) => unknown;
  /** The steps run and the warnings, as every result carries them. */
  extras: { steps: StepEntry[]; warnings: string[] };
  settings: SingleSettings;
}

/** One BDM: inspect (read-only), then under the instance's lock refresh it. */
export async function refreshBdm(deps: RefreshDeps, selector: OneBdm, settings: SingleSettings): Promise<SingleRefreshResult> {
  const steps = new StepLog();
  const warnings: string[] = [];
  const target = await locateTarget(deps, selector, steps, warnings);
  const connector = connectorOf(settings, target.instance);
  const ctxRead = newAdminContext();
  const cinder = deps.cinderFor(ctxRead.requestId);
  const noConnector = (host: string) => new ConnectorMissing(`no connector for compute host ${host}`);
  const inspector = new Inspector(deps.topology, cinder, deps.rpcFor, settings, (host) => connector ?? noConnector(host));
  const decision = await inspectTarget(deps, inspector, target, steps);
  const r: Reporting = {
    summary: summaryOf(target.bdm, target.instance.host, target.cell),
    bdm: target.bdm,
    oldInfo: parseConnectionInfo(target.bdm.connection_info),
    mask: masker(settings.revealSecrets),
    extras: { steps: steps.entries, warnings },
    settings,
  };
  if (decision.action === 'current') return buildResult.notStale(r.summary, target.bdm.attachment_id, r.mask(r.oldInfo), r.extras);
  if (decision.action !== 'refresh') throw decision.error;
  if (settings.checkMode) return wouldRefresh(r, decision);
  const run = await refreshInstance({
    inspector,
    cinder,
    cinderFor: deps.cinderFor,
    cell: target.cell,
    instanceUuid: target.instance.uuid,
    planned: [{ bdm: target.bdm, decision }],
    eventHost: settings.localHost,
    rpcTimeoutSeconds: settings.rpcTimeoutSeconds,
    refuseLocked: settings.refuseLocked,
    steps,
    warnings,
  });
  return resultOf(r, run, run.outcomes[0]!, ctxRead.requestId);
}

/** The selected BDM (an attached volume) and its instance's live row. */
async function locateTarget(deps: RefreshDeps, selector: OneBdm, steps: StepLog, warnings: string[]): Promise<Target> {
  const { cell, bdm } = await steps.run('locate', () => locateOneBdm(deps.topology, selector, warnings));
  if (bdm.destination_type !== 'volume' || !bdm.volume_id) {
    throw new BdmNotFound(`BDM ${bdm.uuid} is not an attached volume BDM (destination_type ${bdm.destination_type}).`);
  }
  const instance = await findInstanceRow(deps.topology.cellDatabase(cell), bdm.instance_uuid!);
  if (!instance) throw new InstanceNotFound(`Instance ${bdm.instance_uuid} could not be found.`);
  return { cell, bdm: { ...bdm, volume_id: bdm.volume_id }, instance };
}

/** The connector given, or the instance's host's; a connector of another host is refused before anything else (nova's HostConflict). */
function connectorOf(settings: SingleSettings, instance: Selectable<InstancesTable>): Connector | undefined {
  let connector: Connector | undefined;
  if (typeof settings.connector !== 'function') connector = settings.connector;
  else if (instance.host) {
    const found = settings.connector(instance.host);
    if (found instanceof NovaBdmError) throw new ConnectorMissing(found.message);
    connector = found;
  }
  const conflict = instance.host && connector ? hostConflict(connector, instance.host) : undefined;
  if (conflict) throw conflict;
  return connector;
}

async function inspectTarget(deps: RefreshDeps, inspector: Inspector, { cell, bdm, instance }: Target, steps: StepLog): Promise<Decision> {
  const lockedReason = (await systemMetadataOf(deps.topology.cellDatabase(cell), instance.uuid)).locked_reason ?? null;
  return inspectBdm(inspector, { cell, bdm, instance, lockedReason }, steps);
}

/** Check mode: what a real run would do, with the connection_info it would store as the diff. */
function wouldRefresh(r: Reporting, decision: Extract<Decision, { action: 'refresh' }>): SingleRefreshResult {
  const predicted = predictedConnectionInfo(r.oldInfo, r.bdm.volume_id, decision, r.settings.expect);
  return buildResult.wouldRefresh(
    r.summary,
    {
      reasons: decision.reasons,
      oldAttachmentId: r.bdm.attachment_id,
      info: r.mask(r.oldInfo),
      rpcVersion: decision.rpcVersion,
      online: decision.flow === 'online',
      interrupted: decision.interrupted,
      ...(r.settings.diff ? { diff: connectionInfoDiff(r.summary, r.mask(r.oldInfo), r.mask(predicted)) } : {}),
    },
    r.extras,
  );
}

/** The result of the refresh under the lock; a failure is thrown with what ran, what was undone and what remains. */
function resultOf(r: Reporting, run: InstanceRun, outcome: BdmOutcome, readRequestId: string): SingleRefreshResult {
  switch (outcome.kind) {
    case 'current':
      return buildResult.notStale(r.summary, outcome.bdm.attachment_id, r.mask(outcome.info), { ...r.extras, recovered: run.recovered });
    case 'skipped':
      throw outcome.error;
    case 'failed': {
      if (!(outcome.error instanceof RefreshFailed)) throw outcome.error;
      const requestIds = { lock: run.lockRequestId, refresh: readRequestId };
      const { steps, warnings } = r.extras;
      const details = { ...r.summary, steps, undone: outcome.undone, remains: outcome.remains, request_ids: requestIds };
      const cause = outcome.error.causeError;
      throw new BdmRefreshFailed(outcome.error.message, { ...details, ...(warnings.length ? { warnings } : {}) }, cause);
    }
    case 'refreshed':
      return refreshedResult(r, run, outcome);
  }
}

function refreshedResult(r: Reporting, run: InstanceRun, outcome: Extract<BdmOutcome, { kind: 'refreshed' }>): RefreshedResult {
  const stillWrong = r.settings.expect ? expectationMismatch(outcome.newInfo, r.settings.expect) : undefined;
  const result = buildResult.refreshed(
    r.summary,
    {
      reasons: outcome.reasons,
      oldAttachmentId: r.bdm.attachment_id,
      newAttachmentId: outcome.newAttachmentId,
      info: r.mask(outcome.newInfo),
      rpcVersion: outcome.rpcVersion,
      online: outcome.onlineSteps !== undefined,
      requestIds: { lock: run.lockRequestId, refresh: outcome.requestId },
      recovered: run.recovered,
      ...(r.settings.diff ? { diff: connectionInfoDiff(r.summary, r.mask(r.oldInfo), r.mask(outcome.newInfo)) } : {}),
      ...(stillWrong ? { stillWrong } : {}),
    },
    r.extras,
  );
  // Refreshed, but an instance left locked cannot be started: not a success to an operator.
  if (!run.unlock.unlocked && !result.failed) {
    result.failed = true;
    const unlockFailed = lockWarnings.unlock(r.summary.instance_uuid, run.unlock);
    result.remains = `the BDM is refreshed, but the instance is still locked (${unlockFailed}): run refresh again to unlock it`;
    result.msg = `${result.msg}; ${result.remains}`;
  }
  return result;
}
