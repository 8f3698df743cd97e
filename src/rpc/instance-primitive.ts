import { naiveUtcToIso } from '../naive-utc';

// The Instance 2.7 object primitive nova-manage sends in remove_volume_connection
// (nova/objects/instance.py, Instance VERSION 2.7 at Zed): every column field, plus info_cache, security_groups and
// system_metadata.

/**
 * An instances row as the caller read it from Nova's database (DATETIME columns as naive-UTC
 * strings): every column by name, each one becomes a field. Only the columns converted here are named.
 */
export type InstanceColumns = Readonly<Record<string, unknown>> & { readonly id: number; readonly deleted: number | null };

/** The instance's instance_info_caches row. */
export interface InfoCacheRow {
  readonly id: number;
  readonly instance_uuid: string;
  readonly network_info: string | null;
  readonly created_at: string | null;
  readonly updated_at: string | null;
  readonly deleted_at: string | null;
  /** 0 for a live row; the row's own id once soft-deleted. */
  readonly deleted: number | null;
}

const BOOLEAN_FIELDS = new Set(['locked', 'auto_disk_config', 'shutdown_terminate', 'disable_terminate', 'hidden']);
const DATETIME_FIELDS = new Set(['created_at', 'updated_at', 'deleted_at', 'launched_at', 'terminated_at']);

function novaObject(name: string, version: string, data: Record<string, unknown>) {
  return { 'nova_object.name': name, 'nova_object.namespace': 'nova', 'nova_object.version': version, 'nova_object.data': data };
}

export function instancePrimitive(
  row: InstanceColumns,
  systemMetadata: Record<string, string | null>,
  infoCache: InfoCacheRow | undefined,
): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    if (column === 'internal_id') continue; // not a field: nova never reads it
    if (column === 'deleted') data.deleted = value !== 0 && value === row.id;
    else if (column === 'cleaned') data.cleaned = value === 1;
    else if (BOOLEAN_FIELDS.has(column)) data[column] = Boolean(value);
    else if (DATETIME_FIELDS.has(column)) data[column] = naiveUtcToIso(value as string | null);
    else data[column] = value;
  }
  data.system_metadata = systemMetadata;
  data.info_cache = infoCache
    ? novaObject('InstanceInfoCache', '1.5', {
        instance_uuid: infoCache.instance_uuid,
        network_info: infoCache.network_info,
        created_at: naiveUtcToIso(infoCache.created_at),
        updated_at: naiveUtcToIso(infoCache.updated_at),
        deleted_at: naiveUtcToIso(infoCache.deleted_at),
        deleted: infoCache.deleted !== 0 && infoCache.deleted === infoCache.id,
      })
    : null;
  data.security_groups = novaObject('SecurityGroupList', '1.1', { objects: [] });
  return novaObject('Instance', '2.7', data);
}
