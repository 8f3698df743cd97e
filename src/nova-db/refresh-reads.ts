import { sql, type Selectable } from 'kysely';
import type { NovaDatabase } from './connect';
import { naiveUtcToDate } from '../naive-utc';
import { toBdmRecord, type BdmRecord } from './records';
import type { CellDatabase, ComputeNodesTable, InstanceInfoCachesTable, InstancesTable, ServicesTable } from './schema';

// What refresh reads from a cell DB besides the BDM: the whole instance (for the RPC
// primitive), its system metadata and info cache, and the compute service and node of its host.

type CellDb = NovaDatabase<CellDatabase>;

export async function findInstanceRow(db: CellDb, uuid: string): Promise<Selectable<InstancesTable> | undefined> {
  return db.run((k) =>
    k.selectFrom('instances').selectAll().where('uuid', '=', uuid).where('deleted', '=', 0).orderBy('id').limit(1).executeTakeFirst(),
  );
}

export async function systemMetadataOf(db: CellDb, uuid: string): Promise<Record<string, string | null>> {
  const rows = await db.run((k) =>
    k
      .selectFrom('instance_system_metadata')
      .select(['key', 'value'])
      .where('instance_uuid', '=', uuid)
      .where('deleted', '=', 0)
      .orderBy('id')
      .execute(),
  );
  return Object.fromEntries(rows.map((r) => [r.key, r.value]));
}

export async function infoCacheOf(db: CellDb, uuid: string): Promise<Selectable<InstanceInfoCachesTable> | undefined> {
  return db.run((k) =>
    k.selectFrom('instance_info_caches').selectAll().where('instance_uuid', '=', uuid).where('deleted', '=', 0).limit(1).executeTakeFirst(),
  );
}

export async function computeServiceOf(db: CellDb, host: string): Promise<Selectable<ServicesTable> | undefined> {
  return db.run((k) =>
    k
      .selectFrom('services')
      .selectAll()
      .where('host', '=', host)
      .where('binary', '=', 'nova-compute')
      .where('deleted', '=', 0)
      .limit(1)
      .executeTakeFirst(),
  );
}

export async function computeNodesOf(
  db: CellDb,
  host: string,
): Promise<Array<Pick<Selectable<ComputeNodesTable>, 'hypervisor_hostname' | 'hypervisor_type'>>> {
  return db.run((k) =>
    k
      .selectFrom('compute_nodes')
      .select(['hypervisor_hostname', 'hypervisor_type'])
      .where('host', '=', host)
      .where('deleted', '=', 0)
      .execute(),
  );
}

/** nova's `auto` RPC cap query: min(version) of live, not forced-down nova-compute services. */
export async function minimumComputeVersion(db: CellDb): Promise<number | null> {
  const row = await db.run((k) =>
    k
      .selectFrom('services')
      .select(sql<number | null>`min(version)`.as('minimum'))
      .where('binary', '=', 'nova-compute')
      .where('deleted', '=', 0)
      .where((eb) => eb.or([eb('forced_down', '=', 0), eb('forced_down', 'is', null)]))
      .executeTakeFirst(),
  );
  return row?.minimum ?? null;
}

/** The database's clock (UTC): service liveness is judged against it, not against ours. */
export async function databaseNow(db: CellDb): Promise<Date> {
  const row = await db.run((k) => sql<{ now: string }>`SELECT UTC_TIMESTAMP() AS now`.execute(k));
  return naiveUtcToDate(row.rows[0]!.now);
}

/** One BDM by its primary key, live or not (re-read after a failure or a lock). */
export async function findBdmById(db: CellDb, id: number): Promise<BdmRecord | undefined> {
  const row = await db.run((k) =>
    k.selectFrom('block_device_mapping').selectAll().where('id', '=', id).where('deleted', '=', 0).executeTakeFirst(),
  );
  return row && toBdmRecord(row);
}
