import type { Connector } from '../../args/connector-schema';
import type { CinderClient } from '../../cinder/cinder-client';
import { BdmNotFound, ConnectorMissing, InstanceNotFound, NovaBdmError, RefreshFailed } from '../../errors';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import { findInstanceRow, systemMetadataOf } from '../../nova-db/refresh-reads';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { newAdminContext } from '../../rpc/request-context';
import { parseConnectionInfo } from '../rules/connection-info';
import { locateOneBdm } from '../shared/locate-bdm';
import { hostConflict, inspectBdm, Inspector, type InspectSettings } from './inspect';
import { refreshInstance } from './instance';
import { lockWarnings } from './lock';
import { BdmRefreshFailed, buildResult, connectionInfoDiff, masker, summaryOf, type SingleRefreshResult } from './result';
import { expectationMismatch, predictedConnectionInfo } from '../rules/staleness';
import { StepLog } from '../shared/step-log';
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

/** One BDM: inspect (read-only), then under the instance's lock refresh it. */
export async function refreshBdm(
  deps: RefreshDeps,
  selector: OneBdm,
  settings: RefreshSettings & { connector: Connector | ((host: string) => Connector | NovaBdmError) },
): Promise<SingleRefreshResult> {
  const steps = new StepLog();
  const warnings: string[] = [];
  const extras = { steps: steps.entries, warnings };
  const mask = masker(settings.revealSecrets);

  const { cell, bdm } = await steps.run('locate', () => locateOneBdm(deps.topology, selector, warnings));
  if (bdm.destination_type !== 'volume' || !bdm.volume_id) {
    throw new BdmNotFound(`BDM ${bdm.uuid} is not an attached volume BDM (destination_type ${bdm.destination_type}).`);
  }
  const db = deps.topology.cellDatabase(cell);
  const instance = await findInstanceRow(db, bdm.instance_uuid!);
  if (!instance) throw new InstanceNotFound(`Instance ${bdm.instance_uuid} could not be found.`);
  let connector: Connector | undefined;
  if (typeof settings.connector !== 'function') connector = settings.connector;
  else if (instance.host) {
    const found = settings.connector(instance.host);
    if (found instanceof NovaBdmError) throw new ConnectorMissing(found.message);
    connector = found;
  }
  // A connector of another host is refused before anything else (nova's HostConflict).
  const conflict = instance.host && connector ? hostConflict(connector, instance.host) : undefined;
  if (conflict) throw conflict;

  const ctxRead = newAdminContext();
  const cinder = deps.cinderFor(ctxRead.requestId);
  const inspector = new Inspector(deps.topology, cinder, deps.rpcFor, settings, (host) => connector ?? new ConnectorMissing(`no connector for compute host ${host}`));
  const lockedReason = (await systemMetadataOf(db, instance.uuid)).locked_reason ?? null;
  const decision = await inspectBdm(inspector, { cell, bdm, instance, lockedReason }, steps);
  const summary = summaryOf(bdm, instance.host, cell);
  const oldInfo = parseConnectionInfo(bdm.connection_info);
  if (decision.action === 'current') return buildResult.notStale(summary, bdm.attachment_id, mask(oldInfo), extras);
  if (decision.action !== 'refresh') throw decision.error;

  if (settings.checkMode) {
    // Predicted after: Cinder's view when it differs, else the expectation applied.
    const predicted = predictedConnectionInfo(oldInfo, bdm.volume_id, decision, settings.expect);
    return buildResult.wouldRefresh(
      summary,
      {
        reasons: decision.reasons, oldAttachmentId: bdm.attachment_id, info: mask(oldInfo), rpcVersion: decision.rpcVersion, online: decision.flow === 'online', interrupted: decision.interrupted,
        ...(settings.diff ? { diff: connectionInfoDiff(summary, mask(oldInfo), mask(predicted)) } : {}),
      },
      extras,
    );
  }

  const run = await refreshInstance({
    inspector,
    cinder,
    cinderFor: deps.cinderFor,
    cell,
    instanceUuid: instance.uuid,
    planned: [{ bdm, decision }],
    eventHost: settings.localHost,
    rpcTimeoutSeconds: settings.rpcTimeoutSeconds,
    refuseLocked: settings.refuseLocked,
    steps,
    warnings,
  });
  const outcome = run.outcomes[0]!;
  switch (outcome.kind) {
    case 'current':
      return buildResult.notStale(summary, outcome.bdm.attachment_id, mask(outcome.info), { ...extras, recovered: run.recovered });
    case 'skipped':
      throw outcome.error;
    case 'failed': {
      if (!(outcome.error instanceof RefreshFailed)) throw outcome.error;
      const requestIds = { lock: run.lockRequestId, refresh: ctxRead.requestId };
      throw new BdmRefreshFailed(outcome.error.message, { ...summary, steps: steps.entries, undone: outcome.undone, remains: outcome.remains, request_ids: requestIds, ...(warnings.length ? { warnings } : {}) }, outcome.error.causeError);
    }
    case 'refreshed': {
      const stillWrong = settings.expect ? expectationMismatch(outcome.newInfo, settings.expect) : undefined;
      const result = buildResult.refreshed(
        summary,
        {
          reasons: outcome.reasons,
          oldAttachmentId: bdm.attachment_id,
          newAttachmentId: outcome.newAttachmentId,
          info: mask(outcome.newInfo),
          rpcVersion: outcome.rpcVersion,
          online: outcome.onlineSteps !== undefined,
          requestIds: { lock: run.lockRequestId, refresh: outcome.requestId },
          recovered: run.recovered,
          ...(settings.diff ? { diff: connectionInfoDiff(summary, mask(oldInfo), mask(outcome.newInfo)) } : {}),
          ...(stillWrong ? { stillWrong } : {}),
        },
        extras,
      );
      // Refreshed, but an instance left locked cannot be started: not a success to an operator.
      if (!run.unlock.unlocked && !result.failed) {
        const unlockFailed = lockWarnings.unlock(instance.uuid, run.unlock);
        result.failed = true;
        result.remains = `the BDM is refreshed, but the instance is still locked (${unlockFailed}): run refresh again to unlock it`;
        result.msg = `${result.msg}; ${result.remains}`;
      }
      return result;
    }
  }
}
