import type { Connector } from '../args/connector-schema';
import type { Attachment, CinderClient } from '../cinder/cinder-client';
import { OpenStackHttpError } from '../cinder/http';
import { BdmNotFound, InstanceNotFound, InstanceStateInvalid, NovaBdmError, PreconditionFailed, RefreshFailed } from '../errors';
import type { Cell, NovaTopology } from '../nova-db/cells';
import { findInstanceRow, infoCacheOf, systemMetadataOf } from '../nova-db/refresh-reads';
import { finishRefreshAction, lockInstanceForRefresh, saveBdmAttachment, startRefreshAction, unlockInstanceAfterRefresh } from '../nova-db/refresh-writes';
import type { BdmRecord } from '../nova-db/records';
import { maskSecrets } from '../output/mask-secrets';
import { instancePrimitive } from '../rpc/instance-primitive';
import type { OsloRpcClient } from '../rpc/oslo-rpc-client';
import { contextDict, newAdminContext } from '../rpc/request-context';
import { connectionInfoFromAttachment, parseConnectionInfo, pythonJsonDumps } from './connection-info';
import { locateOneBdm } from './locate-bdm';
import { lockReasonFor } from './lock-reason';
import { checkCompute, checkInstanceState, chooseRpcVersion } from './refresh-preconditions';
import { applyExpectation, cinderStaleReasons, dbStaleReasons, expectationMismatch } from './staleness';
import { recoverInterruptedRefresh, type Recovery } from './refresh-recovery';
import { StepLog } from './step-log';

/** The outside systems refresh works with; tests hand it real ones pointed at local services. */
export interface RefreshDeps {
  topology: NovaTopology;
  /** A Cinder client that sends this request id (one per phase, like nova's contexts). */
  cinderFor(requestId: string): CinderClient;
  /** An RPC client on the cell's broker (kept open by the caller, which closes it). */
  rpcFor(cell: Cell): Promise<OsloRpcClient>;
}

export interface RefreshSettings {
  connector: Connector;
  requireLibvirt: boolean;
  rpcTimeoutSeconds: number;
  serviceDownTimeSeconds: number;
  /** [upgrade_levels] compute. */
  upgradeLevel: string | undefined;
  /** [DEFAULT] host of this process: recorded on the api_lock/api_unlock events. */
  localHost: string;
  revealSecrets: boolean;
  checkMode: boolean;
  diff: boolean;
  /** Refresh even when the BDM is not stale. */
  force: boolean;
  /** The operator's partial connection_info ("the monitors are now these"). */
  expect?: Record<string, unknown>;
}

/** What a refresh that failed before it wrote anything leaves: said in the result's `remains`. */
export const NOTHING_CHANGED = 'nothing was changed (the instance was not locked)';

export async function refreshBdm(
  deps: RefreshDeps,
  selector: { bdmUuid: string } | { instanceUuid: string; volumeId: string },
  settings: RefreshSettings,
): Promise<Record<string, unknown>> {
  const progress = { wrote: false };
  try {
    return await refreshBdmOnce(deps, selector, settings, progress);
  } catch (err) {
    // A failure after the first write is a RefreshFailed that says what remains; before it, nothing did.
    if (err instanceof NovaBdmError && !(err instanceof RefreshFailed) && !progress.wrote) Object.assign(err, { remains: NOTHING_CHANGED });
    throw err;
  }
}

async function refreshBdmOnce(
  deps: RefreshDeps,
  selector: { bdmUuid: string } | { instanceUuid: string; volumeId: string },
  settings: RefreshSettings,
  progress: { wrote: boolean },
): Promise<Record<string, unknown>> {
  const steps = new StepLog();
  const warnings: string[] = [];

  // --- Read-only: find everything and check every precondition before writing anything.
  let { cell, bdm } = await steps.run('locate', () => locateOneBdm(deps.topology, selector, warnings));
  const db = deps.topology.cellDatabase(cell);
  if (bdm.destination_type !== 'volume' || !bdm.volume_id) {
    throw new BdmNotFound(`BDM ${bdm.uuid} is not an attached volume BDM (destination_type ${bdm.destination_type}).`);
  }
  const instanceUuid = bdm.instance_uuid!;
  const volumeId = bdm.volume_id;
  const reason = lockReasonFor(bdm);
  let instance = await findInstanceRow(db, instanceUuid);
  if (!instance) throw new InstanceNotFound(`Instance ${instanceUuid} could not be found.`);

  let recovery: Recovery | undefined;
  const sysmeta = await systemMetadataOf(db, instanceUuid);
  if (instance.locked && sysmeta.locked_reason === reason) {
    // A refresh of this BDM was interrupted (killed, or lost the DB): finish or undo it first.
    if (settings.checkMode) {
      throw new InstanceStateInvalid(`Instance ${instanceUuid} is locked by an interrupted refresh of BDM ${bdm.uuid}; a real run recovers it first.`);
    }
    progress.wrote = true;
    recovery = await steps.run('recover', () =>
      recoverInterruptedRefresh({ db, cinder: deps.cinderFor(newAdminContext().requestId), bdm, reason, localHost: settings.localHost }),
    );
    ({ cell, bdm } = await locateOneBdm(deps.topology, selector, warnings));
    instance = (await findInstanceRow(db, instanceUuid))!;
  }

  const summary = { bdm_uuid: bdm.uuid, instance_uuid: instanceUuid, volume_id: volumeId, host: instance.host, cell: { uuid: cell.uuid, name: cell.name } };
  const mask = (v: unknown) => (settings.revealSecrets ? v : maskSecrets(v));
  const oldInfo = parseConnectionInfo(bdm.connection_info);

  // --- Is it stale? DB rules, then Cinder's view of the attachment (also proves Keystone and
  // Cinder answer before anything is locked).
  const ctxRefresh = newAdminContext();
  const cinder = deps.cinderFor(ctxRefresh.requestId);
  const reasons = dbStaleReasons(bdm, settings.expect);
  let cinderView: Attachment | null = null;
  if (bdm.attachment_id) {
    const attachmentId = bdm.attachment_id;
    // One after the other: the first call's token is then validated once, not twice at once.
    const attachment = await steps.run('cinder_get_attachment', () => cinder.getAttachment(attachmentId));
    const attachedHost = attachment ? await steps.run('cinder_get_volume', () => cinder.attachedHost(volumeId, attachmentId)) : undefined;
    cinderView = attachment;
    reasons.push(...cinderStaleReasons({ ...bdm, volume_id: volumeId, instance_uuid: instanceUuid }, attachment, attachedHost, instance.host));
  }
  const stale = reasons.length > 0;
  const staleness = { stale, stale_reasons: reasons };
  if (!stale && !settings.force) {
    return {
      changed: false,
      msg: `BDM ${bdm.uuid} is not stale; nothing to do (force: true refreshes anyway)`,
      ...summary,
      ...staleness,
      attachment_id: bdm.attachment_id,
      connection_info: mask(oldInfo),
      steps: steps.entries,
      ...(recovery ? { changed: true, recovered: recovery } : {}),
      ...(warnings.length ? { warnings } : {}),
    };
  }

  // --- Would it work? Every precondition, still without writing.
  checkInstanceState(instance);
  const host = instance.host!;
  await steps.run('check_compute', () => checkCompute(deps.topology, cell, host, settings));
  const rpcVersion = await steps.run('choose_rpc_version', () => chooseRpcVersion(deps.topology, settings.upgradeLevel));
  const rpc = await steps.run('connect_rabbitmq', () => deps.rpcFor(cell));
  const consumers = await steps.run('check_compute_queue', () => rpc.consumersOf(`compute.${host}`));
  if (consumers === 0) {
    throw new PreconditionFailed(`nova-compute on ${host} is not consuming its queue compute.${host} on ${rpc.where} (is it running and connected?)`);
  }

  if (settings.checkMode) {
    // Predicted after: Cinder's view when it differs, else the expectation applied.
    const predicted = cinderView && reasons.some((r) => r.code === 'connection_info_differs')
      ? connectionInfoFromAttachment(cinderView, volumeId, oldInfo)
      : settings.expect ? applyExpectation(oldInfo, settings.expect) : oldInfo;
    return {
      changed: true,
      msg: `would refresh the connection_info of BDM ${bdm.uuid}${stale ? ` (${reasons.map((r) => r.code).join(', ')})` : ' (forced)'}`,
      ...summary,
      ...staleness,
      old_attachment_id: bdm.attachment_id,
      connection_info: mask(oldInfo),
      rpc_version: rpcVersion,
      steps: steps.entries,
      ...(settings.diff ? { diff: connectionInfoDiff(bdm, instanceUuid, volumeId, mask(oldInfo), mask(predicted)) } : {}),
      ...(warnings.length ? { warnings } : {}),
    };
  }

  // --- Lock: one conditional UPDATE; exactly one of two racing controllers gets the row.
  const ctxLock = newAdminContext();
  const locked = await steps.run('lock', () => lockInstanceForRefresh(db, instanceUuid, reason, ctxLock, settings.localHost));
  progress.wrote ||= locked;
  if (!locked) {
    const now = await findInstanceRow(db, instanceUuid);
    throw new InstanceStateInvalid(
      `Instance ${instanceUuid} changed while it was being checked (now vm_state ${now?.vm_state ?? 'gone'}, task_state ${now?.task_state ?? 'None'}, locked ${Boolean(now?.locked)}): another refresh or operation got there first; nothing was changed.`,
    );
  }

  const state: { actionId?: number; newAttachment?: Attachment; rpcDone: boolean; oldRemoved: string[]; bdmSaved: boolean; newInfo?: Record<string, unknown> } = {
    rpcDone: false,
    oldRemoved: [],
    bdmSaved: false,
  };
  let failure: Error | undefined;
  const undone: string[] = [];
  let remains = 'the BDM and its attachment are unchanged';
  // Keep the lock when what is left is not known for sure: the next refresh of this BDM then
  // recovers from Cinder's view (recoverInterruptedRefresh) instead of refreshing around strays.
  let keepLocked = false;
  let unlockError: string | undefined;
  try {
    state.actionId = await steps.run('start_action', () => startRefreshAction(db, instanceUuid, ctxRefresh));
    if (cinderView?.status === 'attaching' && cinderView.connection_info && Object.keys(cinderView.connection_info).length > 0) {
      // A run whose os-complete failed left the volume `attaching`; Cinder reserves a new
      // attachment only for an in-use or reserved volume (_attachment_reserve): complete it first.
      const pending = cinderView.id;
      await steps.run('cinder_complete_pending', () => cinder.completeAttachment(pending));
    }
    state.newAttachment = await steps.run('cinder_reserve', () => cinder.reserveAttachment(volumeId, instanceUuid));
    const primitive = instancePrimitive(
      { ...instance, locked: 1, locked_by: 'admin' }, // what nova sends: the lock saved, updated_at as read before it
      { ...sysmeta, locked_reason: reason },
      await infoCacheOf(db, instanceUuid),
    );
    await steps.run('rpc_remove_volume_connection', () =>
      rpc.call(
        `compute.${host}`,
        { method: 'remove_volume_connection', args: { instance: primitive, volume_id: volumeId }, version: rpcVersion },
        contextDict(ctxRefresh),
        { timeoutSeconds: settings.rpcTimeoutSeconds, callMonitorSeconds: settings.rpcTimeoutSeconds > 60 ? 60 : null },
      ),
    );
    state.rpcDone = true;
    await steps.run('cinder_delete_old', () => removeOldAttachments(cinder, bdm, state.newAttachment!.id, state.oldRemoved));
    const connector = { ...settings.connector };
    if (connector.mountpoint === undefined && bdm.device_name) connector.mountpoint = bdm.device_name;
    const updated = await steps.run('cinder_update', () => cinder.updateAttachment(state.newAttachment!.id, connector));
    state.newInfo = connectionInfoFromAttachment(updated, volumeId, oldInfo);
    const saved = await steps.run('save_bdm', () => saveBdmAttachment(db, bdm.id, bdm.attachment_id, state.newAttachment!.id, pythonJsonDumps(state.newInfo)));
    if (!saved) throw new NovaBdmError(`BDM ${bdm.uuid} changed under us (its attachment_id is no longer ${bdm.attachment_id})`);
    state.bdmSaved = true;
    await steps.run('cinder_complete', () => cinder.completeAttachment(state.newAttachment!.id));
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    const step = steps.failedStep ?? '';
    // No answer (timed out, connection lost) to a Cinder write: Cinder may still carry it out.
    const unknown = CINDER_WRITES.has(step) && failure instanceof OpenStackHttpError && failure.status === null && !('requestNotSent' in failure)
      ? `Cinder gave no answer to ${step}, so whether it happened is unknown; `
      : '';
    let cleanupFailed = false;
    remains = await undoAfterFailure(db, cinder, bdm, state, undone, step === 'rpc_remove_volume_connection').catch((e: Error) => {
      cleanupFailed = true;
      return `clean-up failed too (${e.message.split('\n')[0]})`;
    });
    keepLocked = Boolean(unknown) || cleanupFailed;
    if (keepLocked) remains = `${unknown}${remains}; the instance stays locked: run refresh again to recover`;
  } finally {
    if (state.actionId !== undefined) {
      await steps.run('finish_action', () => finishRefreshAction(db, state.actionId!, settings.localHost, failure?.message)).catch((e: Error) => {
        warnings.push(`could not finish instance action: ${e.message}`);
      });
    }
    const ctxUnlock = newAdminContext();
    if (!keepLocked) {
      await steps.run('unlock', () => unlockInstanceAfterRefresh(db, instanceUuid, reason, ctxUnlock, settings.localHost)).catch((e: Error) => {
        warnings.push(`could not unlock instance ${instanceUuid} (${e.message}); the next refresh of this BDM unlocks it`);
        unlockError = e.message.split('\n')[0];
        if (failure) remains += '; the instance is still locked: run refresh again to recover';
      });
    }
  }

  const requestIds = { lock: ctxLock.requestId, refresh: ctxRefresh.requestId };
  if (failure) {
    throw new RefreshFailed(
      `refresh of BDM ${bdm.uuid} failed at ${steps.failedStep ?? 'an unknown step'}: ${failure.message.split('\n')[0]}; ${remains}`,
      { ...summary, steps: steps.entries, undone, remains, request_ids: requestIds, ...(warnings.length ? { warnings } : {}) },
      failure,
    );
  }
  const result: Record<string, unknown> = {
    changed: true,
    msg: `refreshed the connection_info of BDM ${bdm.uuid}`,
    ...summary,
    ...staleness,
    old_attachment_id: bdm.attachment_id,
    new_attachment_id: state.newAttachment!.id,
    attachment_id: state.newAttachment!.id,
    connection_info: mask(state.newInfo),
    rpc_version: rpcVersion,
    steps: steps.entries,
    request_ids: requestIds,
  };
  if (recovery) result.recovered = recovery;
  if (settings.diff) result.diff = connectionInfoDiff(bdm, instanceUuid, volumeId, mask(oldInfo), mask(state.newInfo));
  if (warnings.length) result.warnings = warnings;
  const stillWrong = settings.expect && expectationMismatch(state.newInfo, settings.expect);
  if (unlockError && !stillWrong) {
    // Refreshed, but the instance cannot be started until it is unlocked: not a success to an operator.
    result.failed = true;
    result.remains = `the BDM is refreshed, but the instance is still locked (${unlockError}): run refresh again to unlock it`;
    result.msg = `refreshed the connection_info of BDM ${bdm.uuid}; ${result.remains as string}`;
  }
  if (stillWrong) {
    // Consistent and changed, but not what the operator said it must be.
    result.failed = true;
    result.msg =
      `refreshed BDM ${bdm.uuid}, but Cinder still hands out connection_info that does not match expect (${stillWrong}); ` +
      "most likely cinder-volume's own configuration was not updated. Cinder handed out: " +
      JSON.stringify(maskSecrets(state.newInfo));
  }
  return result;
}

/** The Cinder calls of a refresh that change something. */
const CINDER_WRITES = new Set(['cinder_reserve', 'cinder_delete_old', 'cinder_update', 'cinder_complete']);

/** v3: delete the BDM's old attachment. Legacy (cinder v2): the compute ended the connection; remove the record Cinder still keeps. */
async function removeOldAttachments(cinder: CinderClient, bdm: BdmRecord, newId: string, removed: string[]): Promise<void> {
  if (bdm.attachment_id) {
    await cinder.deleteAttachment(bdm.attachment_id);
    removed.push(bdm.attachment_id);
    return;
  }
  for (const a of await cinder.listAttachments(bdm.volume_id!, bdm.instance_uuid!)) {
    if (a.id === newId) continue;
    await cinder.deleteAttachment(a.id);
    removed.push(a.id);
  }
}

/**
 * Leave a consistent cloud after a failure: the BDM always points at an attachment that exists
 * and no stray attachment stays in Cinder. Returns what state remains, in words.
 */
async function undoAfterFailure(
  db: ReturnType<NovaTopology['cellDatabase']>,
  cinder: CinderClient,
  bdm: BdmRecord,
  state: { newAttachment?: Attachment; rpcDone: boolean; oldRemoved: string[]; bdmSaved: boolean },
  undone: string[],
  rpcUnanswered: boolean,
): Promise<string> {
  if (state.bdmSaved) {
    return `the BDM holds the new attachment ${state.newAttachment!.id} and its connection_info, but Cinder did not mark it complete; run refresh again`;
  }
  const oldStillThere = bdm.attachment_id ? !state.oldRemoved.includes(bdm.attachment_id) : state.oldRemoved.length === 0;
  if (oldStillThere) {
    if (state.newAttachment) {
      await cinder.deleteAttachment(state.newAttachment.id);
      undone.push(`deleted the reserved attachment ${state.newAttachment.id}`);
    }
    return state.rpcDone
      ? 'the BDM and its attachment are unchanged, but the compute has already disconnected the volume from the host' +
          (bdm.attachment_id ? '' : ' and ended its legacy connection in Cinder') +
          ': run refresh again before starting the instance'
      : rpcUnanswered
        ? 'the BDM and its attachment are unchanged, but the compute may have disconnected the volume from the host (no reply): run refresh again before starting the instance'
        : 'the BDM and its attachment are unchanged';
  }
  // The old attachment is gone: keep the BDM pointing at one that exists (nova's last resort).
  let keep = state.newAttachment;
  if (!keep) {
    keep = await cinder.reserveAttachment(bdm.volume_id!, bdm.instance_uuid!);
    undone.push(`reserved attachment ${keep.id} to keep the volume attached`);
  }
  await saveBdmAttachment(db, bdm.id, bdm.attachment_id, keep.id, null);
  undone.push(`pointed the BDM at attachment ${keep.id} with connection_info cleared`);
  return `the old attachment was removed; the BDM now holds the reserved attachment ${keep.id} with no connection_info: run refresh again before starting the instance`;
}

function connectionInfoDiff(bdm: BdmRecord, instanceUuid: string, volumeId: string, before: unknown, after: unknown) {
  const name = `BDM ${bdm.uuid} (instance ${instanceUuid}, volume ${volumeId}) connection_info`;
  return {
    before_header: `${name} (before)`,
    after_header: `${name} (after)`,
    before: `${JSON.stringify(before, null, 2)}\n`,
    after: `${JSON.stringify(after, null, 2)}\n`,
  };
}
