import type { Attachment, CinderClient } from '../../cinder/cinder-client';
import { NovaBdmError, RefreshFailed } from '../../errors';
import { CLAIM_KEY } from '../../nova-db/refresh-claim';
import { infoCacheOf, systemMetadataOf } from '../../nova-db/refresh-reads';
import { saveBdmAttachment } from '../../nova-db/refresh-writes';
import type { BdmRecord } from '../../nova-db/records';
import { instancePrimitive } from '../../rpc/instance-primitive';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { takesDeleteAttachment, type ComputeTopic } from '../../rpc/compute-rpc-version';
import { contextDict } from '../../rpc/request-context';
import { connectionInfoFromAttachment, parseConnectionInfo, pythonJsonDumps, type ConnectionInfo } from '../rules/connection-info';
import { asRefreshAction, completePendingAttachment, connectorFor, type BdmWriteInput } from './bdm-writes';
import { reconcileBdm, undoneOf } from './reconcile';

// The writes of one BDM's refresh, under the instance's lock: nova-manage's _do_refresh. On any
// failure the reconcile step restores the invariant and the error says what remains.

/** The stopped flow's input: what both flows take, and the route of the compute's RPC. */
export interface WorkInput extends BdmWriteInput {
  rpc: OsloRpcClient;
  rpcVersion: string;
  /** The topic remove_volume_connection goes to (compute-alt from RPC 6.5 on). */
  rpcTopic: ComputeTopic;
  rpcTimeoutSeconds: number;
}

export interface WorkDone {
  newAttachmentId: string;
  newInfo: ConnectionInfo;
}

export async function refreshAttachment(w: WorkInput): Promise<WorkDone> {
  const run: WorkRun = { bdm: w.bdm, rpcDone: false, bdmSaved: false };
  return asRefreshAction(
    w,
    w.instance.uuid,
    () => refreshSteps(w, run),
    (failure) => failedRefresh(w, run, failure),
  );
}

/** How far the run got: what the clean-up after a failure starts from. */
interface WorkRun {
  /** The BDM as this run last read it (the reconcile of a stranded attachment re-reads it). */
  bdm: BdmRecord;
  newAttachment?: Attachment;
  rpcDone: boolean;
  bdmSaved: boolean;
}

/** nova-manage's _do_refresh: reserve, disconnect on the host, repoint, delete the old, connect, save, complete. */
async function refreshSteps(w: WorkInput, run: WorkRun): Promise<WorkDone> {
  const { cinder, steps } = w;
  run.bdm = await adoptStranded(w, run.bdm);
  const bdm = run.bdm;
  await completePendingAttachment(cinder, steps, w.cinderView, bdm, w.volumeAttaching);
  run.newAttachment = await steps.run('cinder_reserve', () => cinder.reserveAttachment(bdm.volume_id!, w.instance.uuid));
  const newId = run.newAttachment.id;
  await removeVolumeConnection(w, bdm);
  run.rpcDone = true;
  // The stale connection_info goes with the old attachment: nothing connects the new one yet.
  await saveOrThrow(w, 'repoint_bdm', bdm, bdm.attachment_id, newId, null);
  await steps.run('cinder_delete_old', () => removeOldAttachments(cinder, bdm, newId, w.listedAttachments));
  const updated = await steps.run('cinder_update', () => cinder.updateAttachment(newId, connectorFor(w.connector, bdm)));
  const newInfo = connectionInfoFromAttachment(updated, bdm.volume_id!, parseConnectionInfo(bdm.connection_info));
  await saveOrThrow(w, 'save_bdm', bdm, newId, newId, pythonJsonDumps(newInfo));
  run.bdmSaved = true;
  await steps.run('cinder_complete', () => cinder.completeAttachment(newId));
  return { newAttachmentId: newId, newInfo };
}

/**
 * The BDM names an attachment Cinder no longer has: a run whose clean-up could not finish (a lock
 * wait at save_bdm, say) leaves a connected `attaching` attachment beside it, and Cinder reserves
 * nothing for a volume in that state. Restore the invariant first: the reconcile adopts and
 * completes that attachment. Returns the BDM as it is then.
 */
async function adoptStranded(w: WorkInput, bdm: BdmRecord): Promise<BdmRecord> {
  if (bdm.attachment_id === null || w.cinderView !== null) return bdm;
  const left = await w.steps.run('cinder_list_attachments', () => w.cinder.listAttachments(bdm.volume_id!, w.instance.uuid));
  if (!left.some((a) => a.status === 'attaching')) return bdm;
  return (await w.steps.run('reconcile', () => reconcileBdm(w.db, w.cinder, bdm.id))).bdm;
}

/** Ask the instance's compute to disconnect the volume from its host. */
async function removeVolumeConnection(w: WorkInput, bdm: BdmRecord): Promise<void> {
  // What nova sends: the instance as locked, updated_at as read before the lock; our claim row is ours alone.
  const { [CLAIM_KEY]: _claim, ...sysmeta } = await systemMetadataOf(w.db, w.instance.uuid);
  const primitive = instancePrimitive(w.instance, sysmeta, await infoCacheOf(w.db, w.instance.uuid));
  // From 6.3 nova's rpcapi always sends delete_attachment; nova-manage sends True and lets the
  // compute delete the attachment the BDM still names. We send False and delete it ourselves once
  // the BDM names the new one: the BDM never names a deleted attachment.
  const deleteAttachment = takesDeleteAttachment(w.rpcVersion) ? { delete_attachment: false } : {};
  const message = {
    method: 'remove_volume_connection',
    args: { instance: primitive, volume_id: bdm.volume_id!, ...deleteAttachment },
    version: w.rpcVersion,
  };
  const timeouts = { timeoutSeconds: w.rpcTimeoutSeconds, callMonitorSeconds: w.rpcTimeoutSeconds > 60 ? 60 : null };
  await w.steps.run('rpc_remove_volume_connection', () =>
    w.rpc.call(`${w.rpcTopic}.${w.instance.host}`, message, contextDict(w.ctx), timeouts),
  );
}

/** Point the BDM from attachment `from` to `to`, or throw if it no longer names `from` (another writer got there). */
async function saveOrThrow(
  w: WorkInput,
  step: 'repoint_bdm' | 'save_bdm',
  bdm: BdmRecord,
  from: string | null,
  to: string,
  info: string | null,
): Promise<void> {
  const saved = await w.steps.run(step, () => saveBdmAttachment(w.db, bdm.id, from, to, info));
  if (!saved) throw new NovaBdmError(`BDM ${bdm.uuid} changed under us (its attachment_id is no longer ${from})`);
}

/** The error a failed run ends with: what went wrong, at which step, and what the reconcile left. */
async function failedRefresh(w: WorkInput, run: WorkRun, failure: Error): Promise<RefreshFailed> {
  const { undone, remains } = await afterFailure({ ...w, bdm: run.bdm }, run).catch((e: Error) => ({
    undone: [] as string[],
    remains: `clean-up failed too (${e.message.split('\n')[0]}); run refresh again to recover`,
  }));
  return new RefreshFailed(
    `refresh of BDM ${run.bdm.uuid} failed at ${w.steps.failedStep ?? 'an unknown step'}: ${failure.message.split('\n')[0]}; ${remains}`,
    { undone, remains },
    failure,
  );
}

/** Reconcile, then say in words what state is left. */
async function afterFailure(w: WorkInput, run: WorkRun): Promise<{ undone: string[]; remains: string }> {
  const reserved = run.newAttachment ? [run.newAttachment.id] : [];
  const { bdm, done } = await reconcileBdm(w.db, w.cinder, w.bdm.id, reserved, false);
  const undone = undoneOf(done);
  if (run.bdmSaved && bdm.attachment_id === run.newAttachment?.id) {
    return {
      undone,
      remains: `the BDM holds the new attachment ${bdm.attachment_id} and its connection_info, but Cinder did not mark it complete; run refresh again`,
    };
  }
  if (!done.repointed && bdm.attachment_id === w.bdm.attachment_id) {
    const legacy = w.bdm.attachment_id === null;
    return {
      undone,
      remains: run.rpcDone
        ? `the BDM and its attachment are unchanged, but the compute has already disconnected the volume from the host${legacy ? ' and ended its legacy connection in Cinder' : ''}: run refresh again before starting the instance`
        : 'the BDM and its attachment are unchanged',
    };
  }
  return {
    undone,
    remains: `the old attachment was removed; the BDM now holds the reserved attachment ${done.kept_attachment_id} with ${bdm.connection_info ? "Cinder's connection_info" : 'no connection_info'}: run refresh again before starting the instance`,
  };
}

/**
 * v3: delete the BDM's old attachment. Legacy (cinder v2): the compute ended the connection;
 * remove the record Cinder still keeps. Both: any other attachment of (volume, instance) but the
 * new one goes too: a stray an earlier run could not remove (e.g. a reservation Cinder carried
 * out after that run had timed out and given up).
 */
async function removeOldAttachments(cinder: CinderClient, bdm: BdmRecord, newId: string, listed?: Attachment[]): Promise<void> {
  if (bdm.attachment_id) await cinder.deleteAttachment(bdm.attachment_id);
  // The plan's listing is as good as a fresh one here: the instance is locked and stopped,
  // so nothing but this run adds an attachment to it.
  const others = listed
    ? listed.filter((a) => a.id !== bdm.attachment_id)
    : await cinder.listAttachments(bdm.volume_id!, bdm.instance_uuid!);
  for (const a of others) {
    if (a.id !== newId) await cinder.deleteAttachment(a.id);
  }
}
