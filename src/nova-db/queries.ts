import type { NovaDatabase } from './connect';
import type { CellDatabase } from './schema';
import { INSTANCE_SUMMARY_COLUMNS, toBdmRecord, toInstanceSummary, type BdmRecord, type InstanceSummary } from './records';

// Reads of one cell database. Soft-deleted rows (deleted != 0) never count.

type CellDb = NovaDatabase<CellDatabase>;

/** nova-manage's lookup: the live BDM of (instance, volume); the oldest one if Nova left two. */
export async function findBdmByInstanceAndVolume(db: CellDb, instanceUuid: string, volumeId: string): Promise<BdmRecord | undefined> {
  const row = await db.run((k) =>
    k
      .selectFrom('block_device_mapping')
      .selectAll()
      .where('deleted', '=', 0)
      .where('volume_id', '=', volumeId)
      .where('instance_uuid', '=', instanceUuid)
      .orderBy('id')
      .limit(1)
      .executeTakeFirst(),
  );
  return row && toBdmRecord(row);
}

/** Every live BDM with this uuid (more than one would be a corrupt database). */
export async function findBdmsByUuid(db: CellDb, bdmUuid: string): Promise<BdmRecord[]> {
  const rows = await db.run((k) =>
    k.selectFrom('block_device_mapping').selectAll().where('deleted', '=', 0).where('uuid', '=', bdmUuid).limit(2).execute(),
  );
  return rows.map(toBdmRecord);
}

/** The live volume BDMs of an instance (destination_type 'volume', as Nova's is_volume). */
export async function listVolumeBdmsOfInstance(db: CellDb, instanceUuid: string): Promise<BdmRecord[]> {
  const rows = await db.run((k) =>
    k
      .selectFrom('block_device_mapping')
      .selectAll()
      .where('deleted', '=', 0)
      .where('instance_uuid', '=', instanceUuid)
      .where('destination_type', '=', 'volume')
      .orderBy('id')
      .execute(),
  );
  return rows.map(toBdmRecord);
}

export async function findInstanceSummary(db: CellDb, instanceUuid: string): Promise<InstanceSummary | undefined> {
  const row = await db.run((k) =>
    k
      .selectFrom('instances')
      .select(INSTANCE_SUMMARY_COLUMNS)
      .where('deleted', '=', 0)
      .where('uuid', '=', instanceUuid)
      .orderBy('id')
      .limit(1)
      .executeTakeFirst(),
  );
  return row && toInstanceSummary(row);
}
