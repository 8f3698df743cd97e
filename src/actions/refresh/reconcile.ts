import type { Attachment, CinderClient } from '../../cinder/cinder-client';
import type { NovaDatabase } from '../../nova-db/connect';
import { findBdmById } from '../../nova-db/refresh-reads';
import { finishRefreshAction, saveBdmAttachment, unfinishedRefreshActions } from '../../nova-db/refresh-writes';
import type { BdmRecord } from '../../nova-db/records';
import type { CellDatabase } from '../../nova-db/schema';
import { connectionInfoFromAttachment, parseConnectionInfo, pythonJsonDumps } from '../rules/connection-info';

// The one invariant a refresh must never break, restored from whatever state is left: the BDM
// points at an attachment that exists in Cinder (or at its legacy connection), and no other
// attachment of (volume, instance) stays. Idempotent: run after a failed step, and again at the
// start of the run that finds a refresh interrupted (killed, or cut off from the database).

export interface Reconciliation {
  /** The attachment the BDM points at now (null: the legacy cinder v2 connection). */
  kept_attachment_id: string | null;
  deleted_attachments: string[];
  /** Reserved to keep the volume attached when no attachment was left. */
  reserved_attachment_id?: string;
  /** The BDM was pointed at another attachment. */
  repointed: boolean;
  /** One per thing found or done, for `undone` / `recovered.notes`. */
  notes: ReconcileNote[];
}

/**
 * What the reconcile found or did, with its line for the operator. `intact`: nothing to do (the
 * BDM's attachment exists, no other was left), which a failed refresh does not count as undone.
 */
export type ReconcileNote = {
  kind: 'reserved' | 'repointed' | 'stored_info' | 'completed' | 'not_completed' | 'deleted' | 'intact';
  text: string;
};

export async function reconcileBdm(
  db: NovaDatabase<CellDatabase>,
  cinder: CinderClient,
  bdmId: number,
  /** Attachments this run reserved itself (named as such in the notes). */
  reservedByUs: readonly string[] = [],
  /** Mark a connected but `attaching` attachment complete (not right after os-complete itself failed). */
  completePending = true,
): Promise<{ bdm: BdmRecord; done: Reconciliation }> {
  const r = await readState(db, cinder, bdmId, reservedByUs);
  const keep = await keptAttachment(r);
  if (completePending && keep.status === 'attaching') await completeLeftAttaching(r, keep);
  await deleteOthers(r, keep);
  if (r.done.notes.length === 0)
    r.done.notes.push({ kind: 'intact', text: `the BDM's attachment ${keep.id} exists and no other was left` });
  return { bdm: (await findBdmById(db, bdmId)) ?? r.bdm, done: r.done };
}

/** One reconcile: the BDM and Cinder's attachments of its (volume, instance) as read first, and what it did so far. */
interface Reconcile {
  db: NovaDatabase<CellDatabase>;
  cinder: CinderClient;
  bdm: BdmRecord;
  volumeId: string;
  instanceUuid: string;
  attachments: Attachment[];
  reservedByUs: readonly string[];
  done: Reconciliation;
}

async function readState(
  db: NovaDatabase<CellDatabase>,
  cinder: CinderClient,
  bdmId: number,
  reservedByUs: readonly string[],
): Promise<Reconcile> {
  const bdm = await findBdmById(db, bdmId);
  if (!bdm || !bdm.volume_id || !bdm.instance_uuid) throw new Error(`BDM ${bdmId} is gone; nothing to reconcile`);
  const attachments = await cinder.listAttachments(bdm.volume_id, bdm.instance_uuid);
  const done: Reconciliation = { kept_attachment_id: bdm.attachment_id, deleted_attachments: [], repointed: false, notes: [] };
  return { db, cinder, bdm, volumeId: bdm.volume_id, instanceUuid: bdm.instance_uuid, attachments, reservedByUs, done };
}

/** The attachment the BDM ends up naming: its own if Cinder has it, else one adopted or reserved. */
async function keptAttachment(r: Reconcile): Promise<Attachment> {
  const { bdm } = r;
  const current = bdm.attachment_id ? r.attachments.find((a) => a.id === bdm.attachment_id) : undefined;
  // The legacy flow's record stays attached in Cinder until the refresh removes it.
  const legacy = !bdm.attachment_id ? r.attachments.find((a) => a.status === 'attached' && !r.reservedByUs.includes(a.id)) : undefined;
  const found = current ?? legacy;
  if (!found) return repointToSurvivor(r);
  if (found === current && !bdm.connection_info && hasConnection(found)) await storeConnectionInfo(r, found);
  return found;
}

/**
 * The BDM's attachment is gone: adopt the one a refresh connected (its PUT went through), else any
 * left, else reserve one so the volume stays attached (nova's last resort); point the BDM at it.
 */
async function repointToSurvivor(r: Reconcile): Promise<Attachment> {
  const { bdm, done } = r;
  let keep = r.attachments.find(hasConnection) ?? r.attachments[0];
  if (!keep) {
    keep = await r.cinder.reserveAttachment(r.volumeId, r.instanceUuid);
    done.reserved_attachment_id = keep.id;
    done.notes.push({ kind: 'reserved', text: `reserved attachment ${keep.id} to keep the volume attached` });
  }
  const info = hasConnection(keep)
    ? pythonJsonDumps(connectionInfoFromAttachment(keep, r.volumeId, parseConnectionInfo(bdm.connection_info)))
    : null;
  await saveOrThrow(r, bdm.attachment_id, keep.id, info);
  done.kept_attachment_id = keep.id;
  done.repointed = true;
  done.notes.push({ kind: 'repointed', text: `pointed the BDM at attachment ${keep.id}${info ? '' : ' with connection_info cleared'}` });
  return keep;
}

/** The BDM names an attachment a refresh connected (its PUT went through) but could not yet store the connection_info of: adopt it. */
async function storeConnectionInfo(r: Reconcile, keep: Attachment): Promise<void> {
  const info = pythonJsonDumps(connectionInfoFromAttachment(keep, r.volumeId, null));
  await saveOrThrow(r, keep.id, keep.id, info);
  r.done.notes.push({ kind: 'stored_info', text: `stored the connection_info of attachment ${keep.id}` });
}

async function saveOrThrow(r: Reconcile, from: string | null, to: string, info: string | null): Promise<void> {
  if (!(await saveBdmAttachment(r.db, r.bdm.id, from, to, info))) {
    throw new Error(`BDM ${r.bdm.uuid} changed while it was being reconciled`);
  }
}

/**
 * Connected (or its PUT cut short inside cinder-api, connection_info never saved) but never
 * completed: the volume stays `attaching`, and Cinder reserves no new attachment for it until
 * this one is complete (cinder/volume/api.py _attachment_reserve). Failing to is a note, not a failure.
 */
async function completeLeftAttaching(r: Reconcile, keep: Attachment): Promise<void> {
  try {
    await r.cinder.completeAttachment(keep.id);
    r.done.notes.push({ kind: 'completed', text: `marked attachment ${keep.id} complete (it had been left attaching)` });
  } catch (err) {
    const why = (err as Error).message.split('\n')[0];
    r.done.notes.push({ kind: 'not_completed', text: `could not mark attachment ${keep.id} complete (${why})` });
  }
}

/** Every attachment of (volume, instance) but the kept one goes. */
async function deleteOthers(r: Reconcile, keep: Attachment): Promise<void> {
  for (const a of r.attachments) {
    if (a.id === keep.id) continue;
    await r.cinder.deleteAttachment(a.id);
    r.done.deleted_attachments.push(a.id);
    r.done.notes.push({ kind: 'deleted', text: `deleted the ${r.reservedByUs.includes(a.id) ? 'reserved' : 'stray'} attachment ${a.id}` });
  }
}

/** What a failed refresh's reconcile undid, in words: all it did, not that it found nothing to do. */
export function undoneOf(done: Reconciliation): string[] {
  return done.notes.filter((n) => n.kind !== 'intact').map((n) => n.text);
}

function hasConnection(a: Attachment): boolean {
  return Boolean(a.connection_info && Object.keys(a.connection_info).length > 0);
}

/** What the recovery of an interrupted refresh did (the `recovered` key of a result). */
export interface Recovery {
  kept_attachment_id: string | null;
  deleted_attachments: string[];
  finished_actions: number[];
  notes: string[];
}

/**
 * The start of the run that finds an instance's refresh interrupted: reconcile each BDM it
 * was refreshing, and finish the refresh actions it left open.
 */
export async function recoverInterrupted(
  db: NovaDatabase<CellDatabase>,
  cinder: CinderClient,
  bdms: BdmRecord[],
  instanceUuid: string,
  eventHost: string,
): Promise<Recovery> {
  const recovery: Recovery = { kept_attachment_id: null, deleted_attachments: [], finished_actions: [], notes: [] };
  for (const bdm of bdms) {
    const { done } = await reconcileBdm(db, cinder, bdm.id);
    recovery.kept_attachment_id = done.kept_attachment_id;
    recovery.deleted_attachments.push(...done.deleted_attachments);
    recovery.notes.push(...done.notes.map((n) => (bdms.length > 1 ? `BDM ${bdm.uuid}: ${n.text}` : n.text)));
  }
  for (const id of await unfinishedRefreshActions(db, instanceUuid)) {
    await finishRefreshAction(db, id, eventHost, 'interrupted (the process running the refresh stopped); recovered by the next refresh');
    recovery.finished_actions.push(id);
  }
  return recovery;
}
