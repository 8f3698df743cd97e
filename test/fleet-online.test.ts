import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execute } from '../src/entry/run';
import { entryFor, resultOf } from './support/results';
import type { AuditResult } from '../src/actions/audit/audit';
import type { ConnectionInfo } from '../src/actions/rules/connection-info';
import { FleetEnv, type SeededBdm } from './support/fleet-env';
import { NEW_MONITORS, RefreshEnv } from './support/refresh-env';

// The fleet refresh and the audit with running_instances: online, on the real MariaDB (two
// cells) and RabbitMQ, stand-in computes and Cinder: running instances' rbd BDMs refreshed with
// no RPC, stopped ones by the stopped flow in the same run, the rest skipped with typed reasons.

let env: FleetEnv;
before(async () => {
  env = await FleetEnv.start([
    { cell: 'cell1', count: 3 },
    { cell: 'cell2', count: 1 },
  ]);
});
after(() => env.stop());

const RUNNING = { vm_state: 'active', power_state: 1 };

async function setInfo(b: SeededBdm, change: (info: ConnectionInfo) => unknown) {
  const db = env.fx.cell(b.cell);
  const row = await env.bdmRow(b);
  await db
    .updateTable('block_device_mapping')
    .set({ connection_info: JSON.stringify(change(JSON.parse(row.connection_info!))) })
    .where('id', '=', b.id)
    .execute();
}

async function assertRefreshed(b: SeededBdm) {
  const row = await env.bdmRow(b);
  assert.notEqual(row.attachment_id, b.oldAttachmentId, `BDM ${b.uuid} has a new attachment`);
  assert.deepEqual(JSON.parse(row.connection_info!).data.hosts, NEW_MONITORS);
  assert.deepEqual(
    env.cloud.attachmentsOf(b.volumeId).map((a) => [a.id, a.status]),
    [[row.attachment_id, 'attached']],
    `BDM ${b.uuid}: one attachment`,
  );
}

async function assertUntouched(b: SeededBdm) {
  const row = await env.bdmRow(b);
  assert.equal(row.attachment_id, b.oldAttachmentId);
  assert.deepEqual(
    env.cloud.attachmentsOf(b.volumeId).map((a) => a.id),
    [b.oldAttachmentId],
  );
}

test('a fleet of running and stopped instances: running rbd BDMs online with no RPC, stopped ones with their RPC, the rest skipped with why', async () => {
  const [h1, h2, h3, h4] = env.hostNames() as [string, string, string, string];
  env.writeConnectors([h1, h2, h4]);
  // h3 maps rbd volumes as local block devices (an old Nova's [workarounds] rbd_volume_local_attach).
  writeFileSync(join(env.connectorDir, `${h3}.json`), JSON.stringify({ ...env.connectorOf(h3), do_local_attach: true }));

  const running = [
    await env.seedInstance(h1, [false, false], RUNNING),
    await env.seedInstance(h2, [false], { vm_state: 'paused', power_state: 3 }),
    await env.seedInstance(h4, [false, false], RUNNING), // cell2
  ];
  const stopped = await env.seedInstance(h1, [false]);
  const iscsi = await env.seedInstance(h2, [false], RUNNING);
  await setInfo(iscsi.bdms[0]!, () => ({
    driver_volume_type: 'iscsi',
    data: { target_portal: '192.0.2.99:3260', target_iqn: 'iqn.2010-10.org.openstack:v', target_lun: 0, encrypted: false },
    serial: iscsi.bdms[0]!.volumeId,
  }));
  const encrypted = await env.seedInstance(h2, [false], RUNNING);
  await setInfo(encrypted.bdms[0]!, (i) => ({ ...i, data: { ...i.data, encrypted: true } }));
  const localAttach = await env.seedInstance(h3, [false], RUNNING);
  const suspended = await env.seedInstance(h2, [false], { vm_state: 'suspended', power_state: 7 });
  const fresh = await env.seedInstance(h1, [true], RUNNING);
  const all = [...running, stopped, iscsi, encrypted, localAttach, suspended, fresh];
  const instanceUuids = all.map((i) => i.instanceUuid);
  const onlineBdms = running.flatMap((i) => i.bdms);
  const rpcCalls = () => [...env.hosts.values()].reduce((n, h) => n + h.compute.calls.length, 0);

  // Default skip: every running instance is skipped as before; only the stopped one is refreshed (checked in check mode).
  const skipMode = await env.refresh({ instance_uuids: instanceUuids, _ansible_check_mode: true });
  assert.deepEqual(skipMode.counts, { refreshed: 1, skipped: 10, failed: 0 }, JSON.stringify(skipMode.skips));
  assert.equal(skipMode.skips.filter((x) => x.why === 'vm_state active (must be stopped)').length, 7);

  // Check mode with online: says which BDMs would be refreshed online; writes nothing.
  const calls0 = rpcCalls();
  const check = await env.refresh({ instance_uuids: instanceUuids, running_instances: 'online', _ansible_check_mode: true });
  assert.deepEqual(check.counts, { refreshed: 6, skipped: 5, failed: 0 }, JSON.stringify(check));
  assert.deepEqual(
    check.refreshed
      .filter((x) => x.online === true)
      .map((x) => x.bdm_uuid)
      .sort(),
    onlineBdms.map((b) => b.uuid).sort(),
  );
  assert.equal(entryFor(check.refreshed, stopped.bdms[0]!.uuid).online, undefined);
  for (const b of onlineBdms) await assertUntouched(b);

  const r = await env.refresh({ instance_uuids: instanceUuids, running_instances: 'online' });
  assert.equal(r.failed, undefined, String(r.msg));
  assert.deepEqual(r.counts, { refreshed: 6, skipped: 5, failed: 0 }, JSON.stringify(r.skips));
  for (const b of onlineBdms) {
    await assertRefreshed(b);
    const item = entryFor(r.refreshed, b.uuid);
    assert.equal(item.online, true);
    assert.equal(item.rpc_version, null);
    const names = (item.steps ?? []).map((x) => x.step);
    assert.deepEqual(
      names.filter((n) => ['attachment_create', 'attachment_complete', 'bdm_save', 'attachment_delete'].includes(n)).slice(0, 4),
      ['attachment_create', 'attachment_complete', 'bdm_save', 'attachment_delete'],
    );
  }
  await assertRefreshed(stopped.bdms[0]!);
  assert.equal(entryFor(r.refreshed, stopped.bdms[0]!.uuid).rpc_version, '6.0');
  // One RPC in all: the stopped instance's. The running ones' computes received nothing.
  assert.equal(rpcCalls() - calls0, 1);
  assert.equal(
    env.hosts.get(h1)!.compute.calls.at(-1)!.inner &&
      JSON.stringify(env.hosts.get(h1)!.compute.calls.at(-1)!.inner).includes(stopped.instanceUuid),
    true,
  );

  const skip = (b: SeededBdm) => entryFor(r.skips, b.uuid);
  assert.equal(skip(iscsi.bdms[0]!).online_blocker, 'iscsi');
  assert.match(skip(iscsi.bdms[0]!).why, /^running instance: its host holds an iSCSI session/);
  assert.equal(skip(encrypted.bdms[0]!).online_blocker, 'encryption');
  assert.equal(skip(localAttach.bdms[0]!).online_blocker, 'local_attach_rbd');
  assert.match(skip(suspended.bdms[0]!).why, /^vm_state suspended/);
  assert.equal(skip(fresh.bdms[0]!).why, 'not stale');
  for (const b of [iscsi, encrypted, localAttach, suspended, fresh].map((i) => i.bdms[0]!)) await assertUntouched(b);
  for (const i of all) {
    const row = await env.instanceRow({ instanceUuid: i.instanceUuid, cell: i.bdms[0]!.cell });
    assert.equal(row.locked, 0);
  }

  // A second run has nothing left to do.
  const again = await env.refresh({ instance_uuids: running.map((i) => i.instanceUuid), running_instances: 'online' });
  assert.deepEqual(again.counts, { refreshed: 0, skipped: 5, failed: 0 });
});

test('audit: running_instances online makes running rbd BDMs refreshable (online: true) and says what blocks the others', async () => {
  const [h1, h2] = env.hostNames() as [string, string];
  const ok = await env.seedInstance(h1, [false], RUNNING);
  const iscsi = await env.seedInstance(h2, [false], RUNNING);
  await setInfo(iscsi.bdms[0]!, () => ({
    driver_volume_type: 'iscsi',
    data: { target_portal: '192.0.2.99:3260', target_iqn: 'iqn.2010-10.org.openstack:v', target_lun: 0 },
    serial: iscsi.bdms[0]!.volumeId,
  }));
  const audit = async (extra: Record<string, unknown>) =>
    resultOf(
      await execute({
        action: 'audit',
        config_file: [env.fx.env.confPath, env.extraConf],
        instance_uuids: [ok.instanceUuid, iscsi.instanceUuid],
        expect: RefreshEnv.EXPECT_NEW_MONITORS,
        ...extra,
      }),
      'audit',
    );
  const skipMode = await audit({});
  const byBdm = (res: AuditResult, b: SeededBdm) => entryFor(res.stale, b.uuid);
  assert.equal(byBdm(skipMode, ok.bdms[0]!).refreshable, false);
  assert.equal(byBdm(skipMode, ok.bdms[0]!).blocked_by, 'vm_state active (must be stopped)');
  const online = await audit({ running_instances: 'online' });
  assert.equal(byBdm(online, ok.bdms[0]!).refreshable, true);
  assert.equal(byBdm(online, ok.bdms[0]!).online, true);
  assert.equal(byBdm(online, iscsi.bdms[0]!).refreshable, false);
  assert.match(String(byBdm(online, iscsi.bdms[0]!).blocked_by), /^running instance: its host holds an iSCSI session/);
});
