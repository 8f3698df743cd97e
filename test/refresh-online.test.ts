import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ISCSI_CHAP_CONNECTION_INFO, RBD_CONNECTION_INFO } from './support/fixtures';
import { NEW_MONITORS, RefreshEnv } from './support/refresh-env';
import type { RefreshAnswer } from './support/results';
import { TcpProxy } from './support/tcp-proxy';

// running_instances: online, single refresh, on the real MariaDB and RabbitMQ with the stand-in
// Keystone + Cinder. The stand-in compute must receive nothing: the online flow sends no RPC.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

const RUNNING = { vm_state: 'active', power_state: 1 };
const ONLINE_STEPS = ['attachment_create', 'attachment_complete', 'bdm_save', 'attachment_delete'];
type Seeded = Awaited<ReturnType<RefreshEnv['seed']>>;

function stepNames(r: RefreshAnswer): string[] {
  return (r.steps ?? []).filter((s) => s.ok).map((s) => s.step);
}

/** The four online steps, done in this order (other steps may come between). */
function onlineStepsOf(r: Record<string, unknown>): string[] {
  return stepNames(r).filter((s) => ONLINE_STEPS.includes(s));
}

/** A running instance's refresh left: unlocked, running, the BDM naming the one attachment of its volume. */
async function assertConverged(s: Seeded, expectedAttachment?: string) {
  const rows = await env.dumpRows(s.instanceUuid);
  assert.equal(rows.instance!.locked, 0, 'unlocked');
  assert.equal(rows.instance!.vm_state, 'active');
  assert.deepEqual(
    rows.sysmeta.filter((m) => m.key === 'locked_reason' || m.key === 'nova_bdm_refresh'),
    [],
  );
  const atts = env.cloud.attachmentsOf(s.volumeId);
  assert.deepEqual(
    atts.map((a) => a.status),
    ['attached'],
    `exactly one attachment, got ${JSON.stringify(atts.map((a) => [a.id, a.status]))}`,
  );
  assert.equal(rows.bdms[0]!.attachment_id, atts[0]!.id, "the BDM names the volume's attachment");
  if (expectedAttachment) assert.equal(rows.bdms[0]!.attachment_id, expectedAttachment);
  assert.equal(env.cloud.volumes.get(s.volumeId)!.status, 'in-use');
  for (const a of rows.actions.filter((x) => x.action === 'refresh_volume_attachment'))
    assert.notEqual(a.finish_time, null, 'refresh action finished');
  return rows;
}

/** Whatever happened, the BDM names an attachment Cinder has (Nova's _delete_dangling_bdms would otherwise drop it). */
async function assertBdmAttachmentExists(s: Seeded) {
  const row = await env.fx
    .cell('cell1')
    .selectFrom('block_device_mapping')
    .select('attachment_id')
    .where('id', '=', s.bdm.id)
    .executeTakeFirstOrThrow();
  assert.ok(
    row.attachment_id && env.cloud.attachments.has(row.attachment_id),
    `the BDM's attachment ${row.attachment_id} exists in Cinder`,
  );
}

describe('online refresh of a running instance', () => {
  test('an rbd BDM: a second attachment made and completed, the BDM saved, the old one deleted with the service token; no RPC', async () => {
    const s = await env.seed({ instance: RUNNING });
    const callsBefore = env.compute.calls.length;
    const r = await env.refresh({ instance_uuid: s.instanceUuid, volume_id: s.volumeId, running_instances: 'online', _ansible_diff: true });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.changed, true);
    assert.equal(r.online, true);
    assert.equal(r.rpc_version, null);
    assert.match(String(r.msg), /refreshed the connection_info of BDM \S+ online, the instance running/);
    assert.deepEqual(onlineStepsOf(r), ONLINE_STEPS);
    assert.ok(
      !stepNames(r).some((x) => x.startsWith('rpc_') || x === 'connect_rabbitmq' || x === 'check_compute_queue'),
      stepNames(r).join(','),
    );
    assert.equal(env.compute.calls.length, callsBefore, 'the compute received no RPC');

    const newId = String(r.new_attachment_id);
    assert.notEqual(newId, s.oldAttachmentId);
    const rows = await assertConverged(s, newId);
    const info = JSON.parse(rows.bdms[0]!.connection_info!);
    assert.deepEqual(info.data.hosts, NEW_MONITORS);
    assert.equal(info.serial, s.volumeId);
    assert.equal(info.driver_volume_type, 'rbd');
    assert.equal(info.data.attachment_id, undefined, "Nova's translation drops the flat form's attachment_id");
    assert.deepEqual(env.cloud.attachmentsOf(s.volumeId)[0]!.connector, { ...env.connector, mountpoint: '/dev/vdb' });

    // Cinder saw, in order: create with the connector, complete, delete of the old one (service token).
    const calls = env.cloud
      .mutations()
      .filter(
        (m) =>
          m.path.includes(newId) ||
          m.path.includes(s.oldAttachmentId) ||
          (m.method === 'POST' && (m.body as any)?.attachment?.volume_uuid === s.volumeId),
      );
    assert.deepEqual(
      calls.map((m) => `${m.method} ${m.path.replace(/^\/volume\/v3\/\w+/, '')} ${m.status}`),
      ['POST /attachments 200', `POST /attachments/${newId}/action 204`, `DELETE /attachments/${s.oldAttachmentId} 200`],
    );
    assert.deepEqual(calls[0]!.body, {
      attachment: { volume_uuid: s.volumeId, connector: { ...env.connector, mountpoint: '/dev/vdb' }, instance_uuid: s.instanceUuid },
    });
    assert.ok(calls[2]!.headers['x-service-token'], 'the old attachment is deleted with the service token');

    // The same claim, lock and recorded action as the stopped flow.
    assert.deepEqual(
      rows.actions.map((a) => a.action),
      ['lock', 'refresh_volume_attachment', 'unlock'],
    );
  });

  test('a paused instance is refreshed online too', async () => {
    const s = await env.seed({ instance: { vm_state: 'paused', power_state: 3 } });
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.online, true);
    const rows = await env.dumpRows(s.instanceUuid);
    assert.equal(rows.instance!.vm_state, 'paused');
    assert.equal(rows.bdms[0]!.attachment_id, r.new_attachment_id);
  });

  test('default running_instances skip: a running instance is refused as before, nothing written', async () => {
    const s = await env.seed({ instance: RUNNING });
    const before = await env.dumpRows(s.instanceUuid);
    const mutations = env.cloud.mutations().length;
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.failed, true);
    assert.match(String(r.msg), /vm_state active\. Cannot refresh connection_info \(must be stopped\)/);
    assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
    assert.equal(env.cloud.mutations().length, mutations);
  });

  test('a stopped instance still takes the stopped flow (with its RPC) under running_instances online', async () => {
    const s = await env.seed();
    const calls = env.compute.calls.length;
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.online, undefined);
    assert.equal(r.rpc_version, '6.0');
    assert.equal(env.compute.calls.length, calls + 1);
  });

  test('suspended, shelved_offloaded, a task, or a power_state that is not running: refused with why', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ vm_state: 'suspended', power_state: 7 }, /vm_state suspended.*resume it, then refresh it online/],
      [{ vm_state: 'active', power_state: 1, task_state: 'rebooting' }, /task_state rebooting/],
      [{ vm_state: 'active', power_state: 4 }, /power_state 4/],
      [
        { vm_state: 'shelved', power_state: 4 },
        /vm_state shelved\. .*Offload it \(shelve_offload\): unshelve then connects its volumes anew/,
      ],
      [{ vm_state: 'error', power_state: 0 }, /vm_state error\. Cannot refresh connection_info \(must be stopped, active or paused\)/],
    ];
    for (const [instance, msg] of cases) {
      const s = await env.seed({ instance });
      const mutations = env.cloud.mutations().length;
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
      assert.equal(r.failed, true, JSON.stringify(instance));
      assert.match(String(r.msg), msg);
      assert.equal(env.cloud.mutations().length, mutations);
    }
    const s = await env.seed({ instance: { vm_state: 'shelved_offloaded', power_state: 4, host: null } });
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
    assert.equal(r.failed, true);
    assert.match(String(r.msg), /shelved and offloaded.*unshelve connects its volumes anew/);
  });
});

describe('BDMs QEMU does not serve itself are skipped with what the host holds', () => {
  const nfs = {
    driver_volume_type: 'nfs',
    data: {
      export: '192.0.2.5:/srv/cinder',
      name: 'volume-X',
      options: null,
      format: 'raw',
      qos_specs: null,
      access_mode: 'rw',
      encrypted: false,
    },
    serial: 'X',
  };
  const fc = {
    driver_volume_type: 'fibre_channel',
    data: {
      target_wwn: ['500a0982991b8dc5'],
      target_lun: 1,
      target_discovered: false,
      qos_specs: null,
      access_mode: 'rw',
      encrypted: false,
    },
    serial: 'X',
  };
  const nvme = {
    driver_volume_type: 'nvmeof',
    data: {
      target_nqn: 'nqn.2014-08.org.nvmexpress:X',
      portals: [['192.0.2.7', 4420, 'tcp']],
      qos_specs: null,
      access_mode: 'rw',
      encrypted: false,
    },
    serial: 'X',
  };
  const encrypted = { ...RBD_CONNECTION_INFO, data: { ...RBD_CONNECTION_INFO.data, encrypted: true }, serial: 'X' };
  const cases: Array<[string, Parameters<RefreshEnv['seed']>[0], RegExp, Record<string, unknown>?]> = [
    ['iSCSI', { template: ISCSI_CHAP_CONNECTION_INFO }, /its host holds an iSCSI session for the volume \(driver_volume_type iscsi\)/],
    ['NFS', { oldInfo: nfs }, /its host holds an NFS mount/],
    ['FC', { oldInfo: fc }, /its host holds an FC \(Fibre Channel\) device/],
    ['NVMe-oF', { oldInfo: nvme }, /its host holds an NVMe-oF controller/],
    ['encryption', { oldInfo: encrypted }, /the volume is encrypted: its host holds an encryptor/],
    ['local-attach rbd', {}, /maps the rbd volume as a local block device \(connector do_local_attach true\)/, { do_local_attach: true }],
  ];
  for (const [name, seed, msg, connector] of cases) {
    test(name, async () => {
      const s = await env.seed({ ...seed, instance: RUNNING });
      const before = await env.dumpRows(s.instanceUuid);
      const mutations = env.cloud.mutations().length;
      const calls = env.compute.calls.length;
      const r = await env.refresh({
        bdm_uuid: s.bdm.uuid,
        running_instances: 'online',
        force: true,
        expect: undefined,
        ...(connector ? { connector: { ...env.connector, ...connector } } : {}),
      });
      assert.equal(r.failed, true);
      assert.match(String(r.msg), /cannot be refreshed online: /);
      assert.match(String(r.msg), msg);
      assert.deepEqual(await env.dumpRows(s.instanceUuid), before, 'no row written');
      assert.equal(env.cloud.mutations().length, mutations, 'no Cinder mutation');
      assert.equal(env.compute.calls.length, calls, 'no RPC');
    });
  }
});

describe('check mode, host conflict', () => {
  test('check mode says the BDM would be refreshed online and writes nothing', async () => {
    const s = await env.seed({ instance: RUNNING });
    const before = await env.dumpRows(s.instanceUuid);
    const mutations = env.cloud.mutations().length;
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online', _ansible_check_mode: true, _ansible_diff: true });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.changed, true);
    assert.equal(r.online, true);
    assert.equal(r.rpc_version, null);
    assert.match(String(r.msg), /would refresh the connection_info of BDM \S+ online, the instance running/);
    assert.ok(String(r.diff?.after).includes(NEW_MONITORS[0]!));
    assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
    assert.equal(env.cloud.mutations().length, mutations);
  });

  test("a connector of another host is refused (nova's HostConflict), nothing written", async () => {
    const s = await env.seed({ instance: RUNNING });
    const mutations = env.cloud.mutations().length;
    const r = await env.refresh({
      bdm_uuid: s.bdm.uuid,
      running_instances: 'online',
      connector: { ...env.connector, host: 'some-other-host' },
    });
    assert.equal(r.failed, true);
    assert.match(String(r.msg), /The compute host 'some-other-host' in the connector does not match the instance host/);
    assert.equal(env.cloud.mutations().length, mutations);
  });

  test('expect not met by what Cinder hands out: refreshed, but failed', async () => {
    const s = await env.seed({ instance: RUNNING });
    const r = await env.refresh({
      bdm_uuid: s.bdm.uuid,
      running_instances: 'online',
      expect: { driver_volume_type: 'rbd', data: { hosts: ['203.0.113.9'], ports: ['6789'] } },
      force: true,
    });
    assert.equal(r.failed, true);
    assert.equal(r.online, true);
    assert.match(String(r.msg), /does not match expect/);
  });
});

describe('a failure at each step, then a re-run that converges', () => {
  const newAttachmentPath = /\/attachments\/[0-9a-f-]+\/action$/;
  const faults: Array<[string, (s: Seeded) => void]> = [
    ['attachment_create', () => env.cloud.failNext('POST', /\/attachments$/, 500)],
    ['attachment_complete', () => env.cloud.failNext('POST', newAttachmentPath, 500)],
    // Every DELETE attempt of the old attachment fails (the client tries 5 times), and the clean-up's too.
    ['attachment_delete', (s) => env.cloud.failNext('DELETE', new RegExp(`/attachments/${s.oldAttachmentId}$`), 500, 10)],
  ];
  for (const [step, inject] of faults) {
    test(`${step} fails`, async () => {
      const s = await env.seed({ instance: RUNNING });
      inject(s);
      let first: RefreshAnswer;
      try {
        first = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
      } finally {
        env.cloud.clearFaults();
      }
      assert.equal(first.failed, true);
      assert.match(String(first.msg), new RegExp(`online refresh of BDM \\S+ failed at ${step}`));
      await assertBdmAttachmentExists(s);
      assert.equal(env.compute.calls.filter((c) => JSON.stringify(c.inner).includes(s.instanceUuid)).length, 0, 'no RPC');
      const left = await env.dumpRows(s.instanceUuid);
      if (step === 'attachment_delete') {
        // The clean-up could not delete the old attachment either: the claim and lock stay for the next run.
        assert.equal(left.instance!.locked, 1);
        assert.match(String(first.warnings?.join(' ')), /stays locked by this refresh .*the next refresh of it recovers it/);
        assert.equal(left.bdms[0]!.attachment_id, first.new_attachment_id ?? left.bdms[0]!.attachment_id);
        assert.equal(env.cloud.attachmentsOf(s.volumeId).length, 2, 'the old attachment is still there');
      } else {
        assert.equal(left.instance!.locked, 0, 'unlocked after the clean-up');
        assert.deepEqual(
          env.cloud.attachmentsOf(s.volumeId).map((a) => a.id),
          [s.oldAttachmentId],
          'the clean-up removed the new attachment',
        );
      }

      const again = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
      assert.equal(again.failed, undefined, String(again.msg));
      await assertConverged(s);
      const rows = await env.dumpRows(s.instanceUuid);
      assert.deepEqual(JSON.parse(rows.bdms[0]!.connection_info!).data.hosts, NEW_MONITORS);
    });
  }

  test('attachment_delete fails once: the clean-up deletes the old attachment, the BDM is refreshed', async () => {
    const s = await env.seed({ instance: RUNNING });
    env.cloud.failNext('DELETE', new RegExp(`/attachments/${s.oldAttachmentId}$`), 500, 5);
    let r: RefreshAnswer;
    try {
      r = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
    } finally {
      env.cloud.clearFaults();
    }
    assert.equal(r.failed, true);
    assert.match(String(r.remains), /the BDM holds the new attachment .* the clean-up removed the old one/);
    await assertConverged(s);
  });

  test('bdm_save fails (the cell database cut): the BDM keeps its attachment, the next run recovers and refreshes', async () => {
    const proxy = await TcpProxy.start(3306);
    const viaProxy = `mysql+pymysql://${env.fx.env.dbUser}:${encodeURIComponent(env.fx.env.dbPassword)}@127.0.0.1:${proxy.port}/${env.fx.env.databases.cell1}?charset=utf8`;
    const s = await env.seed({ instance: RUNNING });
    // The database goes away while Cinder completes the new attachment: the save comes next.
    env.cloud.onRequest = (method, path) => {
      if (method === 'POST' && newAttachmentPath.test(path)) proxy.cutAll();
    };
    try {
      const first = await env.refresh({
        bdm_uuid: s.bdm.uuid,
        running_instances: 'online',
        database_connection: viaProxy,
        connect_timeout: 2,
      });
      env.cloud.onRequest = undefined;
      assert.equal(first.failed, true);
      assert.match(String(first.msg), /failed at bdm_save/);
      await assertBdmAttachmentExists(s);
      proxy.restore();
      const again = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online', database_connection: viaProxy });
      assert.equal(again.failed, undefined, String(again.msg));
      await assertConverged(s);
    } finally {
      env.cloud.onRequest = undefined;
      await proxy.stop();
    }
  });
});

describe('crash safety: SIGKILL before each online step, then a run that recovers', () => {
  for (const step of [...ONLINE_STEPS, 'finish_action', 'unlock']) {
    test(`killed before ${step}`, async () => {
      const s = await env.seed({ instance: RUNNING });
      assert.equal(await env.refreshKilledBefore(step, { bdm_uuid: s.bdm.uuid, running_instances: 'online' }), 'SIGKILL');
      await assertBdmAttachmentExists(s);
      const left = await env.dumpRows(s.instanceUuid);
      assert.equal(left.instance!.locked, 1, 'the killed run left its lock');
      assert.equal(left.instance!.vm_state, 'active');

      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, running_instances: 'online' });
      assert.equal(r.failed, undefined, String(r.msg));
      assert.ok(r.recovered, 'reports the recovery');
      const rows = await assertConverged(s);
      assert.deepEqual(JSON.parse(rows.bdms[0]!.connection_info!).data.hosts, NEW_MONITORS);
    });
  }
});
