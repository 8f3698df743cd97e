import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RefreshEnv } from './support/refresh-env';

// Cases no other test covered, each judged by the end state of Nova's rows and Cinder's
// attachments: several volumes on one instance, a multiattach volume shared with other
// instances, the crash recovery of a legacy BDM, and a Cinder that is slow, answers late or
// fails its DELETE a few times.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

type Seeded = Awaited<ReturnType<RefreshEnv['seed']>>;

/** Every BDM of the instance points at an existing attachment of its volume, which is its only one (of this instance); unlocked; no unfinished action. */
async function assertAllConsistent(instanceUuid: string, attached = true) {
  const rows = await env.dumpRows(instanceUuid);
  assert.equal(rows.instance!.locked, 0, 'unlocked');
  assert.deepEqual(
    rows.sysmeta.filter((m) => m.key === 'locked_reason'),
    [],
  );
  for (const bdm of rows.bdms) {
    const ours = env.cloud.attachmentsOf(bdm.volume_id!).filter((a) => a.instance === instanceUuid);
    assert.equal(
      ours.length,
      1,
      `volume ${bdm.volume_id}: exactly one attachment of this instance, got ${JSON.stringify(ours.map((a) => [a.id, a.status]))}`,
    );
    if (bdm.attachment_id !== null) assert.equal(bdm.attachment_id, ours[0]!.id, 'the BDM points at the attachment that exists');
    if (attached) assert.equal(ours[0]!.status, 'attached');
  }
  for (const a of rows.actions.filter((x) => x.action === 'refresh_volume_attachment')) assert.notEqual(a.finish_time, null);
  return rows;
}

function newMonitorsStored(connectionInfo: string | null): boolean {
  return (
    JSON.stringify(JSON.parse(connectionInfo ?? '{}').data?.hosts) === JSON.stringify(['198.51.100.21', '198.51.100.22', '198.51.100.23'])
  );
}

describe('two volumes on one instance', () => {
  async function seedTwo(): Promise<[Seeded, Seeded]> {
    const a = await env.seed();
    const b = await env.seed({ instanceUuid: a.instanceUuid, deviceName: '/dev/vdc' });
    return [a, b];
  }

  test('refreshed one after the other: both BDMs refreshed, each volume with one attached attachment', async () => {
    const [a, b] = await seedTwo();
    for (const s of [a, b]) {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
    }
    const rows = await assertAllConsistent(a.instanceUuid);
    assert.equal(rows.bdms.length, 2);
    for (const bdm of rows.bdms) {
      assert.ok(newMonitorsStored(bdm.connection_info), `BDM ${bdm.uuid} holds the new monitors`);
      assert.notEqual(bdm.attachment_id, bdm.id === a.bdm.id ? a.oldAttachmentId : b.oldAttachmentId);
    }
    assert.equal(
      env.cloud.attachments.get(env.cloud.attachmentsOf(b.volumeId)[0]!.id)!.connector!.mountpoint,
      '/dev/vdc',
      "each volume's own device",
    );
    assert.equal(rows.actions.filter((x) => x.action === 'refresh_volume_attachment').length, 2);
  });

  test('refreshed at the same time: one wins the instance lock, the other is refused untouched; a rerun finishes it', async () => {
    const [a, b] = await seedTwo();
    const results = await Promise.all([a, b].map((s) => env.refresh({ bdm_uuid: s.bdm.uuid })));
    const okIndex = results.findIndex((r) => !r.failed);
    assert.ok(okIndex >= 0, JSON.stringify(results.map((r) => r.msg)));
    const refusedIndex = 1 - okIndex;
    assert.equal(results[refusedIndex]!.failed, true, 'the instance is locked by the other refresh');
    assert.match(String(results[refusedIndex]!.msg), /changed while it was being checked|locked True|locked by another refresh/);
    const winner = [a, b][okIndex]!;
    const loser = [a, b][refusedIndex]!;
    let rows = await assertAllConsistent(a.instanceUuid);
    const loserRow = rows.bdms.find((x) => x.id === loser.bdm.id)!;
    assert.equal(loserRow.attachment_id, loser.oldAttachmentId, 'the refused one is untouched');
    assert.ok(!newMonitorsStored(loserRow.connection_info));
    assert.ok(newMonitorsStored(rows.bdms.find((x) => x.id === winner.bdm.id)!.connection_info));
    const again = await env.refresh({ bdm_uuid: loser.bdm.uuid });
    assert.equal(again.failed, undefined, String(again.msg));
    rows = await assertAllConsistent(a.instanceUuid);
    for (const bdm of rows.bdms) assert.ok(newMonitorsStored(bdm.connection_info));
  });
});

describe('a multiattach volume attached to other instances too', () => {
  for (const legacy of [false, true]) {
    test(`${legacy ? 'legacy' : 'v3'} BDM: only our attachment changes; the others stay exactly as they were`, async () => {
      const s = await env.seed({ multiattach: true, legacy });
      const others = [randomUUID(), randomUUID()].map((i, n) =>
        env.cloud.addAttachedVolume(
          s.volumeId,
          i,
          { driver_volume_type: 'rbd', data: { name: `volumes/volume-${s.volumeId}`, hosts: ['192.0.2.11'], ports: ['6789'] } },
          false,
          `other-host-${n}`,
        ),
      );
      const snapshot = JSON.stringify(others.map((o) => env.cloud.attachments.get(o.id)));
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
      assert.equal(
        JSON.stringify(others.map((o) => env.cloud.attachments.get(o.id))),
        snapshot,
        "the other instances' attachments are untouched",
      );
      await assertAllConsistent(s.instanceUuid);
      assert.equal(env.cloud.attachmentsOf(s.volumeId).length, 3);
      assert.equal(env.cloud.volumes.get(s.volumeId)!.status, 'in-use');
    });
  }
});

describe('crash recovery of a legacy BDM: SIGKILL at each step, then a run that recovers', () => {
  const steps = [
    'cinder_reserve',
    'rpc_remove_volume_connection',
    'repoint_bdm',
    'cinder_delete_old',
    'cinder_update',
    'save_bdm',
    'cinder_complete',
    'unlock',
  ];
  for (const step of steps) {
    test(`killed before ${step}`, async () => {
      const s = await env.seed({ legacy: true });
      const watch = env.watchDanglingBdms(s.instanceUuid);
      assert.equal(await env.refreshKilledBefore(step, { bdm_uuid: s.bdm.uuid }), 'SIGKILL');
      assert.deepEqual(await watch.stop(), [], 'the killed run never left a BDM naming a deleted attachment');
      assert.equal((await env.dumpRows(s.instanceUuid)).instance!.locked, 1, 'the killed run left its lock');
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
      assert.ok(r.recovered, 'reports the recovery');
      const rows = await assertAllConsistent(s.instanceUuid);
      const bdm = rows.bdms[0]!;
      assert.notEqual(bdm.attachment_id, null, 'migrated to a v3 attachment');
      assert.ok(newMonitorsStored(bdm.connection_info));
      assert.ok(!env.cloud.attachmentsOf(s.volumeId).some((a) => a.legacy), 'the legacy attachment is gone');
    });
  }
});

describe('a slow Cinder, and one that answers late', () => {
  let slowConf: string;
  before(() => {
    slowConf = join(env.dir, 'cinder-timeout.conf');
    writeFileSync(slowConf, '[cinder]\ntimeout = 1\n');
  });
  const refresh = (s: Seeded) => env.refresh({ bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, env.extraConf, slowConf] });

  test('slower than usual but within [cinder] timeout at every call: the refresh completes', async () => {
    const s = await env.seed();
    for (const m of ['GET', 'POST', 'PUT', 'DELETE']) env.cloud.failNext(m, /\/volume\/v3\//, 0, 10, 300);
    try {
      const r = await refresh(s);
      assert.equal(r.failed, undefined, String(r.msg));
      await assertAllConsistent(s.instanceUuid);
    } finally {
      env.cloud.clearFaults();
    }
  });

  for (const [what, path] of [
    ['GET attachment', /\/attachments\/[^/]+$/],
    ['GET volume', /\/volumes\/[^/]+$/],
  ] as const) {
    test(`${what} times out before the lock: failed, nothing written`, async () => {
      const s = await env.seed();
      const before = await env.dumpRows(s.instanceUuid);
      env.cloud.failNext('GET', path, 0, 1, 2500);
      try {
        const r = await refresh(s);
        assert.equal(r.failed, true);
        assert.match(String(r.msg), /^cannot reach 127\.0\.0\.1:\d+: timed out$/);
        assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
      } finally {
        env.cloud.clearFaults();
      }
    });
  }

  // Cinder did the work, but the answer came after we stopped waiting.
  const late: Array<[string, string, RegExp, 'old' | 'reserved-new' | 'new']> = [
    ['reserve', 'POST', /\/attachments$/, 'old'],
    ['delete of the old attachment', 'DELETE', /\/attachments\//, 'reserved-new'],
    // Cinder connected it: the BDM adopts it with Cinder's connection_info.
    ['update', 'PUT', /\/attachments\//, 'new'],
    ['complete', 'POST', /\/action$/, 'new'],
  ];
  for (const [name, method, path, left] of late) {
    test(`${name} answered after the timeout: a consistent cloud, and a rerun repairs it`, async () => {
      const s = await env.seed();
      env.cloud.answerLate(method, path, 2000);
      try {
        const r = await refresh(s);
        assert.equal(r.failed, true);
        assert.match(String(r.msg), /: cannot reach 127\.0\.0\.1:\d+: timed out; /);
        const rows = await assertAllConsistent(s.instanceUuid, false);
        const bdm = rows.bdms[0]!;
        if (left === 'old') assert.equal(bdm.attachment_id, s.oldAttachmentId);
        else assert.notEqual(bdm.attachment_id, s.oldAttachmentId);
        if (left === 'reserved-new') assert.equal(bdm.connection_info, null);
        if (left === 'new' && name === 'update')
          assert.ok(newMonitorsStored(bdm.connection_info), "the adopted attachment's connection_info");
        await new Promise((res) => setTimeout(res, 1200)); // let the late answer go
      } finally {
        env.cloud.clearFaults();
      }
      const again = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(again.failed, undefined, String(again.msg));
      const rows = await assertAllConsistent(s.instanceUuid);
      assert.ok(newMonitorsStored(rows.bdms[0]!.connection_info));
    });
  }
});

describe('DELETE of the old attachment failing before it succeeds', () => {
  for (const failures of [1, 2, 3, 4]) {
    test(`${failures} x 500, then 200: retried like nova (5 attempts), the refresh completes`, async () => {
      const s = await env.seed();
      const log = env.cloud.log.length;
      env.cloud.failNext('DELETE', new RegExp(`/attachments/${s.oldAttachmentId}$`), failures === 2 ? 504 : 500, failures);
      try {
        const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
        assert.equal(r.failed, undefined, String(r.msg));
      } finally {
        env.cloud.clearFaults();
      }
      const deletes = env.cloud.log
        .slice(log)
        .filter((m) => m.method === 'DELETE' && m.path.endsWith(s.oldAttachmentId))
        .map((m) => m.status);
      assert.deepEqual(deletes, [...Array(failures).fill(failures === 2 ? 504 : 500), 200]);
      await assertAllConsistent(s.instanceUuid);
    });
  }
});
