import type { NovaDatabase } from './connect';
import type { ExpressionBuilder } from 'kysely';
import type { BdmRef, FleetFilters } from '../selection';
import type { CellDatabase } from './schema';

// The fleet audit's one query per cell: every live, attached volume BDM with the instance
// fields that decide whether it could be refreshed, streamed in batches (flat memory at any size).

/** How to read: the rows a query serves besides the selection's filters. */
export interface AuditReadOptions {
  /** Also read locked_reason (the refuse_locked rule needs to tell a refresh's lock from others'). */
  withLockedReason?: boolean;
}

export interface AuditRow {
  uuid: string | null;
  instance_uuid: string | null;
  volume_id: string;
  attachment_id: string | null;
  connection_info: string | null;
  host: string | null;
  vm_state: string | null;
  task_state: string | null;
  locked: number | null;
  locked_by: string | null;
  power_state: number | null;
  encrypted: number | null;
  encryption_secret_uuid: string | null;
  /** Only read with withLockedReason. */
  locked_reason?: string | null;
}

/**
 * The BDMs the selection's filters name, all but cells (each cell is its own query); the one
 * place driver_volume_type is matched (in code, see selectsDriverVolumeType).
 */
export async function* streamVolumeBdmBatches(
  db: NovaDatabase<CellDatabase>,
  filters: FleetFilters,
  options: AuditReadOptions = {},
): AsyncGenerator<AuditRow[]> {
  let query = db.kysely
    .selectFrom('block_device_mapping as b')
    .leftJoin('instances as i', (join) => join.onRef('i.uuid', '=', 'b.instance_uuid').on('i.deleted', '=', 0))
    .select([
      'b.uuid',
      'b.instance_uuid',
      'b.volume_id',
      'b.attachment_id',
      'b.connection_info',
      'b.encrypted',
      'b.encryption_secret_uuid',
      'i.host',
      'i.vm_state',
      'i.task_state',
      'i.power_state',
      'i.locked',
      'i.locked_by',
    ])
    .where('b.deleted', '=', 0)
    .where('b.destination_type', '=', 'volume')
    .where('b.volume_id', 'is not', null);
  if (filters.hosts?.length) query = query.where('i.host', 'in', filters.hosts);
  if (filters.instanceUuids?.length) query = query.where('b.instance_uuid', 'in', filters.instanceUuids);
  if (filters.volumeIds?.length) query = query.where('b.volume_id', 'in', filters.volumeIds);
  if (filters.bdmUuids?.length) query = query.where('b.uuid', 'in', filters.bdmUuids);
  if (filters.volumeAttachments?.length) {
    const named = filters.volumeAttachments;
    query = query.where((eb) => namedBdms(eb, named));
  }
  if (filters.projectId !== undefined) query = query.where('i.project_id', '=', filters.projectId);
  const rows = options.withLockedReason
    ? query
        .leftJoin('instance_system_metadata as m', (join) =>
          join.onRef('m.instance_uuid', '=', 'b.instance_uuid').on('m.key', '=', 'locked_reason').on('m.deleted', '=', 0),
        )
        .select('m.value as locked_reason')
    : query;
  const wanted = selectsDriverVolumeType(filters.driverVolumeType);
  try {
    for await (const batch of db.streamRowBatches<AuditRow>(rows.compile(), 100)) {
      const kept = wanted ? batch.filter(wanted) : batch;
      if (kept.length > 0) yield kept;
    }
  } catch (err) {
    throw db.explain(err);
  }
}

/**
 * driver_volume_type, matched on connection_info parsed as JSON.parse reads it: not in SQL,
 * where MariaDB's JSON functions read text JSON.parse refuses (a truncated object) and compare
 * by collation ('RBD' = 'rbd'). Unparseable or absent connection_info has no type. undefined: no filter.
 */
function selectsDriverVolumeType(type: string | undefined): ((row: AuditRow) => boolean) | undefined {
  if (type === undefined) return undefined;
  return (row) => {
    if (!row.connection_info) return false;
    try {
      return (JSON.parse(row.connection_info) as { driver_volume_type?: unknown } | null)?.driver_volume_type === type;
    } catch {
      return false;
    }
  };
}

/** The same rows one at a time (the fleet plan's pace is the refresh, not the scan). */
export async function* streamVolumeBdms(db: NovaDatabase<CellDatabase>, filters: FleetFilters): AsyncGenerator<AuditRow> {
  for await (const rows of streamVolumeBdmBatches(db, filters)) yield* rows;
}

/**
 * volume_attachments: the BDMs its entries name, each entry on its own (an OR of exact names):
 * (A, X) and (B, Y) select A's BDM of X and B's of Y, never A's of Y. The pairs are one row-value
 * IN, kept to the instances they name so that the instance_uuid index serves it.
 */
function namedBdms(eb: ExpressionBuilder<CellDatabase & { b: CellDatabase['block_device_mapping'] }, 'b'>, refs: BdmRef[]) {
  const bdmUuids: string[] = [];
  const wholeInstances: string[] = [];
  const pairs: Array<[string, string]> = [];
  for (const ref of refs) {
    if ('bdmUuid' in ref) bdmUuids.push(ref.bdmUuid);
    else if ('volumeId' in ref) pairs.push([ref.instanceUuid, ref.volumeId]);
    else wholeInstances.push(ref.instanceUuid);
  }
  const any = [];
  if (bdmUuids.length) any.push(eb('b.uuid', 'in', bdmUuids));
  if (wholeInstances.length) any.push(eb('b.instance_uuid', 'in', wholeInstances));
  if (pairs.length) {
    any.push(
      eb.and([
        eb('b.instance_uuid', 'in', [...new Set(pairs.map(([i]) => i))]),
        eb(
          eb.refTuple('b.instance_uuid', 'b.volume_id'),
          'in',
          pairs.map(([i, v]) => eb.tuple(i, v)),
        ),
      ]),
    );
  }
  return eb.or(any);
}
