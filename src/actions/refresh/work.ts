import type { Selectable } from 'kysely';
import type { Connector } from '../../connector';
import type { Attachment, CinderClient } from '../../cinder/cinder-client';
import { NovaBdmError, RefreshFailed } from '../../errors';
import type { NovaDatabase } from '../../nova-db/connect';
import { CLAIM_KEY } from '../../nova-db/refresh-claim';
import { infoCacheOf, systemMetadataOf } from '../../nova-db/refresh-reads';
import { finishRefreshAction, saveBdmAttachment, startRefreshAction } from '../../nova-db/refresh-writes';
import type { BdmRecord } from '../../nova-db/records';
import type { CellDatabase, InstancesTable } from '../../nova-db/schema';
import { instancePrimitive } from '../../rpc/instance-primitive';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { takesDeleteAttachment, type ComputeTopic } from '../../rpc/compute-rpc-version';
import { contextDict, type AdminContext } from '../../rpc/request-context';
import { connectionInfoFromAttachment, parseConnectionInfo, pythonJsonDumps, type ConnectionInfo } from '../rules/connection-info';
import { reconcileBdm, undoneOf } from './reconcile';
import type { StepLog } from '../shared/step-log';

// The writes of one BDM's refresh, under the instance's lock: nova-manage's _do_refresh. On any
// failure the reconcile step restores the invariant and the error says what remains.

export interface WorkInput {
  db: NovaDatabase<CellDatabase>;
  cinder: CinderClient;
  rpc: OsloRpcClient;
  /** The refresh phase's context: its request id goes to Cinder, the RPC and the action. */
  ctx: AdminContext;
  steps: StepLog;
  /** [DEFAULT] host of this process (the error event's host). */
  eventHost: string;
  rpcVersion: string;
  /** The topic remove_volume_connection goes to (compute-alt from RPC 6.5 on). */
  rpcTopic: ComputeTopic;
  rpcTimeoutSeconds: number;
  /** The instance as locked. */
  instance: Selectable<InstancesTable>;
  bdm: BdmRecord;
  connector: Connector;
  /** Cinder's view of the BDM's attachment, read by the inspection (null: none or legacy). */
  cinderView?: Attachment | null;
  /** Every attachment of (volume, instance) as a fleet plan's bulk listing showed it: no listing of our own needed. */
  listedAttachments?: Attachment[];
  warnings: string[];
}

export interface WorkDone {
  newAttachmentId: string;
  newInfo: ConnectionInfo;
}

export async function refreshAttachment(w: WorkInput): Promise<WorkDone> {
  const { db, cinder, steps } = w;
  let bdm = w.bdm;
  const volumeId = bdm.volume_id!;
  const instanceUuid = w.instance.uuid;
  const state: WorkState = { rpcDone: false, repointed: false, bdmSaved: false };
  let actionId: number | undefined;
  let failure: Error | undefined;
  try {
    actionId = await steps.run('start_action', () => startRefreshAction(db, instanceUuid, w.ctx));
    if (bdm.attachment_id !== null && w.cinderView === null) {
      // The BDM names an attachment Cinder no longer has: a run whose clean-up could not finish
      // (e.g. a lock wait at save_bdm) leaves a connected `attaching` attachment beside it, and
      // Cinder reserves nothing for a volume in that state. Restore the invariant first: the
      // reconcile adopts and completes that attachment.
      const stranded = bdm;
      const left = await steps.run('cinder_list_attachments', () => cinder.listAttachments(volumeId, instanceUuid));
      if (left.some((a) => a.status === 'attaching')) {
        bdm = (await steps.run('reconcile', () => reconcileBdm(db, cinder, stranded.id))).bdm;
      }
    }
    const pending = w.cinderView;
    if (pending?.id === bdm.attachment_id && pending.status === 'attaching') {
      // The BDM's attachment was left `attaching`, so is the volume, and Cinder reserves a new
      // attachment only for an in-use or reserved one (cinder/volume/api.py _attachment_reserve):
      // complete it first. A run whose os-complete failed leaves it so (connection_info set), and
      // so does a cinder-api that dies inside the PUT: cinder-volume has set `attaching` and the
      // connector, and the API never saves the connection_info (api.py attachment_update saves
      // it after the RPC returns). The refresh then replaces it.
      await steps.run('cinder_complete_pending', () => cinder.completeAttachment(pending.id));
    }
    state.newAttachment = await steps.run('cinder_reserve', () => cinder.reserveAttachment(volumeId, instanceUuid));
    // What nova sends: the instance as locked, updated_at as read before the lock; our claim row is ours alone.
    const { [CLAIM_KEY]: _claim, ...sysmeta } = await systemMetadataOf(db, instanceUuid);
    const primitive = instancePrimitive(w.instance, sysmeta, await infoCacheOf(db, instanceUuid));
    await steps.run('rpc_remove_volume_connection', () =>
      w.rpc.call(
        `${w.rpcTopic}.${w.instance.host}`,
        {
          method: 'remove_volume_connection',
          // From 6.3 nova's rpcapi always sends delete_attachment; nova-manage sends True and lets
          // the compute delete the attachment the BDM still names. We send False and delete it
          // ourselves once the BDM names the new one: the BDM never names a deleted attachment.
          args: { instance: primitive, volume_id: volumeId, ...(takesDeleteAttachment(w.rpcVersion) ? { delete_attachment: false } : {}) },
          version: w.rpcVersion,
        },
        contextDict(w.ctx),
        { timeoutSeconds: w.rpcTimeoutSeconds, callMonitorSeconds: w.rpcTimeoutSeconds > 60 ? 60 : null },
      ),
    );
    state.rpcDone = true;
    // The stale connection_info goes with the old attachment: nothing connects the new one yet.
    const repointed = await steps.run('repoint_bdm', () => saveBdmAttachment(db, bdm.id, bdm.attachment_id, state.newAttachment!.id, null));
    if (!repointed) throw new NovaBdmError(`BDM ${bdm.uuid} changed under us (its attachment_id is no longer ${bdm.attachment_id})`);
    state.repointed = true;
    await steps.run('cinder_delete_old', () => removeOldAttachments(cinder, bdm, state.newAttachment!.id, w.listedAttachments));
    const connector = { ...w.connector };
    if (connector.mountpoint === undefined && bdm.device_name) connector.mountpoint = bdm.device_name;
    const updated = await steps.run('cinder_update', () => cinder.updateAttachment(state.newAttachment!.id, connector));
    const newInfo = connectionInfoFromAttachment(updated, volumeId, parseConnectionInfo(bdm.connection_info));
    const saved = await steps.run('save_bdm', () =>
      saveBdmAttachment(db, bdm.id, state.newAttachment!.id, state.newAttachment!.id, pythonJsonDumps(newInfo)),
    );
    if (!saved) throw new NovaBdmError(`BDM ${bdm.uuid} changed under us (its attachment_id is no longer ${state.newAttachment.id})`);
    state.bdmSaved = true;
    await steps.run('cinder_complete', () => cinder.completeAttachment(state.newAttachment!.id));
    return { newAttachmentId: state.newAttachment.id, newInfo };
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    const { undone, remains } = await afterFailure({ ...w, bdm }, state).catch((e: Error) => ({
      undone: [] as string[],
      remains: `clean-up failed too (${e.message.split('\n')[0]}); run refresh again to recover`,
    }));
    throw new RefreshFailed(
      `refresh of BDM ${bdm.uuid} failed at ${steps.failedStep ?? 'an unknown step'}: ${failure.message.split('\n')[0]}; ${remains}`,
      { undone, remains },
      failure,
    );
  } finally {
    if (actionId !== undefined) {
      const id = actionId;
      await steps
        .run('finish_action', () => finishRefreshAction(db, id, w.eventHost, failure?.message))
        .catch((e: Error) => {
          w.warnings.push(`could not finish instance action: ${e.message.split('\n')[0]}`);
        });
    }
  }
}

interface WorkState {
  newAttachment?: Attachment;
  rpcDone: boolean;
  /** The BDM names the new attachment (connection_info cleared), and the old one may be gone. */
  repointed: boolean;
  bdmSaved: boolean;
}

/** Reconcile, then say in words what state is left. */
async function afterFailure(w: WorkInput, state: WorkState): Promise<{ undone: string[]; remains: string }> {
  const reserved = state.newAttachment ? [state.newAttachment.id] : [];
  const { bdm, done } = await reconcileBdm(w.db, w.cinder, w.bdm.id, reserved, false);
  const undone = undoneOf(done);
  if (state.bdmSaved && bdm.attachment_id === state.newAttachment?.id) {
    return {
      undone,
      remains: `the BDM holds the new attachment ${bdm.attachment_id} and its connection_info, but Cinder did not mark it complete; run refresh again`,
    };
  }
  if (!done.repointed && bdm.attachment_id === w.bdm.attachment_id) {
    const legacy = w.bdm.attachment_id === null;
    return {
      undone,
      remains: state.rpcDone
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
