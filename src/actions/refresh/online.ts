import type { Attachment } from '../../cinder/cinder-client';
import { NovaBdmError, RefreshFailed } from '../../errors';
import { saveBdmAttachment } from '../../nova-db/refresh-writes';
import type { BdmRecord } from '../../nova-db/records';
import { connectionInfoFromAttachment, parseConnectionInfo, pythonJsonDumps } from '../rules/connection-info';
import { asRefreshAction, completePendingAttachment, connectorFor, type BdmWriteInput } from './bdm-writes';
import { reconcileBdm, undoneOf } from './reconcile';
import type { WorkDone } from './work';

// The writes of one BDM's online refresh, under the instance's lock, the instance running: a
// second attachment for the same instance with the host's connector, completed; the BDM saved;
// the old attachment deleted. No RPC: QEMU's librbd client keeps the connection it has (it
// follows the monitor map), and nothing on the host holds the old attachment (online-eligibility.ts).
// At every instant the BDM names an attachment Cinder has: Nova 2023.2+ deletes a BDM whose
// attachment is gone at the next reboot (ComputeManager._delete_dangling_bdms).

/** The four steps, in order, as the result's step log names them. */
export const ONLINE_STEPS = ['attachment_create', 'attachment_complete', 'bdm_save', 'attachment_delete'] as const;
export type OnlineStep = (typeof ONLINE_STEPS)[number];

/** The online flow takes what both flows take, and no RPC. */
export type OnlineWorkInput = BdmWriteInput;

export interface OnlineWorkDone extends WorkDone {
  onlineSteps: OnlineStep[];
}

/** Thrown when the clean-up after a failure could not run: the caller keeps the claim, so the next run recovers. */
export class OnlineCleanupFailed extends RefreshFailed {
  override name = 'OnlineCleanupFailed';
}

export async function refreshAttachmentOnline(w: OnlineWorkInput): Promise<OnlineWorkDone> {
  const run: OnlineRun = { bdm: w.bdm, done: [] };
  return asRefreshAction(
    w,
    w.instance.uuid,
    () => onlineSteps(w, run),
    (failure) => failedOnline(w, run, failure),
  );
}

/** How far the run got: what the clean-up after a failure starts from. */
interface OnlineRun {
  /** The BDM as this run last read it (the removal of strays re-reads it). */
  bdm: BdmRecord;
  /** The ONLINE_STEPS done, in order. */
  done: OnlineStep[];
  created?: Attachment;
}

/** Clear strays, then the four ONLINE_STEPS: create, complete, save the BDM, delete the old attachment. */
async function onlineSteps(w: OnlineWorkInput, run: OnlineRun): Promise<OnlineWorkDone> {
  const { cinder } = w;
  run.bdm = await clearStrays(w, run.bdm);
  const bdm = run.bdm;
  const volumeId = bdm.volume_id!;
  await completePendingAttachment(cinder, w.steps, w.cinderView, bdm, w.volumeAttaching);
  const created = await onlineStep(w, run, 'attachment_create', () =>
    cinder.createAttachment(volumeId, w.instance.uuid, connectorFor(w.connector, bdm)),
  );
  run.created = created;
  await onlineStep(w, run, 'attachment_complete', () => cinder.completeAttachment(created.id));
  const newInfo = connectionInfoFromAttachment(created, volumeId, parseConnectionInfo(bdm.connection_info));
  const oldId = bdm.attachment_id;
  const saved = await onlineStep(w, run, 'bdm_save', () => saveBdmAttachment(w.db, bdm.id, oldId, created.id, pythonJsonDumps(newInfo)));
  if (!saved) throw new NovaBdmError(`BDM ${bdm.uuid} changed under us (its attachment_id is no longer ${oldId})`);
  // With the service token: without it, Cinder asks Nova whether the instance still uses the
  // attachment (OSSA-2023-003), and Nova says it does until it reads the saved BDM.
  if (oldId) await onlineStep(w, run, 'attachment_delete', () => cinder.deleteAttachment(oldId));
  else run.done.push('attachment_delete');
  return { newAttachmentId: created.id, newInfo, onlineSteps: run.done };
}

/** One of the ONLINE_STEPS, counted as done once it returns. */
async function onlineStep<T>(w: OnlineWorkInput, run: OnlineRun, name: OnlineStep, work: () => Promise<T>): Promise<T> {
  const value = await w.steps.run(name, work);
  run.done.push(name);
  return value;
}

/**
 * The error a failed run ends with, after the reconcile step. When that clean-up cannot run
 * either, an OnlineCleanupFailed: the caller keeps the claim, so the next run recovers.
 */
async function failedOnline(w: OnlineWorkInput, run: OnlineRun, failure: Error): Promise<RefreshFailed> {
  const message = (remains: string) =>
    `online refresh of BDM ${run.bdm.uuid} failed at ${w.steps.failedStep ?? 'an unknown step'}: ${failure.message.split('\n')[0]}; ${remains}`;
  let after: { undone: string[]; remains: string };
  try {
    after = await w.steps.run('reconcile', () => afterFailure(w, run.bdm, run.created));
  } catch (e) {
    const remains = `clean-up failed too (${(e as Error).message.split('\n')[0]}); the instance stays locked by this refresh: run refresh again to recover it (the guest is not affected)`;
    return new OnlineCleanupFailed(message(remains), { undone: [], remains, steps_done: run.done }, failure);
  }
  return new RefreshFailed(message(after.remains), { ...after, steps_done: run.done }, failure);
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
