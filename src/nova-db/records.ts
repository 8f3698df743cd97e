import type { Selectable } from 'kysely';
import type { BlockDeviceMappingTable, InstancesTable } from './schema';
import { naiveUtcToIso } from '../naive-utc';

// Rows turned into the values Nova's objects hold: booleans as booleans (NULL -> false, as the
// BlockDeviceMapping object defaults them), times as ISO-8601 UTC.

export interface BdmRecord {
  id: number;
  uuid: string | null;
  instance_uuid: string | null;
  source_type: string | null;
  destination_type: string | null;
  guest_format: string | null;
  device_type: string | null;
  disk_bus: string | null;
  boot_index: number | null;
  device_name: string | null;
  delete_on_termination: boolean;
  snapshot_id: string | null;
  volume_id: string | null;
  volume_size: number | null;
  image_id: string | null;
  no_device: boolean;
  /** The column text as stored (JSON, possibly NULL or garbage). */
  connection_info: string | null;
  tag: string | null;
  attachment_id: string | null;
  volume_type: string | null;
  encrypted: boolean;
  encryption_secret_uuid: string | null;
  encryption_format: string | null;
  encryption_options: string | null;
  created_at: string | null;
  updated_at: string | null;
  deleted_at: string | null;
  deleted: boolean;
}

export function toBdmRecord(r: Selectable<BlockDeviceMappingTable>): BdmRecord {
  return {
    id: r.id,
    uuid: r.uuid,
    instance_uuid: r.instance_uuid,
    source_type: r.source_type,
    destination_type: r.destination_type,
    guest_format: r.guest_format,
    device_type: r.device_type,
    disk_bus: r.disk_bus,
    boot_index: r.boot_index,
    device_name: r.device_name,
    delete_on_termination: Boolean(r.delete_on_termination),
    snapshot_id: r.snapshot_id,
    volume_id: r.volume_id,
    volume_size: r.volume_size,
    image_id: r.image_id,
    no_device: Boolean(r.no_device),
    connection_info: r.connection_info,
    tag: r.tag,
    attachment_id: r.attachment_id,
    volume_type: r.volume_type,
    encrypted: Boolean(r.encrypted),
    encryption_secret_uuid: r.encryption_secret_uuid,
    encryption_format: r.encryption_format,
    encryption_options: r.encryption_options,
    created_at: naiveUtcToIso(r.created_at),
    updated_at: naiveUtcToIso(r.updated_at),
    deleted_at: naiveUtcToIso(r.deleted_at),
    deleted: r.deleted !== null && r.deleted !== 0,
  };
}

/** The instance fields an operator needs to judge a BDM (and, later, whether it can be refreshed). */
export interface InstanceSummary {
  uuid: string;
  host: string | null;
  node: string | null;
  vm_state: string | null;
  task_state: string | null;
  power_state: number | null;
  locked: boolean;
  locked_by: 'owner' | 'admin' | null;
}

export const INSTANCE_SUMMARY_COLUMNS = [
  'uuid',
  'host',
  'node',
  'vm_state',
  'task_state',
  'power_state',
  'locked',
  'locked_by',
] as const satisfies ReadonlyArray<keyof InstancesTable>;

export function toInstanceSummary(r: Pick<Selectable<InstancesTable>, (typeof INSTANCE_SUMMARY_COLUMNS)[number]>): InstanceSummary {
  return { ...r, locked: Boolean(r.locked) };
}
