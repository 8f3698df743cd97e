import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { FakeOpenStack } from '../support/fake-openstack';
import { EXPECT, FleetSeeder, NEW_MONS } from './fleet-seed';
import { expectStatus, ratio, summarize, timeChild, type Summary } from './measure';
import { benchAuditLabCinder, labCinderSkipReason } from './lab-cinder';
import { benchOnline } from './online';
import type { AuditResult } from '../../src/actions/audit/audit';
import type { FailureResult, OutcomeKind } from '../../src/entry/result';
import type { Fields, ResultOf } from '../support/results';

// `npm run bench`: cold start, show, refresh, audit at scale and Ansible check mode, each figure
// the median of repeated runs (with min and max), every comparison measured side by side in the
// same run (A B A B ...). Prints one table and writes the same figures to test/bench/results.json.
// Uses its own throw-away Nova schema (nbb_* databases, made by the real nova-manage) and, for
// refresh, the interop lab (test/interop/lab, nbi_*) through test/interop/harness.ts only.

function findRoot(from: string): string {
  let dir = from;
  while (!(existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'bench')))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`bench: no repository root above ${from}`);
    dir = up;
  }
  return dir;
}

const ROOT = findRoot(__dirname);
const REPO_BUNDLE = join(ROOT, 'ansible', 'plugins', 'modules', 'bdm.cjs');
const STATE_DIR_ = process.env.NOVA_BDM_BENCH_STATE_DIR ?? '/tmp/nbb-state';
// A private copy of the bundle built by this run: another `npm run build` in the same tree
// during the bench cannot change what is measured half-way.
const MODULES_DIR = join(STATE_DIR_, 'modules');
const BUNDLE = join(MODULES_DIR, 'bdm.cjs');
const NODE = process.execPath;
const STATE_DIR = STATE_DIR_;
// NOVA_BDM_BENCH_DB_PREFIX: another prefix than nbb_ (its own databases, user and vhost), so two
// worktrees can bench on one machine without wiping each other's fleet.
const PREFIX = process.env.NOVA_BDM_BENCH_DB_PREFIX ?? 'nbb_';
const RESULTS = join(ROOT, 'test', 'bench', 'results.json');
const NOVA_MANAGE = ['/usr/bin/python3', '-c', 'import sys; from nova.cmd.manage import main; sys.exit(main())'];

const int = (name: string, dflt: number) => {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : dflt;
};
const REPS = {
  cold: int('BENCH_COLD_REPS', 21),
  show: int('BENCH_SHOW_REPS', 11),
  showNovaManage: int('BENCH_SHOW_NOVA_MANAGE_REPS', 5),
  refreshPairs: int('BENCH_REFRESH_PAIRS', 3),
  audit: int('BENCH_AUDIT_REPS', 5),
  check: int('BENCH_CHECK_REPS', 5),
  onlinePairs: int('BENCH_ONLINE_PAIRS', 7),
};
// BENCH_SKIP_LAB=1: everything but what needs the interop lab (refresh, fleet), e.g. while another engineer owns the lab.
const SECTIONS = (process.env.BENCH_ONLY ?? 'cold,audit,check,show,refresh,fleet,online')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => !(process.env.BENCH_SKIP_LAB === '1' && (s === 'refresh' || s === 'fleet')));
const FLEET_SIZES = (process.env.BENCH_FLEET_SIZES ?? '10,100')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
/** Fleet refresh concurrency: the lab has one compute host, so per_host_parallel is set to max_parallel (the default 2 per host would be the limit). */
const FLEET_PARALLEL = int('BENCH_FLEET_PARALLEL', 16);
/** seed.py processes at once (each ~10 s per instance on a loaded 2-vCPU machine, mostly waiting on Cinder). */
const FLEET_SEED_PROCS = int('BENCH_FLEET_SEED_PROCS', 4);
/** Section 7: the online refresh next to the stopped flow, on the stand-in Cinder and compute. */
const ONLINE_FLEET_SIZES = (process.env.BENCH_ONLINE_FLEET_SIZES ?? '10,100')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const AUDIT_SIZES = (process.env.BENCH_AUDIT_SIZES ?? '1000,10000,100000,300000,1000000').split(',').map(Number);
const AUDIT_CELLS = int('BENCH_AUDIT_CELLS', 10);

// ------------------------------------------------------------------------------------ output

type Unit = 'ms' | 'B' | 'MiB' | 'x' | '';

interface Row {
  section: string;
  measure: string;
  unit: Unit;
  n?: number;
  median?: number;
  min?: number;
  max?: number;
  /** e.g. "target <= 1.5x: MISSED by 0.4x" */
  verdict?: string;
  note?: string;
}

const rows: Row[] = [];
/** The lab's Keystone token cache, as its cinder.conf says (printed in the header). */
let labTokenCache = 'lab not used in this run (refresh section skipped)';
const sections: Record<string, unknown> = {};

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function addSummary(section: string, measure: string, s: Summary, unit: Unit, extra: Partial<Row> = {}): void {
  rows.push({ section, measure, unit, n: s.n, median: s.median, min: s.min, max: s.max, ...extra });
}

function addRatio(
  section: string,
  measure: string,
  r: ReturnType<typeof ratio>,
  target?: { op: '<=' | '>='; value: number },
): boolean | undefined {
  let verdict: string | undefined;
  let met: boolean | undefined;
  if (target) {
    met = target.op === '<=' ? r.ratio <= target.value : r.ratio >= target.value;
    const by = target.op === '<=' ? r.ratio / target.value : target.value / r.ratio;
    verdict = `target ${target.op} ${target.value}x: ${met ? 'met' : `MISSED (${by.toFixed(2)}x off)`}`;
  }
  rows.push({
    section,
    measure,
    unit: 'x',
    median: r.ratio,
    min: r.pairedMin,
    max: r.pairedMax,
    verdict,
    note: r.pairedMin !== undefined ? 'ratio of medians; min/max = per-round pairs' : 'ratio of medians',
  });
  return met;
}

function fmt(v: number | undefined, unit: Unit): string {
  if (v === undefined || Number.isNaN(v)) return '';
  switch (unit) {
    case 'ms':
      return v >= 10_000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`;
    case 'B':
      return `${Math.round(v).toLocaleString('en-US')} B`;
    case 'MiB':
      return `${v.toFixed(1)} MiB`;
    case 'x':
      return `${v.toFixed(2)}x`;
    default:
      return String(v);
  }
}

function table(): string {
  const head = ['section', 'measure', 'n', 'median', 'min', 'max', 'target / note'];
  const body = rows.map((r) => [
    r.section,
    r.measure,
    r.n?.toString() ?? '',
    fmt(r.median, r.unit),
    fmt(r.min, r.unit),
    fmt(r.max, r.unit),
    r.verdict ?? r.note ?? '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join(' | ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n');
}

// ------------------------------------------------------------------------------------ facts

function machineFacts(): Record<string, unknown> {
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model;
  const sh = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : undefined;
  };
  return {
    nproc: availableParallelism(),
    memory_mib: Math.round(totalmem() / 2 ** 20),
    cpu_model: cpuModel,
    node: process.version,
    kernel: release(),
    mariadb: sh('mysql', ['-uroot', '-N', '-e', 'SELECT VERSION()']),
    python3_nova: sh('dpkg-query', ['-W', '-f=${Version}', 'python3-nova']),
    ansible_core: sh('dpkg-query', ['-W', '-f=${Version}', 'ansible-core']),
    git_commit: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    git_dirty_files: sh('git', ['-C', ROOT, 'status', '--porcelain', 'src'])?.split('\n').filter(Boolean).length ?? null,
    loadavg_at_start: loadavg().map((l) => Number(l.toFixed(2))),
  };
}

// ------------------------------------------------------------------------------------ schema

interface NbbEnv {
  confPath: string;
  databases: { api: string; cell0: string; cell1: string; cell2: string };
}

function ensureSchema(): NbbEnv {
  const envFile = join(STATE_DIR, 'nova-env.json');
  const dbExists =
    spawnSync('mysql', ['-uroot', '-N', '-e', `SHOW DATABASES LIKE '${PREFIX}cell2'`], { encoding: 'utf8' }).stdout.trim() !== '';
  if (process.env.BENCH_FRESH_SCHEMA === '1' || !existsSync(envFile) || !dbExists) {
    log(`making the ${PREFIX}* Nova schema with the real nova-manage (about a minute) ...`);
    mkdirSync(STATE_DIR, { recursive: true });
    execFileSync(NODE, [join(ROOT, 'dist', 'test', 'support', 'prepare-nova-schema.js')], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, NOVA_BDM_TEST_DB_PREFIX: PREFIX, NOVA_BDM_STATE_DIR: STATE_DIR },
    });
  }
  const env = JSON.parse(readFileSync(envFile, 'utf8')) as NbbEnv;
  if (!Object.values(env.databases).every((d) => d.startsWith(PREFIX))) throw new Error(`${envFile} names databases outside ${PREFIX}*`);
  return env;
}

/**
 * Cells 3..count beside the two that nova-manage made: each a copy of cell2's schema (mysqldump
 * --no-data, foreign keys included), mapped in cell_mappings with cell2's literal URL pointing at
 * its own database. Made once and reused. Returns the data cells' databases, cell1 first.
 */
function ensureCells(env: NbbEnv, count: number): string[] {
  const mysql = (sqlText: string) => execFileSync('mysql', ['-uroot', '-N', '-e', sqlText], { encoding: 'utf8' }).trim();
  const [cell2Url, cell2Transport] = mysql(
    `SELECT database_connection, transport_url FROM ${env.databases.api}.cell_mappings WHERE name = 'cell2'`,
  ).split('\t');
  const user = /^[^:]+:\/\/([^:]+):/.exec(cell2Url!)?.[1];
  if (!user) throw new Error(`cannot read the user of cell2's URL`);
  const dbs = [env.databases.cell1, env.databases.cell2];
  for (let k = 3; k <= count; k++) {
    const db = `${PREFIX}cell${k}`;
    dbs.push(db);
    if (mysql(`SHOW DATABASES LIKE '${db}'`) === '') {
      log(`making ${db} (schema of ${env.databases.cell2})`);
      mysql(`CREATE DATABASE \`${db}\` CHARACTER SET utf8`);
      execFileSync('sh', ['-c', `mysqldump -uroot --no-data ${env.databases.cell2} | mysql -uroot ${db}`]);
      for (const host of ['%', 'localhost']) mysql(`GRANT ALL ON \`${db}\`.* TO '${decodeURIComponent(user)}'@'${host}'`);
    }
    if (mysql(`SELECT COUNT(*) FROM ${env.databases.api}.cell_mappings WHERE name = 'cell${k}'`) === '0') {
      const url = cell2Url!.replace(`/${env.databases.cell2}?`, `/${db}?`);
      const transport = cell2Transport!.replace(/cell2$/, `cell${k}`);
      mysql(
        `INSERT INTO ${env.databases.api}.cell_mappings (created_at, uuid, name, transport_url, database_connection, disabled) VALUES (NOW(), UUID(), 'cell${k}', '${transport}', '${url}', 0)`,
      );
    }
  }
  // Fewer cells this run than the last: unmap the rest (their databases stay for the next run).
  mysql(
    `DELETE FROM ${env.databases.api}.cell_mappings WHERE name REGEXP '^cell[0-9]+$' AND CAST(SUBSTRING(name, 5) AS UNSIGNED) > ${Math.max(count, 2)}`,
  );
  return dbs.slice(0, Math.max(count, 1));
}

function argsFile(name: string, args: Record<string, unknown>, ansible: Record<string, unknown> = {}): string {
  const path = join(STATE_DIR, `${name}.args.json`);
  // What Ansible writes for a WANT_JSON module: the options plus its own _ansible_* keys.
  writeFileSync(
    path,
    JSON.stringify({
      ...args,
      _ansible_check_mode: false,
      _ansible_diff: false,
      _ansible_verbosity: 0,
      _ansible_module_name: 'bdm',
      _ansible_keep_remote_files: false,
      ...ansible,
    }),
  );
  return path;
}

/** The module's answer printed by the bundle: a result of this kind, or a failure, read field by field. */
function parseJson<K extends OutcomeKind>(text: string, what: string): Fields<ResultOf<K> | FailureResult> {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what} printed no JSON: ${text.slice(0, 500)}`);
  }
}

// ------------------------------------------------------------------------------------ 1. cold start

async function benchCold(): Promise<void> {
  log(`cold start: node -e 0 vs bdm.cjs --help, ${REPS.cold} rounds`);
  const floor: number[] = [];
  const help: number[] = [];
  for (let i = -2; i < REPS.cold; i++) {
    const a = expectStatus(await timeChild(NODE, ['-e', '0']), 'node -e 0');
    const b = expectStatus(await timeChild(NODE, [BUNDLE, '--help']), 'bdm.cjs --help');
    if (!/usage/i.test(b.stdout)) throw new Error(`bdm.cjs --help printed no usage: ${b.stdout.slice(0, 200)}`);
    if (i < 0) continue; // warm-up: page cache, not measured
    floor.push(a.ms);
    help.push(b.ms);
  }
  const f = summarize(floor);
  const h = summarize(help);
  const size = statSync(BUNDLE).size;
  addSummary('1 cold', 'node -e 0 (floor)', f, 'ms');
  addSummary('1 cold', 'node bdm.cjs --help', h, 'ms');
  const r = ratio(h, f);
  addRatio('1 cold', '--help / floor', r);
  rows.push({ section: '1 cold', measure: 'bundle size (bdm.cjs)', unit: 'B', median: size });
  sections.cold = { floor_ms: f, help_ms: h, ratio_help_over_floor: r, bundle_bytes: size };
}

// ------------------------------------------------------------------------------------ 4 + 5. audit scale, check mode

async function benchAuditAndCheck(env: NbbEnv, seeder: FleetSeeder, doAudit: boolean, doCheck: boolean): Promise<void> {
  const auditArgs = argsFile('audit', { action: 'audit', config_file: env.confPath, expect: EXPECT });
  const audit: Record<string, unknown> = {};
  for (const size of AUDIT_SIZES) {
    let started = Date.now();
    await seeder.growTo(size);
    const seeded = seeder.seeded;
    log(
      `audit: seeded ${seeded.volumeBdms} volume BDMs (+${seeded.imageBdms} image BDMs) on ${seeded.instances} instances in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    if (doAudit) {
      const walls: number[] = [];
      const rss: number[] = [];
      const cpu: number[] = [];
      let last: Fields<AuditResult | FailureResult> = {};
      for (let i = -1; i < REPS.audit; i++) {
        const run = expectStatus(await timeChild(NODE, [BUNDLE, auditArgs], { rss: true, timeoutMs: 600_000 }), `audit of ${size}`);
        last = parseJson<'audit'>(run.stdout, `audit of ${size}`);
        const totals = last.totals;
        if (last.failed || totals?.scanned !== seeded.volumeBdms || totals.stale !== seeded.expectedStale) {
          throw new Error(
            `audit of ${size}: scanned ${totals?.scanned} (want ${seeded.volumeBdms}), stale ${totals?.stale} (want ${seeded.expectedStale}): ${String(last.msg)}`,
          );
        }
        if (i < 0) continue;
        walls.push(run.ms);
        rss.push((run.rssKiB ?? NaN) / 1024);
        cpu.push((run.cpuS ?? NaN) * 1000);
      }
      const w = summarize(walls);
      const m = summarize(rss);
      const c = summarize(cpu);
      const label = sizeLabel(size);
      const target = size === 1_000_000;
      addSummary(
        '4 audit',
        `${label} volume BDMs, ${seeder.cellCount} cells: wall`,
        w,
        'ms',
        target ? { verdict: `target < 15 s: ${w.median < 15_000 ? 'met' : `MISSED by ${((w.median - 15_000) / 1000).toFixed(2)} s`}` } : {},
      );
      addSummary('4 audit', `${label}: CPU of the audit process (user+sys)`, c, 'ms');
      addSummary(
        '4 audit',
        `${label}: peak RSS`,
        m,
        'MiB',
        target ? { verdict: `target < 150 MiB: ${m.median < 150 ? 'met' : `MISSED by ${(m.median - 150).toFixed(1)} MiB`}` } : {},
      );
      rows.push({
        section: '4 audit',
        measure: `${label}: BDMs per second (median wall)`,
        unit: '',
        median: Math.round(size / (w.median / 1000)),
      });
      const listed = last.stale?.length ?? 0;
      rows.push({
        section: '4 audit',
        measure: `${label}: result size (stale_limit default)`,
        unit: 'B',
        median: JSON.stringify(last).length,
        note: `${listed} of ${last.totals?.stale} stale listed, stale_truncated ${String(last.stale_truncated)}`,
      });
      audit[size] = {
        wall_ms: w,
        cpu_ms: c,
        peak_rss_mib: m,
        seeded,
        stale_found: last.totals?.stale,
        stale_listed: listed,
        by_reason: last.totals?.by_reason,
        output_bytes: JSON.stringify(last).length,
      };
      if (size === AUDIT_SIZES[AUDIT_SIZES.length - 1] && seeder.cellCount > 1) await benchCellsFilter(auditArgs, size, last);
    }
    if (doCheck && size === 1000) await benchCheckMode(env, seeded.volumeBdms);
    if (doAudit && size === CINDER_SIZE) {
      // Its own failure line; the larger sizes still run.
      await benchAuditCinder(env, seeder, auditArgs).catch((err: Error) => {
        rows.push({ section: '4 audit', measure: 'check_cinder FAILED', unit: '', note: err.message.split('\n')[0]!.slice(0, 160) });
        log(`audit with check_cinder FAILED: ${err.message}`);
        process.exitCode = 1;
      });
    }
    if (doAudit && size === LAB_CINDER_SIZE) await guardedLabCinder(env, seeder, auditArgs);
    started = Date.now();
  }
  if (doAudit) {
    sections.audit = { cells: seeder.cellCount, sizes: audit, args: { action: 'audit', config_file: '<nbb nova.conf>', expect: EXPECT } };
    linearity(audit);
  }
}

function sizeLabel(size: number): string {
  return size >= 1_000_000 ? `${size / 1_000_000}M` : size >= 1000 ? `${size / 1000}k` : String(size);
}

/** Linear time, flat memory: each size against the smallest one of at least 100k. */
function linearity(audit: Record<string, unknown>): void {
  const sizes = Object.keys(audit)
    .map(Number)
    .filter((n) => n >= 100_000)
    .sort((a, b) => a - b);
  const base = sizes[0];
  if (base === undefined) return;
  const of = (n: number) => audit[n] as { wall_ms: Summary; peak_rss_mib: Summary };
  for (const n of sizes.slice(1)) {
    const timeRatio = of(n).wall_ms.median / of(base).wall_ms.median;
    rows.push({
      section: '4 audit',
      measure: `${sizeLabel(n)} / ${sizeLabel(base)}: wall (linear = ${(n / base).toFixed(1)}x)`,
      unit: 'x',
      median: timeRatio,
    });
    rows.push({
      section: '4 audit',
      measure: `${sizeLabel(n)} - ${sizeLabel(base)}: peak RSS (flat = 0)`,
      unit: 'MiB',
      median: of(n).peak_rss_mib.median - of(base).peak_rss_mib.median,
    });
  }
}

/** The `cells` filter: one cell of the ten, with the same arguments otherwise. */
async function benchCellsFilter(auditArgs: string, size: number, full: Fields<AuditResult | FailureResult>): Promise<void> {
  const args = JSON.parse(readFileSync(auditArgs, 'utf8')) as Record<string, unknown>;
  const one = argsFile('audit-one-cell', { ...args, cells: ['cell3'] });
  const want = full.totals?.cells.find((c) => c.name === 'cell3')?.scanned;
  const walls: number[] = [];
  const rss: number[] = [];
  for (let i = -1; i < REPS.audit; i++) {
    const run = expectStatus(await timeChild(NODE, [BUNDLE, one], { rss: true, timeoutMs: 600_000 }), 'audit of one cell');
    const r = parseJson<'audit'>(run.stdout, 'audit of one cell');
    const totals = r.totals;
    if (r.failed || !totals || totals.scanned !== want || totals.cells.length !== 1)
      throw new Error(
        `audit with cells [cell3]: scanned ${totals?.scanned} in ${totals?.cells?.length} cells (want ${want} in 1): ${String(r.msg)}`,
      );
    if (i < 0) continue;
    walls.push(run.ms);
    rss.push((run.rssKiB ?? NaN) / 1024);
  }
  const label = sizeLabel(size);
  addSummary('4 audit', `${label}, cells: [cell3] (${want} BDMs, one cell of ten): wall`, summarize(walls), 'ms');
  addSummary('4 audit', `${label}, cells: [cell3]: peak RSS`, summarize(rss), 'MiB');
  sections.audit_one_cell = { size, cell: 'cell3', scanned: want, wall_ms: summarize(walls), peak_rss_mib: summarize(rss) };
}

// ------------------------------------------------------------------------------------ 4c. audit with the Cinder rules

const CINDER_SIZE = int('BENCH_CINDER_SIZE', 10_000);

/**
 * The same fleet audited with check_cinder against the stand-in Cinder (test/support/fake-openstack.ts,
 * which pages its listings like Cinder: osapi_max_limit 1000), holding one attached v3 attachment per
 * seeded v3 BDM on the instance's host, with the new monitors. Interleaved with the DB-only audit.
 */
async function benchAuditCinder(env: NbbEnv, seeder: FleetSeeder, dbOnlyArgs: string): Promise<void> {
  const cloud = await FakeOpenStack.start();
  try {
    const bdms = await seeder.v3Attachments();
    for (const r of bdms) {
      const stored = r.connection_info
        ? (JSON.parse(r.connection_info) as { driver_volume_type: string; data: Record<string, unknown> })
        : undefined;
      cloud.addVolume(r.volume_id, { project_id: 'project-bench', status: 'in-use' });
      const attachment = cloud.addAttachedVolume(r.volume_id, r.instance_uuid, { driver_volume_type: 'rbd', data: {} }, false, r.host);
      // Cinder re-keyed to this BDM's attachment, holding the new monitors (what cinder-volume hands out after the move).
      cloud.attachments.delete(attachment.id);
      attachment.id = r.attachment_id;
      attachment.connection_info = stored
        ? {
            ...stored.data,
            hosts: NEW_MONS.hosts,
            ports: NEW_MONS.ports,
            driver_volume_type: stored.driver_volume_type,
            attachment_id: r.attachment_id,
          }
        : {};
      cloud.attachments.set(attachment.id, attachment);
    }
    const cinderConf = join(STATE_DIR, 'bench-cinder.conf');
    writeFileSync(cinderConf, cloud.nova_conf_sections());
    const withCinder = argsFile('audit-cinder', {
      action: 'audit',
      config_file: [env.confPath, cinderConf],
      expect: EXPECT,
      check_cinder: true,
    });
    // Pages one after another (cinder_concurrency 2: by marker, the two lists side by side) and
    // side by side (the default 8: 4 pages of each list in flight, by offset).
    const serial = argsFile('audit-cinder-serial', {
      action: 'audit',
      config_file: [env.confPath, cinderConf],
      expect: EXPECT,
      check_cinder: true,
      cinder_concurrency: 2,
    });
    log(
      `audit with check_cinder: ${bdms.length} attachments in the stand-in Cinder, ${REPS.audit} rounds interleaved with the DB-only audit`,
    );
    // The stand-in runs in this process, which otherwise only waits on the child: this process's
    // CPU time during a child's run is the stand-in's, the child's (GNU time) is ours.
    const variants = [
      { key: 'db_only', label: 'DB-only (paired with the next lines)', args: dbOnlyArgs, cinder: false },
      { key: 'pages_serial', label: 'check_cinder, pages one after another (cinder_concurrency 2)', args: serial, cinder: true },
      {
        key: 'pages_side_by_side',
        label: 'check_cinder, pages side by side (cinder_concurrency 8, the default)',
        args: withCinder,
        cinder: true,
      },
    ] as const;
    const samples = Object.fromEntries(
      variants.map((v) => [
        v.key,
        { wall: [] as number[], cpu: [] as number[], standInCpu: [] as number[], rss: [] as number[], requests: NaN },
      ]),
    );
    for (let i = -1; i < REPS.audit; i++) {
      for (const v of variants) {
        const cpuBefore = process.cpuUsage();
        const run = expectStatus(await timeChild(NODE, [BUNDLE, v.args], { rss: true, timeoutMs: 600_000 }), v.label);
        const standIn = process.cpuUsage(cpuBefore);
        const result = parseJson<'audit'>(run.stdout, v.label);
        const totals = result.totals;
        if (result.failed || totals?.scanned !== seeder.seeded.volumeBdms || totals.stale !== seeder.seeded.expectedStale) {
          throw new Error(
            `${v.label}: scanned ${totals?.scanned}, stale ${totals?.stale} (want ${seeder.seeded.volumeBdms}, ${seeder.seeded.expectedStale}): ${String(result.msg)}`,
          );
        }
        const s = samples[v.key]!;
        s.requests = totals.cinder_requests ?? NaN;
        if (i < 0) continue;
        s.wall.push(run.ms);
        s.cpu.push((run.cpuS ?? NaN) * 1000);
        s.standInCpu.push((standIn.user + standIn.system) / 1000);
        s.rss.push((run.rssKiB ?? NaN) / 1024);
      }
    }
    const label = sizeLabel(CINDER_SIZE);
    const out: Record<string, unknown> = { bdms: seeder.seeded.volumeBdms, attachments: bdms.length };
    const walls: Record<string, Summary> = {};
    for (const v of variants) {
      const s = samples[v.key]!;
      const w = summarize(s.wall);
      walls[v.key] = w;
      const c = summarize(s.cpu);
      const k = summarize(s.standInCpu);
      const m = summarize(s.rss);
      addSummary('4 audit', `${label} ${v.label}: wall`, w, 'ms');
      addSummary('4 audit', `${label}   CPU of the audit process (user+sys)`, c, 'ms');
      if (v.cinder) {
        addSummary('4 audit', `${label}   CPU of the stand-in Cinder (bench process)`, k, 'ms');
        rows.push({
          section: '4 audit',
          measure: `${label}   Cinder requests per audit`,
          unit: '',
          median: s.requests,
          note: `${bdms.length} attachments; listing pages of 1000 + per-attachment GETs`,
        });
      }
      addSummary('4 audit', `${label}   peak RSS`, m, 'MiB');
      out[v.key] = { wall_ms: w, cpu_ms: c, stand_in_cpu_ms: k, peak_rss_mib: m, cinder_requests: s.requests };
    }
    addRatio('4 audit', `${label}: check_cinder side by side / DB-only`, ratio(walls.pages_side_by_side!, walls.db_only!), {
      op: '<=',
      value: 3,
    });
    addRatio('4 audit', `${label}: check_cinder pages one after another / DB-only`, ratio(walls.pages_serial!, walls.db_only!));
    addRatio('4 audit', `${label}: side by side / one after another`, ratio(walls.pages_side_by_side!, walls.pages_serial!));
    sections.audit_cinder = out;
  } finally {
    await cloud.stop();
  }
}

// ------------------------------------------------------------------------------------ 4d. check_cinder against the lab's real Cinder

const LAB_CINDER = process.env.BENCH_LAB_CINDER;
const LAB_CINDER_SIZE = int('BENCH_LAB_CINDER_SIZE', 10_000);

/** Skipped, with the reason in the table, when no lab is named or up; its own failure line otherwise. */
async function guardedLabCinder(env: NbbEnv, seeder: FleetSeeder, dbOnlyArgs: string): Promise<void> {
  const skip = labCinderSkipReason(LAB_CINDER);
  if (skip) {
    const measure = `${sizeLabel(LAB_CINDER_SIZE)} check_cinder against a REAL Cinder: skipped`;
    rows.push({ section: '4 audit', measure, unit: '', note: skip });
    log(`audit against the lab's Cinder skipped: ${skip}`);
    return;
  }
  const ctx = {
    node: NODE,
    bundle: BUNDLE,
    stateDir: STATE_DIR,
    reps: REPS.audit,
    log,
    sections,
    addSummary: (section: string, measure: string, s: Summary, unit: Unit, extra?: Partial<Row>) =>
      addSummary(section, measure, s, unit, extra),
    addRatio: (section: string, measure: string, r: ReturnType<typeof ratio>) => void addRatio(section, measure, r),
    addRow: (section: string, measure: string, unit: Unit, median: number, note?: string) =>
      rows.push({ section, measure, unit, median, ...(note ? { note } : {}) }),
  };
  const fleet = {
    label: sizeLabel(LAB_CINDER_SIZE),
    confPath: env.confPath,
    expect: EXPECT,
    scanned: seeder.seeded.volumeBdms,
    stale: seeder.seeded.expectedStale,
    attachments: await seeder.v3Attachments(),
  };
  await benchAuditLabCinder(ctx, LAB_CINDER!, fleet, dbOnlyArgs).catch((err: Error) => {
    const note = err.message.split('\n')[0]!.slice(0, 160);
    rows.push({ section: '4 audit', measure: 'check_cinder against the lab FAILED', unit: '', note });
    log(`audit against the lab's Cinder FAILED: ${err.message}`);
    process.exitCode = 1;
  });
}

async function benchCheckMode(env: NbbEnv, bdms: number): Promise<void> {
  const real = join(ROOT, 'ansible', 'playbooks', 'audit.yml');
  const fallback = join(ROOT, 'test', 'bench', 'audit-check.yml');
  const report = join(STATE_DIR, 'audit-report.json');
  let usingReal = existsSync(real) && process.env.BENCH_CHECK_PLAYBOOK !== 'fallback';
  let fallbackWhy = usingReal ? undefined : `${real} does not exist`;
  // The real playbook calls osops.nova.bdm: give Ansible a collection tree holding the bench's
  // copy of the bundle and the working tree's playbooks/meta (nothing is installed).
  const collections = join(STATE_DIR, 'collections');
  if (usingReal) {
    const tree = join(collections, 'ansible_collections', 'osops', 'nova');
    rmSync(collections, { recursive: true, force: true });
    mkdirSync(join(tree, 'plugins', 'modules'), { recursive: true });
    for (const part of ['galaxy.yml', 'meta', 'playbooks']) cpSync(join(ROOT, 'ansible', part), join(tree, part), { recursive: true });
    copyFileSync(BUNDLE, join(tree, 'plugins', 'modules', 'bdm.cjs'));
    chmodSync(join(tree, 'plugins', 'modules', 'bdm.cjs'), 0o755);
  }
  const extra = process.env.BENCH_CHECK_EXTRA_VARS ? (JSON.parse(process.env.BENCH_CHECK_EXTRA_VARS) as Record<string, unknown>) : {};
  const varsFile = join(STATE_DIR, 'check-vars.json');
  const writeVars = () =>
    writeFileSync(
      varsFile,
      JSON.stringify(
        usingReal
          ? { nova_bdm_config_file: env.confPath, nova_bdm_expect: EXPECT, nova_bdm_report_path: report, ...extra }
          : { nova_conf: env.confPath, expect: EXPECT, ...extra },
      ),
    );
  writeVars();
  const ansibleEnv = {
    ...process.env,
    ANSIBLE_LIBRARY: MODULES_DIR,
    ANSIBLE_COLLECTIONS_PATH: collections,
    ANSIBLE_COLLECTIONS_PATHS: collections,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_RETRY_FILES_ENABLED: '0',
    ANSIBLE_LOCALHOST_WARNING: '0',
    ANSIBLE_INVENTORY_UNPARSED_WARNING: '0',
  };
  const cmdFor = (playbook: string) => ['-C', '-i', 'localhost,', '-c', 'local', playbook, '-e', `@${varsFile}`];
  const playOk = (r: { status: number | null; stdout: string }) => r.status === 0 && /failed=0/.test(r.stdout) && /ok=[1-9]/.test(r.stdout);
  const realPlaybook = join(collections, 'ansible_collections', 'osops', 'nova', 'playbooks', 'audit.yml');
  if (usingReal) {
    // Probe once: the real playbook is written concurrently and may want other variables.
    const probe = await timeChild('ansible-playbook', cmdFor(realPlaybook), { env: ansibleEnv, cwd: ROOT, timeoutMs: 600_000 });
    if (!playOk(probe)) {
      usingReal = false;
      fallbackWhy = `${real} did not run cleanly: ${`${probe.stdout}\n${probe.stderr}`.trim().split('\n').slice(-3).join(' / ').slice(0, 300)}`;
      log(`check mode: ${fallbackWhy}; using the fallback playbook`);
      writeVars();
    }
  }
  const cmd = cmdFor(usingReal ? realPlaybook : fallback);
  // The bundle alone gets what the playbook's task passes: check mode, and the report file
  // when the real playbook writes one.
  const direct = argsFile(
    'check-direct',
    { action: 'audit', config_file: env.confPath, expect: EXPECT, ...(usingReal ? { report_path: report } : {}) },
    { _ansible_check_mode: true },
  );
  log(`check mode: ansible-playbook ${cmd.join(' ')} vs the bundle alone, ${REPS.check} rounds over ${bdms} BDMs`);
  const play: number[] = [];
  const alone: number[] = [];
  for (let i = -1; i < REPS.check; i++) {
    const a = expectStatus(
      await timeChild('ansible-playbook', cmd, { env: ansibleEnv, cwd: ROOT, timeoutMs: 600_000 }),
      'ansible-playbook -C',
    );
    if (!playOk(a)) throw new Error(`ansible-playbook -C did not run cleanly:\n${a.stdout.slice(-2000)}`);
    if (!a.stdout.includes(`${bdms} volume BDMs audited`))
      throw new Error(`ansible-playbook -C: no "${bdms} volume BDMs audited" in its output:\n${a.stdout.slice(-1500)}`);
    const b = expectStatus(await timeChild(NODE, [BUNDLE, direct]), 'bundle audit');
    if (i < 0) continue;
    play.push(a.ms);
    alone.push(b.ms);
  }
  const p = summarize(play);
  const d = summarize(alone);
  const name = usingReal ? 'ansible/playbooks/audit.yml' : 'test/bench/audit-check.yml (fallback)';
  addSummary(
    '5 check',
    `ansible-playbook -C ${name}, ${bdms} BDMs`,
    p,
    'ms',
    fallbackWhy ? { note: `fallback: ${fallbackWhy.slice(0, 80)}` } : {},
  );
  addSummary('5 check', 'same audit, bundle alone (node bdm.cjs <argsfile>)', d, 'ms');
  const r = ratio(p, d);
  addRatio('5 check', 'ansible-playbook / bundle alone', r);
  sections.check_mode = { playbook: name, fallback_because: fallbackWhy, bdms, ansible_playbook_ms: p, bundle_alone_ms: d, ratio: r };
}

// ------------------------------------------------------------------------------------ 2. show

async function benchShow(env: NbbEnv, seeder: FleetSeeder): Promise<void> {
  const target = await seeder.addShowTarget();
  const ours = argsFile('show', {
    action: 'show',
    instance_uuid: target.instanceUuid,
    volume_id: target.volumeId,
    config_file: env.confPath,
  });
  const nm = [
    ...NOVA_MANAGE.slice(1),
    '--config-file',
    env.confPath,
    'volume_attachment',
    'show',
    target.instanceUuid,
    target.volumeId,
    '--json',
  ];
  const inDb = seeder.seeded.volumeBdms;
  log(
    `show: ${REPS.show} x (node -e 0, ours) with ${REPS.showNovaManage} x nova-manage interleaved; ${inDb} other volume BDMs in the cells`,
  );
  const floor: number[] = [];
  const mine: number[] = [];
  const theirs: number[] = [];
  const every = Math.max(1, Math.floor(REPS.show / REPS.showNovaManage));
  for (let i = -1; i < REPS.show; i++) {
    const a = expectStatus(await timeChild(NODE, ['-e', '0']), 'node -e 0');
    const b = expectStatus(await timeChild(NODE, [BUNDLE, ours]), 'our show');
    const shown = parseJson<'show'>(b.stdout, 'our show');
    if (shown.failed || shown.bdm?.volume_id !== target.volumeId) throw new Error(`our show: ${b.stdout.slice(0, 500)}`);
    let c;
    const nmRound = i < 0 || (i % every === every - 1 && theirs.length < REPS.showNovaManage);
    if (nmRound) {
      c = expectStatus(await timeChild(NOVA_MANAGE[0]!, nm, { timeoutMs: 120_000 }), 'nova-manage volume_attachment show');
      if (!c.stdout.includes(target.volumeId)) throw new Error(`nova-manage show printed no volume id: ${c.stdout.slice(0, 500)}`);
    }
    if (i < 0) continue;
    floor.push(a.ms);
    mine.push(b.ms);
    if (c) theirs.push(c.ms);
  }
  const f = summarize(floor);
  const o = summarize(mine);
  const t = summarize(theirs);
  addSummary('2 show', 'node -e 0 (floor)', f, 'ms');
  addSummary('2 show', 'ours: node bdm.cjs <argsfile>', o, 'ms');
  addSummary('2 show', 'nova-manage volume_attachment show --json', t, 'ms');
  const r1 = ratio(o, f);
  const r2 = ratio(t, o);
  addRatio('2 show', 'ours / floor', r1, { op: '<=', value: 1.5 });
  addRatio('2 show', 'nova-manage / ours', r2, { op: '>=', value: 20 });
  sections.show = {
    other_volume_bdms_in_cells: inDb,
    floor_ms: f,
    ours_ms: o,
    nova_manage_ms: t,
    ours_over_floor: r1,
    nova_manage_over_ours: r2,
  };
}

// ------------------------------------------------------------------------------------ 3. refresh

type Harness = typeof import('../interop/harness');

async function benchRefresh(harness: Harness): Promise<void> {
  // Only through the harness: the lab's own scripts touch the nbi_* databases, never this file.
  log('refresh: bringing up / checking the interop lab (up.sh is a no-op check when it runs) ...');
  let started = Date.now();
  const lab = await harness.upLab();
  const upMs = Date.now() - started;
  const memcached = /^\s*memcached_servers\s*=\s*(\S+)/m.exec(readFileSync(lab.cinderConf, 'utf8'))?.[1];
  labTokenCache = memcached
    ? `keystonemiddleware token cache on memcached ${memcached} (cinder.conf [keystone_authtoken] memcached_servers)`
    : 'NO token cache: cinder.conf has no memcached_servers (every request waits on Keystone)';
  const connector = harness.getConnectorJson();
  const pairs = REPS.refreshPairs;
  started = Date.now();
  const twins = await harness.seed({ count: 2 * pairs, vmState: 'stopped', stale: true });
  log(
    `refresh: lab ready in ${(upMs / 1000).toFixed(1)} s; seeded ${twins.length} stale stopped instances in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const ours: number[] = [];
  const theirs: number[] = [];
  const steps: Array<Array<{ step: string; ms: number; ok: boolean }>> = [];
  for (let k = 0; k < pairs; k++) {
    const mineTwin = twins[2 * k]!;
    const theirTwin = twins[2 * k + 1]!;
    const runMine = async () => {
      // As harness.runOurs does it (node bdm.cjs -, the JSON arguments on stdin), but with the
      // bench's copy of the bundle and timed from spawn to exit.
      const args = {
        action: 'refresh',
        instance_uuid: mineTwin.instance_uuid,
        volume_id: mineTwin.volume_id,
        connector_path: connector,
        config_file: lab.novaConf,
        require_libvirt: false,
        force: true,
      };
      const run = await timeChild(NODE, [BUNDLE, '-'], { input: JSON.stringify(args), timeoutMs: 240_000 });
      const result = parseJson<'refresh'>(run.stdout, 'our refresh');
      if (run.status !== 0 || result.failed || result.changed !== true)
        throw new Error(`our refresh failed: ${run.stdout.slice(0, 2000)}\n${run.stderr}`);
      ours.push(run.ms);
      steps.push(result.steps ?? []);
    };
    const runTheirs = async () => {
      const t0 = process.hrtime.bigint();
      const r = harness.novaManage(['volume_attachment', 'refresh', theirTwin.instance_uuid, theirTwin.volume_id, connector]);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`nova-manage refresh failed (${r.status}): ${r.stderr.split('\n').slice(-10).join('\n')}`);
      theirs.push(ms);
    };
    await inTurn(k, runMine, runTheirs);
    log(`refresh pair ${k + 1}/${pairs}: ours ${ours.at(-1)!.toFixed(0)} ms, nova-manage ${theirs.at(-1)!.toFixed(0)} ms`);
  }
  const o = summarize(ours);
  const t = summarize(theirs);
  addSummary('3 refresh', 'ours (force, stdin), end to end', o, 'ms');
  addSummary('3 refresh', 'nova-manage volume_attachment refresh', t, 'ms');
  const r = ratio(t, o);
  addRatio('3 refresh', 'nova-manage / ours', r, { op: '>=', value: 5 });
  // Where our time goes: each step's median over the pairs, then what lies outside the steps.
  const names = [...new Set(steps.flat().map((s) => s.step))];
  const perStep: Record<string, Summary> = {};
  for (const name of names) {
    perStep[name] = summarize(steps.map((run) => run.filter((s) => s.step === name).reduce((a, s) => a + s.ms, 0)));
    addSummary('3 refresh', `  step ${name}`, perStep[name]!, 'ms');
  }
  const outside = summarize(steps.map((run, i) => ours[i]! - run.reduce((a, s) => a + s.ms, 0)));
  addSummary('3 refresh', '  outside the steps (node start, args, nova.conf, connect, exit)', outside, 'ms');
  sections.refresh = {
    pairs,
    lab_up_ms: upMs,
    ours_ms: o,
    nova_manage_ms: t,
    nova_manage_over_ours: r,
    steps_ms: perStep,
    outside_steps_ms: outside,
    raw_steps: steps,
  };
}

/** Round k of an A-B comparison: A then B, then B then A, so neither side always runs right after the other's RabbitMQ/Cinder work. */
async function inTurn(k: number, a: () => Promise<void>, b: () => Promise<void>): Promise<void> {
  if (k % 2 === 0) {
    await a();
    await b();
  } else {
    await b();
    await a();
  }
}

// ------------------------------------------------------------------------------------ 6. fleet refresh

/** seed.py in FLEET_SEED_PROCS processes at once: `count` stale stopped instances on compute1, one v3 volume each. */
async function seedStale(harness: Harness, count: number): Promise<Awaited<ReturnType<Harness['seed']>>> {
  const procs = Math.min(FLEET_SEED_PROCS, count);
  const shares = Array.from({ length: procs }, (_, i) => Math.floor(count / procs) + (i < count % procs ? 1 : 0));
  const parts = await Promise.all(shares.map((n) => harness.seed({ count: n, vmState: 'stopped', stale: true })));
  return parts.flat();
}

type StepRow = { step: string; ms: number; ok: boolean };

/**
 * Fleet refresh on the lab: FLEET_SIZES stale BDMs (one per stopped instance) in one
 * `action: refresh` with `bdm_uuids` and `connectors` (compute1's from the real get_connector),
 * against single refreshes of stale BDMs and nova-manage refreshes measured in the same run.
 */
async function benchFleet(harness: Harness): Promise<void> {
  const S = '6 fleet';
  log('fleet: bringing up / checking the interop lab ...');
  const lab = await harness.upLab();
  if (!sections.refresh) {
    const memcached = /^\s*memcached_servers\s*=\s*(\S+)/m.exec(readFileSync(lab.cinderConf, 'utf8'))?.[1];
    labTokenCache = memcached
      ? `keystonemiddleware token cache on memcached ${memcached} (cinder.conf [keystone_authtoken] memcached_servers)`
      : 'NO token cache: cinder.conf has no memcached_servers (every request waits on Keystone)';
  }
  const connectorPath = harness.getConnectorJson();
  const connector = JSON.parse(readFileSync(connectorPath, 'utf8')) as Record<string, unknown>;
  const host = String(connector.host);
  const singles = REPS.refreshPairs;
  const total = singles * 2 + FLEET_SIZES.reduce((a, n) => a + n, 0);
  let started = Date.now();
  const seeded = await seedStale(harness, total);
  const seedS = (Date.now() - started) / 1000;
  log(
    `fleet: seeded ${seeded.length} stale stopped instances in ${seedS.toFixed(1)} s (${FLEET_SEED_PROCS} seed.py at once, ${(seedS / seeded.length).toFixed(1)} s per instance)`,
  );
  rows.push({
    section: S,
    measure: 'seeding the lab (seed.py, not timed work of ours)',
    unit: 'ms',
    n: seeded.length,
    median: (seedS * 1000) / seeded.length,
    note: `per instance; ${FLEET_SEED_PROCS} seed.py at once, ${seedS.toFixed(0)} s in all`,
  });
  const take = (n: number) => seeded.splice(0, n);

  // Baselines, interleaved: one single refresh of a stale BDM (no force), one nova-manage refresh.
  const single: number[] = [];
  const nm: number[] = [];
  const singleSteps: StepRow[][] = [];
  for (let k = 0; k < singles; k++) {
    const [mine, theirs] = take(2);
    const runMine = async () => {
      const args = {
        action: 'refresh',
        bdm_uuid: mine!.bdm_uuid,
        connector_path: connectorPath,
        config_file: lab.novaConf,
        require_libvirt: false,
      };
      const run = await timeChild(NODE, [BUNDLE, '-'], { input: JSON.stringify(args), timeoutMs: 240_000 });
      const result = parseJson<'refresh'>(run.stdout, 'single refresh');
      if (run.status !== 0 || result.failed || result.changed !== true)
        throw new Error(`single refresh failed: ${run.stdout.slice(0, 2000)}\n${run.stderr}`);
      single.push(run.ms);
      singleSteps.push(result.steps ?? []);
    };
    const runTheirs = async () => {
      const t0 = process.hrtime.bigint();
      const r = harness.novaManage(['volume_attachment', 'refresh', theirs!.instance_uuid, theirs!.volume_id, connectorPath]);
      if (r.status !== 0) throw new Error(`nova-manage refresh failed (${r.status}): ${r.stderr.split('\n').slice(-10).join('\n')}`);
      nm.push(Number(process.hrtime.bigint() - t0) / 1e6);
    };
    await inTurn(k, runMine, runTheirs);
    log(`fleet baseline ${k + 1}/${singles}: single refresh ${single.at(-1)!.toFixed(0)} ms, nova-manage ${nm.at(-1)!.toFixed(0)} ms`);
  }
  const one = summarize(single);
  const nmOne = summarize(nm);
  addSummary(S, 'one single refresh (stale BDM, no force)', one, 'ms');
  addSummary(S, 'one nova-manage volume_attachment refresh', nmOne, 'ms');

  const fleets: Record<string, unknown> = {};
  for (const n of FLEET_SIZES) {
    const twins = take(n);
    const args = {
      action: 'refresh',
      bdm_uuids: twins.map((t) => t.bdm_uuid),
      connectors: { [host]: connector },
      config_file: lab.novaConf,
      require_libvirt: false,
      max_parallel: FLEET_PARALLEL,
      per_host_parallel: FLEET_PARALLEL,
    };
    const run = await timeChild(NODE, [BUNDLE, '-'], { input: JSON.stringify(args), rss: true, timeoutMs: 1_200_000 });
    const result = parseJson<'fleet_refresh'>(run.stdout, `fleet refresh of ${n}`);
    const counts = result.counts;
    if (run.status !== 0 || result.failed || counts?.refreshed !== n)
      throw new Error(`fleet refresh of ${n}: ${String(result.msg ?? run.stdout.slice(0, 2000))}\n${run.stderr.slice(-2000)}`);
    const items = result.refreshed ?? [];
    const perBdm = summarize(items.map((i) => i.seconds * 1000));
    // Mean concurrency: the BDMs' own wall times added up, over the run's wall time.
    const meanParallel = items.reduce((a, i) => a + i.seconds * 1000, 0) / run.ms;
    const peak = typeof result.peak_parallel === 'number' ? result.peak_parallel : undefined;
    const label = `${n} BDMs`;
    rows.push({
      section: S,
      measure: `${label} in one fleet refresh: wall`,
      unit: 'ms',
      n: 1,
      median: run.ms,
      note: `max_parallel = per_host_parallel = ${FLEET_PARALLEL}, one compute host`,
    });
    // The targets: 10 BDMs in at most 2x one single refresh, 100 in at most 10x (other sizes: no target).
    const target = n === 10 ? 2 : n === 100 ? 10 : undefined;
    const over = run.ms / one.median;
    rows.push({
      section: S,
      measure: `${label}: wall / one single refresh`,
      unit: 'x',
      median: over,
      verdict:
        target === undefined
          ? 'no target (targets are for 10 and 100)'
          : `target <= ${target}x: ${over <= target ? 'met' : `MISSED (${(over / target).toFixed(2)}x off)`}`,
    });
    addSummary(S, `${label}: per-BDM time inside the run (refreshed[].seconds)`, perBdm, 'ms');
    rows.push({
      section: S,
      measure: `${label}: concurrency reached`,
      unit: '',
      median: Number(meanParallel.toFixed(2)),
      note: `mean (sum of per-BDM times / wall)${peak !== undefined ? `; peak ${peak} at once` : ''}`,
    });
    if (run.rssKiB !== undefined)
      rows.push({
        section: S,
        measure: `${label}: peak RSS`,
        unit: 'MiB',
        n: 1,
        median: run.rssKiB / 1024,
        note: run.cpuS !== undefined ? `CPU ${run.cpuS.toFixed(2)} s` : undefined,
      });
    const extrapolated = n * nmOne.median;
    rows.push({
      section: S,
      measure: `${label}: nova-manage equivalent (${n} x its measured median)`,
      unit: 'ms',
      median: extrapolated,
      note: 'EXTRAPOLATED, not run',
    });
    rows.push({ section: S, measure: `${label}: nova-manage loop / ours`, unit: 'x', median: extrapolated / run.ms, note: 'extrapolated' });
    const stepNames = [...new Set(items.flatMap((i) => (i.steps ?? []).map((s) => s.step)))];
    const perStep: Record<string, Summary> = {};
    for (const name of stepNames) {
      perStep[name] = summarize(items.map((i) => (i.steps ?? []).filter((s) => s.step === name).reduce((a, s) => a + s.ms, 0)));
      addSummary(S, `  ${label}: step ${name} (median over BDMs)`, perStep[name]!, 'ms');
    }
    if (typeof result.plan_seconds === 'number') {
      const requests =
        typeof result.plan_cinder_requests === 'number' ? `; ${result.plan_cinder_requests} Cinder requests (${n} BDMs)` : '';
      rows.push({
        section: S,
        measure: `  ${label}: plan (select, inspect every BDM)`,
        unit: 'ms',
        n: 1,
        median: result.plan_seconds * 1000,
        note: `plan_seconds${requests}`,
      });
    }
    fleets[n] = {
      wall_ms: run.ms,
      over_single: over,
      per_bdm_ms: perBdm,
      mean_parallel: meanParallel,
      peak_parallel: peak,
      peak_rss_kib: run.rssKiB,
      cpu_s: run.cpuS,
      nova_manage_extrapolated_ms: extrapolated,
      steps_ms: perStep,
      plan_seconds: result.plan_seconds,
      plan_cinder_requests: result.plan_cinder_requests,
    };
    log(
      `fleet ${label}: ${(run.ms / 1000).toFixed(1)} s = ${over.toFixed(2)}x one single refresh, mean concurrency ${meanParallel.toFixed(1)}, peak RSS ${((run.rssKiB ?? 0) / 1024).toFixed(0)} MiB`,
    );
  }
  const singleStepNames = [...new Set(singleSteps.flat().map((s) => s.step))];
  const singleStepsMs: Record<string, Summary> = {};
  for (const name of singleStepNames)
    singleStepsMs[name] = summarize(singleSteps.map((r) => r.filter((s) => s.step === name).reduce((a, s) => a + s.ms, 0)));
  sections.fleet = {
    seeded_s: seedS,
    seed_procs: FLEET_SEED_PROCS,
    parallel: FLEET_PARALLEL,
    single_ms: one,
    nova_manage_ms: nmOne,
    single_steps_ms: singleStepsMs,
    fleets,
  };
}

// ------------------------------------------------------------------------------------ main

const want = (s: string) => SECTIONS.includes(s);

async function main(): Promise<void> {
  if (!existsSync(REPO_BUNDLE)) throw new Error(`${REPO_BUNDLE} is missing: run npm run build`);
  mkdirSync(MODULES_DIR, { recursive: true });
  copyFileSync(REPO_BUNDLE, BUNDLE);
  chmodSync(BUNDLE, 0o755);
  const started = new Date();
  const facts = machineFacts();
  facts.bundle_sha256 = createHash('sha256').update(readFileSync(BUNDLE)).digest('hex').slice(0, 16);
  // Loaded now, while dist/ is surely there (another tier's pretest may wipe dist/ later).
  const harness =
    want('refresh') || want('fleet') ? ((await import('../interop/harness')) as typeof import('../interop/harness')) : undefined;
  const errors: Record<string, string> = {};
  const guarded = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      errors[name] = msg;
      rows.push({ section: name, measure: 'FAILED', unit: '', note: msg.split('\n')[0]!.slice(0, 160) });
      log(`${name} FAILED: ${msg}`);
    }
  };

  if (want('cold')) await guarded('1 cold', benchCold);
  let env: NbbEnv | undefined;
  let seeder: FleetSeeder | undefined;
  if (want('audit') || want('check') || want('show')) {
    env = ensureSchema();
    seeder = await FleetSeeder.open(env.databases.api, ensureCells(env, AUDIT_CELLS), PREFIX);
    await seeder.wipe();
  }
  if (want('audit') || want('check')) await guarded('4 audit', () => benchAuditAndCheck(env!, seeder!, want('audit'), want('check')));
  if (want('show')) await guarded('2 show', () => benchShow(env!, seeder!));
  await seeder?.close();
  if (want('online')) {
    await guarded('7 online', async () => {
      ensureSchema();
      await benchOnline(
        {
          node: NODE,
          bundle: BUNDLE,
          stateDir: STATE_DIR,
          prefix: PREFIX,
          log,
          sections,
          addSummary: (section, measure, s, unit, extra) => addSummary(section, measure, s, unit, extra),
          addRatio: (section, measure, r) => void addRatio(section, measure, r),
          addRow: (section, measure, unit, median, note) => rows.push({ section, measure, unit, n: 1, median, ...(note ? { note } : {}) }),
        },
        { pairs: REPS.onlinePairs, fleetSizes: ONLINE_FLEET_SIZES, parallel: FLEET_PARALLEL },
      );
    });
  }
  if (harness && want('refresh')) await guarded('3 refresh', () => benchRefresh(harness));
  if (harness && want('fleet')) await guarded('6 fleet', () => benchFleet(harness));

  facts.loadavg_at_end = loadavg().map((l) => Number(l.toFixed(2)));
  const order = ['1', '2', '3', '4', '5', '6', '7'];
  rows.sort((a, b) => order.indexOf(a.section[0]!) - order.indexOf(b.section[0]!));
  const header = [
    `nova-bdm bench ${started.toISOString()}  (${Math.round((Date.now() - started.getTime()) / 1000)} s)`,
    `machine: ${facts.nproc} CPUs (${facts.cpu_model}), ${facts.memory_mib} MiB RAM, node ${facts.node}, kernel ${facts.kernel}`,
    `         MariaDB ${facts.mariadb}, python3-nova ${facts.python3_nova}, ansible-core ${facts.ansible_core}; load average ${JSON.stringify(facts.loadavg_at_start)} at start, ${JSON.stringify(facts.loadavg_at_end)} at end`,
    `lab:     ${labTokenCache}`,
    `code:    ${facts.git_commit}${facts.git_dirty_files ? ` + ${facts.git_dirty_files} uncommitted file(s) in src/` : ''}; repetitions ${JSON.stringify(REPS)}`,
  ].join('\n');
  const output = `${header}\n\n${table()}\n`;
  process.stdout.write(output);
  writeFileSync(
    RESULTS,
    `${JSON.stringify({ started: started.toISOString(), machine: facts, lab_token_cache: labTokenCache, repetitions: REPS, rows, sections, errors }, null, 2)}\n`,
  );
  log(`wrote ${RESULTS}`);
  if (Object.keys(errors).length > 0) process.exitCode = 1;
}

main().catch((err) => {
  log(`FAILED: ${err instanceof Error ? err.stack : err}`);
  process.exit(1);
});
