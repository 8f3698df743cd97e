import { randomUUID } from 'node:crypto';
import { createPool, type Pool } from 'mysql2/promise';

// Bulk rows for the audit-scale benchmark, inserted as MariaDB root into the bench's own nbb_*
// schema (made by the real nova-manage): instances spread round robin over the cells, each with one
// image BDM (source image, destination local: the query must skip it) and FOUR volume BDMs with
// an rbd connection_info of about 1 KB, shaped like what Nova stores after a Cinder v3 attach.
// Mix (by BDM index): 5% still point at the old Ceph monitors (stale against `expect`), 1% are
// legacy cinder v2 attachments (attachment_id NULL), 0.2% have a NULL connection_info.

export const VOLUMES_PER_INSTANCE = 4;
const BATCH = 1000;

export const NEW_MONS = {
  hosts: ['2001:db8:10::11', '2001:db8:10::12', '2001:db8:10::13', '2001:db8:10::14', '2001:db8:10::15'],
  ports: ['6789', '6789', '6789', '6789', '6789'],
};
const OLD_MONS = { hosts: ['192.0.2.11', '192.0.2.12', '192.0.2.13'], ports: ['6789', '6789', '6789'] };

/** The `expect` an operator would pass after moving the monitors. */
export const EXPECT = { driver_volume_type: 'rbd', data: { hosts: NEW_MONS.hosts, ports: NEW_MONS.ports } };

export interface FleetDatabases {
  api: string;
  /** Database name -> cell_mappings.id, in seeding order (cell1 first: the show row goes there). */
  cells: Array<{ db: string; id: number }>;
}

export interface SeedStats {
  instances: number;
  volumeBdms: number;
  imageBdms: number;
  /** Expected audit findings for what is seeded so far (DB rules with EXPECT). */
  expectedStale: number;
  avgConnectionInfoBytes: number;
}

/** What Nova stores: Cinder's connection_info re-nested, attachment_id and driver_volume_type taken out of data (nova/volume/cinder.py _translate_attachment_ref). */
function connectionInfo(volumeId: string, _attachmentId: string | null, instanceUuid: string, mons: typeof NEW_MONS): string {
  const info = {
    driver_volume_type: 'rbd',
    data: {
      name: `volumes/volume-${volumeId}`,
      hosts: mons.hosts,
      ports: mons.ports,
      cluster_name: 'ceph',
      auth_enabled: true,
      auth_username: 'cinder',
      secret_type: 'ceph',
      secret_uuid: '457eb676-33da-42ec-9a8c-9293d545c337',
      volume_id: volumeId,
      discard: true,
      qos_specs: { total_bytes_sec: '209715200', total_iops_sec: '4000', read_bytes_sec_max: '314572800' },
      access_mode: 'rw',
      encrypted: false,
      cacheable: false,
      enforce_multipath: false,
    },
    status: 'reserved',
    instance: instanceUuid,
    attached_at: '',
    detached_at: '',
    volume_id: volumeId,
    serial: volumeId,
  };
  // Nova stores it with Python's json.dumps separators (", " and ": ").
  return JSON.stringify(info).replace(/","/g, '", "').replace(/":/g, '": ').replace(/,"/g, ', "');
}

function stamp(i: number): string {
  const d = new Date(Date.UTC(2025, 0, 1) + (i % 300) * 86_400_000 + (i % 86_400) * 1000);
  return d.toISOString().slice(0, 19).replace('T', ' ');
}

export class FleetSeeder {
  private stats: SeedStats = { instances: 0, volumeBdms: 0, imageBdms: 0, expectedStale: 0, avgConnectionInfoBytes: 0 };
  private ciBytes = 0;
  private ciCount = 0;

  private constructor(
    private readonly root: Pool,
    private readonly dbs: FleetDatabases,
  ) {}

  /** `cellDbs`: the cell databases to fill, each mapped in cell_mappings under its own name minus the prefix. */
  static async open(api: string, cellDbs: string[], prefix: string): Promise<FleetSeeder> {
    const root = createPool({ host: '127.0.0.1', port: 3306, user: 'root', password: '', connectionLimit: 4 });
    const [rows] = await root.query(`SELECT id, name FROM \`${api}\`.cell_mappings`);
    const byName = Object.fromEntries((rows as Array<{ id: number; name: string }>).map((r) => [r.name, r.id]));
    const cells = cellDbs.map((db) => {
      const id = byName[db.slice(prefix.length)];
      if (id === undefined) throw new Error(`${api}.cell_mappings has no ${db.slice(prefix.length)}`);
      return { db, id };
    });
    return new FleetSeeder(root, { api, cells });
  }

  get cellCount(): number {
    return this.dbs.cells.length;
  }

  get seeded(): SeedStats {
    return { ...this.stats, avgConnectionInfoBytes: this.ciCount ? Math.round(this.ciBytes / this.ciCount) : 0 };
  }

  /** Empties the bench's own tables (nbb_* only): instances, BDMs, instance mappings. */
  async wipe(): Promise<void> {
    const c = await this.root.getConnection();
    try {
      await c.query('SET FOREIGN_KEY_CHECKS = 0');
      for (const { db: cell } of this.dbs.cells) {
        for (const t of [
          'block_device_mapping',
          'instance_system_metadata',
          'instance_extra',
          'instance_actions_events',
          'instance_actions',
          'instances',
        ]) {
          await c.query(`TRUNCATE TABLE \`${cell}\`.\`${t}\``);
        }
      }
      await c.query(`TRUNCATE TABLE \`${this.dbs.api}\`.instance_mappings`);
      await c.query('SET FOREIGN_KEY_CHECKS = 1');
    } finally {
      c.release();
    }
    this.stats = { instances: 0, volumeBdms: 0, imageBdms: 0, expectedStale: 0, avgConnectionInfoBytes: 0 };
    this.ciBytes = 0;
    this.ciCount = 0;
  }

  /** Adds instances (round robin over the cells) until `volumeBdms` volume BDMs exist in total. */
  async growTo(volumeBdms: number): Promise<void> {
    const instancesWanted = Math.ceil(volumeBdms / VOLUMES_PER_INSTANCE);
    // One batch fills every cell with about BATCH BDMs; two batches in flight keep MariaDB busy.
    const perBatch = (BATCH / VOLUMES_PER_INSTANCE) * this.dbs.cells.length;
    let pending: Promise<void> | undefined;
    while (this.stats.instances < instancesWanted) {
      const n = Math.min(perBatch, instancesWanted - this.stats.instances);
      const next = this.batch(n, volumeBdms);
      await pending;
      pending = next;
    }
    await pending;
  }

  private async batch(n: number, cap: number): Promise<void> {
    const perCell = this.dbs.cells.map(() => ({ inst: [] as unknown[][], bdm: [] as unknown[][] }));
    const mappings: unknown[][] = [];
    for (let k = 0; k < n; k++) {
      const i = this.stats.instances++;
      const cellIndex = i % this.dbs.cells.length;
      const cell = cellIndex;
      const uuid = randomUUID();
      const host = `compute-${String(i % 200).padStart(3, '0')}`;
      const project = `project-${i % 40}`;
      const vmState = i % 10 === 0 ? 'stopped' : 'active';
      const created = stamp(i);
      // created_at, updated_at, uuid, user_id, project_id, hostname, display_name, vm_state, power_state, task_state,
      // host, node, launched_on, locked, memory_mb, vcpus, root_gb, deleted, cleaned, hidden
      perCell[cell]!.inst.push([
        created,
        created,
        uuid,
        'user-1',
        project,
        `vm-${i}`,
        `vm-${i}`,
        vmState,
        vmState === 'active' ? 1 : 4,
        null,
        host,
        `${host}.example.org`,
        host,
        0,
        4096,
        2,
        20,
        0,
        0,
        0,
      ]);
      mappings.push([created, uuid, this.dbs.cells[cellIndex]!.id, project, 0, 'user-1']);
      // The boot disk: an image BDM (not a volume), as Nova makes for every image-booted instance.
      perCell[cell]!.bdm.push([
        created,
        created,
        randomUUID(),
        uuid,
        'image',
        'local',
        'disk',
        'virtio',
        '/dev/vda',
        1,
        null,
        null,
        null,
        null,
        0,
        0,
        randomUUID(),
      ]);
      this.stats.imageBdms++;
      for (let v = 0; v < VOLUMES_PER_INSTANCE && this.stats.volumeBdms < cap; v++) {
        const b = this.stats.volumeBdms++;
        const volumeId = randomUUID();
        const legacy = b % 100 === 1;
        const attachmentId = legacy ? null : randomUUID();
        const nullInfo = b % 500 === 2;
        const oldMons = b % 20 === 0;
        const info = nullInfo ? null : connectionInfo(volumeId, attachmentId, uuid, oldMons ? OLD_MONS : NEW_MONS);
        if (info) {
          this.ciBytes += Buffer.byteLength(info);
          this.ciCount++;
        }
        if (legacy || nullInfo || oldMons) this.stats.expectedStale++;
        perCell[cell]!.bdm.push([
          created,
          created,
          randomUUID(),
          uuid,
          'volume',
          'volume',
          'disk',
          'virtio',
          `/dev/vd${'bcdefgh'[v]}`,
          0,
          volumeId,
          10,
          attachmentId,
          info,
          0,
          null,
          null,
        ]);
      }
    }
    await Promise.all([
      ...this.dbs.cells.map((c, k) => this.insertAll(c.db, perCell[k]!)),
      mappings.length
        ? this.root.query(
            `INSERT INTO \`${this.dbs.api}\`.instance_mappings (created_at, instance_uuid, cell_id, project_id, queued_for_delete, user_id) VALUES ?`,
            [mappings],
          )
        : undefined,
    ]);
  }

  private async insertAll(db: string, rows: { inst: unknown[][]; bdm: unknown[][] }): Promise<void> {
    if (rows.inst.length === 0) return;
    // The pool's connections insert into several cells and the API DB at once (instances before their BDMs).
    await this.root.query(
      `INSERT INTO \`${db}\`.instances (created_at, updated_at, uuid, user_id, project_id, hostname, display_name, vm_state, power_state, task_state,
        host, node, launched_on, locked, memory_mb, vcpus, root_gb, deleted, cleaned, hidden) VALUES ?`,
      [rows.inst],
    );
    // image BDMs carry image_id in the last column; volume BDMs have NULL there.
    await this.root.query(
      `INSERT INTO \`${db}\`.block_device_mapping (created_at, updated_at, uuid, instance_uuid, source_type, destination_type, device_type, disk_bus,
        device_name, delete_on_termination, volume_id, volume_size, attachment_id, connection_info, deleted, boot_index, image_id) VALUES ?`,
      [rows.bdm],
    );
  }

  /** One more instance in cell1 with one current rbd volume BDM: the row the show benchmark reads. */
  async addShowTarget(): Promise<{ instanceUuid: string; volumeId: string; bdmUuid: string }> {
    const instanceUuid = randomUUID();
    const volumeId = randomUUID();
    const bdmUuid = randomUUID();
    const attachmentId = randomUUID();
    const t = '2026-01-02 03:04:05';
    await this.root.query(
      `INSERT INTO \`${this.dbs.cells[0]!.db}\`.instances (created_at, updated_at, uuid, user_id, project_id, hostname, display_name, vm_state, power_state, task_state,
        host, node, launched_on, locked, memory_mb, vcpus, root_gb, deleted, cleaned, hidden) VALUES ?`,
      [
        [
          [
            t,
            t,
            instanceUuid,
            'user-1',
            'project-show',
            'vm-show',
            'vm-show',
            'active',
            1,
            null,
            'compute-000',
            'compute-000.example.org',
            'compute-000',
            0,
            4096,
            2,
            20,
            0,
            0,
            0,
          ],
        ],
      ],
    );
    await this.root.query(
      `INSERT INTO \`${this.dbs.api}\`.instance_mappings (created_at, instance_uuid, cell_id, project_id, queued_for_delete, user_id) VALUES (?, ?, ?, ?, 0, ?)`,
      [t, instanceUuid, this.dbs.cells[0]!.id, 'project-show', 'user-1'],
    );
    await this.root.query(
      `INSERT INTO \`${this.dbs.cells[0]!.db}\`.block_device_mapping (created_at, updated_at, uuid, instance_uuid, source_type, destination_type, device_type, disk_bus,
        device_name, delete_on_termination, volume_id, volume_size, attachment_id, connection_info, deleted) VALUES (?, ?, ?, ?, 'volume', 'volume', 'disk', 'virtio', '/dev/vdb', 0, ?, 10, ?, ?, 0)`,
      [t, t, bdmUuid, instanceUuid, volumeId, attachmentId, connectionInfo(volumeId, attachmentId, instanceUuid, NEW_MONS)],
    );
    return { instanceUuid, volumeId, bdmUuid };
  }

  /** Every seeded v3 volume BDM with its instance's host: what a stand-in Cinder must hold for them. */
  async v3Attachments(): Promise<
    Array<{ attachment_id: string; volume_id: string; instance_uuid: string; host: string; connection_info: string | null }>
  > {
    const all = [];
    for (const { db } of this.dbs.cells) {
      const [rows] = await this.root.query(
        `SELECT b.attachment_id, b.volume_id, b.instance_uuid, i.host, b.connection_info FROM \`${db}\`.block_device_mapping b
         JOIN \`${db}\`.instances i ON i.uuid = b.instance_uuid WHERE b.deleted = 0 AND b.destination_type = 'volume' AND b.attachment_id IS NOT NULL`,
      );
      all.push(
        ...(rows as Array<{
          attachment_id: string;
          volume_id: string;
          instance_uuid: string;
          host: string;
          connection_info: string | null;
        }>),
      );
    }
    return all;
  }

  async close(): Promise<void> {
    await this.root.end();
  }
}
