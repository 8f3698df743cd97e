import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execute } from '../src/entry/run';
import { answer, resultOf } from './support/results';
import type { AuditResult } from '../src/actions/audit/audit';
import { RefreshEnv } from './support/refresh-env';
import { parseMetricsFile, sampleValue } from './support/prometheus-text';
import { parseYaml } from './support/yaml';

// The audit's bounded result (stale_limit, stale_truncated, the counts) and its metrics_path
// file, read back with a real Prometheus text-format parser, on the real schema.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

const EXPECT = RefreshEnv.EXPECT_NEW_MONITORS;
const tag = () => randomUUID().slice(0, 6);

/** Two cells, three hosts (one with characters the text format must escape), several reasons and blockers. */
async function seedFleet() {
  const fx = env.fx;
  const hostA = `nbt-met-a-${tag()}`;
  const hostB = `nbt-met-b-${tag()}`;
  const hostOdd = `nbt-met-"odd"\\host\n${tag()}`;
  const stoppedA = await fx.seedInstance('cell1', { host: hostA });
  const a1 = await fx.seedBdm('cell1', stoppedA); // expectation_mismatch, refreshable
  const a2 = await fx.seedBdm('cell1', stoppedA, { attachment_id: null, device_name: '/dev/vdc' }); // legacy + expectation_mismatch
  const activeA = await fx.seedInstance('cell1', { host: hostA, vm_state: 'active' });
  const a3 = await fx.seedBdm('cell1', activeA); // blocked: vm_state
  const busyB = await fx.seedInstance('cell2', { host: hostB, task_state: 'rebooting' });
  const b1 = await fx.seedBdm('cell2', busyB, { connection_info: null }); // connection_info_missing, blocked: task_state
  const odd = await fx.seedInstance('cell2', { host: hostOdd });
  const o1 = await fx.seedBdm('cell2', odd); // expectation_mismatch, refreshable
  const stale = [a1, a2, a3, b1, o1];
  return { hosts: [hostA, hostB, hostOdd], hostA, hostB, hostOdd, stale, instances: [stoppedA, activeA, busyB, odd] };
}

describe('audit: bounded result and metrics_path', () => {
  test('counts cover every stale BDM, the list the first stale_limit, the report all; the metrics file holds the counts, 0644, parsed by a Prometheus parser', async () => {
    const f = await seedFleet();
    const dir = join(env.dir, `metrics-${tag()}`);
    mkdirSync(dir);
    const metrics = join(dir, 'nova_bdm.prom');
    const report = join(dir, 'report.json');
    const t0 = Date.now();
    const r = resultOf(
      await execute({
        action: 'audit',
        config_file: env.fx.env.confPath,
        hosts: f.hosts,
        expect: EXPECT,
        stale_limit: 2,
        report_path: report,
        metrics_path: metrics,
      }),
      'audit',
    );
    const t1 = Date.now();
    assert.equal(r.failed, undefined, String(r.msg));
    const totals = r.totals;
    assert.equal(totals.scanned, 5);
    assert.equal(totals.stale, 5);
    assert.equal(r.stale.length, 2);
    assert.equal(r.stale_truncated, true);
    assert.match(
      String(r.msg),
      new RegExp(
        `^5 volume BDMs audited in 3 cells: 5 stale \\(the first 2 listed; all in ${report.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)$`,
      ),
    );
    assert.deepEqual(totals.by_reason, { expectation_mismatch: 4, legacy_attachment: 1, connection_info_missing: 1 });
    assert.equal(totals.refreshable, 3);
    assert.deepEqual(totals.blocked_by, { vm_state: 1, task_state: 1 });
    assert.equal(r.metrics_path, metrics);
    assert.ok(typeof r.seconds === 'number' && r.seconds > 0);

    const full: AuditResult = JSON.parse(readFileSync(report, 'utf8'));
    assert.deepEqual(full.stale.map((s) => s.bdm_uuid).sort(), f.stale.map((s) => s.uuid).sort(), 'the report lists every stale BDM');
    assert.equal(full.stale_truncated, undefined, 'the report is whole');
    assert.equal(full.totals.stale, 5);

    assert.equal((statSync(metrics).mode & 0o777).toString(8), '644');
    assert.deepEqual(readdirSync(dir).sort(), ['nova_bdm.prom', 'report.json'], 'no temp file left');
    const m = parseMetricsFile(metrics);
    for (const family of m.values()) {
      assert.equal(family.type, 'GAUGE', family.name);
      assert.ok(family.help.length > 10, `${family.name}: HELP`);
    }
    assert.equal(sampleValue(m, 'nova_bdm_audit_stale_bdms', { cell: 'cell1' }), 3);
    assert.equal(sampleValue(m, 'nova_bdm_audit_stale_bdms', { cell: 'cell2' }), 2);
    assert.equal(sampleValue(m, 'nova_bdm_audit_stale_bdms', { cell: 'cell0' }), 0);
    const byReason = m
      .get('nova_bdm_audit_stale_bdms_by_reason')!
      .metrics.map((s) => [s.labels!.cell, s.labels!.host, s.labels!.reason, Number(s.value)]);
    assert.deepEqual(
      byReason.sort(),
      [
        ['cell1', f.hostA, 'expectation_mismatch', 3],
        ['cell1', f.hostA, 'legacy_attachment', 1],
        ['cell2', f.hostB, 'connection_info_missing', 1],
        ['cell2', f.hostOdd, 'expectation_mismatch', 1],
      ].sort() as typeof byReason,
      'the odd host name comes back exactly: quotes, backslash and newline escaped',
    );
    assert.equal(sampleValue(m, 'nova_bdm_audit_refreshable_bdms', { cell: 'cell1' }), 2);
    assert.equal(sampleValue(m, 'nova_bdm_audit_refreshable_bdms', { cell: 'cell2' }), 1);
    assert.equal(sampleValue(m, 'nova_bdm_audit_blocked_bdms', { cell: 'cell1', blocked_by: 'vm_state' }), 1);
    assert.equal(sampleValue(m, 'nova_bdm_audit_blocked_bdms', { cell: 'cell2', blocked_by: 'task_state' }), 1);
    assert.equal(m.get('nova_bdm_audit_blocked_bdms')!.metrics.length, 2);
    for (const c of totals.cells) {
      assert.equal(sampleValue(m, 'nova_bdm_audit_scanned_bdms', { cell: c.name ?? c.uuid }), c.scanned);
      assert.equal(sampleValue(m, 'nova_bdm_audit_cell_success', { cell: c.name ?? c.uuid }), 1);
    }
    assert.equal(sampleValue(m, 'nova_bdm_audit_check_cinder'), 0);
    assert.equal(sampleValue(m, 'nova_bdm_audit_duration_seconds'), r.seconds);
    const completed = sampleValue(m, 'nova_bdm_audit_completion_timestamp_seconds')!;
    assert.ok(completed >= Math.floor(t0 / 1000) && completed <= Math.ceil(t1 / 1000), `completion ${completed} within the run`);

    // Bounded cardinality: labels are cells, hosts and codes, never a BDM, instance or volume.
    const text = readFileSync(metrics, 'utf8');
    for (const id of [...f.stale.flatMap((s) => [s.uuid, s.volumeId, ...(s.attachmentId ? [s.attachmentId] : [])]), ...f.instances])
      assert.ok(!text.includes(id), `no per-BDM series (${id})`);
    const labelNames = new Set([...m.values()].flatMap((fam) => fam.metrics.flatMap((s) => Object.keys(s.labels ?? {}))));
    assert.deepEqual([...labelNames].sort(), ['blocked_by', 'cell', 'host', 'reason']);
    assert.ok(!text.includes('://') && !text.includes(env.fx.env.dbUser), 'no database URL or user');
  });

  test('stale_limit 0: counts only; stale_limit and metrics_path belong to the audit', async () => {
    const f = await seedFleet();
    const r = resultOf(
      await execute({ action: 'audit', config_file: env.fx.env.confPath, hosts: f.hosts, expect: EXPECT, stale_limit: 0 }),
      'audit',
    );
    assert.deepEqual(r.stale, []);
    assert.equal(r.stale_truncated, true);
    assert.equal(r.totals.stale, 5);
    const none = resultOf(await execute({ action: 'audit', config_file: env.fx.env.confPath, hosts: [`nbt-met-none-${tag()}`] }), 'audit');
    assert.equal(none.stale_truncated, false);
    const show = answer(
      await execute({
        action: 'show',
        config_file: env.fx.env.confPath,
        bdm_uuid: f.stale[0]!.uuid,
        metrics_path: join(env.dir, 'x.prom'),
      }),
    );
    assert.equal(show.failed, true);
    assert.equal(show.msg, 'metrics_path is only used by action audit');
    const limit = answer(await execute({ action: 'show', config_file: env.fx.env.confPath, bdm_uuid: f.stale[0]!.uuid, stale_limit: 5 }));
    assert.equal(limit.msg, 'stale_limit is only used by action audit');
    const negative = answer(await execute({ action: 'audit', config_file: env.fx.env.confPath, stale_limit: -1 }));
    assert.equal(negative.msg, 'stale_limit must be >= 0');
  });

  test('a cell lost: the metrics file is written with that cell at success 0, the others at 1', async () => {
    const f = await seedFleet();
    const metrics = join(env.dir, `lost-${tag()}.prom`);
    const broken = `mysql+pymysql://${env.fx.env.dbUser}:Wr0ngPw@127.0.0.1:3306/${env.fx.env.databases.cell1}?charset=utf8`;
    const r = answer(
      await execute({
        action: 'audit',
        config_file: env.fx.env.confPath,
        hosts: f.hosts,
        expect: EXPECT,
        database_connection: broken,
        metrics_path: metrics,
      }),
    );
    assert.equal(r.failed, true);
    const m = parseMetricsFile(metrics);
    assert.equal(sampleValue(m, 'nova_bdm_audit_cell_success', { cell: 'cell1' }), 0);
    assert.equal(sampleValue(m, 'nova_bdm_audit_cell_success', { cell: 'cell2' }), 1);
    assert.equal(sampleValue(m, 'nova_bdm_audit_stale_bdms', { cell: 'cell2' }), 2);
    assert.ok(!readFileSync(metrics, 'utf8').includes('Wr0ngPw'));
  });

  test('metrics_path: a planted symlink is refused before the audit; a regular file is replaced atomically, 0644 whatever the umask', async () => {
    const dir = join(env.dir, `plant-${tag()}`);
    mkdirSync(dir);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n', { mode: 0o600 });
    const link = join(dir, 'audit.prom');
    symlinkSync(victim, link);
    const args = { action: 'audit', config_file: env.fx.env.confPath, hosts: [`nbt-met-none-${tag()}`], metrics_path: link };
    const refused = answer(await execute(args));
    assert.equal(refused.failed, true);
    assert.equal(
      refused.msg,
      `metrics_path: refusing to write ${link}: it is a symbolic link (nova-bdm only replaces a regular file there; remove it or choose another path)`,
    );
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
    assert.deepEqual(readdirSync(dir).sort(), ['audit.prom', 'victim']);

    const target = join(dir, 'real.prom');
    writeFileSync(target, 'old\n', { mode: 0o600 });
    const old = process.umask(0o077);
    try {
      const ok = answer(await execute({ ...args, metrics_path: target }));
      assert.equal(ok.failed, undefined, String(ok.msg));
    } finally {
      process.umask(old);
    }
    assert.equal((statSync(target).mode & 0o777).toString(8), '644');
    assert.equal(sampleValue(parseMetricsFile(target), 'nova_bdm_audit_stale_bdms', { cell: 'cell1' }), 0);
    const missingDir = answer(await execute({ ...args, metrics_path: join(dir, 'nope', 'x.prom') }));
    assert.equal(missingDir.msg, `metrics_path: cannot write ${join(dir, 'nope', 'x.prom')}: its directory does not exist`);
    assert.ok(!existsSync(join(dir, 'nope')));
  });

  test("the runbook's alert rules are YAML and name only series the file has", () => {
    const runbook = readFileSync(join(__dirname, '..', '..', 'docs', 'runbooks.md'), 'utf8');
    const section = runbook.slice(runbook.indexOf('## 6. Alert on stale BDMs with Prometheus'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(yaml, 'a yaml block');
    const rules = parseYaml(yaml);
    const exprs: string[] = rules.groups.flatMap((g: any) => g.rules.map((r: any) => r.expr));
    assert.ok(rules.groups[0].rules.some((r: any) => r.alert === 'NovaStaleBlockDeviceMappings'));
    const documented = [...section.matchAll(/^\| `(nova_bdm_audit_\w+)` \|/gm)].map((x) => x[1]);
    for (const expr of exprs)
      for (const name of expr.match(/nova_bdm_\w+/g) ?? []) assert.ok(documented.includes(name), `${name} is a documented series`);
    assert.equal(documented.length, 9);
  });
});
