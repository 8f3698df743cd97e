import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createConnection, type Connection } from 'mysql2/promise';
import { NEW_MONS } from './fleet-seed';
import { expectStatus, ratio, summarize, timeChild, type Summary } from './measure';

// Section 4 (check_cinder against a REAL Cinder): the audit's Cinder listings read one page
// after another (cinder_concurrency 1) and side by side (the default), against the cinder-api of
// an interop lab (test/interop/lab) named by BENCH_LAB_CINDER (its state dir). The lab's Cinder
// database gets one volume and one attached attachment per v3 BDM of the bench's fleet (same
// ids, the instance's host, the new monitors), cloned by SQL from one volume and attachment that
// the lab's seed.py made through Cinder's own API; they are deleted again at the end. Use a lab
// of its own (a second, Ceph-less one: see README.md), never one another run is using.

export interface LabCinderContext {
  node: string;
  bundle: string;
  stateDir: string;
  reps: number;
  log(msg: string): void;
  addSummary(section: string, measure: string, s: Summary, unit: 'ms' | 'MiB' | 'x' | '', extra?: { note?: string }): void;
  addRatio(section: string, measure: string, r: ReturnType<typeof ratio>): void;
  addRow(section: string, measure: string, unit: 'ms' | 'MiB' | 'x' | '', median: number, note?: string): void;
  sections: Record<string, unknown>;
}

export interface LabFleet {
  label: string;
  /** The bench's nova.conf (its databases). */
  confPath: string;
  expect: unknown;
  scanned: number;
  stale: number;
  attachments: Array<{ attachment_id: string; volume_id: string; instance_uuid: string; host: string; connection_info: string | null }>;
}

const S = '4 audit';
/** display_name of the cloned volumes: what the section deletes again. */
const MARK = 'nova-bdm-bench-clone';

/** Why the section cannot run, or undefined when the lab named by BENCH_LAB_CINDER is up. */
export function labCinderSkipReason(labDir: string | undefined): string | undefined {
  if (!labDir) return 'BENCH_LAB_CINDER is not set (the state dir of an interop lab of its own; see test/bench/README.md)';
  if (!existsSync(join(labDir, '.openstack-lab'))) return `${labDir} is not an interop lab state dir`;
  const pidFile = join(labDir, 'run', 'cinder-api.pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : NaN;
  if (!Number.isInteger(pid) || !existsSync(`/proc/${pid}`)) return `no cinder-api running for the lab in ${labDir} (run its up.sh)`;
  return undefined;
}

function labSettings(labDir: string): LabSettings {
  const lab = resolve(__dirname, '../../../test/interop/lab');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OPENSTACK_LAB_')) env[k] = v;
  const r = spawnSync('bash', [join(lab, 'env.sh'), '--json'], { env: { ...env, OPENSTACK_LAB_DIR: labDir }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`env.sh --json for ${labDir}: ${r.stderr.slice(-500)}`);
  return JSON.parse(r.stdout) as Record<string, string>;
}

/** user+system CPU seconds of a process group (the lab's cinder-api and its workers), from /proc. */
function groupCpuSeconds(pgid: number): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue; // pgrp
      total += (Number(fields[11]) + Number(fields[12])) / tick; // utime, stime
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** The lab nova.conf's Cinder sections only (its databases are not the bench's). */
function cinderSectionsOf(novaConf: string): string {
  const keep = new Set(['cinder', 'service_user', 'keystone_authtoken']);
  let on = false;
  const out: string[] = [];
  for (const line of readFileSync(novaConf, 'utf8').split('\n')) {
    const section = /^\s*\[([^\]]+)\]/.exec(line)?.[1];
    if (section !== undefined) on = keep.has(section.toLowerCase());
    if (on) out.push(line);
  }
  return `${out.join('\n')}\n`;
}

type LabSettings = Record<string, string>;

async function seedLabCinder(db: Connection, cinderDb: string, settings: LabSettings, fleet: LabFleet, log: (m: string) => void) {
  await unseed(db, cinderDb);
  // One volume attached through Cinder's own API (seed.py): the template of every clone.
  const seed = spawnSync(settings.OPENSTACK_LAB_PYTHON!, [settings.OPENSTACK_LAB_SEED!, '--count', '1'], {
    env: { ...process.env, OPENSTACK_LAB_DIR: settings.OPENSTACK_LAB_DIR },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (seed.status !== 0) throw new Error(`seed.py: ${seed.stderr.slice(-800)}`);
  const [made] = JSON.parse(seed.stdout) as Array<{ volume_id: string; attachment_id: string }>;
  const q = (name: string) => `\`${cinderDb}\`.\`${name}\``;
  const [vcols] = await db.query(`SHOW COLUMNS FROM ${q('volumes')}`);
  const [acols] = await db.query(`SHOW COLUMNS FROM ${q('volume_attachment')}`);
  const names = (cols: unknown) => (cols as Array<{ Field: string }>).map((c) => c.Field);
  const volumeCols = names(vcols).filter((c) => !['id', 'display_name', 'status', 'attach_status'].includes(c));
  const setByUs = ['id', 'volume_id', 'instance_uuid', 'attached_host', 'connection_info', 'attach_status'];
  const attachCols = names(acols).filter((c) => !setByUs.includes(c));
  const list = (cols: string[], alias = '') => cols.map((c) => `${alias}\`${c}\``).join(', ');
  const started = Date.now();
  for (let i = 0; i < fleet.attachments.length; i += 1000) {
    const part = fleet.attachments.slice(i, i + 1000);
    const ids = part.map((a) => [a.volume_id]);
    await db.query(`CREATE TEMPORARY TABLE IF NOT EXISTS nbb_ids (volume_id VARCHAR(36) PRIMARY KEY)`);
    await db.query(`DELETE FROM nbb_ids`);
    await db.query(`INSERT INTO nbb_ids (volume_id) VALUES ?`, [ids]);
    await db.query(
      `INSERT INTO ${q('volumes')} (id, display_name, status, attach_status, ${list(volumeCols)})
       SELECT n.volume_id, ?, 'in-use', 'attached', ${list(volumeCols, 'v.')}
       FROM nbb_ids n JOIN ${q('volumes')} v ON v.id = ?`,
      [MARK, made!.volume_id],
    );
    const rows = part.map((a) => {
      type Stored = { driver_volume_type: string; data: Record<string, unknown> };
      const stored = a.connection_info ? (JSON.parse(a.connection_info) as Stored) : undefined;
      // What cinder-volume hands out after the monitor move: the new monitors, flat, with its attachment id.
      const info = stored
        ? { ...stored.data, ...NEW_MONS, driver_volume_type: stored.driver_volume_type, attachment_id: a.attachment_id }
        : {};
      return [a.attachment_id, a.volume_id, a.instance_uuid, a.host, JSON.stringify(info), 'attached'];
    });
    await db.query(
      `CREATE TEMPORARY TABLE IF NOT EXISTS nbb_att (id VARCHAR(36), volume_id VARCHAR(36), instance_uuid VARCHAR(36),
       attached_host VARCHAR(255), connection_info TEXT, attach_status VARCHAR(255))`,
    );
    await db.query(`DELETE FROM nbb_att`);
    await db.query(`INSERT INTO nbb_att VALUES ?`, [rows]);
    await db.query(
      `INSERT INTO ${q('volume_attachment')} (${list(setByUs)}, ${list(attachCols)})
       SELECT ${list(setByUs, 'n.')}, ${list(attachCols, 't.')}
       FROM nbb_att n JOIN ${q('volume_attachment')} t ON t.id = ?`,
      [made!.attachment_id],
    );
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  log(`lab Cinder: ${fleet.attachments.length} volumes and attachments cloned into ${cinderDb} in ${seconds} s`);
}

async function unseed(db: Connection, cinderDb: string): Promise<void> {
  const q = (name: string) => `\`${cinderDb}\`.\`${name}\``;
  const attachments = q('volume_attachment');
  await db.query(`DELETE a FROM ${attachments} a JOIN ${q('volumes')} v ON v.id = a.volume_id WHERE v.display_name = ?`, [MARK]);
  await db.query(`DELETE FROM ${q('volumes')} WHERE display_name = ?`, [MARK]);
}

/**
 * The fleet audited with check_cinder against the lab's cinder-api, cinder_concurrency 1 (each
 * listing's pages one after another, by marker) and the default 8 (4 pages of each in flight,
 * by offset), interleaved with the DB-only audit. Also the cinder-api's own CPU over each run.
 */
export async function benchAuditLabCinder(ctx: LabCinderContext, labDir: string, fleet: LabFleet, dbOnlyArgs: string): Promise<void> {
  const settings = labSettings(labDir);
  const cinderDb = settings.OPENSTACK_LAB_DB_CINDER!;
  const apiPid = Number(readFileSync(join(labDir, 'run', 'cinder-api.pid'), 'utf8').trim());
  const cinderConfText = readFileSync(settings.OPENSTACK_LAB_CINDER_CONF!, 'utf8');
  const maxLimit = /^\s*osapi_max_limit\s*=\s*(\d+)/m.exec(cinderConfText)?.[1] ?? '1000 (default)';
  const db = await createConnection({ host: '127.0.0.1', user: 'root', database: cinderDb });
  try {
    await seedLabCinder(db, cinderDb, settings, fleet, ctx.log);
    const cinderConf = join(ctx.stateDir, 'lab-cinder.conf');
    writeFileSync(cinderConf, cinderSectionsOf(settings.OPENSTACK_LAB_NOVA_CONF!), { mode: 0o600 });
    const args = (name: string, extra: Record<string, unknown>) => {
      const path = join(ctx.stateDir, `${name}.args.json`);
      const config_file = [fleet.confPath, cinderConf];
      writeFileSync(path, JSON.stringify({ action: 'audit', config_file, expect: fleet.expect, check_cinder: true, ...extra }));
      return path;
    };
    const variants = [
      { key: 'db_only', label: 'DB-only (paired with the next lines)', args: dbOnlyArgs, cinder: false },
      {
        key: 'serial',
        label: 'check_cinder, REAL Cinder, pages one after another (cinder_concurrency 1)',
        args: args('audit-lab-1', { cinder_concurrency: 1 }),
        cinder: true,
      },
      {
        key: 'side_by_side',
        label: 'check_cinder, REAL Cinder, pages side by side (cinder_concurrency 8, the default)',
        args: args('audit-lab-8', {}),
        cinder: true,
      },
    ] as const;
    ctx.log(`audit with check_cinder against the lab's Cinder (${labDir}): ${fleet.attachments.length} attachments, ${ctx.reps} rounds`);
    const empty = () => ({ wall: [] as number[], cpu: [] as number[], cinderCpu: [] as number[], rss: [] as number[], requests: NaN });
    const samples = Object.fromEntries(variants.map((v) => [v.key, empty()]));
    for (let i = -1; i < ctx.reps; i++) {
      for (const v of variants) {
        const before = groupCpuSeconds(apiPid);
        const run = expectStatus(await timeChild(ctx.node, [ctx.bundle, v.args], { rss: true, timeoutMs: 900_000 }), v.label);
        const cinderCpu = groupCpuSeconds(apiPid) - before;
        type Totals = { scanned: number; stale: number; cinder_requests?: number };
        const result = JSON.parse(run.stdout) as { failed?: boolean; msg: string; totals: Totals };
        const { scanned, stale } = result.totals ?? {};
        if (result.failed || scanned !== fleet.scanned || stale !== fleet.stale) {
          throw new Error(`${v.label}: scanned ${scanned}, stale ${stale} (want ${fleet.scanned}, ${fleet.stale}): ${result.msg}`);
        }
        const s = samples[v.key]!;
        s.requests = result.totals.cinder_requests ?? NaN;
        if (i < 0) continue;
        s.wall.push(run.ms);
        s.cpu.push((run.cpuS ?? NaN) * 1000);
        s.cinderCpu.push(cinderCpu * 1000);
        s.rss.push((run.rssKiB ?? NaN) / 1024);
      }
    }
    const out: Record<string, unknown> = { lab: labDir, attachments: fleet.attachments.length, osapi_max_limit: maxLimit };
    const walls: Record<string, Summary> = {};
    for (const v of variants) {
      const s = samples[v.key]!;
      walls[v.key] = summarize(s.wall);
      ctx.addSummary(S, `${fleet.label} ${v.label}: wall`, walls[v.key]!, 'ms');
      ctx.addSummary(S, `${fleet.label}   CPU of the audit process (user+sys)`, summarize(s.cpu), 'ms');
      if (v.cinder) {
        ctx.addSummary(S, `${fleet.label}   CPU of the lab's cinder-api (its process group)`, summarize(s.cinderCpu), 'ms');
        const note = `${fleet.attachments.length} attachments; osapi_max_limit ${maxLimit}`;
        ctx.addRow(S, `${fleet.label}   Cinder requests per audit`, '', s.requests, note);
      }
      ctx.addSummary(S, `${fleet.label}   peak RSS`, summarize(s.rss), 'MiB');
      out[v.key] = {
        wall_ms: walls[v.key],
        cpu_ms: summarize(s.cpu),
        cinder_api_cpu_ms: summarize(s.cinderCpu),
        peak_rss_mib: summarize(s.rss),
        cinder_requests: s.requests,
      };
    }
    ctx.addRatio(S, `${fleet.label}: REAL Cinder, side by side / one after another`, ratio(walls.side_by_side!, walls.serial!));
    ctx.addRatio(S, `${fleet.label}: REAL Cinder, side by side / DB-only`, ratio(walls.side_by_side!, walls.db_only!));
    ctx.sections.audit_lab_cinder = out;
  } finally {
    await unseed(db, cinderDb).catch((err: Error) => ctx.log(`lab Cinder: removing the clones failed: ${err.message}`));
    await db.end();
  }
}
