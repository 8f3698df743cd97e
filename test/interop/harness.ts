import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as mysql from 'mysql2/promise';

// The interop tier's access to the lab in test/interop/lab/: the REAL Keystone, Placement,
// Cinder and nova-compute/-conductor (Debian 12 packages) on 127.0.0.1, and the real
// nova-manage against the lab's nova.conf. Settings are the lab's OPENSTACK_LAB_* environment
// variables (defaults: state dir /var/tmp/nova-bdm-interop, DB prefix nbi_, vhost nbi).
// Needs root (up.sh installs packages and uses MariaDB root through its socket).

/** The repository root: the folder holding package.json, above this file (src or dist). */
function findRoot(from: string): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'interop', 'lab', 'up.sh'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`interop harness: no repository root (package.json + test/interop/lab) above ${from}`);
    dir = up;
  }
}

export const ROOT = findRoot(__dirname);
export const LAB_SRC = join(ROOT, 'test', 'interop', 'lab');
export const BUNDLE = join(ROOT, 'ansible', 'plugins', 'modules', 'bdm.cjs');
/** Debian's python: nova/cinder/keystone live there (the PATH python3 may be a pyenv one). */
export const LAB_PYTHON = '/usr/bin/python3';

/** What `env.sh --json` prints (the names up.sh records in the state dir's lab.env). */
export interface LabEnv {
  dir: string;
  dbPrefix: string;
  vhost: string;
  novaConf: string;
  cinderConf: string;
  novaManage: string;
  seedPath: string;
  python: string;
  logDir: string;
  /** Logical name (keystone, cinder, nova_api, nova, nova_cell0, placement) -> database name. */
  databases: Record<'keystone' | 'cinder' | 'nova_api' | 'nova' | 'nova_cell0' | 'placement', string>;
  dbUser: string;
  dbPassword: string;
  /** mysql+pymysql://user:pw@127.0.0.1 (no database). */
  dbUrl: string;
  novaDbUrl: string;
  novaApiDbUrl: string;
  cinderDbUrl: string;
  transportUrl: string;
  keystoneUrl: string;
  cinderUrl: string;
  placementUrl: string;
  /** Every variable env.sh printed, verbatim (OPENSTACK_LAB_* and OS_*). */
  raw: Record<string, string>;
}

let labEnv: LabEnv | undefined;

function runAsync(cmd: string, args: string[], options: { input?: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** env.sh --json, parsed. */
export function readLabEnv(): LabEnv {
  const r = spawnSync('bash', [join(LAB_SRC, 'env.sh'), '--json'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`env.sh --json failed (${r.status}): ${r.stderr}`);
  const raw = JSON.parse(r.stdout) as Record<string, string>;
  const v = (name: string): string => {
    const value = raw[name];
    if (value === undefined) throw new Error(`env.sh --json printed no ${name}`);
    return value;
  };
  return {
    dir: v('OPENSTACK_LAB_DIR'),
    dbPrefix: v('OPENSTACK_LAB_DB_PREFIX'),
    vhost: v('OPENSTACK_LAB_VHOST'),
    novaConf: v('OPENSTACK_LAB_NOVA_CONF'),
    cinderConf: v('OPENSTACK_LAB_CINDER_CONF'),
    novaManage: v('OPENSTACK_LAB_NOVA_MANAGE'),
    seedPath: v('OPENSTACK_LAB_SEED'),
    python: v('OPENSTACK_LAB_PYTHON'),
    logDir: v('OPENSTACK_LAB_LOG_DIR'),
    databases: {
      keystone: v('OPENSTACK_LAB_DB_KEYSTONE'),
      cinder: v('OPENSTACK_LAB_DB_CINDER'),
      nova_api: v('OPENSTACK_LAB_DB_NOVA_API'),
      nova: v('OPENSTACK_LAB_DB_NOVA'),
      nova_cell0: v('OPENSTACK_LAB_DB_NOVA_CELL0'),
      placement: v('OPENSTACK_LAB_DB_PLACEMENT'),
    },
    dbUser: v('OPENSTACK_LAB_DB_USER'),
    dbPassword: v('OPENSTACK_LAB_DB_PASSWORD'),
    dbUrl: v('OPENSTACK_LAB_DB_URL'),
    novaDbUrl: v('OPENSTACK_LAB_NOVA_DB_URL'),
    novaApiDbUrl: v('OPENSTACK_LAB_NOVA_API_DB_URL'),
    cinderDbUrl: v('OPENSTACK_LAB_CINDER_DB_URL'),
    transportUrl: v('OPENSTACK_LAB_TRANSPORT_URL'),
    keystoneUrl: v('OPENSTACK_LAB_KEYSTONE_URL'),
    cinderUrl: v('OPENSTACK_LAB_CINDER_URL'),
    placementUrl: v('OPENSTACK_LAB_PLACEMENT_URL'),
    raw,
  };
}

function env(): LabEnv {
  labEnv ??= readLabEnv();
  return labEnv;
}

/**
 * Runs up.sh (idempotent: a no-op check when the lab already runs; `fresh` rebuilds it), then
 * env.sh --json. Throws with the tail of up.sh's output (its last line names the failed
 * component) when the lab does not come up.
 */
export async function upLab(options: { fresh?: boolean } = {}): Promise<LabEnv> {
  let r = await runAsync('bash', [join(LAB_SRC, 'up.sh'), ...(options.fresh ? ['--fresh'] : [])], { timeoutMs: 1_500_000 });
  if (r.status !== 0 && /run down\.sh first/.test(r.stdout + r.stderr)) {
    // A lab started from another checkout (other paths) is still running: restart it from this one.
    downLab();
    r = await runAsync('bash', [join(LAB_SRC, 'up.sh'), ...(options.fresh ? ['--fresh'] : [])], { timeoutMs: 1_500_000 });
  }
  if (r.status !== 0) throw new Error(`test/interop/lab/up.sh failed (exit ${r.status}):\n${tail(`${r.stdout}\n${r.stderr}`)}`);
  labEnv = readLabEnv();
  return labEnv;
}

/** down.sh [--purge]: stops the lab's services (MariaDB and RabbitMQ stay up). */
export function downLab(options: { purge?: boolean } = {}): void {
  const r = spawnSync('bash', [join(LAB_SRC, 'down.sh'), ...(options.purge ? ['--purge'] : [])], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`down.sh failed (${r.status}): ${r.stdout}${r.stderr}`);
  labEnv = undefined;
}

export interface Seeded {
  instance_uuid: string;
  volume_id: string;
  bdm_uuid: string;
  attachment_id: string | null;
  connection_info: unknown;
}

/** seed.py: instances in cell1 on compute1, each with a real Cinder volume attached the way nova-compute does it. */
export async function seed(options: { legacy?: boolean; count?: number; vmState?: string; stale?: boolean; locked?: boolean } = {}): Promise<Seeded[]> {
  const e = env();
  const args = [e.seedPath, '--count', String(options.count ?? 1), '--vm-state', options.vmState ?? 'stopped'];
  if (options.legacy) args.push('--legacy');
  if (options.stale) args.push('--stale');
  if (options.locked) args.push('--locked');
  const r = await runAsync(e.python, args, { timeoutMs: 300_000 });
  if (r.status !== 0) throw new Error(`seed.py ${args.slice(1).join(' ')} failed (exit ${r.status}):\n${tail(r.stderr)}`);
  const rows = JSON.parse(r.stdout) as Array<Seeded & Record<string, unknown>>;
  return rows.map((x) => ({
    instance_uuid: x.instance_uuid,
    volume_id: x.volume_id,
    bdm_uuid: x.bdm_uuid,
    attachment_id: x.attachment_id ?? null,
    connection_info: x.connection_info ?? null,
  }));
}

/** The REAL nova-manage (python3-nova 26) with the lab's nova.conf (the lab's wrapper script). */
export function novaManage(args: string[], timeoutMs = 240_000): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(env().novaManage, args, { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, OPENSTACK_LAB_DIR: env().dir } });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

let connectorPath: string | undefined;

/**
 * A connector file written from the real `nova-manage volume_attachment get_connector --json`
 * (what an operator would hand to refresh). Made once per process.
 */
export function getConnectorJson(): string {
  if (connectorPath && existsSync(connectorPath)) return connectorPath;
  const r = novaManage(['volume_attachment', 'get_connector', '--json']);
  if (r.status !== 0) throw new Error(`nova-manage volume_attachment get_connector --json failed (${r.status}): ${r.stdout}\n${tail(r.stderr)}`);
  const text = r.stdout.trim();
  JSON.parse(text); // must be one JSON object, nothing else on stdout
  const dir = join(env().dir, 'state', 'connectors');
  mkdirSync(dir, { recursive: true });
  connectorPath = join(dir, 'connector.json');
  writeFileSync(connectorPath, `${text}\n`);
  return connectorPath;
}

async function withDb<T>(database: string, fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const e = env();
  const c = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: e.dbUser, password: e.dbPassword, database, dateStrings: true });
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function rows<T>(c: mysql.Connection, sql: string, params: unknown[]): Promise<T[]> {
  const [result] = await c.query(sql, params);
  return result as T[];
}

export interface NovaRows {
  instance: { locked: boolean; locked_by: string | null; vm_state: string | null; task_state: string | null } | null;
  system_metadata: Array<{ key: string; value: string | null }>;
  /** Soft-deleted system_metadata rows (deleted != 0), as (key, value). */
  system_metadata_deleted: Array<{ key: string; value: string | null }>;
  block_device_mapping: Array<{ volume_id: string | null; device_name: string | null; attachment_id: string | null; connection_info: unknown }>;
  instance_actions: Array<{
    action: string;
    request_id: string;
    start_time: boolean;
    finish_time: boolean;
    message: string | null;
    events: Array<{ event: string; result: string | null; host: string | null; start_time: boolean; finish_time: boolean }>;
  }>;
}

/**
 * The cell1 rows of one instance (the lab has one cell): instances (locked, locked_by),
 * instance_system_metadata (key, value), the volume BDMs (attachment_id, connection_info
 * parsed), instance_actions (start_time/finish_time as "is set") with their events.
 */
export async function dumpNovaRows(instanceUuid: string): Promise<NovaRows> {
  return withDb(env().databases.nova, async (c) => {
    const inst = await rows<{ locked: number | null; locked_by: string | null; vm_state: string | null; task_state: string | null }>(
      c,
      'SELECT locked, locked_by, vm_state, task_state FROM instances WHERE uuid = ? AND deleted = 0',
      [instanceUuid],
    );
    const meta = await rows<{ key: string; value: string | null; deleted: number }>(
      c,
      'SELECT `key`, value, deleted FROM instance_system_metadata WHERE instance_uuid = ? ORDER BY `key`, id',
      [instanceUuid],
    );
    const bdms = await rows<{ volume_id: string | null; device_name: string | null; attachment_id: string | null; connection_info: string | null }>(
      c,
      "SELECT volume_id, device_name, attachment_id, connection_info FROM block_device_mapping WHERE instance_uuid = ? AND deleted = 0 AND destination_type = 'volume' ORDER BY id",
      [instanceUuid],
    );
    const actions = await rows<{ id: number; action: string; request_id: string; start_time: string | null; finish_time: string | null; message: string | null }>(
      c,
      'SELECT id, action, request_id, start_time, finish_time, message FROM instance_actions WHERE instance_uuid = ? AND deleted = 0 ORDER BY id',
      [instanceUuid],
    );
    const events = actions.length
      ? await rows<{ action_id: number; event: string; result: string | null; host: string | null; start_time: string | null; finish_time: string | null }>(
          c,
          `SELECT action_id, event, result, host, start_time, finish_time FROM instance_actions_events WHERE action_id IN (${actions.map(() => '?').join(',')}) AND deleted = 0 ORDER BY id`,
          actions.map((a) => a.id),
        )
      : [];
    const first = inst[0];
    return {
      instance: first ? { locked: Boolean(first.locked), locked_by: first.locked_by, vm_state: first.vm_state, task_state: first.task_state } : null,
      system_metadata: meta.filter((m) => m.deleted === 0).map(({ key, value }) => ({ key, value })),
      system_metadata_deleted: meta.filter((m) => m.deleted !== 0).map(({ key, value }) => ({ key, value })),
      block_device_mapping: bdms.map((b) => ({
        volume_id: b.volume_id,
        device_name: b.device_name,
        attachment_id: b.attachment_id,
        connection_info: b.connection_info === null ? null : (JSON.parse(b.connection_info) as unknown),
      })),
      instance_actions: actions.map((a) => ({
        action: a.action,
        request_id: a.request_id,
        start_time: a.start_time !== null,
        finish_time: a.finish_time !== null,
        message: a.message,
        events: events
          .filter((ev) => ev.action_id === a.id)
          .map((ev) => ({ event: ev.event, result: ev.result, host: ev.host, start_time: ev.start_time !== null, finish_time: ev.finish_time !== null })),
      })),
    };
  });
}

// ---------------------------------------------------------------- Keystone + Cinder API

interface Token {
  token: string;
  projectId: string;
  expires: number;
}
const tokens = new Map<string, Token>();

/** A project-scoped token (cached: this Keystone has no cache, each issue costs ~0.7 s). */
export async function keystoneToken(user = 'admin', project = user === 'admin' ? 'admin' : 'service'): Promise<Token> {
  const key = `${user}/${project}`;
  const cached = tokens.get(key);
  if (cached && cached.expires > Date.now() + 60_000) return cached;
  const res = await fetch(`${env().keystoneUrl}/auth/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password: user } } },
        scope: { project: { name: project, domain: { id: 'default' } } },
      },
    }),
  });
  if (res.status !== 201) throw new Error(`Keystone token for ${key}: HTTP ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { token: { project: { id: string }; expires_at: string } };
  const token = { token: res.headers.get('x-subject-token') ?? '', projectId: body.token.project.id, expires: Date.parse(body.token.expires_at) };
  tokens.set(key, token);
  return token;
}

/** One Cinder v3 API call (path below /v3/{project_id}), with a Keystone token and a microversion. */
export async function cinderApi(
  method: string,
  path: string,
  options: { user?: string; project?: string; microversion?: string; serviceToken?: boolean; body?: unknown } = {},
): Promise<{ status: number; body: unknown }> {
  const t = await keystoneToken(options.user ?? 'admin', options.project);
  const headers: Record<string, string> = { Accept: 'application/json', 'X-Auth-Token': t.token, 'OpenStack-API-Version': `volume ${options.microversion ?? '3.44'}` };
  if (options.serviceToken) headers['X-Service-Token'] = (await keystoneToken('nova', 'service')).token;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${env().cinderUrl}/${t.projectId}${path}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? (JSON.parse(text) as unknown) : null;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

export interface CinderAttachment {
  id: string;
  status: string;
  attach_mode: string;
  instance: string | null;
  connection_info: unknown;
}

/**
 * The attachments Cinder has for the volume (admin token, all projects), oldest first. Filters
 * again on our side, so the answer does not depend on Cinder honouring the query filter.
 */
export async function cinderAttachments(volumeId: string): Promise<CinderAttachment[]> {
  const r = await cinderApi('GET', `/attachments/detail?${new URLSearchParams({ volume_id: volumeId, all_tenants: '1', sort: 'created_at:asc' })}`);
  if (r.status !== 200) throw new Error(`Cinder GET /attachments/detail: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  const list = ((r.body as { attachments?: Array<Record<string, unknown>> }).attachments ?? []).filter((a) => a.volume_id === volumeId);
  return list.map((a) => ({
    id: String(a.id),
    status: String(a.status),
    attach_mode: String(a.attach_mode),
    instance: (a.instance as string | null) ?? null,
    connection_info: a.connection_info ?? null,
  }));
}

/** The volume as Cinder shows it: status and its attachments summary (host_name, server_id, device). The volume view has no attach_status. */
export async function cinderVolume(volumeId: string): Promise<{ status: string; attachments: Array<Record<string, unknown>> }> {
  const r = await cinderApi('GET', `/volumes/${volumeId}`);
  if (r.status !== 200) throw new Error(`Cinder GET /volumes/${volumeId}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  const v = (r.body as { volume: { status: string; attachments: Array<Record<string, unknown>> } }).volume;
  return { status: v.status, attachments: v.attachments };
}

// ---------------------------------------------------------------- our tool

/** Runs our bundle as Ansible would with `-`: JSON arguments on stdin, one JSON object on stdout. */
export async function runOurs(args: Record<string, unknown>, timeoutMs = 240_000): Promise<{ status: number | null; result: Record<string, unknown>; stderr: string }> {
  const r = await runAsync(process.execPath, [BUNDLE, '-'], { input: JSON.stringify(args), timeoutMs });
  let result: Record<string, unknown>;
  try {
    result = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`our bundle printed no JSON (exit ${r.status}): stdout ${JSON.stringify(r.stdout.slice(0, 2000))} stderr ${tail(r.stderr)}`);
  }
  return { status: r.status, result, stderr: r.stderr };
}
