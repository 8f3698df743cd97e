import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execute, type Outcome } from '../../src/entry/run';
import type { RefreshAnswer } from './results';
import { DanglingBdmWatch, danglingBdms } from './dangling-bdms';
import { FakeCompute } from './fake-compute';
import { BUNDLE } from './nova-env';
import { FakeOpenStack, type FakeAttachment } from './fake-openstack';
import { Fixtures, RBD_CONNECTION_INFO, type ComputeServiceOverrides } from './fixtures';

// Everything a refresh test needs: the real Nova schema (cell1, templated transport URL on the
// real RabbitMQ), a stand-in compute on its own host name, and the stand-in Keystone + Cinder.

export const CONNECTOR = {
  do_local_attach: false,
  host: 'HOST',
  initiator: 'iqn.2004-10.com.ubuntu:01:nbt0001',
  ip: '192.0.2.10',
  multipath: false,
  nvme_native_multipath: false,
  os_type: 'linux',
  platform: 'x86_64',
  'system uuid': '4c4c4544-0042-3010-8051-b4c04f333132',
  uuid: '1b2c3d4e-aaaa-bbbb-cccc-0123456789ab',
};

/** What Nova stores from a v3 attachment (nova/volume/cinder.py _translate_attachment_ref, the serial, os-brick's device_path). */
export function novaInfoFromCinder(a: FakeAttachment, volumeId: string): Record<string, unknown> {
  const { attachment_id: _id, driver_volume_type, ...data } = a.connection_info as Record<string, unknown>;
  void _id;
  if (driver_volume_type === 'iscsi')
    data.device_path = `/dev/disk/by-path/ip-${String(data.target_portal)}-iscsi-${String(data.target_iqn)}-lun-${String(data.target_lun)}`;
  return {
    driver_volume_type,
    data,
    status: 'reserved',
    instance: a.instance,
    attached_at: '',
    detached_at: '',
    volume_id: volumeId,
    serial: volumeId,
  };
}

/** What Nova stored for a legacy (cinder v2) attach: os-initialize_connection's answer, the serial and the connector. */
function legacyNovaInfo(
  driverInfo: { driver_volume_type: string; data: Record<string, unknown> },
  volumeId: string,
  connector: Record<string, unknown>,
  readonly?: boolean,
) {
  return {
    driver_volume_type: driverInfo.driver_volume_type,
    data: { ...driverInfo.data, qos_specs: null, access_mode: readonly ? 'ro' : 'rw', encrypted: false, cacheable: false },
    serial: volumeId,
    connector,
  };
}

export const OLD_MONITORS = ['192.0.2.11', '192.0.2.12', '192.0.2.13'];
export const NEW_MONITORS = ['198.51.100.21', '198.51.100.22', '198.51.100.23'];
export const CONTROLLER_HOST = 'nbt-controller';

export class RefreshEnv {
  readonly fx = new Fixtures();
  host = `nbt-cmp-${randomUUID().slice(0, 8)}`;
  compute!: FakeCompute;
  cloud!: FakeOpenStack;
  extraConf = '';
  readonly dir = mkdtempSync(join(tmpdir(), 'nbt-refresh-'));
  private heartbeat?: NodeJS.Timeout;

  static async start(host?: string): Promise<RefreshEnv> {
    const env = new RefreshEnv();
    if (host) env.host = host;
    env.cloud = await FakeOpenStack.start();
    env.compute = await FakeCompute.start(env.host);
    env.extraConf = join(env.dir, 'cinder.conf');
    writeFileSync(env.extraConf, `[DEFAULT]\nhost = ${CONTROLLER_HOST}\n${env.cloud.nova_conf_sections()}`);
    // Cinder asks Nova which attachment the volume has (attachment_deletion_allowed): the BDM's.
    env.cloud.novaAttachmentId = async (instanceUuid, volumeId) => {
      const row = await env.fx
        .cell('cell1')
        .selectFrom('block_device_mapping')
        .select('attachment_id')
        .where('instance_uuid', '=', instanceUuid)
        .where('volume_id', '=', volumeId)
        .where('deleted', '=', 0)
        .executeTakeFirst();
      return row?.attachment_id ?? undefined;
    };
    await env.seedComputeService();
    // Like nova-compute's report_state: keep the service row fresh.
    env.heartbeat = setInterval(() => {
      void env.fx
        .cell('cell1')
        .updateTable('services')
        .set({ updated_at: new Date() })
        .where('host', '=', env.host)
        .where('forced_down', '=', 0)
        .where('updated_at', '>', new Date(Date.now() - 120_000).toISOString().slice(0, 19).replace('T', ' '))
        .execute();
    }, 10_000);
    return env;
  }

  get connector() {
    return { ...CONNECTOR, host: this.host };
  }

  /** This host's (or `host`'s) nova-compute service and compute node in cell1, replacing any earlier ones. */
  async seedComputeService(overrides: ComputeServiceOverrides = {}, host = this.host): Promise<void> {
    await this.fx.seedComputeService('cell1', host, overrides);
  }

  /**
   * A stopped instance on this host with one attached volume (rbd on the old monitors unless
   * `oldInfo` says otherwise). Cinder's attachment is made by the stand-in's attach rules, and
   * the BDM holds what Nova stored from it: for v3, Cinder's connection_info re-nested
   * (attachment keys and serial, plus device_path for iSCSI, which os-brick adds); for legacy,
   * os-initialize_connection's answer with the connector. An explicit `oldInfo` is stored as is.
   */
  async seed(
    options: {
      legacy?: boolean;
      instance?: Record<string, unknown>;
      oldInfo?: Record<string, unknown>;
      /** The volume's driver info (X = the volume id) when not rbd; the BDM is derived from Cinder's answer. */
      template?: Record<string, unknown>;
      readonly?: boolean;
      multiattach?: boolean;
      /** Add the volume to this instance instead of a new one (then give another deviceName). */
      instanceUuid?: string;
      deviceName?: string;
    } = {},
  ) {
    const instanceUuid =
      options.instanceUuid ??
      (await this.fx.seedInstance('cell1', { host: this.host, node: `${this.host}.example.org`, ...options.instance }));
    const volumeId = randomUUID();
    const template = options.oldInfo ?? options.template ?? RBD_CONNECTION_INFO;
    const filled = JSON.parse(
      JSON.stringify(template).replaceAll('"X"', JSON.stringify(volumeId)).replaceAll('volume-X', `volume-${volumeId}`),
    ) as { driver_volume_type: string; data: Record<string, unknown> };
    // What the volume driver itself returns: without the keys Cinder and Nova add.
    const driverData = { ...filled.data };
    for (const k of ['qos_specs', 'access_mode', 'encrypted', 'cacheable', 'multipath_id', 'device_path']) delete driverData[k];
    const driverInfo = { driver_volume_type: filled.driver_volume_type, data: driverData };
    this.cloud.addVolume(volumeId, {
      multiattach: options.multiattach ?? false,
      admin_metadata: options.readonly ? { readonly: 'True' } : {},
    });
    const host = String(options.instance?.host ?? this.host);
    const cinderOld = this.cloud.addAttachedVolume(volumeId, instanceUuid, driverInfo, options.legacy, host, {
      mode: options.readonly ? 'ro' : 'rw',
    });
    const oldInfo = options.oldInfo
      ? filled
      : options.legacy
        ? legacyNovaInfo(driverInfo, volumeId, this.connector, options.readonly)
        : novaInfoFromCinder(cinderOld, volumeId);
    const bdm = await this.fx.seedBdm('cell1', instanceUuid, {
      volume_id: volumeId,
      attachment_id: options.legacy ? null : cinderOld.id,
      connection_info_object: oldInfo,
      ...(options.deviceName ? { device_name: options.deviceName } : {}),
    });
    this.cloud.backends.set(volumeId, {
      driver_volume_type: filled.driver_volume_type,
      data:
        filled.driver_volume_type === 'rbd'
          ? { ...driverData, hosts: NEW_MONITORS, ports: ['6789', '6789', '6789'], keyring: 'AQBnewkeyringsecret==' }
          : driverData,
    });
    return { instanceUuid, volumeId, bdm, oldAttachmentId: cinderOld.id, oldInfo };
  }

  /** The operator's statement after the Ceph monitor move: what every refresh test passes unless it says otherwise. */
  static readonly EXPECT_NEW_MONITORS = { driver_volume_type: 'rbd', data: { hosts: NEW_MONITORS, ports: ['6789', '6789', '6789'] } };

  /** A single refresh (or, with action: 'show', a show): its answer, success or failure, read field by field. */
  async refresh(args: Record<string, unknown>): Promise<RefreshAnswer> {
    const outcome = await this.outcome(args);
    const { kind } = outcome;
    assert.ok(kind === 'refresh' || kind === 'show' || kind === 'failure', `not a single refresh's answer: ${kind}`);
    return outcome.result;
  }

  /**
   * Run the bundle as Ansible does (the arguments on stdin, this env's defaults as refresh() has
   * them) with the failpoint that SIGKILLs it right before `step` (NOVA_BDM_KILL_BEFORE_STEP).
   * Resolves with the signal it ended by.
   */
  async refreshKilledBefore(step: string, args: Record<string, unknown>): Promise<NodeJS.Signals | null> {
    const input = JSON.stringify({
      action: 'refresh',
      config_file: [this.fx.env.confPath, this.extraConf],
      connector: this.connector,
      expect: RefreshEnv.EXPECT_NEW_MONITORS,
      ...args,
    });
    return new Promise((resolve) => {
      const child = spawn(BUNDLE, ['-'], { env: { ...process.env, NOVA_BDM_KILL_BEFORE_STEP: step }, stdio: ['pipe', 'ignore', 'ignore'] });
      child.on('exit', (_code, signal) => resolve(signal));
      child.stdin.end(input);
    });
  }

  /** What execute returns for these arguments (refresh with this env's connector and expect unless they say otherwise). */
  async outcome(args: Record<string, unknown>): Promise<Outcome> {
    const defaults = args.action === 'show' ? {} : { connector: this.connector, expect: RefreshEnv.EXPECT_NEW_MONITORS };
    return execute({ action: 'refresh', config_file: [this.fx.env.confPath, this.extraConf], ...defaults, ...args });
  }

  /** Volume BDMs of these instances that name an attachment Cinder does not have (see dangling-bdms.ts). */
  danglingBdms(...instanceUuids: string[]): Promise<string[]> {
    return danglingBdms(this.fx.cell('cell1'), this.cloud, instanceUuids);
  }

  /** Checks for dangling BDMs of these instances before every Cinder request until stop(). */
  watchDanglingBdms(...instanceUuids: string[]): DanglingBdmWatch {
    return new DanglingBdmWatch(this.fx.cell('cell1'), this.cloud, instanceUuids);
  }

  /** Every row refresh may touch for this instance, for before/after comparisons. */
  async dumpRows(instanceUuid: string) {
    const db = this.fx.cell('cell1');
    const actions = await db.selectFrom('instance_actions').selectAll().where('instance_uuid', '=', instanceUuid).orderBy('id').execute();
    return {
      instance: await db.selectFrom('instances').selectAll().where('uuid', '=', instanceUuid).executeTakeFirst(),
      sysmeta: await db
        .selectFrom('instance_system_metadata')
        .selectAll()
        .where('instance_uuid', '=', instanceUuid)
        .orderBy('id')
        .execute(),
      bdms: await db.selectFrom('block_device_mapping').selectAll().where('instance_uuid', '=', instanceUuid).orderBy('id').execute(),
      actions,
      events: actions.length
        ? await db
            .selectFrom('instance_actions_events')
            .selectAll()
            .where(
              'action_id',
              'in',
              actions.map((a) => a.id),
            )
            .orderBy('id')
            .execute()
        : [],
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await Promise.all([this.compute.destroy(), this.cloud.stop(), this.fx.close()]);
  }
}
