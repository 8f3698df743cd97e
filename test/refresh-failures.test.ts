import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockReasonFor } from '../src/actions/rules/lock-reason';
import { RefreshEnv } from './support/refresh-env';
import { TcpProxy } from './support/tcp-proxy';

// Every way a refresh can be refused or can fail, and what it leaves behind: preconditions
// write nothing; failures after the lock leave the volume attached, no stray attachment, the
// instance unlocked and the action finished with the error; a killed run is recovered.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

type Seeded = Awaited<ReturnType<RefreshEnv['seed']>>;

/** The cloud after a failure is consistent: unlocked, BDM -> an existing attachment, exactly one attachment. */
async function assertConsistent(s: Seeded, expectedBdmAttachment?: string | null) {
  const rows = await env.dumpRows(s.instanceUuid);
  assert.equal(rows.instance!.locked, 0, 'unlocked');
  assert.deepEqual(
    rows.sysmeta.filter((m) => m.key === 'locked_reason'),
    [],
  );
  const atts = env.cloud.attachmentsOf(s.volumeId);
  assert.equal(atts.length, 1, `exactly one attachment, got ${JSON.stringify(atts.map((a) => [a.id, a.status]))}`);
  const bdmAttachment = rows.bdms[0]!.attachment_id;
  if (bdmAttachment !== null) assert.equal(bdmAttachment, atts[0]!.id, 'the BDM points at the attachment that exists');
  if (expectedBdmAttachment !== undefined) assert.equal(bdmAttachment, expectedBdmAttachment);
  for (const a of rows.actions.filter((x) => x.action === 'refresh_volume_attachment'))
    assert.notEqual(a.finish_time, null, 'refresh action finished');
  return rows;
}

async function expectRefusedWithoutWrites(s: Seeded, args: Record<string, unknown>, msg: RegExp) {
  const before = await env.dumpRows(s.instanceUuid);
  const mutationsBefore = env.cloud.mutations().length;
  const r = await env.refresh({ instance_uuid: s.instanceUuid, volume_id: s.volumeId, ...args });
  assert.equal(r.failed, true);
  assert.match(String(r.msg), msg);
  assert.ok(!String(r.msg).includes('\n'));
  assert.deepEqual(await env.dumpRows(s.instanceUuid), before, 'no row written');
  assert.equal(env.cloud.mutations().length, mutationsBefore, 'no Cinder mutation');
}

describe('preconditions: refused before anything is written', () => {
  test('instance not stopped, has a task, is locked, has no host', async () => {
    let s = await env.seed({ instance: { vm_state: 'active', power_state: 1 } });
    await expectRefusedWithoutWrites(s, {}, /^Instance \S+ in vm_state active\. Cannot refresh connection_info \(must be stopped\)/);
    s = await env.seed({ instance: { task_state: 'powering-on' } });
    await expectRefusedWithoutWrites(s, {}, /in task_state powering-on\. Cannot refresh connection_info \(must have no task\)/);
    s = await env.seed({ instance: { locked: 1, locked_by: 'owner' } });
    await expectRefusedWithoutWrites(
      s,
      { refuse_locked: true },
      /in locked True \(by owner\)\. Cannot refresh connection_info \(must be unlocked\) .*\(refuse_locked is set\)$/,
    );
    s = await env.seed({ instance: { host: null } });
    await expectRefusedWithoutWrites(s, {}, /has no host/);
  });

  test('compute service down, forced down, not libvirt (unless require_libvirt: false), not consuming its queue', async () => {
    const s = await env.seed();
    try {
      await env.seedComputeService({ updated_at: new Date(Date.now() - 3600_000) });
      await expectRefusedWithoutWrites(
        s,
        {},
        /the nova-compute service on \S+ is down: last heartbeat \d+ s ago \(service_down_time 60 s\)/,
      );
      await env.seedComputeService({ forced_down: 1 });
      await expectRefusedWithoutWrites(s, {}, /is forced down/);
      await env.seedComputeService({ hypervisor_type: 'fake' });
      await expectRefusedWithoutWrites(s, {}, /runs hypervisor fake, not libvirt QEMU\/KVM.*require_libvirt: false/);
    } finally {
      await env.seedComputeService();
    }
    const lonely = `nbt-nocons-${randomUUID().slice(0, 8)}`;
    await env.seedComputeService({}, lonely);
    const s2 = await env.seed({ instance: { host: lonely } });
    await expectRefusedWithoutWrites(
      s2,
      { connector: { ...env.connector, host: lonely } },
      new RegExp(`nova-compute on ${lonely} is not consuming its queue compute\\.${lonely}`),
    );
  });

  test("a connector of another host is refused (nova's HostConflict), naming both hosts", async () => {
    const s = await env.seed();
    await expectRefusedWithoutWrites(
      s,
      { connector: { ...env.connector, host: 'compute9' } },
      new RegExp(
        `^The compute host 'compute9' in the connector does not match the instance host '${env.host}': get_connector may have been run on the wrong compute host`,
      ),
    );
    // Also when the BDM is not stale: wrong input is refused, not ignored.
    await expectRefusedWithoutWrites(
      s,
      { connector: { ...env.connector, host: 'compute9' }, expect: undefined },
      /^The compute host 'compute9'/,
    );
  });

  test('require_libvirt: false lets a non-libvirt compute through', async () => {
    const s = await env.seed();
    await env.seedComputeService({ hypervisor_type: 'fake' });
    try {
      const r = await env.refresh({ instance_uuid: s.instanceUuid, volume_id: s.volumeId, require_libvirt: false });
      assert.equal(r.failed, undefined, String(r.msg));
    } finally {
      await env.seedComputeService();
    }
  });

  test('connector: missing file, not JSON, missing keys; BDM and instance not found', async () => {
    const s = await env.seed();
    await expectRefusedWithoutWrites(
      s,
      { connector: undefined, connector_path: join(env.dir, 'nope.json') },
      /^Connector file not found at .*nope\.json$/,
    );
    writeFileSync(join(env.dir, 'bad.json'), '{oops');
    await expectRefusedWithoutWrites(
      s,
      { connector: undefined, connector_path: join(env.dir, 'bad.json') },
      /Does it contain valid connector_info data\?/,
    );
    await expectRefusedWithoutWrites(
      s,
      { connector: { host: 'x' } },
      /connector is not a valid host connector \(missing ip, platform, os_type, multipath\)/,
    );
    const r = await env.refresh({ instance_uuid: s.instanceUuid, volume_id: randomUUID() });
    assert.match(String(r.msg), /^No volume Block Device Mapping with id/);
    const ghost = randomUUID();
    assert.equal((await env.refresh({ instance_uuid: ghost, volume_id: randomUUID() })).msg, `Instance ${ghost} has no mapping to a cell.`);
  });
});

describe('an instance locked by someone else (nova-manage >= 27.5.1 rule)', () => {
  test('is refreshed and left locked as it was: no lock or unlock of ours, no claim left', async () => {
    const s = await env.seed({ instance: { locked: 1, locked_by: 'owner' } });
    await env.fx
      .cell('cell1')
      .insertInto('instance_system_metadata')
      .values({ created_at: new Date(), deleted: 0, instance_uuid: s.instanceUuid, key: 'locked_reason', value: 'maintenance window' })
      .execute();
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.changed, true);
    const rows = await env.dumpRows(s.instanceUuid);
    assert.equal(rows.instance!.locked, 1);
    assert.equal(rows.instance!.locked_by, 'owner');
    assert.deepEqual(
      rows.sysmeta.map((m) => [m.key, m.value]),
      [['locked_reason', 'maintenance window']],
    );
    assert.deepEqual(
      rows.actions.map((a) => a.action),
      ['refresh_volume_attachment'],
    );
    assert.equal(rows.bdms[0]!.attachment_id, r.new_attachment_id);
    assert.deepEqual(
      env.cloud.attachmentsOf(s.volumeId).map((a) => [a.id, a.status]),
      [[r.new_attachment_id, 'attached']],
    );
    // The primitive the compute got says what is true: locked by the owner, with their reason.
    const data = (env.compute.calls.at(-1)!.inner as any).args.instance['nova_object.data'];
    assert.equal(data.locked, true);
    assert.equal(data.locked_by, 'owner');
    assert.deepEqual(data.system_metadata, { locked_reason: 'maintenance window' });
  });

  test('two refreshes of an already-locked instance at once: exactly one proceeds', async () => {
    const s = await env.seed({ instance: { locked: 1, locked_by: 'owner' } });
    const results = await Promise.all([1, 2].map(() => env.refresh({ bdm_uuid: s.bdm.uuid })));
    assert.equal(results.filter((r) => !r.failed).length, 1, JSON.stringify(results.map((r) => r.msg)));
    assert.match(String(results.find((r) => r.failed)!.msg), /is locked by another refresh/);
    const rows = await env.dumpRows(s.instanceUuid);
    assert.equal(rows.actions.filter((a) => a.action === 'refresh_volume_attachment').length, 1);
    assert.equal(rows.instance!.locked_by, 'owner');
    assert.equal(env.cloud.attachmentsOf(s.volumeId).length, 1);
  });
});

describe('failures after the lock leave a consistent cloud', () => {
  test('compute silent: timed out, new attachment deleted, BDM unchanged, action finished with the error', async () => {
    const s = await env.seed();
    env.compute.behaviour = { kind: 'silent' };
    try {
      const r = await env.refresh({ instance_uuid: s.instanceUuid, volume_id: s.volumeId, rpc_timeout: 1.5 });
      assert.equal(r.failed, true);
      assert.match(
        String(r.msg),
        /failed at rpc_remove_volume_connection: timed out after 1\.5 s waiting for a reply .*; the BDM and its attachment are unchanged$/,
      );
      assert.match(String(r.undone?.[0]), /^deleted the reserved attachment/);
      const rows = await assertConsistent(s, s.oldAttachmentId);
      assert.equal(
        rows.bdms[0]!.connection_info,
        (await env.fx
          .cell('cell1')
          .selectFrom('block_device_mapping')
          .select('connection_info')
          .where('id', '=', s.bdm.id)
          .executeTakeFirst())!.connection_info,
      );
      const action = rows.actions.find((a) => a.action === 'refresh_volume_attachment')!;
      assert.equal(action.message, 'Error');
      const event = rows.events.find((e) => e.action_id === action.id)!;
      assert.equal(event.result, 'Error');
      assert.match(String(event.details), /timed out/);
      assert.deepEqual(
        rows.actions.map((a) => a.action),
        ['lock', 'refresh_volume_attachment', 'unlock'],
      );
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
  });

  test('compute raises: the remote exception class and message are reported', async () => {
    const s = await env.seed();
    env.compute.behaviour = {
      kind: 'fail',
      cls: 'DeviceDetachFailed',
      module: 'nova.exception',
      message: 'Device detach failed for vdb: Unable to detach the device from the live config.',
    };
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.match(String(r.msg), /failed at rpc_remove_volume_connection: DeviceDetachFailed: Device detach failed for vdb/);
      await assertConsistent(s, s.oldAttachmentId);
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
  });

  test('a slow compute that sends heartbeats is waited for', async () => {
    const s = await env.seed();
    env.compute.behaviour = { kind: 'slow', seconds: 2 };
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
  });

  const cinderFaults: Array<[string, string, RegExp, number, RegExp, 'old' | 'new' | 'reserved-new']> = [
    [
      'reserve',
      'POST',
      /\/attachments$/,
      500,
      /failed at cinder_reserve: Cinder POST \/attachments failed: computeFault: injected 500 \(HTTP 500\)/,
      'old',
    ],
    [
      'delete old (500, five times)',
      'DELETE',
      /\/attachments\//,
      500,
      /failed at cinder_delete_old: Cinder DELETE.*; the old attachment was removed; the BDM now holds the reserved attachment/,
      'reserved-new',
    ],
    [
      'update',
      'PUT',
      /\/attachments\//,
      500,
      /failed at cinder_update: .*; the old attachment was removed; the BDM now holds the reserved attachment/,
      'reserved-new',
    ],
    ['complete', 'POST', /\/action$/, 500, /failed at cinder_complete: .*did not mark it complete; run refresh again/, 'new'],
  ];
  for (const [name, method, path, status, msg, expected] of cinderFaults) {
    test(`Cinder fails at ${name}`, async () => {
      const s = await env.seed();
      env.cloud.failNext(method, path, status, name.startsWith('delete') ? 5 : 1);
      const watch = env.watchDanglingBdms(s.instanceUuid);
      try {
        const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
        assert.equal(r.failed, true);
        assert.match(String(r.msg), msg);
        assert.deepEqual(await watch.stop(), [], 'no BDM names a deleted attachment, at any Cinder request of the failed run or after it');
        assert.ok(watch.checks >= 3, `checked at each Cinder request (${watch.checks})`);
        const rows = await assertConsistent(s);
        const bdm = rows.bdms[0]!;
        if (expected === 'old') assert.equal(bdm.attachment_id, s.oldAttachmentId);
        else assert.notEqual(bdm.attachment_id, s.oldAttachmentId);
        if (expected === 'reserved-new') {
          assert.equal(bdm.connection_info, null);
          assert.equal(env.cloud.attachmentsOf(s.volumeId)[0]!.status, 'reserved');
        }
        // Whatever it left, a second run repairs it.
        const again = await env.refresh({ bdm_uuid: s.bdm.uuid });
        assert.equal(again.failed, undefined, String(again.msg));
        const att = env.cloud.attachmentsOf(s.volumeId);
        assert.deepEqual(
          att.map((a) => [a.status, a.attach_mode]),
          [['attached', 'rw']],
        );
      } finally {
        await watch.stop();
        env.cloud.clearFaults();
      }
    });
  }

  test('Cinder refuses the delete once (409): explained; the clean-up deletes it, the BDM holds the reserved attachment', async () => {
    const s = await env.seed();
    env.cloud.failNext('DELETE', /\/attachments\//, 409);
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.match(
        String(r.msg),
        /Cinder DELETE \/attachments\/\S+ failed: conflictingRequest: injected 409 \(HTTP 409\).*; the old attachment was removed; the BDM now holds the reserved attachment/,
      );
      await assertConsistent(s, String(env.cloud.attachmentsOf(s.volumeId)[0]!.id));
      assert.deepEqual(await env.danglingBdms(s.instanceUuid), []);
    } finally {
      env.cloud.clearFaults();
    }
  });
});

describe('two controllers, one instance', () => {
  test('two concurrent refreshes: exactly one proceeds', async () => {
    const s = await env.seed();
    const results = await Promise.all([1, 2].map(() => env.refresh({ bdm_uuid: s.bdm.uuid })));
    const ok = results.filter((r) => !r.failed);
    const refused = results.filter((r) => r.failed);
    assert.equal(ok.length, 1, JSON.stringify(results.map((r) => r.msg)));
    assert.equal(refused.length, 1);
    assert.match(
      String(refused[0]!.msg),
      /is locked by another refresh: another refresh holds it \(nova-bdm on \S+, pid \d+, since \S+, BDMs \S+\)/,
    );
    const rows = await assertConsistent(s, String(ok[0]!.new_attachment_id));
    assert.equal(rows.actions.filter((a) => a.action === 'lock').length, 1);
  });
});

describe('crash safety: SIGKILL at each step, then a run that recovers', () => {
  const steps = [
    'cinder_reserve',
    'rpc_remove_volume_connection',
    'repoint_bdm',
    'cinder_delete_old',
    'cinder_update',
    'save_bdm',
    'cinder_complete',
    'finish_action',
    'unlock',
  ];
  for (const step of steps) {
    test(`killed before ${step}`, async () => {
      const s = await env.seed();
      const watch = env.watchDanglingBdms(s.instanceUuid);
      assert.equal(await env.refreshKilledBefore(step, { bdm_uuid: s.bdm.uuid }), 'SIGKILL');
      assert.deepEqual(await watch.stop(), [], 'the killed run never left a BDM naming a deleted attachment');
      const left = await env.dumpRows(s.instanceUuid);
      assert.equal(left.instance!.locked, 1, 'the killed run left its lock');
      const shown = await env.refresh({ action: 'show', bdm_uuid: s.bdm.uuid, connector: undefined });
      assert.match(String(shown.warnings?.join(' ')), /interrupted refresh/);

      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
      assert.ok(r.recovered, 'reports the recovery');
      assert.equal(r.changed, true);
      // Killed after the BDM was saved, the recovery alone finishes the job; before, it refreshes again.
      const rows = await assertConsistent(s, String(r.new_attachment_id ?? r.attachment_id));
      assert.deepEqual(
        env.cloud.attachmentsOf(s.volumeId).map((a) => [a.status, a.attach_mode]),
        [['attached', 'rw']],
      );
      assert.equal(rows.actions.filter((a) => a.finish_time === null && a.action === 'refresh_volume_attachment').length, 0);
    });
  }
});

/** A TCP proxy to MariaDB the test can cut, and cell1's database_connection through it. */
async function cellDbProxy() {
  const proxy = await TcpProxy.start(3306);
  const viaProxy = `mysql+pymysql://${env.fx.env.dbUser}:${encodeURIComponent(env.fx.env.dbPassword)}@127.0.0.1:${proxy.port}/${env.fx.env.databases.cell1}?charset=utf8`;
  return { proxy, viaProxy };
}

/** After the fault: the same refresh through the healed proxy converges. */
async function recoversThrough(s: Awaited<ReturnType<RefreshEnv['seed']>>, proxy: TcpProxy, viaProxy: string) {
  proxy.restore();
  const again = await env.refresh({ bdm_uuid: s.bdm.uuid, database_connection: viaProxy });
  assert.equal(again.failed, undefined, String(again.msg));
  await assertConsistent(s, String(again.new_attachment_id ?? again.attachment_id));
}

describe('the cell database lost mid-flow', () => {
  test('lost between the lock and the first BDM (while recovering an interrupted refresh): the result says the instance stays locked, and the next run recovers', async () => {
    const { proxy, viaProxy } = await cellDbProxy();
    const s = await env.seed();
    // nova-manage (or a run of ours that left no claim) was killed holding the refresh lock.
    const db = env.fx.cell('cell1');
    await db.updateTable('instances').set({ locked: 1, locked_by: 'admin' }).where('uuid', '=', s.instanceUuid).execute();
    await db
      .insertInto('instance_system_metadata')
      .values({
        created_at: new Date(),
        deleted: 0,
        instance_uuid: s.instanceUuid,
        key: 'locked_reason',
        value: lockReasonFor({ uuid: s.bdm.uuid, instance_uuid: s.instanceUuid, volume_id: s.volumeId }),
      })
      .execute();
    // The recovery lists the volume's attachments: the database goes away while Cinder answers.
    env.cloud.onRequest = (method, path) => {
      if (method === 'GET' && path.endsWith('/attachments/detail')) proxy.cutAll();
    };
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, database_connection: viaProxy, connect_timeout: 2 });
      assert.equal(r.failed, true);
      assert.equal(
        r.remains,
        'no BDM was refreshed; the instance stays locked by this refresh (the unlock failed too): run refresh again to recover it',
      );
      assert.match(String(r.msg), new RegExp(`cell1 database.*; ${String(r.remains).replace(/[().]/g, '\\$&')}$`));
      env.cloud.onRequest = undefined;
      await recoversThrough(s, proxy, viaProxy);
    } finally {
      env.cloud.onRequest = undefined;
      await proxy.stop();
    }
  });

  test('lost after the BDM was refreshed, before the unlock: failed, the instance still locked; the next run unlocks it', async () => {
    const { proxy, viaProxy } = await cellDbProxy();
    const s = await env.seed();
    // os-complete is the refresh's last Cinder call: the database goes away while Cinder answers it.
    env.cloud.onRequest = (method, path) => {
      if (method === 'POST' && path.endsWith('/action')) proxy.cutAll();
    };
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, database_connection: viaProxy, connect_timeout: 2 });
      assert.equal(r.failed, true, String(r.msg));
      assert.equal(r.changed, true);
      const unlock = `could not unlock instance ${s.instanceUuid} \\(.*\\); the next refresh of it recovers it`;
      const stillLocked = `the BDM is refreshed, but the instance is still locked \\(${unlock}\\): run refresh again to unlock it`;
      assert.match(String(r.remains), new RegExp(`^${stillLocked}$`));
      assert.ok(String(r.msg).startsWith(`refreshed the connection_info of BDM ${s.bdm.uuid}; the BDM is refreshed, but`), String(r.msg));
      assert.ok(
        (r.warnings as string[]).some((w) => new RegExp(`^${unlock}$`).test(w)),
        JSON.stringify(r.warnings),
      );
      env.cloud.onRequest = undefined;
      await recoversThrough(s, proxy, viaProxy);
    } finally {
      env.cloud.onRequest = undefined;
      await proxy.stop();
    }
  });

  test('the connection drops during the RPC: failed clearly, and the next run recovers', async () => {
    const { proxy, viaProxy } = await cellDbProxy();
    const s = await env.seed();
    env.compute.onCall = () => proxy.cutAll();
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, database_connection: viaProxy, connect_timeout: 2 });
      assert.equal(r.failed, true);
      assert.match(String(r.msg), /cell1 database/);
      assert.ok(!JSON.stringify(r).includes(env.fx.env.dbPassword));
      env.compute.onCall = undefined;
      await recoversThrough(s, proxy, viaProxy);
    } finally {
      env.compute.onCall = undefined;
      await proxy.stop();
    }
  });
});
