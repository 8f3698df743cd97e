import { randomUUID } from 'node:crypto';
import { Kysely, MysqlDialect, type Insertable } from 'kysely';
import { createPool } from 'mysql2';
import type { ApiDatabase, BlockDeviceMappingTable, CellDatabase, InstancesTable } from '../../src/nova-db/schema';
import { loadNovaTestEnv, type NovaTestEnv } from './nova-env';

// Rows shaped the way Nova itself writes them, inserted straight into the real schema.

export type CellName = 'cell0' | 'cell1' | 'cell2';

export const RBD_CONNECTION_INFO = {
  driver_volume_type: 'rbd',
  data: {
    name: 'volumes/volume-X',
    hosts: ['192.0.2.11', '192.0.2.12', '192.0.2.13'],
    ports: ['6789', '6789', '6789'],
    cluster_name: 'ceph',
    auth_enabled: true,
    auth_username: 'cinder',
    secret_type: 'ceph',
    secret_uuid: '457eb676-33da-42ec-9a8c-9293d545c337',
    keyring: '[client.cinder]\n\tkey = AQBkZ2RkAAAAABAAcephkeyringsecret==',
    volume_id: 'X',
    discard: true,
    access_mode: 'rw',
    encrypted: false,
    qos_specs: null,
  },
  status: 'attached',
  serial: 'X',
};

export const ISCSI_CHAP_CONNECTION_INFO = {
  driver_volume_type: 'iscsi',
  data: {
    target_discovered: false,
    target_portal: '192.0.2.50:3260',
    target_iqn: 'iqn.2010-10.org.openstack:volume-X',
    target_lun: 1,
    auth_method: 'CHAP',
    auth_username: 'chapuser',
    auth_password: 'chapsecret-pw',
    discovery_auth_password: 'discovery-chap-pw',
    access_mode: 'rw',
  },
  serial: 'X',
};

/** What a seeded compute service may differ in: a last report long ago, forced down, another hypervisor. */
export interface ComputeServiceOverrides {
  updated_at?: Date;
  forced_down?: number;
  hypervisor_type?: string;
}

export class Fixtures {
  readonly env: NovaTestEnv = loadNovaTestEnv();
  readonly api: Kysely<ApiDatabase>;
  private readonly cells: Record<CellName, Kysely<CellDatabase>>;

  constructor() {
    const db = <T>(database: string) =>
      new Kysely<T>({
        dialect: new MysqlDialect({
          pool: createPool({
            host: '127.0.0.1',
            user: 'root',
            password: '',
            database,
            connectionLimit: 2,
            timezone: 'Z',
            dateStrings: true,
          }),
        }),
      });
    this.api = db<ApiDatabase>(this.env.databases.api);
    this.cells = {
      cell0: db<CellDatabase>(this.env.databases.cell0),
      cell1: db<CellDatabase>(this.env.databases.cell1),
      cell2: db<CellDatabase>(this.env.databases.cell2),
    };
  }

  cell(name: CellName): Kysely<CellDatabase> {
    return this.cells[name];
  }
  /**
   * A nova-compute service and its compute node for `host` in a cell, as nova-compute registers
   * them (any earlier ones of the host there replaced); `overrides` make it stale, forced down or
   * of another hypervisor.
   */
  async seedComputeService(cell: CellName, host: string, overrides: ComputeServiceOverrides = {}): Promise<void> {
    const db = this.cell(cell);
    await db.deleteFrom('services').where('host', '=', host).execute();
    await db.deleteFrom('compute_nodes').where('host', '=', host).execute();
    const service = await db
      .insertInto('services')
      .values({
        created_at: new Date(),
        updated_at: overrides.updated_at ?? new Date(),
        host,
        binary: 'nova-compute',
        topic: 'compute',
        report_count: 1,
        disabled: 0,
        deleted: 0,
        forced_down: overrides.forced_down ?? 0,
        version: 64,
        uuid: randomUUID(),
      })
      .executeTakeFirstOrThrow();
    await db
      .insertInto('compute_nodes')
      .values({
        created_at: new Date(),
        service_id: Number(service.insertId),
        vcpus: 4,
        memory_mb: 8192,
        local_gb: 100,
        vcpus_used: 0,
        memory_mb_used: 0,
        local_gb_used: 0,
        hypervisor_type: overrides.hypervisor_type ?? 'QEMU',
        hypervisor_version: 7002000,
        cpu_info: '{}',
        hypervisor_hostname: `${host}.example.org`,
        host,
        deleted: 0,
        uuid: randomUUID(),
      })
      .execute();
  }

  async seedInstance(cell: CellName, overrides: Partial<Insertable<InstancesTable>> = {}, mapped = true): Promise<string> {
    const uuid = overrides.uuid ?? randomUUID();
    const cellRow = await this.api.selectFrom('cell_mappings').select('id').where('name', '=', cell).executeTakeFirstOrThrow();
    if (mapped) {
      await this.api
        .insertInto('instance_mappings')
        .values({
          created_at: new Date(),
          instance_uuid: uuid,
          cell_id: cellRow.id,
          project_id: 'demo-project',
          queued_for_delete: 0,
          user_id: 'demo-user',
        })
        .execute();
    }
    await this.cells[cell]
      .insertInto('instances')
      .values({
        created_at: '2026-01-02 03:04:05',
        updated_at: '2026-01-02 03:10:00',
        uuid,
        user_id: 'demo-user',
        project_id: 'demo-project',
        hostname: 'vm',
        display_name: 'vm',
        vm_state: 'stopped',
        power_state: 4,
        task_state: null,
        host: 'compute1',
        node: 'compute1.example.org',
        launched_on: 'compute1',
        locked: 0,
        memory_mb: 512,
        vcpus: 1,
        root_gb: 1,
        deleted: 0,
        cleaned: 0,
        hidden: 0,
        ...overrides,
      })
      .execute();
    return uuid;
  }

  async seedBdm(
    cell: CellName,
    instanceUuid: string,
    overrides: Partial<Insertable<BlockDeviceMappingTable>> & { connection_info_object?: unknown } = {},
  ): Promise<{ id: number; uuid: string; volumeId: string; attachmentId: string | null }> {
    const { connection_info_object, ...columns } = overrides;
    const volumeId = columns.volume_id ?? randomUUID();
    const uuid = columns.uuid ?? randomUUID();
    const attachmentId = columns.attachment_id === undefined ? randomUUID() : columns.attachment_id;
    const info = connection_info_object ?? RBD_CONNECTION_INFO;
    const result = await this.cells[cell]
      .insertInto('block_device_mapping')
      .values({
        created_at: '2026-01-02 03:05:00',
        updated_at: '2026-01-02 03:06:00',
        uuid,
        instance_uuid: instanceUuid,
        source_type: 'volume',
        destination_type: 'volume',
        device_type: 'disk',
        disk_bus: 'virtio',
        device_name: '/dev/vdb',
        delete_on_termination: 0,
        volume_id: volumeId,
        volume_size: 1,
        attachment_id: attachmentId,
        connection_info: JSON.stringify(info).replaceAll('"X"', JSON.stringify(volumeId)).replaceAll('volume-X', `volume-${volumeId}`),
        deleted: 0,
        ...columns,
      })
      .executeTakeFirstOrThrow();
    return { id: Number(result.insertId), uuid, volumeId, attachmentId };
  }

  async close(): Promise<void> {
    await Promise.all([this.api.destroy(), ...Object.values(this.cells).map((c) => c.destroy())]);
  }
}
