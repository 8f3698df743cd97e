import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lockReasonFor } from '../src/actions/rules/lock-reason';
import { CLAIM_KEY } from '../src/nova-db/refresh-claim';
import { FleetEnv, type SeededBdm } from './support/fleet-env';
import type { FleetRefreshResult } from '../src/actions/fleet/result';
import { BUNDLE } from './support/nova-env';
import { NEW_MONITORS } from './support/refresh-env';

// Many controllers, one cloud: overlapping fleet runs in separate processes refresh each BDM
// exactly once; a fleet run killed mid-way is finished or rolled back by the next run.

let env: FleetEnv;
before(async () => {
  env = await FleetEnv.start([
    { cell: 'cell1', count: 1 },
    { cell: 'cell2', count: 1 },
  ]);
  env.writeConnectors(env.hostNames());
});
after(() => env.stop());

/** The module as Ansible runs it: a separate node process, JSON on stdin, JSON on stdout. */
function runModule(
  args: Record<string, unknown>,
  extraEnv: Record<string, string> = {},
): Promise<{ result: FleetRefreshResult | undefined; signal: string | null }> {
  return new Promise((resolve) => {
    const child = spawn(BUNDLE, ['-'], { env: { ...process.env, ...extraEnv }, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (_code, signal) => resolve({ result: out ? JSON.parse(out) : undefined, signal }));
    child.stdin.end(JSON.stringify(args));
  });
}

async function seedFleet(instances: number): Promise<{ uuids: string[]; bdms: SeededBdm[] }> {
  const seeded = [];
  for (let i = 0; i < instances; i++) seeded.push(await env.seedInstance(env.hostNames()[i % 2]!, [false, false]));
  return { uuids: seeded.map((s) => s.instanceUuid), bdms: seeded.flatMap((s) => s.bdms) };
}

/** Every BDM refreshed once and consistent; every instance unlocked, no claim, no open action. */
async function assertConverged(bdms: SeededBdm[]) {
  for (const b of bdms) {
    const row = await env.bdmRow(b);
    assert.notEqual(row.attachment_id, b.oldAttachmentId);
    assert.deepEqual(JSON.parse(row.connection_info!).data.hosts, NEW_MONITORS);
    assert.deepEqual(
      env.cloud.attachmentsOf(b.volumeId).map((a) => [a.id, a.status]),
      [[row.attachment_id, 'attached']],
      `BDM ${b.uuid}`,
    );
    const db = env.fx.cell(b.cell);
    const inst = await env.instanceRow(b);
    assert.deepEqual([inst.locked, inst.locked_by], [0, null]);
    assert.equal(
      (
        await db
          .selectFrom('instance_system_metadata')
          .select('id')
          .where('instance_uuid', '=', b.instanceUuid)
          .where('key', 'in', [CLAIM_KEY, 'locked_reason'])
          .execute()
      ).length,
      0,
    );
    assert.equal(
      (
        await db
          .selectFrom('instance_actions')
          .select('id')
          .where('instance_uuid', '=', b.instanceUuid)
          .where('finish_time', 'is', null)
          .where('action', '=', 'refresh_volume_attachment')
          .execute()
      ).length,
      0,
    );
  }
}

describe('two fleet runs at once, overlapping selections (two controllers)', () => {
  test('every BDM is refreshed exactly once; the loser skips it', async () => {
    const { uuids, bdms } = await seedFleet(12);
    // A slow compute keeps both runs in flight together.
    for (const h of env.hosts.values()) h.compute.behaviour = { kind: 'slow', seconds: 1 };
    try {
      const [a, b] = await Promise.all([
        runModule(env.args({ hosts: env.hostNames(), instance_uuids: uuids })),
        runModule(env.args({ cells: ['cell1', 'cell2'], instance_uuids: uuids.slice(2) })),
      ]);
      const ra = a.result;
      const rb = b.result;
      assert.ok(ra && rb, 'both runs answered');
      assert.equal(ra.failed, undefined, ra.msg);
      assert.equal(rb.failed, undefined, rb.msg);
      const refreshedA = ra.refreshed.map((e) => e.bdm_uuid);
      const refreshedB = rb.refreshed.map((e) => e.bdm_uuid);
      assert.deepEqual(
        refreshedA.filter((u) => refreshedB.includes(u)),
        [],
        'no BDM refreshed twice',
      );
      assert.deepEqual([...refreshedA, ...refreshedB].sort(), bdms.map((x) => x.uuid).sort(), 'every BDM refreshed');
      assert.equal(ra.counts.refreshed + ra.counts.skipped, 24);
      assert.equal(rb.counts.refreshed + rb.counts.skipped, 20);
      const whys = [...ra.skips, ...rb.skips].map((s) => s.why);
      for (const w of whys) assert.ok(['locked by another refresh', 'not stale', 'refreshed by another run meanwhile'].includes(w), w);
      assert.ok(whys.includes('locked by another refresh'), `the runs met: ${JSON.stringify(whys)}`);
      // Cinder saw one reservation per BDM, not two.
      for (const x of bdms) {
        const reserves = env.cloud.log.filter(
          (m) => m.method === 'POST' && m.path.endsWith('/attachments') && (m.body as any).attachment.volume_uuid === x.volumeId,
        );
        assert.equal(reserves.length, 1, `one reservation for ${x.volumeId}`);
      }
      await assertConverged(bdms);
    } finally {
      for (const h of env.hosts.values()) h.compute.behaviour = { kind: 'ok' };
    }
  });
});

describe('a fleet run killed mid-way', () => {
  for (const step of ['rpc_remove_volume_connection', 'repoint_bdm', 'cinder_delete_old', 'cinder_update', 'save_bdm']) {
    test(`SIGKILL before the first ${step}, then a second run converges`, async () => {
      const { uuids, bdms } = await seedFleet(8);
      const killed = await runModule(env.args({ instance_uuids: uuids, max_parallel: 4 }), { NOVA_BDM_KILL_BEFORE_STEP: step });
      assert.equal(killed.signal, 'SIGKILL');
      const cellOf = new Map(bdms.map((b) => [b.instanceUuid, b.cell]));
      assert.deepEqual(
        await env.danglingBdms(uuids.map((u) => ({ instanceUuid: u, cell: cellOf.get(u)! }))),
        [],
        'the killed run left no BDM naming an attachment Cinder lacks',
      );
      const claims = await Promise.all(
        ['cell1', 'cell2'].map((c) =>
          env.fx
            .cell(c as 'cell1')
            .selectFrom('instance_system_metadata')
            .select('id')
            .where('key', '=', CLAIM_KEY)
            .where('instance_uuid', 'in', uuids)
            .execute(),
        ),
      );
      assert.ok(claims.flat().length >= 1, 'the killed run left claims behind');

      const r = await env.refresh({ instance_uuids: uuids });
      assert.equal(r.failed, undefined, r.msg);
      assert.equal(r.counts.failed, 0);
      // What the killed run finished is not stale any more; the rest is refreshed now.
      assert.equal(r.counts.refreshed + r.counts.skipped, 16);
      for (const s of r.skips) assert.match(s.why, /^not stale/);
      assert.ok((r.warnings ?? []).some((w: string) => /left locked by an interrupted refresh; recovered it first/.test(w)));
      await assertConverged(bdms);
    });
  }
});

describe('a refresh lock found, then given back before the claim', () => {
  test('the run does not recover what nobody left: no recovery, the current BDM skipped as not stale, nothing refreshed', async () => {
    // The plan finds the instance locked by a refresh (nova-manage's locked_reason, no claim of
    // ours) and plans its recovery; before this run claims the instance, that refresh gives it
    // back. The claim, which reads the instance under its row lock, is what decides.
    const [h1] = env.hostNames() as [string];
    const s = await env.seedInstance(h1, [true]);
    const bdm = s.bdms[0]!;
    const db = env.fx.cell(bdm.cell);
    const reason = lockReasonFor({ uuid: bdm.uuid, instance_uuid: s.instanceUuid, volume_id: bdm.volumeId });
    await db.updateTable('instances').set({ locked: 1, locked_by: 'admin' }).where('uuid', '=', s.instanceUuid).execute();
    await db
      .insertInto('instance_system_metadata')
      .values({ created_at: new Date(), deleted: 0, instance_uuid: s.instanceUuid, key: 'locked_reason', value: reason })
      .execute();
    let released = false;
    env.cloud.beforeRequest = async (method, path) => {
      if (released || method !== 'GET' || !path.includes(`/attachments/${bdm.oldAttachmentId}`)) return;
      released = true; // what nova-manage's unlock writes, after the plan read the lock
      await db.updateTable('instances').set({ locked: 0, locked_by: null }).where('uuid', '=', s.instanceUuid).execute();
      await db
        .deleteFrom('instance_system_metadata')
        .where('instance_uuid', '=', s.instanceUuid)
        .where('key', '=', 'locked_reason')
        .execute();
    };
    try {
      const r = await env.refresh({ instance_uuids: [s.instanceUuid] });
      assert.ok(released, 'the lock was given back during the plan');
      assert.equal(r.failed, undefined, r.msg);
      assert.deepEqual(r.counts, { refreshed: 0, skipped: 1, failed: 0 });
      assert.equal(r.skips[0]!.why, 'not stale');
      assert.ok(!(r.warnings ?? []).some((w: string) => /interrupted/.test(w)), `no recovery: ${JSON.stringify(r.warnings)}`);
      assert.equal((await env.bdmRow(bdm)).attachment_id, bdm.oldAttachmentId, 'the BDM is untouched');
      assert.deepEqual(
        env.cloud.attachmentsOf(bdm.volumeId).map((a) => a.id),
        [bdm.oldAttachmentId],
      );
      const inst = await env.instanceRow(bdm);
      assert.deepEqual([inst.locked, inst.locked_by], [0, null]);
    } finally {
      env.cloud.beforeRequest = undefined;
    }
  });
});
