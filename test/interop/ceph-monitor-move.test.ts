import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  BUNDLE,
  cephMon,
  cinderAttachment,
  cinderAttachments,
  cinderVolume,
  comparable,
  dumpNovaRows,
  getConnectorJson,
  hardReboot,
  moveMon,
  novaManage,
  outcomeOf,
  powerInstance,
  qemuPid,
  runOurs,
  seed,
  upLab,
  type LabEnv,
  type Seeded,
} from './harness';
import { INTEROP_SKIP } from './tier';

// Interop tier: the Ceph monitor move, for real (issues 12 and 23). Real Ceph 16 (one mon on
// loopback, memstore OSD, cephx), Cinder 21's RBDDriver, a libvirt/KVM nova-compute (compute2)
// and instances that boot from rbd volumes. After the mon moves, a stopped instance whose BDM
// still names the old mon cannot start; our refresh makes it start, and leaves the rows the real
// nova-manage leaves. Running guests keep running (their librbd follows the monmap), but a hard
// reboot rebuilds the domain from the stale BDM and fails; our online refresh
// (running_instances: online) fixes the BDM without touching the guest, and the hard reboot
// then works. Runs under `npm run test:interop`, or with NOVA_BDM_INTEROP=1.

const SKIP = INTEROP_SKIP;

const OLD_MON = '127.0.0.1';
const NEW_MON = '127.0.0.2';
const EXPECT = { driver_volume_type: 'rbd', data: { hosts: [NEW_MON], ports: ['6789'] } };
/** The lab writes `client mount timeout = 20` for QEMU's librbd (lab.env OPENSTACK_LAB_CEPH_MOUNT_TIMEOUT). */
const STALE_START_BOUND_S = 90;
/**
 * The online refresh (issue 23) is another branch's work: until the module knows
 * `running_instances`, it rejects the option, and the steps that need it run as todo (reported,
 * not counted as failures). They become ordinary tests as soon as the bundle has the option.
 */
const ONLINE_TODO = readFileSync(BUNDLE, 'utf8').includes('running_instances')
  ? false
  : 'the bundle has no running_instances option yet (issue 23)';

interface RbdConnectionInfo {
  driver_volume_type: string;
  data: { hosts: string[]; ports: string[]; name: string; auth_username: string; secret_uuid: string; [k: string]: unknown };
  [k: string]: unknown;
}

async function bdmOf(instanceUuid: string): Promise<{ attachment_id: string | null; connection_info: RbdConnectionInfo }> {
  const rows = await dumpNovaRows(instanceUuid);
  assert.equal(rows.block_device_mapping.length, 1, `one volume BDM on ${instanceUuid}`);
  const b = rows.block_device_mapping[0]!;
  return { attachment_id: b.attachment_id, connection_info: b.connection_info as RbdConnectionInfo };
}

/** connection_info with its own ids (and anything secret) replaced, to compare two volumes' field by field. */
function shapeOf(ci: unknown, instanceUuid: string, volumeId: string): unknown {
  const text = JSON.stringify(ci).split(volumeId).join('<volume>').split(instanceUuid).join('<instance>');
  const o = JSON.parse(text) as { data?: Record<string, unknown> };
  for (const k of ['keyring', 'auth_password', 'secret']) if (o.data && k in o.data) o.data[k] = '<secret>';
  return o;
}

describe('the Ceph monitor move on real Ceph, Cinder RBD and a libvirt compute', { skip: SKIP, timeout: 1_800_000 }, () => {
  let lab: LabEnv;
  /** a: started, stopped, refreshed by us, started again; b: refreshed by the real nova-manage; c: b's twin, refreshed by us. */
  let a: Seeded;
  let b: Seeded;
  let c: Seeded;
  /** Running through the move: r1 and r2 refreshed online by us, t (their twin) not refreshed. */
  let r1: Seeded;
  let r2: Seeded;
  let t: Seeded;
  /** The QEMU pid of each running guest, by instance uuid, taken before the move. */
  const pids = new Map<string, number>();
  let connector: string;
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      timings[name] = Date.now() - t0;
    }
  };

  before(async () => {
    lab = await upLab();
    // The mon address survives down/up: a previous run leaves it moved. Start from 127.0.0.1.
    if (cephMon().addr !== OLD_MON) await moveMon(OLD_MON);
  });

  after(async () => {
    // leave no guest running (a stop of a stopped instance is refused: harmless)
    for (const s of [a, r1, r2, t]) if (s) await powerInstance('stop', s.instance_uuid).catch(() => undefined);
    console.log(`ceph monitor move timings (ms): ${JSON.stringify(timings)}`);
  });

  test('seeded stopped rbd instances start, and their domain names the mon at 127.0.0.1', async () => {
    const seeded = await timed('seed 3 rbd instances', () => seed({ count: 3, rbd: true }));
    assert.equal(seeded.length, 3);
    [a, b, c] = seeded as [Seeded, Seeded, Seeded];
    for (const s of seeded) {
      const ci = s.connection_info as RbdConnectionInfo;
      assert.equal(ci.driver_volume_type, 'rbd');
      assert.deepEqual([ci.data.hosts, ci.data.ports], [[OLD_MON], ['6789']], "Cinder's RBDDriver hands out the live mon");
      assert.equal(ci.data.name, `volumes/volume-${s.volume_id}`);
      assert.equal(ci.data.auth_username, 'cinder');
      assert.ok(s.attachment_id, 'attached the v3 way');
    }
    const started = await timed('start (live mon)', () => powerInstance('start', a.instance_uuid));
    assert.equal(started.error, null, `start failed: ${started.error}`);
    assert.deepEqual([started.vm_state, started.power_state], ['active', 'running']);
    assert.deepEqual(started.domain_rbd_hosts, [OLD_MON], 'the domain XML names the mon at 127.0.0.1');
    timings['start (live mon), cast to running'] = Math.round(started.seconds * 1000);
  });

  test("three running rbd guests; a hard reboot (nova-api's reboot HARD) of one makes a new QEMU on the mon at 127.0.0.1", async () => {
    const seeded = await timed('seed 3 rbd instances to run', () => seed({ count: 3, rbd: true }));
    assert.equal(seeded.length, 3);
    [r1, r2, t] = seeded as [Seeded, Seeded, Seeded];
    for (const s of seeded) {
      const started = await timed(`start ${s === t ? 'twin' : s === r1 ? 'r1' : 'r2'}`, () => powerInstance('start', s.instance_uuid));
      assert.equal(started.error, null, `start failed: ${started.error}`);
      assert.deepEqual([started.vm_state, started.power_state, started.domain_rbd_hosts], ['active', 'running', [OLD_MON]]);
      assert.ok(started.qemu_pid, 'the domain has a QEMU process');
      assert.equal(await qemuPid(s.instance_uuid), started.qemu_pid, "the harness finds the tool's QEMU pid");
    }

    const before = await qemuPid(t.instance_uuid);
    const rebooted = await timed('hard reboot (live mon)', () => hardReboot(t.instance_uuid));
    assert.equal(rebooted.error, null, `hard reboot failed: ${rebooted.error}`);
    assert.deepEqual([rebooted.vm_state, rebooted.power_state, rebooted.task_state], ['active', 'running', null]);
    assert.deepEqual(rebooted.domain_rbd_hosts, [OLD_MON]);
    assert.equal(rebooted.qemu_pid_before, before);
    assert.ok(
      rebooted.qemu_pid && rebooted.qemu_pid !== before,
      `a new QEMU process (${before} -> ${rebooted.qemu_pid}): the domain was defined again from the BDM`,
    );
    const actions = (await dumpNovaRows(t.instance_uuid)).instance_actions.map((x) => [x.action, x.events.map((e) => [e.event, e.result])]);
    assert.deepEqual(actions.at(-1), ['reboot', [['compute_reboot_instance', 'Success']]], 'recorded as nova-api records it');
    timings['hard reboot (live mon), cast to running'] = Math.round(rebooted.seconds * 1000);
    for (const s of seeded) pids.set(s.instance_uuid, (await qemuPid(s.instance_uuid))!);
  });

  test('stop it, then move the monitor to 127.0.0.2; the running guests keep their QEMU', async () => {
    const stopped = await powerInstance('stop', a.instance_uuid);
    assert.equal(stopped.error, null, `stop failed: ${stopped.error}`);
    assert.deepEqual([stopped.vm_state, stopped.power_state], ['stopped', 'shutdown']);
    const moved = await moveMon(NEW_MON);
    timings['monitor move'] = moved.ms;
    assert.deepEqual(cephMon().addr, NEW_MON);
    assert.match(moved.output, /cinder's view .*127\.0\.0\.2:6789/, 'client.cinder sees only the new mon');
    for (const s of [a, b, c, r1, r2, t])
      assert.deepEqual((await bdmOf(s.instance_uuid)).connection_info.data.hosts, [OLD_MON], 'the BDM still names the old mon');
    for (const s of [r1, r2, t])
      assert.equal(await qemuPid(s.instance_uuid), pids.get(s.instance_uuid), 'the guest runs on, in the same QEMU');
  });

  test('the twin (running, not refreshed): a hard reboot fails, its disk names the old mon', async () => {
    const r = await timed('twin hard reboot after the move (fails)', () => hardReboot(t.instance_uuid, STALE_START_BOUND_S));
    assert.notEqual(r.status, 0);
    assert.ok(r.error, 'the hard reboot failed');
    assert.doesNotMatch(
      r.error,
      /^timeout/,
      `the compute gave up by itself within ${STALE_START_BOUND_S} s (client mount timeout): ${r.error}`,
    );
    assert.match(r.error, /127\.0\.0\.1/, `the failing disk names the old mon: ${r.error}`);
    assert.deepEqual([r.vm_state, r.task_state], ['error', null], 'Nova leaves the instance in ERROR');
    assert.equal(r.qemu_pid, null, 'the guest is gone: the reboot destroyed it and could not start it again');
    timings['twin hard reboot, cast to failure'] = Math.round(r.seconds * 1000);
  });

  test('audit with expect finds every rbd BDM stale; check_cinder alone cannot tell', async () => {
    const uuids = [a, b, c].map((s) => s.instance_uuid);
    const audit = await timed('audit with expect', () =>
      runOurs<'audit'>({ action: 'audit', config_file: lab.novaConf, instance_uuids: uuids, expect: EXPECT }),
    );
    assert.equal(audit.status, 0, audit.stderr);
    const totals = audit.result.totals;
    assert.deepEqual([totals?.scanned, totals?.stale, totals?.by_reason], [3, 3, { expectation_mismatch: 3 }]);
    const stale = audit.result.stale ?? [];
    assert.deepEqual(stale.map((x) => x.instance_uuid).sort(), [...uuids].sort());
    for (const x of stale) {
      assert.equal(x.host, 'compute2');
      assert.deepEqual(x.reasons, ['expectation_mismatch']);
      assert.deepEqual(x.details, [`data.hosts/ports are ${OLD_MON}:6789, expected ${NEW_MON}:6789`]);
      assert.equal(x.refreshable, true);
    }

    // Cinder's stored attachment was made before the move: it still names the old mon, so the
    // Cinder rules see nothing wrong. Only `expect` (or a fresh attachment) tells.
    const cinderOnly = await timed('audit with check_cinder', () =>
      runOurs<'audit'>({ action: 'audit', config_file: lab.novaConf, instance_uuids: uuids, check_cinder: true }),
    );
    assert.equal(cinderOnly.status, 0, cinderOnly.stderr);
    assert.deepEqual(cinderOnly.result.totals?.stale, 0, `check_cinder: ${JSON.stringify(cinderOnly.result)}`);
    const stored = await cinderAttachment(a.attachment_id!);
    // (Cinder stores it flat: the driver data and driver_volume_type side by side)
    assert.deepEqual((stored.connection_info as { hosts: string[] }).hosts, [OLD_MON], "Cinder's attachment keeps the old mon");
  });

  test('before the refresh the instance does not start (librados cannot reach the old mon)', async () => {
    const r = await timed('start before the refresh (fails)', () => powerInstance('start', a.instance_uuid, STALE_START_BOUND_S));
    assert.notEqual(r.status, 0);
    assert.ok(r.error, 'the start failed');
    assert.doesNotMatch(
      r.error,
      /^timeout/,
      `the compute gave up by itself within ${STALE_START_BOUND_S} s (client mount timeout): ${r.error}`,
    );
    assert.match(r.error, /"host":"127\.0\.0\.1"/, `the failing disk names the old mon: ${r.error}`);
    assert.deepEqual([r.vm_state, r.power_state, r.task_state], ['stopped', 'shutdown', null], 'Nova reverted the start');
    timings['start before the refresh, cast to failure'] = Math.round(r.seconds * 1000);
  });

  test("fleet refresh (require_libvirt, expect, the compute's real get_connector): the BDMs match what RBDDriver hands out now", async () => {
    connector = await timed('real get_connector on compute2', async () => getConnectorJson('compute2'));
    const connectorJson = JSON.parse(readFileSync(connector, 'utf8')) as Record<string, unknown>;
    assert.equal(connectorJson.host, 'compute2');
    // One fleet refresh over a and c (b is left for the real nova-manage).
    const fleetArgs = {
      action: 'refresh',
      config_file: lab.novaConf,
      bdm_uuids: [a.bdm_uuid, c.bdm_uuid],
      connectors: { compute2: connectorJson },
      require_libvirt: true,
      expect: EXPECT,
    };
    const r = await timed('fleet refresh of a and c', () => runOurs<'fleet_refresh'>(fleetArgs));
    assert.equal(r.result.failed, undefined, `our fleet refresh failed: ${JSON.stringify(r.result, null, 2)}\n${r.stderr}`);
    assert.equal(r.status, 0);
    assert.equal(r.result.changed, true);
    assert.deepEqual(r.result.counts, { refreshed: 2, skipped: 0, failed: 0 }, JSON.stringify(r.result));
    const refreshed = r.result.refreshed ?? [];
    assert.deepEqual(refreshed.map((x) => x.bdm_uuid).sort(), [a.bdm_uuid, c.bdm_uuid].sort());
    for (const x of refreshed) {
      assert.equal(x.host, 'compute2');
      assert.deepEqual(x.reasons, ['expectation_mismatch']);
      timings[`fleet refresh: BDM ${x.bdm_uuid === a.bdm_uuid ? 'a' : 'c'} (its own seconds)`] = Math.round(x.seconds * 1000);
    }
    for (const s of [a, c]) {
      const bdm = await bdmOf(s.instance_uuid);
      const mine = refreshed.find((x) => x.bdm_uuid === s.bdm_uuid)!;
      assert.equal(bdm.attachment_id, mine.new_attachment_id);
      assert.notEqual(bdm.attachment_id, s.attachment_id, 'a new attachment');
      assert.deepEqual([bdm.connection_info.data.hosts, bdm.connection_info.data.ports], [[NEW_MON], ['6789']]);
    }

    // A fresh attachment made after the move (a new instance, attached through Nova's volume
    // API): the refreshed BDMs hold exactly what Cinder's RBDDriver hands out now.
    const [fresh] = await seed({ count: 1, rbd: true });
    assert.ok(fresh);
    const freshCi = (await bdmOf(fresh.instance_uuid)).connection_info;
    assert.deepEqual(freshCi.data.hosts, [NEW_MON]);
    for (const s of [a, c]) {
      const ci = (await bdmOf(s.instance_uuid)).connection_info;
      assert.deepEqual(
        shapeOf(ci, s.instance_uuid, s.volume_id),
        shapeOf(freshCi, fresh.instance_uuid, fresh.volume_id),
        'field by field, ids aside',
      );
    }

    // Re-run, single and fleet: nothing is stale any more, nothing changes.
    const again = await runOurs({
      action: 'refresh',
      config_file: lab.novaConf,
      instance_uuid: a.instance_uuid,
      volume_id: a.volume_id,
      connector_path: connector,
      require_libvirt: true,
      expect: EXPECT,
    });
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.result.changed, false, JSON.stringify(again.result));
    const fleetAgain = await runOurs<'fleet_refresh'>(fleetArgs);
    assert.equal(fleetAgain.status, 0, fleetAgain.stderr);
    assert.equal(fleetAgain.result.changed, false, JSON.stringify(fleetAgain.result));
    assert.deepEqual(fleetAgain.result.counts, { refreshed: 0, skipped: 2, failed: 0 });
    const audit = await runOurs<'audit'>({
      action: 'audit',
      config_file: lab.novaConf,
      instance_uuids: [a.instance_uuid, c.instance_uuid],
      expect: EXPECT,
    });
    assert.equal(audit.result.totals?.stale, 0, JSON.stringify(audit.result));
  });

  test('after the refresh the instance starts within seconds, on the mon at 127.0.0.2', async () => {
    const r = await timed('start after the refresh', () => powerInstance('start', a.instance_uuid, 60));
    assert.equal(r.error, null, `start failed: ${r.error}`);
    assert.deepEqual([r.vm_state, r.power_state], ['active', 'running']);
    assert.deepEqual(r.domain_rbd_hosts, [NEW_MON], 'the domain XML names the mon at 127.0.0.2');
    assert.ok(r.seconds < 15, `running ${r.seconds} s after the cast`);
    timings['start after the refresh, cast to running'] = Math.round(r.seconds * 1000);
  });

  test('the real nova-manage volume_attachment refresh on the twin leaves the same rows', async () => {
    const before = comparable(b, await outcomeOf(b));
    const t0 = Date.now();
    const r = novaManage(['volume_attachment', 'refresh', b.instance_uuid, b.volume_id, connector]);
    timings['real nova-manage refresh'] = Date.now() - t0;
    assert.equal(
      r.status,
      0,
      `real nova-manage refresh failed (exit ${r.status}):\n${r.stdout}\n${r.stderr.split('\n').slice(-15).join('\n')}`,
    );
    const theirs = await outcomeOf(b);
    const mine = await outcomeOf(c);
    assert.notDeepEqual(comparable(b, theirs), before, 'nova-manage changed something');
    assert.equal(theirs.attachments.length, 1, `nova-manage leaves one attachment: ${JSON.stringify(theirs.attachments)}`);
    assert.equal(mine.attachments.length, 1, `we leave one attachment: ${JSON.stringify(mine.attachments)}`);
    assert.deepEqual((theirs.nova.block_device_mapping[0]!.connection_info as RbdConnectionInfo).data.hosts, [NEW_MON]);
    assert.deepEqual(comparable(c, mine), comparable(b, theirs));
  });
  test('audit: the running guests are stale; refreshable only with running_instances online', async () => {
    const uuids = [r1.instance_uuid, r2.instance_uuid];
    const audit = await runOurs<'audit'>({ action: 'audit', config_file: lab.novaConf, instance_uuids: uuids, expect: EXPECT });
    assert.equal(audit.status, 0, audit.stderr);
    const stale = audit.result.stale ?? [];
    assert.deepEqual(stale.map((x) => x.instance_uuid).sort(), [...uuids].sort());
    for (const x of stale) assert.deepEqual([x.refreshable, x.blocked_by], [false, 'vm_state active (must be stopped)'], JSON.stringify(x));
  });

  test("audit with running_instances online: the running guests' rbd BDMs are refreshable", { todo: ONLINE_TODO }, async () => {
    const uuids = [r1.instance_uuid, r2.instance_uuid];
    const audit = await runOurs<'audit'>({
      action: 'audit',
      config_file: lab.novaConf,
      instance_uuids: uuids,
      expect: EXPECT,
      running_instances: 'online',
    });
    assert.equal(audit.result.failed, undefined, JSON.stringify(audit.result));
    const stale = audit.result.stale ?? [];
    assert.deepEqual(stale.map((x) => x.instance_uuid).sort(), [...uuids].sort());
    for (const x of stale) assert.deepEqual([x.refreshable, x.blocked_by], [true, undefined], JSON.stringify(x));
  });

  test(
    "fleet refresh with running_instances online: each guest keeps its QEMU, each volume has one attachment, the BDM's",
    { todo: ONLINE_TODO },
    async () => {
      const connectorJson = JSON.parse(readFileSync(connector, 'utf8')) as Record<string, unknown>;
      const running = [r1, r2];
      const oldAttachments = new Map(running.map((s) => [s.instance_uuid, s.attachment_id]));
      const r = await timed('online fleet refresh of r1 and r2', () =>
        runOurs<'fleet_refresh'>({
          action: 'refresh',
          config_file: lab.novaConf,
          bdm_uuids: running.map((s) => s.bdm_uuid),
          connectors: { compute2: connectorJson },
          require_libvirt: true,
          expect: EXPECT,
          running_instances: 'online',
        }),
      );
      assert.equal(r.result.failed, undefined, `our online fleet refresh failed: ${JSON.stringify(r.result, null, 2)}\n${r.stderr}`);
      assert.equal(r.status, 0);
      assert.equal(r.result.changed, true);
      assert.deepEqual(r.result.counts, { refreshed: 2, skipped: 0, failed: 0 }, JSON.stringify(r.result));
      const refreshed = r.result.refreshed ?? [];
      assert.deepEqual(refreshed.map((x) => x.bdm_uuid).sort(), running.map((s) => s.bdm_uuid).sort());
      for (const x of refreshed) {
        assert.equal(x.host, 'compute2');
        assert.deepEqual([x.online, x.rpc_version], [true, null], JSON.stringify(x));
        const names = (x.steps ?? []).map((st) => st.step);
        const online = ['attachment_create', 'attachment_complete', 'bdm_save', 'attachment_delete'];
        assert.deepEqual(
          names.filter((n) => online.includes(n)),
          online,
          `the four online steps, in order: ${JSON.stringify(names)}`,
        );
        assert.ok(!names.some((n) => /rabbit|rpc|remove_volume_connection/i.test(n)), `no RabbitMQ, no RPC: ${JSON.stringify(names)}`);
        timings[`online fleet refresh: BDM ${x.bdm_uuid === r1.bdm_uuid ? 'r1' : 'r2'} (its own seconds)`] = Math.round(x.seconds * 1000);
      }

      for (const s of running) {
        assert.equal(await qemuPid(s.instance_uuid), pids.get(s.instance_uuid), 'the guest runs on in the same QEMU process');
        const rows = await dumpNovaRows(s.instance_uuid);
        assert.deepEqual(
          [rows.instance?.vm_state, rows.instance?.task_state, rows.instance?.locked],
          ['active', null, false],
          'still active, no task, unlocked',
        );
        const bdm = await bdmOf(s.instance_uuid);
        assert.equal(bdm.attachment_id, refreshed.find((x) => x.bdm_uuid === s.bdm_uuid)!.new_attachment_id);
        assert.notEqual(bdm.attachment_id, oldAttachments.get(s.instance_uuid), 'a new attachment');
        assert.deepEqual([bdm.connection_info.data.hosts, bdm.connection_info.data.ports], [[NEW_MON], ['6789']]);
        const attachments = await cinderAttachments(s.volume_id);
        assert.deepEqual(
          attachments.map((x) => [x.id, x.status, x.instance]),
          [[bdm.attachment_id, 'attached', s.instance_uuid]],
          `exactly one Cinder attachment, the BDM's: ${JSON.stringify(attachments)}`,
        );
        assert.equal((await cinderVolume(s.volume_id)).status, 'in-use');
      }
    },
  );

  test('after the online refresh a hard reboot works, and the new domain names the mon at 127.0.0.2', { todo: ONLINE_TODO }, async () => {
    for (const s of [r1, r2]) {
      const r = await timed(`hard reboot after the online refresh (${s === r1 ? 'r1' : 'r2'})`, () => hardReboot(s.instance_uuid, 60));
      assert.equal(r.error, null, `hard reboot failed: ${r.error}`);
      assert.deepEqual([r.vm_state, r.power_state, r.task_state], ['active', 'running', null]);
      assert.deepEqual(r.domain_rbd_hosts, [NEW_MON], 'the domain XML names the mon at 127.0.0.2');
      assert.equal(r.qemu_pid_before, pids.get(s.instance_uuid), 'the QEMU that ran through the move and the refresh');
      assert.ok(r.qemu_pid && r.qemu_pid !== r.qemu_pid_before, 'a new QEMU process');
      timings[`hard reboot after the online refresh, cast to running (${s === r1 ? 'r1' : 'r2'})`] = Math.round(r.seconds * 1000);
    }
  });
});
