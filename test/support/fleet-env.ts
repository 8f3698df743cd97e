import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execute, type FailureResult } from '../../src/entry/run';
import type { FleetRefreshResult } from '../../src/actions/fleet/result';
import { resultOf, type Fields } from './results';
import { danglingBdms } from './dangling-bdms';
import { FakeCompute } from './fake-compute';
import { FakeOpenStack } from './fake-openstack';
import { Fixtures, RBD_CONNECTION_INFO, type CellName } from './fixtures';
import { CONNECTOR, CONTROLLER_HOST, NEW_MONITORS, novaInfoFromCinder, RefreshEnv } from './refresh-env';

// A small cloud for fleet refreshes: two cells (cell1 on RabbitMQ's / vhost, cell2 on its own
// vhost, as prepare-nova-schema makes them), stand-in computes on several hosts, one stand-in
// Keystone + Cinder, and instances with any number of rbd BDMs on the old or new monitors.

const PREFIX = process.env.NOVA_BDM_TEST_DB_PREFIX ?? 'nbt_';

export interface FleetHost {
  name: string;
  cell: CellName;
  compute: FakeCompute;
}

export interface SeededBdm {
  uuid: string;
  id: number;
  volumeId: string;
  oldAttachmentId: string;
  instanceUuid: string;
  host: string;
  cell: CellName;
}

export class FleetEnv {
  readonly fx = new Fixtures();
  readonly tag = randomUUID().slice(0, 6);
  readonly hosts = new Map<string, FleetHost>();
  cloud!: FakeOpenStack;
  readonly dir = mkdtempSync(join(tmpdir(), 'nbt-fleet-'));
  readonly connectorDir = join(this.dir, 'connectors');
  extraConf = '';
  private heartbeat?: NodeJS.Timeout;

  static async start(layout: Array<{ cell: CellName; count: number }>): Promise<FleetEnv> {
    const env = new FleetEnv();
    mkdirSync(env.connectorDir);
    env.cloud = await FakeOpenStack.start();
    env.extraConf = join(env.dir, 'cinder.conf');
    writeFileSync(env.extraConf, `[DEFAULT]\nhost = ${CONTROLLER_HOST}\n${env.cloud.nova_conf_sections()}`);
    let n = 0;
    for (const { cell, count } of layout) {
      for (let i = 0; i < count; i++) {
        const name = `nbf-${env.tag}-h${++n}`;
        const url = cell === 'cell2' ? `amqp://guest:guest@127.0.0.1:5672/${PREFIX}cell2` : undefined;
        const compute = await FakeCompute.start(name, url);
        env.hosts.set(name, { name, cell, compute });
        await env.fx.seedComputeService(cell, name);
      }
    }
    // Like nova-compute's report_state: keep the service rows fresh.
    env.heartbeat = setInterval(() => {
      for (const cell of ['cell1', 'cell2'] as const) {
        void env.fx.cell(cell).updateTable('services').set({ updated_at: new Date() }).where('host', 'like', `nbf-${env.tag}-%`).execute();
      }
    }, 10_000);
    return env;
  }

  /** Volume BDMs of these instances that name an attachment Cinder does not have (see dangling-bdms.ts). */
  async danglingBdms(instances: Array<{ instanceUuid: string; cell: CellName }>): Promise<string[]> {
    const out: string[] = [];
    for (const cell of ['cell1', 'cell2'] as const) {
      out.push(
        ...(await danglingBdms(
          this.fx.cell(cell),
          this.cloud,
          instances.filter((i) => i.cell === cell).map((i) => i.instanceUuid),
        )),
      );
    }
    return out;
  }

  hostNames(): string[] {
    return [...this.hosts.keys()];
  }

  connectorOf(host: string) {
    return { ...CONNECTOR, host };
  }

  /** Writes <host>.json for these hosts, as get_connector --json would. */
  writeConnectors(hosts: string[]): void {
    for (const h of hosts) writeFileSync(join(this.connectorDir, `${h}.json`), JSON.stringify(this.connectorOf(h)));
  }

  /** An instance on `host` with one rbd BDM per entry of `fresh` (true: already on the new monitors). */
  async seedInstance(
    host: string,
    fresh: boolean[],
    instance: Record<string, unknown> = {},
  ): Promise<{ instanceUuid: string; bdms: SeededBdm[] }> {
    const { cell } = this.hosts.get(host) ?? { cell: 'cell1' as CellName };
    const instanceUuid = await this.fx.seedInstance(cell, { host, node: `${host}.example.org`, ...instance });
    const bdms: SeededBdm[] = [];
    for (const [i, isFresh] of fresh.entries())
      bdms.push(await this.attachVolume(instanceUuid, host, { fresh: isFresh, deviceName: `/dev/vd${String.fromCharCode(98 + i)}` }));
    return { instanceUuid, bdms };
  }

  /**
   * One rbd volume attached to the instance (in Cinder and as its BDM): a new volume, or
   * `volumeId` attached once more (an instance's BDM of another instance's volume).
   */
  async attachVolume(
    instanceUuid: string,
    host: string,
    options: { fresh?: boolean; deviceName: string; volumeId?: string },
  ): Promise<SeededBdm> {
    const { cell } = this.hosts.get(host) ?? { cell: 'cell1' as CellName };
    const volumeId = options.volumeId ?? randomUUID();
    // What the volume driver returns (without the keys Cinder and Nova add), old or new monitors.
    const {
      qos_specs: _q,
      access_mode: _a,
      encrypted: _e,
      ...base
    } = { ...RBD_CONNECTION_INFO.data, name: `volumes/volume-${volumeId}`, volume_id: volumeId };
    const backend = { ...base, hosts: NEW_MONITORS, keyring: 'AQBnewkeyringsecret==' };
    // A volume attached to a second instance is a multiattach volume, as Cinder would insist.
    if (options.volumeId) this.cloud.volumes.get(volumeId)!.multiattach = true;
    else this.cloud.addVolume(volumeId, {});
    const att = this.cloud.addAttachedVolume(
      volumeId,
      instanceUuid,
      { driver_volume_type: 'rbd', data: options.fresh ? backend : base },
      false,
      host,
    );
    this.cloud.backends.set(volumeId, { driver_volume_type: 'rbd', data: backend });
    const seeded = await this.fx.seedBdm(cell, instanceUuid, {
      volume_id: volumeId,
      attachment_id: att.id,
      device_name: options.deviceName,
      connection_info: JSON.stringify(novaInfoFromCinder(att, volumeId)),
    });
    return { uuid: seeded.uuid, id: seeded.id, volumeId, oldAttachmentId: att.id, instanceUuid, host, cell };
  }

  args(extra: Record<string, unknown>): Record<string, unknown> {
    return {
      action: 'refresh',
      config_file: [this.fx.env.confPath, this.extraConf],
      expect: RefreshEnv.EXPECT_NEW_MONITORS,
      connector_dir: this.connectorDir,
      ...extra,
    };
  }

  /** A fleet refresh that ran (wholly or in part): its result. */
  async refresh(extra: Record<string, unknown>): Promise<FleetRefreshResult> {
    return resultOf(await execute(this.args(extra)), 'fleet_refresh');
  }

  /** A fleet refresh's answer, or the failure it got instead, read field by field. */
  async answer(extra: Record<string, unknown>): Promise<Fields<FleetRefreshResult | FailureResult>> {
    const outcome = await execute(this.args(extra));
    assert.ok(outcome.kind === 'fleet_refresh' || outcome.kind === 'failure', `not a fleet refresh's answer: ${outcome.kind}`);
    return outcome.result;
  }

  async bdmRow(b: SeededBdm) {
    return this.fx.cell(b.cell).selectFrom('block_device_mapping').selectAll().where('id', '=', b.id).executeTakeFirstOrThrow();
  }

  async instanceRow(b: { instanceUuid: string; cell: CellName }) {
    return this.fx.cell(b.cell).selectFrom('instances').selectAll().where('uuid', '=', b.instanceUuid).executeTakeFirstOrThrow();
  }

  /** Every row a refresh may touch, for the instances given (before/after comparisons). */
  async dump(instances: Array<{ instanceUuid: string; cell: CellName }>) {
    const out: unknown[] = [];
    for (const i of instances) {
      const db = this.fx.cell(i.cell);
      const actions = await db
        .selectFrom('instance_actions')
        .selectAll()
        .where('instance_uuid', '=', i.instanceUuid)
        .orderBy('id')
        .execute();
      out.push({
        instance: await db.selectFrom('instances').selectAll().where('uuid', '=', i.instanceUuid).executeTakeFirst(),
        sysmeta: await db
          .selectFrom('instance_system_metadata')
          .selectAll()
          .where('instance_uuid', '=', i.instanceUuid)
          .orderBy('id')
          .execute(),
        bdms: await db.selectFrom('block_device_mapping').selectAll().where('instance_uuid', '=', i.instanceUuid).orderBy('id').execute(),
        actions,
      });
    }
    return out;
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await Promise.all([...[...this.hosts.values()].map((h) => h.compute.destroy()), this.cloud.stop()]);
    await this.fx.close();
  }
}
