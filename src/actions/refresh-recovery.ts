import type { Attachment, CinderClient } from '../cinder/cinder-client';
import type { NovaDatabase } from '../nova-db/connect';
import type { BdmRecord } from '../nova-db/records';
import { finishRefreshAction, saveBdmAttachment, unfinishedRefreshActions, unlockInstanceAfterRefresh } from '../nova-db/refresh-writes';
import type { CellDatabase } from '../nova-db/schema';
import { newAdminContext } from '../rpc/request-context';
import { connectionInfoFromAttachment, parseConnectionInfo, pythonJsonDumps } from './connection-info';

// A refresh killed mid-way leaves its lock (locked_reason naming the BDM), an unfinished
// refresh action and maybe a reserved attachment. Before doing anything else, the next
// refresh of that BDM makes the BDM point at an attachment that exists, deletes the strays,
// finishes the action and unlocks; then it refreshes as usual.

export interface Recovery {
  kept_attachment_id: string | null;
  deleted_attachments: string[];
  finished_actions: number[];
  notes: string[];
}

export async function recoverInterruptedRefresh(input: {
  db: NovaDatabase<CellDatabase>;
  cinder: CinderClient;
  bdm: BdmRecord;
  reason: string;
  localHost: string;
}): Promise<Recovery> {
  const { db, cinder, bdm } = input;
  const recovery: Recovery = { kept_attachment_id: bdm.attachment_id, deleted_attachments: [], finished_actions: [], notes: [] };
  const attachments = await cinder.listAttachments(bdm.volume_id!, bdm.instance_uuid!);
  const current = bdm.attachment_id ? attachments.find((a) => a.id === bdm.attachment_id) : undefined;

  let keep: Attachment | undefined;
  if (current) {
    keep = current;
    recovery.notes.push(`the BDM's attachment ${current.id} still exists; removed the attachments the interrupted run reserved`);
  } else if (!bdm.attachment_id && attachments.some((a) => a.status === 'attached')) {
    recovery.notes.push('the legacy attachment still exists; removed the attachments the interrupted run reserved');
    keep = undefined; // the BDM stays legacy; only strays go
  } else {
    // The old attachment is gone: adopt what the interrupted run created, or reserve one.
    // Prefer the one the interrupted run already connected (its PUT went through).
    keep = attachments.find((a) => a.connection_info && Object.keys(a.connection_info).length > 0) ?? attachments[0];
    if (!keep) {
      keep = await cinder.reserveAttachment(bdm.volume_id!, bdm.instance_uuid!);
      recovery.notes.push(`no attachment was left; reserved ${keep.id} so the volume stays attached`);
    }
    const info = keep.connection_info && Object.keys(keep.connection_info).length > 0
      ? pythonJsonDumps(connectionInfoFromAttachment(keep, bdm.volume_id!, parseConnectionInfo(bdm.connection_info)))
      : null;
    await saveBdmAttachment(db, bdm.id, bdm.attachment_id, keep.id, info);
    recovery.kept_attachment_id = keep.id;
    recovery.notes.push(`pointed the BDM at attachment ${keep.id}${info ? '' : ' with connection_info cleared'}`);
  }
  if (keep?.status === 'attaching' && keep.connection_info && Object.keys(keep.connection_info).length > 0) {
    // Connected but never completed: the volume stays `attaching`, and Cinder reserves no new
    // attachment for it until this one is complete (cinder/volume/api.py _attachment_reserve).
    await cinder.completeAttachment(keep.id);
    recovery.notes.push(`marked attachment ${keep.id} complete (the interrupted run had connected it)`);
  }
  for (const a of attachments) {
    if (a.id === keep?.id) continue;
    if (!keep && !bdm.attachment_id && a.status === 'attached') continue; // the legacy one
    await cinder.deleteAttachment(a.id);
    recovery.deleted_attachments.push(a.id);
  }
  for (const id of await unfinishedRefreshActions(db, bdm.instance_uuid!)) {
    await finishRefreshAction(db, id, input.localHost, 'interrupted (the process running the refresh stopped); recovered by the next refresh');
    recovery.finished_actions.push(id);
  }
  await unlockInstanceAfterRefresh(db, bdm.instance_uuid!, input.reason, newAdminContext(), input.localHost);
  return recovery;
}
