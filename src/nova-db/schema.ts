import type { ColumnType, Generated } from 'kysely';

// Mirrors the real Nova 26 (Zed) tables (openstack/nova stable/zed
// nova/db/main/models.py, nova/db/api/models.py). Nova sets no server-side
// defaults: every writer must fill created_at/updated_at/deleted itself. DATETIME columns are
// read as 'YYYY-MM-DD HH:MM:SS' strings (naive UTC; mysql2 dateStrings) and written as UTC.

export type Timestamp = ColumnType<string | null, string | Date | null | undefined, string | Date | null>;
type Int = number | null;
type Str = string | null;
/** TINYINT(1): 0/1 or NULL as stored. */
type TinyBool = number | null;

export interface CellMappingsTable {
  created_at: Timestamp;
  updated_at: Timestamp;
  id: Generated<number>;
  uuid: string;
  name: Str;
  transport_url: Str;
  database_connection: Str;
  disabled: TinyBool;
}

export interface InstanceMappingsTable {
  created_at: Timestamp;
  updated_at: Timestamp;
  id: Generated<number>;
  instance_uuid: string;
  cell_id: Int;
  project_id: string;
  queued_for_delete: TinyBool;
  user_id: Str;
}

export interface ApiDatabase {
  cell_mappings: CellMappingsTable;
  instance_mappings: InstanceMappingsTable;
}

interface SoftDeleteColumns {
  created_at: Timestamp;
  updated_at: Timestamp;
  deleted_at: Timestamp;
  /** 0 for a live row; the row's own id once soft-deleted. */
  deleted: Int;
}

export interface InstancesTable extends SoftDeleteColumns {
  id: Generated<number>;
  internal_id: Int;
  user_id: Str;
  project_id: Str;
  image_ref: Str;
  kernel_id: Str;
  ramdisk_id: Str;
  launch_index: Int;
  key_name: Str;
  key_data: Str;
  power_state: Int;
  vm_state: Str;
  memory_mb: Int;
  vcpus: Int;
  hostname: Str;
  host: Str;
  user_data: Str;
  reservation_id: Str;
  launched_at: Timestamp;
  terminated_at: Timestamp;
  display_name: Str;
  display_description: Str;
  availability_zone: Str;
  locked: TinyBool;
  os_type: Str;
  launched_on: Str;
  instance_type_id: Int;
  vm_mode: Str;
  uuid: string;
  architecture: Str;
  root_device_name: Str;
  access_ip_v4: Str;
  access_ip_v6: Str;
  config_drive: Str;
  task_state: Str;
  default_ephemeral_device: Str;
  default_swap_device: Str;
  progress: Int;
  auto_disk_config: TinyBool;
  shutdown_terminate: TinyBool;
  disable_terminate: TinyBool;
  root_gb: Int;
  ephemeral_gb: Int;
  cell_name: Str;
  node: Str;
  locked_by: 'owner' | 'admin' | null;
  cleaned: Int;
  ephemeral_key_uuid: Str;
  hidden: TinyBool;
}

export interface InstanceSystemMetadataTable extends SoftDeleteColumns {
  id: Generated<number>;
  instance_uuid: string;
  key: string;
  value: Str;
}

export interface InstanceInfoCachesTable extends SoftDeleteColumns {
  id: Generated<number>;
  network_info: Str;
  instance_uuid: string;
}

export interface BlockDeviceMappingTable extends SoftDeleteColumns {
  id: Generated<number>;
  device_name: Str;
  delete_on_termination: TinyBool;
  snapshot_id: Str;
  volume_id: Str;
  volume_size: Int;
  no_device: TinyBool;
  connection_info: Str;
  instance_uuid: Str;
  source_type: Str;
  destination_type: Str;
  guest_format: Str;
  device_type: Str;
  disk_bus: Str;
  boot_index: Int;
  image_id: Str;
  tag: Str;
  attachment_id: Str;
  uuid: Str;
  volume_type: Str;
  encrypted: TinyBool;
  encryption_secret_uuid: Str;
  encryption_format: Str;
  encryption_options: Str;
}

export interface InstanceActionsTable extends SoftDeleteColumns {
  id: Generated<number>;
  action: Str;
  instance_uuid: Str;
  request_id: Str;
  user_id: Str;
  project_id: Str;
  start_time: Timestamp;
  finish_time: Timestamp;
  message: Str;
}

export interface InstanceActionsEventsTable extends SoftDeleteColumns {
  id: Generated<number>;
  event: Str;
  action_id: Int;
  start_time: Timestamp;
  finish_time: Timestamp;
  result: Str;
  traceback: Str;
  host: Str;
  details: Str;
}

export interface ServicesTable extends SoftDeleteColumns {
  id: Generated<number>;
  host: Str;
  binary: Str;
  topic: Str;
  report_count: number;
  disabled: TinyBool;
  disabled_reason: Str;
  last_seen_up: Timestamp;
  forced_down: TinyBool;
  version: Int;
  uuid: Str;
}

export interface ComputeNodesTable extends SoftDeleteColumns {
  id: Generated<number>;
  service_id: Int;
  vcpus: number;
  memory_mb: number;
  local_gb: number;
  vcpus_used: number;
  memory_mb_used: number;
  local_gb_used: number;
  hypervisor_type: string;
  hypervisor_version: number;
  cpu_info: string;
  disk_available_least: Int;
  free_ram_mb: Int;
  free_disk_gb: Int;
  current_workload: Int;
  running_vms: Int;
  hypervisor_hostname: Str;
  host_ip: Str;
  supported_instances: Str;
  pci_stats: Str;
  metrics: Str;
  extra_resources: Str;
  stats: Str;
  numa_topology: Str;
  host: Str;
  ram_allocation_ratio: number | null;
  cpu_allocation_ratio: number | null;
  uuid: Str;
  disk_allocation_ratio: number | null;
  mapped: Int;
}

export interface CellDatabase {
  instances: InstancesTable;
  instance_system_metadata: InstanceSystemMetadataTable;
  instance_info_caches: InstanceInfoCachesTable;
  block_device_mapping: BlockDeviceMappingTable;
  instance_actions: InstanceActionsTable;
  instance_actions_events: InstanceActionsEventsTable;
  services: ServicesTable;
  compute_nodes: ComputeNodesTable;
}
