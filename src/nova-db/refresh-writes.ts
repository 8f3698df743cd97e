import type { Kysely, Transaction } from 'kysely';
import type { NovaDatabase } from './connect';
import type { CellDatabase } from './schema';

// Rows refresh writes, as nova-manage writes them (openstack/nova nova/cmd/manage.py,
// VolumeAttachmentCommands.refresh): the lock and unlock actions with their api_lock/api_unlock
// events (refresh-claim.ts takes and gives back the lock), the refresh action, the BDM update.
// Nova sets no server-side defaults, so created_at/updated_at/deleted are filled here (UTC).

type CellDb = NovaDatabase<CellDatabase>;
export type Tx = Transaction<CellDatabase> | Kysely<CellDatabase>;

export interface PhaseContext {
  requestId: string;
  timestamp: Date;
}

/** An instance_actions row as nova's admin context writes it: no user/project, started at the context's time. */
async function insertAction(tx: Tx, instanceUuid: string, ctx: PhaseContext, action: string, updatedAt: Date): Promise<number> {
  const inserted = await tx
    .insertInto('instance_actions')
    .values({
      created_at: new Date(),
      updated_at: updatedAt,
      deleted: 0,
      action,
      instance_uuid: instanceUuid,
      request_id: ctx.requestId,
      user_id: null,
      project_id: null,
      start_time: ctx.timestamp,
      finish_time: null,
      message: null,
    })
    .executeTakeFirstOrThrow();
  return Number(inserted.insertId);
}

/** Insert an instance action and one finished event (what compute_api.lock/unlock record). */
export async function recordApiAction(
  tx: Tx,
  instanceUuid: string,
  ctx: PhaseContext,
  action: string,
  event: string,
  host: string,
): Promise<void> {
  const now = new Date();
  const actionId = await insertAction(tx, instanceUuid, ctx, action, now);
  await insertFinishedEvent(tx, actionId, { event, result: 'Success', host, details: null }, now);
}

/** An event that starts and finishes at `now`, as nova records the one step of a quick action. */
async function insertFinishedEvent(
  tx: Tx,
  actionId: number,
  e: { event: string; result: 'Success' | 'Error'; host: string; details: string | null },
  now: Date,
): Promise<void> {
  await tx
    .insertInto('instance_actions_events')
    .values({ created_at: now, updated_at: now, deleted: 0, action_id: actionId, start_time: now, finish_time: now, traceback: null, ...e })
    .execute();
}

export async function startRefreshAction(db: CellDb, instanceUuid: string, ctx: PhaseContext): Promise<number> {
  return db.run((k) => insertAction(k, instanceUuid, ctx, 'refresh_volume_attachment', ctx.timestamp));
}

/**
 * Finish the refresh action. On failure, go further than nova (which leaves no trace): mark it
 * 'Error' and record an event with the (secret-free) reason, so `server event list` tells why.
 */
export async function finishRefreshAction(db: CellDb, actionId: number, host: string, error?: string): Promise<void> {
  await db.run((k) =>
    k.transaction().execute(async (tx) => {
      const now = new Date();
      await tx
        .updateTable('instance_actions')
        .set({ updated_at: now, finish_time: now, ...(error ? { message: 'Error' } : {}) })
        .where('id', '=', actionId)
        .execute();
      if (error) {
        await insertFinishedEvent(tx, actionId, { event: 'nova_bdm_refresh', result: 'Error', host, details: error.slice(0, 65000) }, now);
      }
    }),
  );
}

/** Unfinished refresh actions of an instance (left by a run that was killed). */
export async function unfinishedRefreshActions(db: CellDb, instanceUuid: string): Promise<number[]> {
  const rows = await db.run((k) =>
    k
      .selectFrom('instance_actions')
      .select('id')
      .where('instance_uuid', '=', instanceUuid)
      .where('action', '=', 'refresh_volume_attachment')
      .where('finish_time', 'is', null)
      .where('deleted', '=', 0)
      .execute(),
  );
  return rows.map((r) => r.id);
}

/** Point the BDM at an attachment; guarded by the attachment it pointed at before. */
export async function saveBdmAttachment(
  db: CellDb,
  bdmId: number,
  expectedAttachmentId: string | null,
  attachmentId: string,
  connectionInfo: string | null,
): Promise<boolean> {
  const res = await db.run((k) =>
    k
      .updateTable('block_device_mapping')
      .set({ updated_at: new Date(), connection_info: connectionInfo, attachment_id: attachmentId })
      .where('id', '=', bdmId)
      .where('deleted', '=', 0)
      .where((eb) => (expectedAttachmentId === null ? eb('attachment_id', 'is', null) : eb('attachment_id', '=', expectedAttachmentId)))
      .executeTakeFirst(),
  );
  return Number(res.numUpdatedRows) === 1;
}
