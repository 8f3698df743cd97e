import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execute } from '../src/entry/run';
import { resultOf } from './support/results';
import type { AuditResult } from '../src/actions/audit/audit';
import { NEW_MONITORS, RefreshEnv } from './support/refresh-env';

// Staleness rules, idempotent refresh, check mode and the fleet audit, on the real schema.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

const EXPECT = RefreshEnv.EXPECT_NEW_MONITORS;
const withNewMonitors = (volumeId: string) => ({
  driver_volume_type: 'rbd',
  data: {
    name: `volumes/volume-${volumeId}`,
    hosts: [...NEW_MONITORS].reverse(),
    ports: ['6789', '6789', '6789'],
    keyring: 'k',
    auth_username: 'cinder',
  },
  serial: volumeId,
});

describe('refresh decides by staleness', () => {
  test('a clean BDM is left alone: changed false, nothing written anywhere', async () => {
    const s = await env.seed();
    await env.fx
      .cell('cell1')
      .updateTable('block_device_mapping')
      .set({ connection_info: JSON.stringify(withNewMonitors(s.volumeId)) })
      .where('id', '=', s.bdm.id)
      .execute();
    const cinderAtt = env.cloud.attachments.get(s.oldAttachmentId)!;
    cinderAtt.connection_info = { ...withNewMonitors(s.volumeId).data, driver_volume_type: 'rbd' };
    const before = await env.dumpRows(s.instanceUuid);
    const mutations = env.cloud.mutations().length;
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.changed, false);
    assert.equal(r.stale, false);
    assert.deepEqual(r.stale_reasons, []);
    assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
    assert.equal(env.cloud.mutations().length, mutations);
    // force refreshes anyway
    const forced = await env.refresh({ bdm_uuid: s.bdm.uuid, force: true });
    assert.equal(forced.changed, true, String(forced.msg));
  });

  test('expectation_mismatch: monitors compared as host:port pairs, order ignored', async () => {
    const s = await env.seed();
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, _ansible_check_mode: true });
    assert.equal(r.changed, true);
    assert.deepEqual(r.stale_reasons, [
      {
        code: 'expectation_mismatch',
        detail:
          'data.hosts/ports are 192.0.2.11:6789, 192.0.2.12:6789, 192.0.2.13:6789, expected 198.51.100.21:6789, 198.51.100.22:6789, 198.51.100.23:6789',
      },
    ]);
  });

  test('check mode writes nothing anywhere, and diff shows the predicted after (masked)', async () => {
    const s = await env.seed();
    const before = await env.dumpRows(s.instanceUuid);
    const log = env.cloud.log.length;
    const calls = env.compute.calls.length;
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, _ansible_check_mode: true, _ansible_diff: true });
    assert.equal(r.changed, true);
    assert.match(String(r.msg), /^would refresh the connection_info of BDM \S+ \(expectation_mismatch\)$/);
    assert.deepEqual(await env.dumpRows(s.instanceUuid), before, 'no DB row');
    assert.deepEqual(
      env.cloud.log.slice(log).filter((m) => m.method !== 'GET' && !m.path.startsWith('/identity')),
      [],
      'no Cinder mutation',
    );
    assert.equal(env.compute.calls.length, calls, 'no RPC');
    const diff = r.diff;
    assert.ok(diff, 'a diff (-D)');
    assert.ok(diff.after!.includes(NEW_MONITORS[0]!) && diff.before!.includes('192.0.2.11'));
    assert.ok(!diff.before!.includes('cephkeyringsecret') && diff.before!.includes('********'));
    // a refresh that would fail, fails in check mode too
    const active = await env.seed({ instance: { vm_state: 'active' } });
    const blocked = await env.refresh({ bdm_uuid: active.bdm.uuid, _ansible_check_mode: true });
    assert.equal(blocked.failed, true);
    assert.match(String(blocked.msg), /vm_state active/);
  });

  test('Cinder rules: missing, not attached, other host, differing connection_info', async () => {
    let s = await env.seed();
    env.cloud.attachments.delete(s.oldAttachmentId);
    let r = await env.refresh({ bdm_uuid: s.bdm.uuid, expect: undefined, _ansible_check_mode: true });
    assert.deepEqual(
      (r.stale_reasons ?? []).map((x) => x.code),
      ['attachment_missing'],
    );
    s = await env.seed();
    env.cloud.attachments.get(s.oldAttachmentId)!.status = 'attaching';
    env.cloud.attachments.get(s.oldAttachmentId)!.attached_host = 'compute-elsewhere';
    r = await env.refresh({ bdm_uuid: s.bdm.uuid, expect: undefined, _ansible_check_mode: true });
    assert.deepEqual(
      (r.stale_reasons ?? []).map((x) => x.code),
      ['attachment_not_attached'],
    );
    env.cloud.attachments.get(s.oldAttachmentId)!.status = 'attached';
    r = await env.refresh({ bdm_uuid: s.bdm.uuid, expect: undefined, _ansible_check_mode: true });
    assert.deepEqual(r.stale_reasons, [
      {
        code: 'attachment_host_mismatch',
        detail: `Cinder recorded host compute-elsewhere for the attachment, but the instance is on ${env.host}`,
      },
    ]);
    s = await env.seed();
    (env.cloud.attachments.get(s.oldAttachmentId)!.connection_info as any).hosts = NEW_MONITORS;
    r = await env.refresh({ bdm_uuid: s.bdm.uuid, expect: undefined, _ansible_check_mode: true, _ansible_diff: true });
    assert.deepEqual(
      (r.stale_reasons ?? []).map((x) => x.code),
      ['connection_info_differs'],
    );
    assert.match(String(r.stale_reasons?.[0]?.detail), /at data\.hosts$/);
    assert.ok(r.diff?.after.includes(NEW_MONITORS[1]!), "predicted after = Cinder's view");
  });

  test('a refresh after which Cinder still hands out the old monitors fails with an explanation', async () => {
    const s = await env.seed();
    env.cloud.backends.set(s.volumeId, {
      driver_volume_type: 'rbd',
      data: { hosts: ['192.0.2.11'], ports: ['6789'], keyring: 'AQBoldkeyringsecret==' },
    });
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.changed, true);
    assert.equal(r.failed, true);
    assert.match(
      String(r.msg),
      /but Cinder still hands out connection_info that does not match expect .* most likely cinder-volume's own configuration was not updated/,
    );
    assert.ok(!String(r.msg).includes('AQBoldkeyringsecret'));
  });
});

describe('audit', () => {
  test('DB rules over two cells, with filters, refreshable or blocked; writes nothing; report file 0600', async () => {
    const hostA = `nbt-audit-a-${randomUUID().slice(0, 6)}`;
    const hostB = `nbt-audit-b-${randomUUID().slice(0, 6)}`;
    const fx = env.fx;
    const i1 = await fx.seedInstance('cell1', { host: hostA });
    const clean = await fx.seedBdm('cell1', i1, { connection_info_object: withNewMonitors('v') });
    const legacy = await fx.seedBdm('cell1', i1, {
      attachment_id: null,
      connection_info_object: withNewMonitors('v'),
      device_name: '/dev/vdc',
    });
    const i2 = await fx.seedInstance('cell2', { host: hostB, vm_state: 'active' });
    const oldMons = await fx.seedBdm('cell2', i2);
    const missing = await fx.seedBdm('cell2', i2, { connection_info: null, device_name: '/dev/vdc' });
    const iscsi = await fx.seedBdm('cell2', i2, {
      connection_info_object: { driver_volume_type: 'iscsi', data: {} },
      device_name: '/dev/vdd',
    });
    const report = join(env.dir, 'audit.json');
    const countsBefore = await fx
      .cell('cell1')
      .selectFrom('instance_actions')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('instance_uuid', '=', i1)
      .executeTakeFirst(); // other test files write actions meanwhile
    const r = resultOf(
      await execute({
        action: 'audit',
        config_file: env.fx.env.confPath,
        hosts: [hostA, hostB],
        expect: EXPECT,
        report_path: report,
        driver_volume_type: 'rbd',
      }),
      'audit',
    );
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.changed, false);
    const totals = r.totals;
    assert.equal(totals.scanned, 3, 'only the rbd BDMs are scanned');
    const stale = r.stale;
    const byUuid = Object.fromEntries(stale.map((x) => [x.bdm_uuid, x]));
    assert.equal(byUuid[clean.uuid], undefined);
    assert.deepEqual(byUuid[legacy.uuid].reasons, ['legacy_attachment']);
    assert.equal(byUuid[legacy.uuid].refreshable, true);
    assert.equal(byUuid[legacy.uuid].cell, 'cell1');
    assert.deepEqual(byUuid[oldMons.uuid].reasons, ['expectation_mismatch']);
    assert.equal(byUuid[oldMons.uuid].refreshable, false);
    assert.equal(byUuid[oldMons.uuid].blocked_by, 'vm_state active (must be stopped)');
    assert.equal(byUuid[oldMons.uuid].host, hostB);
    assert.equal(byUuid[iscsi.uuid], undefined);
    assert.equal(byUuid[missing.uuid], undefined, 'NULL connection_info has no driver_volume_type: not rbd');
    assert.deepEqual(totals.by_reason, { legacy_attachment: 1, expectation_mismatch: 1 });
    assert.deepEqual(
      totals.cells.map((c) => [c.name, c.scanned]),
      [
        ['cell0', 0],
        ['cell1', 2],
        ['cell2', 1],
      ],
    );
    assert.equal((statSync(report).mode & 0o777).toString(8), '600');
    const written: AuditResult = JSON.parse(readFileSync(report, 'utf8'));
    assert.deepEqual(written.stale.length, 2);
    const countsAfter = await fx
      .cell('cell1')
      .selectFrom('instance_actions')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('instance_uuid', '=', i1)
      .executeTakeFirst(); // other test files write actions meanwhile
    assert.deepEqual(countsAfter, countsBefore);

    // without the type filter, the missing connection_info is found too
    const all = resultOf(await execute({ action: 'audit', config_file: env.fx.env.confPath, hosts: [hostB] }), 'audit');
    assert.deepEqual(
      all.stale.map((x) => [x.bdm_uuid, x.reasons]),
      [[missing.uuid, ['connection_info_missing']]],
    );
  });

  test('check_cinder adds the Cinder rules', async () => {
    const s = await env.seed();
    env.cloud.attachments.get(s.oldAttachmentId)!.status = 'reserved';
    const r = resultOf(
      await execute({
        action: 'audit',
        config_file: [env.fx.env.confPath, env.extraConf],
        instance_uuids: [s.instanceUuid],
        check_cinder: true,
        cinder_concurrency: 2,
      }),
      'audit',
    );
    assert.equal(r.failed, undefined, String(r.msg));
    assert.deepEqual(
      r.stale.map((x) => x.reasons),
      [['attachment_not_attached']],
    );
  });

  test('check_cinder asks for attachments missing from the listing one by one, at most cinder_concurrency at once (12 BDMs; 2, then 5)', async () => {
    // Attachments gone from Cinder are not in its listing: the audit asks for each alone.
    const seeded: Array<Awaited<ReturnType<typeof env.seed>>> = [];
    for (let i = 0; i < 12; i++) seeded.push(await env.seed());
    for (const s of seeded) env.cloud.attachments.delete(s.oldAttachmentId);
    const single = /^\/volume\/v3\/[^/]+\/attachments\/[0-9a-f-]{36}$/;
    for (const concurrency of [2, 5]) {
      const gets = env.cloud.meter('GET', single);
      env.cloud.answerLate('GET', single, 150, seeded.length); // slow answers: the requests overlap unless bounded
      const r = resultOf(
        await execute({
          action: 'audit',
          config_file: [env.fx.env.confPath, env.extraConf],
          instance_uuids: seeded.map((s) => s.instanceUuid),
          check_cinder: true,
          cinder_concurrency: concurrency,
        }),
        'audit',
      );
      env.cloud.clearFaults();
      assert.equal(r.failed, undefined, String(r.msg));
      assert.equal(r.stale.length, seeded.length, JSON.stringify(r.stale));
      assert.equal(gets.total, seeded.length, 'one GET per BDM whose attachment the listing lacked');
      assert.equal(gets.peak, concurrency, `at most (and, with slow answers, exactly) ${concurrency} GETs in flight at once`);
    }
  });

  test('a cell whose DB is down is reported; the others are still audited; overall failed', async () => {
    const host = `nbt-audit-c-${randomUUID().slice(0, 6)}`;
    const i = await env.fx.seedInstance('cell2', { host });
    await env.fx.seedBdm('cell2', i, { attachment_id: null });
    const broken = `mysql+pymysql://${env.fx.env.dbUser}:Wr0ngPw@127.0.0.1:3306/${env.fx.env.databases.cell1}?charset=utf8`;
    const r = resultOf(
      await execute({ action: 'audit', config_file: env.fx.env.confPath, hosts: [host], database_connection: broken }),
      'audit',
    );
    assert.equal(r.failed, true);
    assert.match(
      String(r.msg),
      new RegExp(
        `^audit incomplete: cell1: cannot connect to the cell1 database ${env.fx.env.databases.cell1} at 127\\.0\\.0\\.1:3306: Access denied for user '[^']+'@'127\\.0\\.0\\.1' \\(using password: YES\\) \\(the other cells were audited\\)$`,
      ),
    );
    assert.ok(!String(r.msg).includes('Wr0ngPw'));
    assert.equal(r.stale.length, 1);
    assert.equal(r.totals.cells.find((c) => c.name === 'cell2')?.scanned, 1);
  });
});
