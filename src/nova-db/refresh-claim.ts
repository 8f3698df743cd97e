import { sql, type Selectable } from 'kysely';
import type { NovaDatabase } from './connect';
import { recordApiAction, type PhaseContext, type Tx } from './refresh-writes';
import type { CellDatabase, InstancesTable } from './schema';

// Mutual exclusion between refreshes of one instance, whether or not it is already locked.
// The claim is one instance_system_metadata row with key `nova_bdm_refresh` that only refresh
// writes. It is taken in one transaction that first locks the instance row (SELECT ... FOR
// UPDATE on the unique uuid, in READ COMMITTED), so two controllers are serialised on it: the second one sees
// the first one's claim and backs off. In the same transaction an unlocked instance is locked
// the way nova-manage locks it (locked, locked_by admin, locked_reason, lock action); an
// already-locked one is left as it is. The holder refreshes the claim's updated_at while it
// works (a heartbeat); a claim whose holder is gone is taken over by the next run.

export const CLAIM_KEY = 'nova_bdm_refresh';

type CellDb = NovaDatabase<CellDatabase>;

/** What the claim row holds (JSON in its value). */
export interface ClaimValue {
  /** Unique per run: host name, process id and a random part. */
  token: string;
  host: string;
  pid: number;
  /** The BDMs the holder is refreshing. */
  bdms: string[];
  /** The holder locked the instance itself (and unlocks it when done). */
  we_locked: boolean;
  since: string;
}

export interface HeldClaim {
  id: number;
  value: ClaimValue;
  /** Seconds since the holder's last heartbeat, by the database's clock. */
  ageSeconds: number;
}

export type ClaimOutcome =
  | {
      kind: 'claimed';
      claimId: number;
      value: ClaimValue;
      instance: Selectable<InstancesTable>;
      /** The claim of a run that stopped without giving it back (now ours). */
      tookOver?: ClaimValue;
      /** A refresh lock without a claim (nova-manage's, or an older nova-bdm's), adopted. */
      adoptedLockReason?: string;
    }
  | { kind: 'held'; by: HeldClaim }
  /** The instance is gone, or its state no longer admits the refresh: nothing was written. */
  | { kind: 'changed'; instance: Selectable<InstancesTable> | undefined }
  /** Locked by someone else and refuse_locked: nothing was written. */
  | { kind: 'locked'; instance: Selectable<InstancesTable> };

export interface ClaimRequest {
  instanceUuid: string;
  value: Omit<ClaimValue, 'we_locked' | 'since'>;
  lockReason: string;
  ctx: PhaseContext;
  /** [DEFAULT] host: recorded on the lock/unlock events. */
  eventHost: string;
  refuseLocked: boolean;
  /** Is the holder of this claim gone (so the claim may be taken over)? */
  isAbandoned(claim: HeldClaim): boolean;
  /** Is this locked_reason a refresh's own lock? */
  isRefreshLock(reason: string | null): boolean;
  /** Does the instance row, as locked, still admit this refresh (the refreshable rule, without the lock part)? */
  stateAllows(instance: Selectable<InstancesTable>): boolean;
}

/** Read the claim, if any (the plan uses this to skip instances another run holds). */
export async function readClaim(db: CellDb, instanceUuid: string): Promise<HeldClaim | undefined> {
  return db.run((k) => selectClaim(k, instanceUuid));
}

/** The claim and the instance's lock as one moment shows them. */
export interface RefreshHold {
  claim: HeldClaim | undefined;
  locked: boolean;
  lockedReason: string | null;
}

/**
 * The claim with the instance's lock, read in one statement (one snapshot, one round trip as
 * readClaim): a claim given back takes the lock with it in one commit, so the two never
 * disagree here, as they can between an instance row read earlier and a claim read now.
 */
export async function readRefreshHold(db: CellDb, instanceUuid: string): Promise<RefreshHold> {
  const rows = await db.run((k) =>
    k
      .selectFrom('instances as i')
      .leftJoin('instance_system_metadata as m', (j) =>
        j.onRef('m.instance_uuid', '=', 'i.uuid').on('m.deleted', '=', 0).on('m.key', 'in', [CLAIM_KEY, 'locked_reason']),
      )
      .select([
        'i.locked',
        'm.id',
        'm.key',
        'm.value',
        sql<number>`TIMESTAMPDIFF(SECOND, COALESCE(m.updated_at, m.created_at), UTC_TIMESTAMP())`.as('age'),
      ])
      .where('i.uuid', '=', instanceUuid)
      .where('i.deleted', '=', 0)
      .orderBy('m.id')
      .execute(),
  );
  const claim = rows.find((r) => r.key === CLAIM_KEY);
  return {
    claim: claim ? { id: claim.id!, value: parseClaim(claim.value), ageSeconds: Number(claim.age ?? 0) } : undefined,
    locked: Boolean(rows[0]?.locked),
    lockedReason: rows.find((r) => r.key === 'locked_reason')?.value ?? null,
  };
}

async function selectClaim(tx: Tx, instanceUuid: string): Promise<HeldClaim | undefined> {
  const q = tx
    .selectFrom('instance_system_metadata')
    .select(['id', 'value', sql<number>`TIMESTAMPDIFF(SECOND, COALESCE(updated_at, created_at), UTC_TIMESTAMP())`.as('age')])
    .where('instance_uuid', '=', instanceUuid)
    .where('key', '=', CLAIM_KEY)
    .where('deleted', '=', 0)
    .orderBy('id')
    .limit(1);
  const row = await q.executeTakeFirst();
  if (!row) return undefined;
  return { id: row.id, value: parseClaim(row.value), ageSeconds: Number(row.age ?? 0) };
}

function parseClaim(text: string | null): ClaimValue {
  try {
    const v = JSON.parse(text ?? '') as ClaimValue;
    if (v && typeof v.token === 'string') return v;
  } catch {
    // fall through: an unreadable claim is treated as one of a vanished holder
  }
  return { token: 'unreadable', host: '', pid: 0, bdms: [], we_locked: false, since: '' };
}

/**
 * READ COMMITTED: the instance row lock is what serialises claims; without gap locks on
 * instance_system_metadata two claims of different instances cannot deadlock on its index.
 * A deadlock or Galera certification failure is retried (nothing was written).
 */
export async function claimInstance(db: CellDb, req: ClaimRequest): Promise<ClaimOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await claimOnce(db, req);
    } catch (err) {
      if (attempt >= 5 || !/Deadlock found|Lock wait timeout/i.test(String((err as Error).message))) throw err;
      await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 50));
    }
  }
}

async function claimOnce(db: CellDb, req: ClaimRequest): Promise<ClaimOutcome> {
  return db.run((k) =>
    k
      .transaction()
      .setIsolationLevel('read committed')
      .execute(async (tx): Promise<ClaimOutcome> => {
        const instance = await tx
          .selectFrom('instances')
          .selectAll()
          .where('uuid', '=', req.instanceUuid)
          .where('deleted', '=', 0)
          .forUpdate()
          .executeTakeFirst();
        if (!instance || !req.stateAllows(instance)) return { kind: 'changed', instance };
        const held = await selectClaim(tx, req.instanceUuid);
        if (held && !req.isAbandoned(held)) return { kind: 'held', by: held };
        const reasonRow = await tx
          .selectFrom('instance_system_metadata')
          .select(['id', 'value'])
          .where('instance_uuid', '=', req.instanceUuid)
          .where('key', '=', 'locked_reason')
          .where('deleted', '=', 0)
          .executeTakeFirst();
        const now = new Date();
        let weLocked: boolean;
        let adoptedLockReason: string | undefined;
        if (!instance.locked) {
          await tx.updateTable('instances').set({ locked: 1, locked_by: 'admin', updated_at: now }).where('id', '=', instance.id).execute();
          await recordApiAction(tx, req.instanceUuid, req.ctx, 'lock', 'api_lock', req.eventHost);
          instance.locked = 1;
          instance.locked_by = 'admin';
          weLocked = true;
        } else if (held?.value.we_locked || req.isRefreshLock(reasonRow?.value ?? null)) {
          // The lock of an interrupted refresh: ours to give back when done.
          if (!held) adoptedLockReason = reasonRow?.value ?? undefined;
          weLocked = true;
        } else if (req.refuseLocked) {
          return { kind: 'locked', instance };
        } else {
          weLocked = false; // someone else's lock: refresh under it, leave it in place
        }
        if (weLocked) {
          if (reasonRow) {
            await tx
              .updateTable('instance_system_metadata')
              .set({ value: req.lockReason, updated_at: now })
              .where('id', '=', reasonRow.id)
              .execute();
          } else {
            await tx
              .insertInto('instance_system_metadata')
              .values({
                created_at: now,
                updated_at: null,
                deleted: 0,
                instance_uuid: req.instanceUuid,
                key: 'locked_reason',
                value: req.lockReason,
              })
              .execute();
          }
        }
        const value: ClaimValue = { ...req.value, we_locked: weLocked, since: now.toISOString() };
        let claimId: number;
        if (held) {
          await tx
            .updateTable('instance_system_metadata')
            .set({ value: JSON.stringify(value), updated_at: now })
            .where('id', '=', held.id)
            .execute();
          claimId = held.id;
        } else {
          const inserted = await tx
            .insertInto('instance_system_metadata')
            .values({
              created_at: now,
              updated_at: now,
              deleted: 0,
              instance_uuid: req.instanceUuid,
              key: CLAIM_KEY,
              value: JSON.stringify(value),
            })
            .executeTakeFirstOrThrow();
          claimId = Number(inserted.insertId);
        }
        return {
          kind: 'claimed',
          claimId,
          value,
          instance,
          ...(held ? { tookOver: held.value } : {}),
          ...(adoptedLockReason ? { adoptedLockReason } : {}),
        };
      }),
  );
}

/** The holder is alive: move the claim's updated_at on. False when the claim is no longer ours. */
export async function heartbeatClaim(db: CellDb, claimId: number, value: ClaimValue): Promise<boolean> {
  const res = await db.run((k) =>
    k
      .updateTable('instance_system_metadata')
      .set({ updated_at: new Date() })
      .where('id', '=', claimId)
      .where('key', '=', CLAIM_KEY)
      .where('value', '=', JSON.stringify(value))
      .executeTakeFirst(),
  );
  return Number(res.numUpdatedRows) === 1;
}

/**
 * Give the claim back and, when we locked the instance, unlock it (only an admin lock with our
 * locked_reason). Hard deletes, as nova does for system metadata. False when the claim was no
 * longer ours (taken over after our heartbeat stopped): then nothing is touched.
 */
export async function releaseClaim(
  db: CellDb,
  input: { instanceUuid: string; claimId: number; value: ClaimValue; lockReason: string; ctx: PhaseContext; eventHost: string },
): Promise<boolean> {
  return db.run((k) =>
    k
      .transaction()
      .setIsolationLevel('read committed')
      .execute(async (tx) => {
        await tx.selectFrom('instances').select('id').where('uuid', '=', input.instanceUuid).where('deleted', '=', 0).forUpdate().execute();
        const held = await selectClaim(tx, input.instanceUuid);
        if (!held || held.id !== input.claimId || held.value.token !== input.value.token) return false;
        if (input.value.we_locked) {
          const ours = await tx
            .selectFrom('instance_system_metadata')
            .select('id')
            .where('instance_uuid', '=', input.instanceUuid)
            .where('key', '=', 'locked_reason')
            .where('value', '=', input.lockReason)
            .where('deleted', '=', 0)
            .executeTakeFirst();
          if (ours) {
            await recordApiAction(tx, input.instanceUuid, input.ctx, 'unlock', 'api_unlock', input.eventHost);
            await tx
              .updateTable('instances')
              .set({ locked: 0, locked_by: null, updated_at: new Date() })
              .where('uuid', '=', input.instanceUuid)
              .where('deleted', '=', 0)
              .execute();
            await tx.deleteFrom('instance_system_metadata').where('id', '=', ours.id).execute();
          }
        }
        await tx.deleteFrom('instance_system_metadata').where('id', '=', held.id).execute();
        return true;
      }),
  );
}
