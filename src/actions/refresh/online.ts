import type { Selectable } from 'kysely';
import type { Connector } from '../../connector';
import type { Attachment, CinderClient } from '../../cinder/cinder-client';
import { NovaBdmError, RefreshFailed } from '../../errors';
import type { NovaDatabase } from '../../nova-db/connect';
import { finishRefreshAction, saveBdmAttachment, startRefreshAction } from '../../nova-db/refresh-writes';
import type { BdmRecord } from '../../nova-db/records';
import type { CellDatabase, InstancesTable } from '../../nova-db/schema';
import type { AdminContext } from '../../rpc/request-context';
import { connectionInfoFromAttachment, parseConnectionInfo, pythonJsonDumps } from '../rules/connection-info';
import { reconcileBdm, undoneOf } from './reconcile';
import type { WorkDone } from './work';
import type { StepLog } from '../shared/step-log';

// The writes of one BDM's online refresh, under the instance's lock, the instance running: a
// second attachment for the same instance with the host's connector, completed; the BDM saved;
// the old attachment deleted. No RPC: QEMU's librbd client keeps the connection it has (it
// follows the monitor map), and nothing on the host holds the old attachment (online-eligibility.ts).
// At every instant the BDM names an attachment Cinder has: Nova 2023.2+ deletes a BDM whose
// attachment is gone at the next reboot (ComputeManager._delete_dangling_bdms).

/** The four steps, in order, as the result's step log names them. */
export const ONLINE_STEPS = ['attachment_create', 'attachment_complete', 'bdm_save', 'attachment_delete'] as const;
export type OnlineStep = (typeof ONLINE_STEPS)[number];

export interface OnlineWorkInput {
  db: NovaDatabase<CellDatabase>;
  cinder: CinderClient;
  /** The refresh phase's context: its request id goes to Cinder and the action. */
  ctx: AdminContext;
  steps: StepLog;
  /** [DEFAULT] host of this process (the action event's host). */
  eventHost: string;
  /** The instance as locked. */
  instance: Selectable<InstancesTable>;
  bdm: BdmRecord;
  connector: Connector;
  /** Cinder's view of the BDM's attachment, read by the inspection (null: gone). */
  cinderView: Attachment | null;
  /** Every attachment of (volume, instance) as a fleet plan's bulk listing showed it. */
  listedAttachments?: Attachment[];
  warnings: string[];
}

export interface OnlineWorkDone extends WorkDone {
  onlineSteps: OnlineStep[];
}

/** Thrown when the clean-up after a failure could not run: the caller keeps the claim, so the next run recovers. */
export class OnlineCleanupFailed extends RefreshFailed {
  override name = 'OnlineCleanupFailed';
}

export async function refreshAttachmentOnline(w: OnlineWorkInput): Promise<OnlineWorkDone> {
  const { db, cinder, steps } = w;
  let bdm = w.bdm;
  const volumeId = bdm.volume_id!;
  const instanceUuid = w.instance.uuid;
  const done: OnlineStep[] = [];
  const step = async <T>(name: OnlineStep, work: () => Promise<T>): Promise<T> => {
    const value = await steps.run(name, work);
    done.push(name);
    return value;
  };
  let created: Attachment | undefined;
  let actionId: number | undefined;
  let failure: Error | undefined;
  try {
    actionId = await steps.run('start_action', () => startRefreshAction(db, instanceUuid, w.ctx));
    bdm = await clearStrays(w, bdm);
    const pending = w.cinderView;
    if (pending?.id === bdm.attachment_id && pending.status === 'attaching') {
      // Cinder reserves a second attachment for the instance only while the volume is in-use
      // (cinder/volume/api.py _attachment_reserve): complete the BDM's own attachment first.
      await steps.run('cinder_complete_pending', () => cinder.completeAttachment(pending.id));
    }
    const connector = { ...w.connector };
    if (connector.mountpoint === undefined && bdm.device_name) connector.mountpoint = bdm.device_name;
    created = await step('attachment_create', () => cinder.createAttachment(volumeId, instanceUuid, connector));
    const newId = created.id;
    await step('attachment_complete', () => cinder.completeAttachment(newId));
    const newInfo = connectionInfoFromAttachment(created, volumeId, parseConnectionInfo(bdm.connection_info));
    const oldId = bdm.attachment_id;
    const saved = await step('bdm_save', () => saveBdmAttachment(db, bdm.id, oldId, newId, pythonJsonDumps(newInfo)));
    if (!saved) throw new NovaBdmError(`BDM ${bdm.uuid} changed under us (its attachment_id is no longer ${oldId})`);
    // With the service token: without it, Cinder asks Nova whether the instance still uses the
    // attachment (OSSA-2023-003), and Nova says it does until it reads the saved BDM.
    if (oldId) await step('attachment_delete', () => cinder.deleteAttachment(oldId));
    else done.push('attachment_delete');
    return { newAttachmentId: newId, newInfo, onlineSteps: done };
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    const message = (remains: string) =>
      `online refresh of BDM ${bdm.uuid} failed at ${steps.failedStep ?? 'an unknown step'}: ${failure!.message.split('\n')[0]}; ${remains}`;
    let after: { undone: string[]; remains: string };
    try {
      after = await steps.run('reconcile', () => afterFailure(w, bdm, created));
    } catch (e) {
      const remains = `clean-up failed too (${(e as Error).message.split('\n')[0]}); the instance stays locked by this refresh: run refresh again to recover it (the guest is not affected)`;
      throw new OnlineCleanupFailed(message(remains), { undone: [], remains, steps_done: done }, failure);
    }
    throw new RefreshFailed(message(after.remains), { ...after, steps_done: done }, failure);
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

/**
 * Attachments of (volume, instance) beside the BDM's: one a failed run could not remove (its
 * clean-up failed too), or a stray of an old migration. Removed first, by the reconcile, so the
 * BDM keeps its attachment and the volume ends with exactly the BDM's.
 */
async function clearStrays(w: OnlineWorkInput, bdm: BdmRecord): Promise<BdmRecord> {
  const all =
    w.listedAttachments ?? (await w.steps.run('cinder_list_attachments', () => w.cinder.listAttachments(bdm.volume_id!, w.instance.uuid)));
  if (!all.some((a) => a.id !== bdm.attachment_id)) return bdm;
  return (await w.steps.run('reconcile', () => reconcileBdm(w.db, w.cinder, bdm.id))).bdm;
}

/**
 * Whatever step failed, the BDM names an attachment Cinder has (ours or the old one): keep it,
 * delete the other. The reconcile reads the BDM again, so a save whose reply was lost counts.
 */
async function afterFailure(
  w: OnlineWorkInput,
  bdm: BdmRecord,
  created: Attachment | undefined,
): Promise<{ undone: string[]; remains: string }> {
  const { bdm: now, done } = await reconcileBdm(w.db, w.cinder, bdm.id, created ? [created.id] : [], false);
  const undone = undoneOf(done);
  if (created && now.attachment_id === created.id) {
    return {
      undone,
      remains: `nothing: the BDM holds the new attachment ${created.id}, and the clean-up removed the old one (the guest was not touched)`,
    };
  }
  if (now.attachment_id === bdm.attachment_id) {
    return { undone, remains: 'the BDM and its attachment are unchanged (the guest was not touched): run refresh again' };
  }
  return { undone, remains: `the BDM now holds attachment ${now.attachment_id} (the guest was not touched): run refresh again` };
}
