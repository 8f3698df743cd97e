import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { lockReasonFor } from '../src/actions/rules/lock-reason';
import { CLAIM_KEY } from '../src/nova-db/refresh-claim';
import { execute } from '../src/entry/run';
import type { FleetRefreshResult } from '../src/actions/fleet/result';
import { resultOf } from './support/results';
import { FleetEnv, type SeededBdm } from './support/fleet-env';
import type { CellName } from './support/fixtures';
import { NEW_MONITORS } from './support/refresh-env';
import { PROJECT } from './support/fake-openstack';
import { TcpProxy } from './support/tcp-proxy';

// Fleet refresh on the real MariaDB (Nova schema, two cells) and the real RabbitMQ (one vhost
// per cell) with stand-in computes and Cinder: exact counts, every reason, every end state.

let env: FleetEnv;
before(async () => {
  env = await FleetEnv.start([
    { cell: 'cell1', count: 2 },
    { cell: 'cell2', count: 2 },
  ]);
});
after(() => env.stop());

type Kind = 'stale' | 'fresh' | 'running' | 'owner-locked' | 'task' | 'mixed';

/** The BDM is refreshed: a new attachment, attached, the only one, on the new monitors. */
async function assertRefreshed(b: SeededBdm, newId?: string) {
  const row = await env.bdmRow(b);
  assert.notEqual(row.attachment_id, b.oldAttachmentId, `BDM ${b.uuid} has a new attachment`);
  if (newId) assert.equal(row.attachment_id, newId);
  assert.deepEqual(JSON.parse(row.connection_info!).data.hosts, NEW_MONITORS);
  assert.deepEqual(
    env.cloud.attachmentsOf(b.volumeId).map((a) => [a.id, a.status]),
    [[row.attachment_id, 'attached']],
    `BDM ${b.uuid}: one attachment`,
  );
}

/** The BDM is as seeded: its old attachment, the only one. */
async function assertUntouched(b: SeededBdm) {
  const row = await env.bdmRow(b);
  assert.equal(row.attachment_id, b.oldAttachmentId, `BDM ${b.uuid} keeps its attachment`);
  assert.deepEqual(
    env.cloud.attachmentsOf(b.volumeId).map((a) => a.id),
    [b.oldAttachmentId],
    `BDM ${b.uuid}: only the old attachment`,
  );
}

async function assertNoClaimLeft(instanceUuid: string, cell: CellName) {
  const rows = await env.fx
    .cell(cell)
    .selectFrom('instance_system_metadata')
    .select('key')
    .where('instance_uuid', '=', instanceUuid)
    .where('key', '=', CLAIM_KEY)
    .execute();
  assert.equal(rows.length, 0, `no claim left on ${instanceUuid}`);
  const open = await env.fx
    .cell(cell)
    .selectFrom('instance_actions')
    .select('id')
    .where('instance_uuid', '=', instanceUuid)
    .where('action', '=', 'refresh_volume_attachment')
    .where('finish_time', 'is', null)
    .execute();
  assert.equal(open.length, 0, `no unfinished refresh action on ${instanceUuid}`);
}

describe('a fleet of 200 BDMs on 100 instances, 2 cells, 4 hosts', () => {
  test('exact counts, every skip and failure reason, every end state', async () => {
    const [h1, h2, h3, h4] = env.hostNames() as [string, string, string, string];
    // h1, h3 have their connector; h2's says it is compute9; h4 has none.
    env.writeConnectors([h1, h3]);
    writeFileSync(join(env.connectorDir, `${h2}.json`), JSON.stringify(env.connectorOf('compute9')));
    const layout: Kind[] = [
      ...Array<Kind>(10).fill('stale'),
      ...Array<Kind>(5).fill('fresh'),
      ...Array<Kind>(3).fill('running'),
      ...Array<Kind>(2).fill('owner-locked'),
      'task',
      'mixed',
      'stale',
      'stale',
      'stale',
    ];
    const seeded: Array<{ host: string; kind: Kind; index: number; instanceUuid: string; bdms: SeededBdm[] }> = [];
    for (const host of [h1, h2, h3, h4]) {
      for (const [index, kind] of layout.entries()) {
        const fresh = kind === 'fresh' ? [true, true] : kind === 'mixed' ? [false, true] : [false, false];
        const instance =
          kind === 'running'
            ? { vm_state: 'active', power_state: 1 }
            : kind === 'owner-locked'
              ? { locked: 1, locked_by: 'owner' }
              : kind === 'task'
                ? { task_state: 'powering-on' }
                : {};
        seeded.push({ host, kind, index, ...(await env.seedInstance(host, fresh, instance)) });
      }
    }
    const at = (host: string, index: number) => seeded.find((s) => s.host === host && s.index === index)!;

    // h1 #22: a refresh of ours was killed there (its claim names a dead process; a stray reserved attachment).
    const interrupted = at(h1, 22);
    const deadPid = await new Promise<number>((resolve) => {
      const child = spawn('true');
      child.on('exit', () => resolve(child.pid!));
    });
    const db1 = env.fx.cell('cell1');
    await db1.updateTable('instances').set({ locked: 1, locked_by: 'admin' }).where('uuid', '=', interrupted.instanceUuid).execute();
    const pidNs = readlinkSync('/proc/self/ns/pid');
    await db1
      .insertInto('instance_system_metadata')
      .values([
        {
          created_at: new Date(),
          deleted: 0,
          instance_uuid: interrupted.instanceUuid,
          key: 'locked_reason',
          value: lockReasonFor({
            uuid: interrupted.bdms[0]!.uuid,
            instance_uuid: interrupted.instanceUuid,
            volume_id: interrupted.bdms[0]!.volumeId,
          }),
        },
        {
          created_at: new Date(),
          updated_at: new Date(),
          deleted: 0,
          instance_uuid: interrupted.instanceUuid,
          key: CLAIM_KEY,
          value: JSON.stringify({
            token: 'dead',
            host: `${hostname()}${pidNs ? ` ${pidNs}` : ''}`,
            pid: deadPid,
            bdms: interrupted.bdms.map((b) => b.uuid),
            we_locked: true,
            since: new Date().toISOString(),
          }),
        },
      ])
      .execute();
    const stray = env.cloud.addAttachedVolume(interrupted.bdms[0]!.volumeId, interrupted.instanceUuid, {}, false, h1);
    stray.status = 'reserved';
    stray.connection_info = null;

    // h1 #23 and h3 #23: Cinder refuses to delete the old attachment of their second BDM.
    const cinderFails = [at(h1, 23).bdms[1]!, at(h3, 23).bdms[1]!];
    for (const b of cinderFails) env.cloud.failNext('DELETE', new RegExp(`/attachments/${b.oldAttachmentId}$`), 500, 5);
    // h1 #24: the compute never answers for its first BDM.
    const silent = at(h1, 24).bdms[0]!;
    env.hosts.get(h1)!.compute.onCall = async (call) => {
      if ((call.inner as any).args.volume_id === silent.volumeId) await new Promise(() => undefined);
    };

    const started = performance.now();
    const r = await env.refresh({ hosts: [h1, h2, h3, h4], rpc_timeout: 2, report_path: join(env.dir, 'fleet.json'), _ansible_diff: true });
    const seconds = (performance.now() - started) / 1000;
    env.hosts.get(h1)!.compute.onCall = undefined;
    env.cloud.clearFaults();
    console.log(`[fleet] 200 BDMs: ${seconds.toFixed(1)} s (${r.counts.refreshed} refreshed)`);

    // Per normal host: 13 stale instances x2 + 2 owner-locked x2 + 1 of the mixed = 31 refreshed;
    // 10 fresh + 1 mixed not stale, 6 running, 2 with a task = 19 skipped.
    assert.deepEqual(r.counts, { refreshed: 28 + 30, skipped: 20 + 19 + 19 + 19, failed: 2 + 31 + 1 + 31 }, String(r.msg));
    assert.equal(r.failed, true);
    assert.equal(r.changed, true);
    assert.match(r.msg, /^65 of 200 selected BDMs failed \(first: BDM \S+ on \S+: .*\); refreshed 58, skipped 77$/);
    assert.ok(!r.msg.includes('\n'));

    const why = (b: SeededBdm) => r.skips.find((s) => s.bdm_uuid === b.uuid)?.why;
    const failure = (b: SeededBdm) => {
      const found = r.failures.find((s) => s.bdm_uuid === b.uuid);
      assert.ok(found, `BDM ${b.uuid} failed`);
      return found;
    };
    const refreshed = (b: SeededBdm) => r.refreshed.find((s) => s.bdm_uuid === b.uuid);
    for (const s of seeded) {
      for (const [i, b] of s.bdms.entries()) {
        const where = `${s.kind} #${s.index} on ${s.host}, BDM ${i}`;
        const wouldRefresh = s.kind === 'stale' || s.kind === 'owner-locked' || (s.kind === 'mixed' && i === 0);
        if (s.kind === 'fresh' || (s.kind === 'mixed' && i === 1)) assert.equal(why(b), 'not stale', where);
        else if (s.kind === 'running') assert.equal(why(b), 'vm_state active (must be stopped)', where);
        else if (s.kind === 'task') assert.equal(why(b), 'task_state powering-on (must have no task)', where);
        else if (wouldRefresh && s.host === h2) {
          assert.equal(
            failure(b)?.msg,
            `The compute host 'compute9' in the connector does not match the instance host '${h2}': get_connector may have been run on the wrong compute host, or the instance host may be wrong and in need of repair.`,
            where,
          );
          assert.deepEqual([failure(b).undone, failure(b).remains], [[], 'nothing was changed']);
        } else if (wouldRefresh && s.host === h4) {
          assert.equal(failure(b)?.msg, `no connector for compute host ${h4}`, where);
        } else if (b === silent) {
          assert.match(failure(b)?.msg, /failed at rpc_remove_volume_connection: timed out after 2 s waiting for a reply/, where);
          assert.match(failure(b).remains, /^the BDM and its attachment are unchanged$/);
          assert.match(String(failure(b).undone[0]), /^deleted the reserved attachment/);
        } else if (s === at(h1, 24) && i === 1) {
          assert.equal(why(b), `not started: the refresh of BDM ${silent.uuid} of this instance failed`, where);
        } else if (cinderFails.includes(b)) {
          assert.match(
            failure(b)?.msg,
            /failed at cinder_delete_old: Cinder DELETE \/attachments\/\S+ failed: computeFault: injected 500 \(HTTP 500\); the old attachment was removed; the BDM now holds the reserved attachment \S+ with no connection_info: run refresh again before starting the instance$/,
            where,
          );
        } else {
          assert.ok(wouldRefresh, where);
          const entry = refreshed(b);
          assert.ok(entry, `${where} refreshed`);
          assert.deepEqual(entry.reasons, ['expectation_mismatch'], where);
          assert.equal(entry.old_attachment_id, b.oldAttachmentId);
          assert.equal(entry.host, s.host);
          assert.equal(entry.cell, env.hosts.get(s.host)!.cell);
          assert.equal(entry.rpc_version, '6.0');
          assert.ok(entry.seconds > 0 && entry.seconds < 30);
          await assertRefreshed(b, entry.new_attachment_id ?? undefined);
          continue;
        }
        if (b !== silent && !cinderFails.includes(b)) await assertUntouched(b);
        else if (b === silent) {
          // Rolled back: the BDM keeps its old attachment (the compute already let go of the volume).
          assert.equal((await env.bdmRow(b)).attachment_id, b.oldAttachmentId);
          assert.deepEqual(
            env.cloud.attachmentsOf(b.volumeId).map((a) => a.id),
            [b.oldAttachmentId],
          );
        } else {
          // The BDM named the reserved attachment before the old one was to go; the clean-up deleted the old one.
          const kept = (await env.bdmRow(b)).attachment_id;
          assert.notEqual(kept, b.oldAttachmentId);
          assert.deepEqual(
            env.cloud.attachmentsOf(b.volumeId).map((a) => [a.id, a.status]),
            [[kept, 'reserved']],
          );
        }
      }
      const inst = await env.instanceRow({ instanceUuid: s.instanceUuid, cell: env.hosts.get(s.host)!.cell });
      if (s.kind === 'owner-locked') assert.deepEqual([inst.locked, inst.locked_by], [1, 'owner'], 'left locked by its owner');
      else assert.deepEqual([inst.locked, inst.locked_by], [0, null], `${s.kind} #${s.index} on ${s.host} unlocked`);
      await assertNoClaimLeft(s.instanceUuid, env.hosts.get(s.host)!.cell);
    }
    assert.deepEqual(
      await env.danglingBdms(seeded.map((s) => ({ instanceUuid: s.instanceUuid, cell: env.hosts.get(s.host)!.cell }))),
      [],
      'after the first run no BDM names an attachment Cinder lacks',
    );
    // The interrupted refresh was recovered: the stray gone, both BDMs refreshed, its lock given back.
    assert.equal(env.cloud.attachments.has(stray.id), false);
    for (const b of interrupted.bdms) assert.ok(refreshed(b));
    assert.deepEqual(r.warnings, [`instance ${interrupted.instanceUuid} was left locked by an interrupted refresh; recovered it first`]);

    // Diff: one masked before/after per refreshed BDM. Report: the whole result, 0600.
    assert.equal(r.diff?.length, 58);
    assert.ok(!JSON.stringify(r).includes('AQBnewkeyringsecret'));
    assert.equal(statSync(join(env.dir, 'fleet.json')).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(readFileSync(join(env.dir, 'fleet.json'), 'utf8')).counts, r.counts);
    assert.equal(r.report_path, join(env.dir, 'fleet.json'));

    // Run again: only the ones that failed on h1 and h3 (and the one not started) are left to refresh.
    const again = await env.refresh({ hosts: [h1, h3], rpc_timeout: 2 });
    assert.deepEqual(again.counts, { refreshed: 4, skipped: 96, failed: 0 }, again.msg);
    assert.deepEqual(
      again.refreshed.map((e) => e.bdm_uuid).sort(),
      [silent, at(h1, 24).bdms[1]!, ...cinderFails].map((b) => b.uuid).sort(),
    );
    for (const b of [silent, at(h1, 24).bdms[1]!, ...cinderFails]) await assertRefreshed(b);
  });
});

describe('check mode is the plan and writes nothing', () => {
  test('row dumps and the stand-in Cinder log unchanged; the real run then does what the plan said', async () => {
    const [h1] = env.hostNames() as [string];
    env.writeConnectors(env.hostNames());
    const seeded = [
      ...(await Promise.all([1, 2, 3, 4].map(() => env.seedInstance(h1, [false, false])))),
      await env.seedInstance(h1, [true, true]),
      await env.seedInstance(h1, [false, false], { vm_state: 'active', power_state: 1 }),
    ];
    const instances = seeded.map((s) => ({ instanceUuid: s.instanceUuid, cell: 'cell1' as const }));
    const before = await env.dump(instances);
    const cinderBefore = JSON.stringify(env.cloud.mutations());
    const attachmentsBefore = JSON.stringify([...env.cloud.attachments.values()]);
    const uuids = seeded.map((s) => s.instanceUuid);
    const plan = await env.refresh({ instance_uuids: uuids, _ansible_check_mode: true, _ansible_diff: true });
    assert.equal(plan.failed, undefined, plan.msg);
    assert.equal(plan.changed, true);
    assert.deepEqual(plan.counts, { refreshed: 8, skipped: 4, failed: 0 });
    assert.equal(plan.msg, 'would refresh 8 of 12 selected BDMs; 4 skipped, 0 failed');
    for (const e of plan.refreshed) assert.deepEqual([e.new_attachment_id, e.seconds, e.reasons], [null, 0, ['expectation_mismatch']]);
    assert.deepEqual(plan.skips.map((s) => s.why).sort(), [
      'not stale',
      'not stale',
      'vm_state active (must be stopped)',
      'vm_state active (must be stopped)',
    ]);
    assert.equal(plan.diff?.length, 8);
    assert.ok(plan.diff?.every((d) => d.after.includes(NEW_MONITORS[0]!) && d.before.includes('192.0.2.11') && !d.after.includes('AQB')));
    assert.deepEqual(await env.dump(instances), before, 'no row written');
    assert.equal(JSON.stringify(env.cloud.mutations()), cinderBefore, 'no Cinder mutation');
    assert.equal(JSON.stringify([...env.cloud.attachments.values()]), attachmentsBefore);

    const real = await env.refresh({ instance_uuids: uuids });
    assert.deepEqual(real.counts, plan.counts);
    assert.deepEqual(real.refreshed.map((e) => e.bdm_uuid).sort(), plan.refreshed.map((e) => e.bdm_uuid).sort());
    assert.deepEqual(real.skips.map((e) => [e.bdm_uuid, e.why]).sort(), plan.skips.map((e) => [e.bdm_uuid, e.why]).sort());
  });
});

describe('refuse_locked, and audit agreeing with the plan', () => {
  test('the same rule in audit (refreshable / blocked_by) and the fleet plan, with and without refuse_locked', async () => {
    const [, , h3] = env.hostNames() as [string, string, string];
    env.writeConnectors(env.hostNames());
    const seeded = [
      await env.seedInstance(h3, [false], { locked: 1, locked_by: 'owner' }),
      await env.seedInstance(h3, [false], { locked: 1, locked_by: 'admin' }),
      await env.seedInstance(h3, [false, false]),
      await env.seedInstance(h3, [false], { vm_state: 'error' }),
      await env.seedInstance(h3, [false], { task_state: 'rebooting' }),
    ];
    const uuids = seeded.map((s) => s.instanceUuid);
    for (const refuseLocked of [false, true]) {
      const audit = resultOf(
        await execute({
          action: 'audit',
          config_file: [env.fx.env.confPath, env.extraConf],
          cells: ['cell2'],
          instance_uuids: uuids,
          expect: env.args({}).expect,
          check_cinder: true,
          refuse_locked: refuseLocked,
        }),
        'audit',
      );
      const plan = await env.refresh({ cells: ['cell2'], instance_uuids: uuids, refuse_locked: refuseLocked, _ansible_check_mode: true });
      assert.equal(audit.stale.length, 6);
      for (const s of audit.stale) {
        const inPlan = plan.refreshed.some((e) => e.bdm_uuid === s.bdm_uuid);
        assert.equal(s.refreshable, inPlan, `refuse_locked ${refuseLocked}: ${s.bdm_uuid}`);
        if (!s.refreshable) assert.equal(s.blocked_by, plan.skips.find((e) => e.bdm_uuid === s.bdm_uuid)?.why);
      }
      const whys = plan.skips.map((e) => e.why).sort();
      assert.deepEqual(whys, [
        ...(refuseLocked ? ['locked by someone else (by admin; refuse_locked)', 'locked by someone else (by owner; refuse_locked)'] : []),
        'task_state rebooting (must have no task)',
        'vm_state error (must be stopped)',
      ]);
      assert.equal(plan.counts.refreshed, refuseLocked ? 2 : 4);
    }
    const real = await env.refresh({ cells: ['cell2'], instance_uuids: uuids, refuse_locked: true });
    assert.deepEqual(real.counts, { refreshed: 2, skipped: 4, failed: 0 });
    const locked = await env.instanceRow({ instanceUuid: seeded[0]!.instanceUuid, cell: 'cell2' });
    assert.deepEqual([locked.locked, locked.locked_by], [1, 'owner']);
    assert.equal((await env.bdmRow(seeded[0]!.bdms[0]!)).attachment_id, seeded[0]!.bdms[0]!.oldAttachmentId);
  });

  test('an unknown cell is refused naming the cells there are', async () => {
    const r = await env.answer({ cells: ['cell9'] });
    assert.equal(r.failed, true);
    assert.match(String(r.msg), /^no such cell: cell9 \(cells: cell0, cell1, cell2\)$/);
  });
});

describe('max_failures', () => {
  test('stops starting new instances after that many failures; the rest is listed as not started', async () => {
    const [h1] = env.hostNames() as [string];
    env.writeConnectors(env.hostNames());
    const seeded = await Promise.all([1, 2, 3, 4, 5].map(() => env.seedInstance(h1, [false])));
    const volumes = new Set(seeded.map((s) => s.bdms[0]!.volumeId));
    env.hosts.get(h1)!.compute.onCall = async (call) => {
      if (volumes.has((call.inner as any).args.volume_id)) await new Promise(() => undefined);
    };
    try {
      const r = await env.refresh({ instance_uuids: seeded.map((s) => s.instanceUuid), max_parallel: 1, max_failures: 2, rpc_timeout: 1 });
      assert.deepEqual(r.counts, { refreshed: 0, skipped: 3, failed: 2 });
      assert.deepEqual(
        r.skips.map((s) => s.why),
        Array(3).fill('not started: max_failures reached'),
      );
      for (const f of r.failures) assert.match(f.msg, /timed out after 1 s/);
      for (const s of seeded) await assertUntouched(s.bdms[0]!);
    } finally {
      env.hosts.get(h1)!.compute.onCall = undefined;
    }
  });
});

describe('the plan reads Cinder in bulk for a large fleet', () => {
  test('60 BDMs: a count and a few listing pages instead of 120 GETs (a BDM the listing lacks is asked for alone); 10 BDMs: 2 GETs each', async () => {
    const [h1] = env.hostNames() as [string];
    env.writeConnectors(env.hostNames());
    const large = await Promise.all(Array.from({ length: 60 }, () => env.seedInstance(h1, [false])));
    // One BDM whose attachment Cinder no longer has: not in the listing, so the plan GETs it (404).
    const gone = large[7]!.bdms[0]!;
    env.cloud.attachments.delete(gone.oldAttachmentId);
    env.cloud.volumes.get(gone.volumeId)!.status = 'available'; // as Cinder leaves a volume whose only attachment went
    // One volume a cinder-api that died inside os-complete left `attaching`, its attachment attached.
    const leftAttaching = large[9]!.bdms[0]!;
    env.cloud.volumes.get(leftAttaching.volumeId)!.status = 'attaching';
    const r = await env.refresh({ instance_uuids: large.map((s) => s.instanceUuid), max_parallel: 8, per_host_parallel: 8 });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.deepEqual(r.counts, { refreshed: 60, skipped: 0, failed: 0 });
    assert.ok(
      r.plan_cinder_requests <= 7,
      `1 count + attachment and volume pages + 1 GET for the missing one (+ the service token's warm-up), not 120: ${r.plan_cinder_requests}`,
    );
    assert.ok(r.refreshed.find((x) => x.bdm_uuid === gone.uuid)?.reasons.includes('attachment_missing'), 'judged from its own GET');
    const completedAgain = r.refreshed
      .filter((x) => (x.steps ?? []).some((step) => step.step === 'cinder_complete_pending'))
      .map((x) => x.bdm_uuid);
    assert.deepEqual(
      completedAgain,
      [leftAttaching.uuid],
      'the volume the listing shows attaching: its attachment completed again before the reserve',
    );
    for (const s of large) await assertRefreshed(s.bdms[0]!);

    const small = await Promise.all(Array.from({ length: 10 }, () => env.seedInstance(h1, [false])));
    const r2 = await env.refresh({ instance_uuids: small.map((s) => s.instanceUuid) });
    assert.deepEqual(r2.counts, { refreshed: 10, skipped: 0, failed: 0 });
    assert.ok(
      r2.plan_cinder_requests === 20 || r2.plan_cinder_requests === 21,
      `below 50 BDMs: its attachment and its volume, per BDM (+ the service token's warm-up, if it ended within the plan): ${r2.plan_cinder_requests}`,
    );
    for (const s of small) await assertRefreshed(s.bdms[0]!);
  });
});

describe('Cinder unreachable in the middle of a fleet', () => {
  test('the BDMs in flight fail and say what remains; the rest are not started (no retries per BDM); a re-run finishes', async () => {
    const [h1] = env.hostNames() as [string];
    env.writeConnectors(env.hostNames());
    const seeded = await Promise.all(Array.from({ length: 8 }, () => env.seedInstance(h1, [false])));
    const proxy = await TcpProxy.start(Number(new URL(env.cloud.url).port));
    const viaProxy = { cinder_auth: { endpoint_template: `http://127.0.0.1:${proxy.port}/volume/v3/${PROJECT}` } };
    // Cinder goes away while the compute serves the 3rd instance's RPC.
    let calls = 0;
    env.hosts.get(h1)!.compute.onCall = async () => {
      if (++calls === 3) proxy.cutAll();
    };
    try {
      const r = await env.refresh({
        instance_uuids: seeded.map((s) => s.instanceUuid),
        max_parallel: 2,
        per_host_parallel: 2,
        ...viaProxy,
      });
      assert.equal(r.failed, true);
      assert.ok(r.counts, String(r.msg));
      assert.equal(r.counts.refreshed + r.counts.skipped + r.counts.failed, 8);
      assert.ok(r.counts.failed >= 1 && r.counts.failed <= 2, `only the instances in flight fail: ${JSON.stringify(r.counts)}`);
      const notStarted = r.skips.filter((x) => /^not started: cannot reach 127\.0\.0\.1:\d+: /.test(x.why));
      assert.ok(notStarted.length >= 4, `the rest are not started, saying why: ${JSON.stringify(r.skips.map((x) => x.why))}`);
      for (const f of r.failures) assert.ok(f.remains.length > 0);
      env.hosts.get(h1)!.compute.onCall = undefined;
      proxy.restore();
      const again = await env.refresh({ instance_uuids: seeded.map((s) => s.instanceUuid), ...viaProxy });
      assert.equal(again.failed, undefined, String(again.msg));
      for (const s of seeded) await assertRefreshed(s.bdms[0]!);
    } finally {
      env.hosts.get(h1)!.compute.onCall = undefined;
      await proxy.stop();
    }
  });
});

describe('volume_attachments: each entry selects exactly what it names', () => {
  /** A on h1 with volumes X and Y, B on h1 with the same X and Y: four BDMs whose pairs could cross. */
  async function crossingPairs() {
    const [h1] = env.hostNames() as [string];
    env.writeConnectors(env.hostNames());
    const a = await env.seedInstance(h1, [false, false]);
    const [ax, ay] = a.bdms as [SeededBdm, SeededBdm];
    const b = await env.fx.seedInstance('cell1', { host: h1, node: `${h1}.example.org` });
    const bx = await env.attachVolume(b, h1, { volumeId: ax.volumeId, deviceName: '/dev/vdb' });
    const by = await env.attachVolume(b, h1, { volumeId: ay.volumeId, deviceName: '/dev/vdc' });
    return { a: a.instanceUuid, b, ax, ay, bx, by };
  }
  const selected = (r: FleetRefreshResult) => [...r.refreshed, ...r.skips, ...r.failures].map((e) => e.bdm_uuid).sort();
  const pair = (s: SeededBdm) => ({ instance_uuid: s.instanceUuid, volume_id: s.volumeId });

  test('[(A, X), (B, Y)] where A/Y and B/X exist too: the plan, the audit and the refresh touch only A/X and B/Y', async () => {
    const { a, b, ax, ay, bx, by } = await crossingPairs();
    // All four are stale: the filters that AND instances and volumes would take all four.
    const crossed = await env.refresh({ instance_uuids: [a, b], volume_ids: [ax.volumeId, ay.volumeId], _ansible_check_mode: true });
    assert.deepEqual(selected(crossed), [ax, ay, bx, by].map((s) => s.uuid).sort());

    const named = [pair(ax), pair(by)];
    const plan = await env.refresh({ volume_attachments: named, _ansible_check_mode: true, _ansible_diff: true });
    assert.equal(plan.failed, undefined, plan.msg);
    assert.equal(plan.changed, true);
    assert.deepEqual(plan.counts, { refreshed: 2, skipped: 0, failed: 0 });
    assert.deepEqual(selected(plan), [ax.uuid, by.uuid].sort());
    // -C -D: the predicted diff of exactly the two named BDMs.
    assert.deepEqual(plan.diff?.map((d) => /^BDM (\S+) /.exec(d.before_header)![1]).sort(), [ax.uuid, by.uuid].sort());
    assert.ok(plan.diff?.every((d) => d.after.includes(NEW_MONITORS[0]!)));
    assert.deepEqual(plan.hosts_without_connector, []);
    const audit = resultOf(
      await execute({
        action: 'audit',
        config_file: [env.fx.env.confPath, env.extraConf],
        volume_attachments: named,
        expect: env.args({}).expect,
      }),
      'audit',
    );
    assert.deepEqual(audit.stale.map((s) => s.bdm_uuid).sort(), [ax.uuid, by.uuid].sort());
    assert.equal(audit.totals.scanned, 2);

    const real = await env.refresh({ volume_attachments: named });
    assert.deepEqual(real.counts, { refreshed: 2, skipped: 0, failed: 0 }, real.msg);
    for (const s of [ax, by]) {
      const row = await env.bdmRow(s);
      assert.notEqual(row.attachment_id, s.oldAttachmentId, `${s.uuid} refreshed`);
      assert.deepEqual(JSON.parse(row.connection_info!).data.hosts, NEW_MONITORS);
    }
    for (const s of [ay, bx]) {
      const row = await env.bdmRow(s);
      assert.equal(row.attachment_id, s.oldAttachmentId, `${s.uuid} (not named) keeps its attachment`);
      assert.notDeepEqual(JSON.parse(row.connection_info!).data.hosts, NEW_MONITORS);
      assert.ok(env.cloud.attachments.has(s.oldAttachmentId), `${s.uuid}: its Cinder attachment is still there`);
    }
  });

  test('[{A, X}, {B}] is A/X and every volume BDM of B (not B/X alone); a bdm_uuid entry mixes in; empty lists filter nothing', async () => {
    const { b, ax, ay, bx, by } = await crossingPairs();
    const plan = await env.refresh({ volume_attachments: [pair(ax), { instance_uuid: b }], _ansible_check_mode: true });
    assert.deepEqual(selected(plan), [ax.uuid, bx.uuid, by.uuid].sort());
    // Upper case UUIDs, a bdm_uuid entry, a null volume_id (Ansible's unset suboption).
    const mixed = await env.refresh({
      volume_attachments: [
        { bdm_uuid: ay.uuid.toUpperCase() },
        { instance_uuid: bx.instanceUuid.toUpperCase(), volume_id: bx.volumeId, bdm_uuid: null },
      ],
      _ansible_check_mode: true,
    });
    assert.deepEqual(selected(mixed), [ay.uuid, bx.uuid].sort());
    // hosts and driver_volume_type narrow it; an empty instance_uuids is no filter.
    const narrowed = await env.refresh({
      volume_attachments: [pair(ax)],
      driver_volume_type: 'iscsi',
      instance_uuids: [],
      _ansible_check_mode: true,
    });
    assert.deepEqual(narrowed.counts, { refreshed: 0, skipped: 0, failed: 0 });
    const onHost = await env.refresh({ volume_attachments: [pair(ax)], hosts: [ax.host], _ansible_check_mode: true });
    assert.deepEqual(selected(onHost), [ax.uuid]);
  });

  test('refused with one line: combined with instance_uuids/volume_ids/bdm_uuids, an entry naming nothing, only empty lists', async () => {
    const { a, ax } = await crossingPairs();
    const combined = await env.answer({ volume_attachments: [pair(ax)], instance_uuids: [a] });
    assert.equal(combined.failed, true);
    assert.equal(
      combined.msg,
      'volume_attachments names BDMs exactly and cannot be combined with instance_uuids: list those BDMs in volume_attachments (hosts, cells, project_id and driver_volume_type still narrow it)',
    );
    const nothing = await env.answer({ volume_attachments: [pair(ax), { volume_id: ax.volumeId }] });
    assert.equal(
      nothing.msg,
      'volume_attachments[1]: volume_id needs instance_uuid: give bdm_uuid, or instance_uuid with an optional volume_id',
    );
    const both = await env.answer({ volume_attachments: [{ bdm_uuid: ax.uuid, instance_uuid: a }] });
    assert.match(String(both.msg), /^volume_attachments\[0\]: bdm_uuid names one BDM alone/);
    const badUuid = await env.answer({ volume_attachments: [pair(ax), { instance_uuid: a, volume_id: 'nope' }] });
    assert.equal(badUuid.msg, 'volume_attachments[1].volume_id is not a valid UUID (expected the form 8-4-4-4-12 hex digits)');
    const badKey = await env.answer({ volume_attachments: [{ instance_uuid: a, volume: ax.volumeId }] });
    assert.equal(badKey.msg, 'volume_attachments[0] has an unsupported key: volume');
    const empty = await env.answer({ volume_attachments: [], instance_uuids: [] });
    assert.match(String(empty.msg), /^no BDM selected: .*a refresh never means the whole cloud$/);
    for (const r of [combined, nothing, both, badUuid, badKey, empty]) assert.equal(r.failed, true);
  });

  test('hosts_without_connector: the hosts whose BDMs the plan needs a connector for', async () => {
    const [h1, h2] = env.hostNames() as [string, string];
    env.writeConnectors([h1]);
    rmSync(join(env.connectorDir, `${h2}.json`), { force: true });
    const one = await env.seedInstance(h1, [false]);
    const two = await env.seedInstance(h2, [false]);
    const current = await env.seedInstance(h2, [true]);
    try {
      const plan = await env.refresh({
        instance_uuids: [one.instanceUuid, two.instanceUuid, current.instanceUuid],
        _ansible_check_mode: true,
      });
      assert.deepEqual(plan.hosts_without_connector, [h2]);
      assert.deepEqual(plan.counts, { refreshed: 1, skipped: 1, failed: 1 });
      assert.equal(plan.summary[0], 'would refresh 1, skipped 1, failed 1 (check mode: nothing was written)');
      assert.ok(
        plan.summary.includes(
          `FAILED: BDM ${two.bdms[0]!.uuid} (instance ${two.instanceUuid}, volume ${two.bdms[0]!.volumeId}): no connector for compute host ${h2}; nothing was changed`,
        ),
        plan.summary.join('\n'),
      );
      assert.ok(
        plan.summary.includes(
          `skipped: BDM ${current.bdms[0]!.uuid} (instance ${current.instanceUuid}, volume ${current.bdms[0]!.volumeId}): not stale`,
        ),
      );
    } finally {
      env.writeConnectors(env.hostNames());
    }
  });
});
