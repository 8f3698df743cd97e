import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as mysql from 'mysql2/promise';
import { registerSecrets } from '../support/secret-scan-record';
import { labSecrets } from './lab-secrets';
import type { FailureResult, OutcomeKind } from '../../src/entry/result';
import type { Fields, ResultOf } from '../support/results';

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

function runAsync(
  cmd: string,
  args: string[],
  options: { input?: string; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
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
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
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
  // Every interop test runs on the Ceph flavour, so one lab serves them all (the setting is
  // sticky in lab.env: say it, in case someone ran the lab without it). A second lab instance
  // (other OPENSTACK_LAB_* settings) sets OPENSTACK_LAB_CEPH=0: one Ceph cluster per machine.
  const upEnv = { ...process.env, OPENSTACK_LAB_CEPH: process.env.OPENSTACK_LAB_CEPH ?? '1' };
  const up = () => runAsync('bash', [join(LAB_SRC, 'up.sh'), ...(options.fresh ? ['--fresh'] : [])], { timeoutMs: 1_500_000, env: upEnv });
  let r = await up();
  if (r.status !== 0 && /run down\.sh first/.test(r.stdout + r.stderr)) {
    // A lab started from another checkout (other paths) or with other settings is still
    // running: restart it from this one.
    downLab();
    r = await up();
  }
  if (r.status !== 0) throw new Error(`test/interop/lab/up.sh failed (exit ${r.status}):\n${tail(`${r.stdout}\n${r.stderr}`)}`);
  labEnv = readLabEnv();
  // for the secret scan of the run (npm run test:interop, npm run bench): what to look for
  registerSecrets(labSecrets(labEnv).values, 'config', 'lab');
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

/**
 * seed.py: instances in cell1, each with a real Cinder volume attached the way nova-compute does
 * it (v3: through Nova's own nova.volume.cinder.API). Default: compute1 (fake driver), volume
 * on the fake backend. `rbd: true`: a stopped boot-from-volume instance on compute2 (libvirt),
 * its root volume on the rbd backend (Cinder's RBDDriver).
 */
export async function seed(
  options: { legacy?: boolean; count?: number; vmState?: string; stale?: boolean; locked?: boolean; rbd?: boolean } = {},
): Promise<Seeded[]> {
  const e = env();
  const args = [e.seedPath, '--count', String(options.count ?? 1), '--vm-state', options.vmState ?? 'stopped'];
  if (options.legacy) args.push('--legacy');
  if (options.stale) args.push('--stale');
  if (options.locked) args.push('--locked');
  if (options.rbd) args.push('--backend', 'rbd', '--host', 'compute2', '--boot-from-volume');
  const r = await runAsync(e.python, args, { timeoutMs: 300_000 });
  if (r.status !== 0) throw new Error(`seed.py ${args.slice(1).join(' ')} failed (exit ${r.status}):\n${tail(r.stderr)}`);
  const rows = JSON.parse(r.stdout) as Array<Seeded & Record<string, unknown>>;
  // CHAP passwords and keyrings of the seeded connection_info: shown only on reveal_secrets
  registerSecrets(
    rows.flatMap((x) => connectionInfoSecrets(x.connection_info)),
    'data',
    'lab',
  );
  return rows.map((x) => ({
    instance_uuid: x.instance_uuid,
    volume_id: x.volume_id,
    bdm_uuid: x.bdm_uuid,
    attachment_id: x.attachment_id ?? null,
    connection_info: x.connection_info ?? null,
  }));
}

/** The values of auth_password, discovery_auth_password and keyring anywhere in a connection_info. */
function connectionInfoSecrets(info: unknown): string[] {
  if (typeof info === 'string') {
    try {
      return connectionInfoSecrets(JSON.parse(info));
    } catch {
      return [];
    }
  }
  if (info === null || typeof info !== 'object') return [];
  return Object.entries(info as Record<string, unknown>).flatMap(([k, v]) =>
    typeof v === 'string' ? (/(^|_)password$|^keyring$/.test(k) && v !== '' ? [v] : []) : connectionInfoSecrets(v),
  );
}

/**
 * The REAL nova-manage (python3-nova 26) with the lab's nova.conf (the lab's wrapper script);
 * `host: 'compute2'` adds compute2's config (host compute2, the libvirt driver), as an operator
 * runs it on that compute.
 */
export function novaManage(
  args: string[],
  timeoutMs = 240_000,
  host: 'compute1' | 'compute2' = 'compute1',
): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(env().novaManage, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, OPENSTACK_LAB_DIR: env().dir, OPENSTACK_LAB_NOVA_MANAGE_HOST: host },
  });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const connectorPaths = new Map<string, string>();

/**
 * A connector file written from the real `nova-manage volume_attachment get_connector --json`
 * run as that compute host (what an operator would hand to refresh). Made once per process.
 */
export function getConnectorJson(host: 'compute1' | 'compute2' = 'compute1'): string {
  const known = connectorPaths.get(host);
  if (known && existsSync(known)) return known;
  const r = novaManage(['volume_attachment', 'get_connector', '--json'], 240_000, host);
  if (r.status !== 0)
    throw new Error(`nova-manage volume_attachment get_connector --json (${host}) failed (${r.status}): ${r.stdout}\n${tail(r.stderr)}`);
  const text = r.stdout.trim();
  JSON.parse(text); // must be one JSON object, nothing else on stdout
  const dir = join(env().dir, 'state', 'connectors');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, host === 'compute1' ? 'connector.json' : `connector-${host}.json`);
  writeFileSync(path, `${text}\n`);
  connectorPaths.set(host, path);
  return path;
}

async function withDb<T>(database: string, fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const e = env();
  const c = await mysql.createConnection({
    host: '127.0.0.1',
    port: 3306,
    user: e.dbUser,
    password: e.dbPassword,
    database,
    dateStrings: true,
  });
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
  block_device_mapping: Array<{
    volume_id: string | null;
    device_name: string | null;
    attachment_id: string | null;
    connection_info: unknown;
  }>;
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
    const bdms = await rows<{
      volume_id: string | null;
      device_name: string | null;
      attachment_id: string | null;
      connection_info: string | null;
    }>(
      c,
      "SELECT volume_id, device_name, attachment_id, connection_info FROM block_device_mapping WHERE instance_uuid = ? AND deleted = 0 AND destination_type = 'volume' ORDER BY id",
      [instanceUuid],
    );
    const actions = await rows<{
      id: number;
      action: string;
      request_id: string;
      start_time: string | null;
      finish_time: string | null;
      message: string | null;
    }>(
      c,
      'SELECT id, action, request_id, start_time, finish_time, message FROM instance_actions WHERE instance_uuid = ? AND deleted = 0 ORDER BY id',
      [instanceUuid],
    );
    const events = actions.length
      ? await rows<{
          action_id: number;
          event: string;
          result: string | null;
          host: string | null;
          start_time: string | null;
          finish_time: string | null;
        }>(
          c,
          `SELECT action_id, event, result, host, start_time, finish_time FROM instance_actions_events WHERE action_id IN (${actions.map(() => '?').join(',')}) AND deleted = 0 ORDER BY id`,
          actions.map((a) => a.id),
        )
      : [];
    const first = inst[0];
    return {
      instance: first
        ? { locked: Boolean(first.locked), locked_by: first.locked_by, vm_state: first.vm_state, task_state: first.task_state }
        : null,
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
          .map((ev) => ({
            event: ev.event,
            result: ev.result,
            host: ev.host,
            start_time: ev.start_time !== null,
            finish_time: ev.finish_time !== null,
          })),
      })),
    };
  });
}

/**
 * What a refresh leaves behind, counted in the lab's databases rather than from anybody's report:
 * every row of Cinder's volume_attachment for the volume (soft-deleted ones too: Cinder never
 * removes them), and Nova's instance_actions of the instance by action.
 */
export interface RefreshTraces {
  attachments: Array<{ id: string; deleted: boolean; attach_status: string | null }>;
  actions: Record<string, number>;
}

export async function refreshTraces(twin: Seeded): Promise<RefreshTraces> {
  const attachments = await withDb(env().databases.cinder, (c) =>
    rows<{ id: string; deleted: number | null; attach_status: string | null }>(
      c,
      'SELECT id, deleted, attach_status FROM volume_attachment WHERE volume_id = ? ORDER BY created_at, id',
      [twin.volume_id],
    ),
  );
  const actions = await withDb(env().databases.nova, (c) =>
    rows<{ action: string; n: number }>(
      c,
      'SELECT action, COUNT(*) AS n FROM instance_actions WHERE instance_uuid = ? AND deleted = 0 GROUP BY action',
      [twin.instance_uuid],
    ),
  );
  return {
    attachments: attachments.map((a) => ({ id: a.id, deleted: Boolean(a.deleted), attach_status: a.attach_status })),
    actions: Object.fromEntries(actions.map((a) => [a.action, Number(a.n)])),
  };
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
  const token = {
    token: res.headers.get('x-subject-token') ?? '',
    projectId: body.token.project.id,
    expires: Date.parse(body.token.expires_at),
  };
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
  const headers: Record<string, string> = {
    Accept: 'application/json',
    'X-Auth-Token': t.token,
    'OpenStack-API-Version': `volume ${options.microversion ?? '3.44'}`,
  };
  if (options.serviceToken) headers['X-Service-Token'] = (await keystoneToken('nova', 'service')).token;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${env().cinderUrl}/${t.projectId}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
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
  const r = await cinderApi(
    'GET',
    `/attachments/detail?${new URLSearchParams({ volume_id: volumeId, all_tenants: '1', sort: 'created_at:asc' })}`,
  );
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

/**
 * Set a volume's status in Cinder's database, as a cinder-api that died between two saves
 * leaves it (os-complete saves the attachment, then the volume).
 */
export async function setCinderVolumeStatus(volumeId: string, status: string): Promise<void> {
  await withDb(env().databases.cinder, (c) => c.execute('UPDATE volumes SET status = ? WHERE id = ?', [status, volumeId]));
}

// ---------------------------------------------------------------- Ceph flavour: mon, instances

/** The lab's (only) Ceph monitor: its id and loopback address (ceph/mon.current, kept across down/up). */
export function cephMon(): { id: string; addr: string } {
  const [id, addr] = readFileSync(join(env().dir, 'ceph', 'mon.current'), 'utf8')
    .trim()
    .split(/\s+/);
  if (!id || !addr) throw new Error('ceph/mon.current is empty: is the lab up with OPENSTACK_LAB_CEPH=1?');
  return { id, addr };
}

/** tools/ceph_move_mon.sh NEWIP: add a mon at NEWIP, wait for the quorum, remove the old one. */
export async function moveMon(newIp: string): Promise<{ ms: number; output: string }> {
  const t0 = Date.now();
  const r = await runAsync('bash', [join(LAB_SRC, 'tools', 'ceph_move_mon.sh'), newIp], {
    timeoutMs: 300_000,
    env: { ...process.env, OPENSTACK_LAB_DIR: env().dir },
  });
  if (r.status !== 0) throw new Error(`ceph_move_mon.sh ${newIp} failed (exit ${r.status}):\n${tail(`${r.stdout}\n${r.stderr}`)}`);
  return { ms: Date.now() - t0, output: r.stdout };
}

/** What tools/start_instance.py, stop_instance.py and reboot_instance.py print. */
export interface PowerResult {
  instance_uuid: string;
  action: 'start' | 'stop' | 'reboot';
  vm_state: string;
  power_state: string;
  task_state: string | null;
  /** From the cast to the end state (or to the failure), measured by the tool. */
  seconds: number;
  /** The rbd hosts in the domain XML (virsh dumpxml); [] when there is no domain. */
  domain_rbd_hosts: string[];
  domain: string;
  domain_state: string | null;
  /** The domain's QEMU process before the cast and at the end (libvirt's pid file); null when none runs. */
  qemu_pid_before: number | null;
  qemu_pid: number | null;
  error: string | null;
  /** Exit status of the tool (0 = the instance reached the wanted state). */
  status: number | null;
}

/**
 * Starts or stops an instance the way nova-api does (task_state, instance action, cast to the
 * compute through Nova's own rpcapi), then waits for the power state, at most `timeoutS`.
 */
export async function powerInstance(action: 'start' | 'stop' | 'reboot', instanceUuid: string, timeoutS = 120): Promise<PowerResult> {
  const e = env();
  const r = await runAsync(e.python, [join(LAB_SRC, 'tools', `${action}_instance.py`), instanceUuid, '--timeout', String(timeoutS)], {
    timeoutMs: (timeoutS + 120) * 1000,
    env: { ...process.env, OPENSTACK_LAB_DIR: e.dir },
  });
  let out: Omit<PowerResult, 'status'>;
  try {
    out = JSON.parse(r.stdout) as Omit<PowerResult, 'status'>;
  } catch {
    throw new Error(`${action}_instance.py printed no JSON (exit ${r.status}):\n${tail(r.stderr)}`);
  }
  return { ...out, status: r.status };
}

/**
 * Hard-reboots an instance the way nova-api's reboot(HARD) does (`openstack server reboot
 * --hard`: task_state rebooting_hard, instance action 'reboot', cast reboot_instance with
 * reboot_type HARD), then waits for active/running, at most `timeoutS`. The compute defines the
 * domain again from the BDMs' stored connection_info, as after a host reboot. `error` is set
 * when the compute failed, also when it kept the old guest running and only recorded a fault.
 */
export function hardReboot(instanceUuid: string, timeoutS = 120): Promise<PowerResult> {
  return powerInstance('reboot', instanceUuid, timeoutS);
}

/**
 * The pid of the QEMU process that runs the instance's libvirt domain on compute2, or null when
 * none runs. The domain is named after the instance's id (Nova's instance_name_template
 * `instance-%08x`); libvirt's system instance keeps the pid in /run/libvirt/qemu/<domain>.pid,
 * and /proc must show that process as this domain's guest (a pid file can outlive a crash).
 */
export async function qemuPid(instanceUuid: string): Promise<number | null> {
  const found = await withDb(env().databases.nova, (c) =>
    rows<{ id: number }>(c, 'SELECT id FROM instances WHERE uuid = ? AND deleted = 0', [instanceUuid]),
  );
  if (!found[0]) throw new Error(`qemuPid: no instance ${instanceUuid} in cell1`);
  const domain = `instance-${found[0].id.toString(16).padStart(8, '0')}`;
  let pid: number;
  let cmdline: string;
  try {
    pid = Number(readFileSync(`/run/libvirt/qemu/${domain}.pid`, 'utf8').trim());
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
  return cmdline.split('\0').some((arg) => arg === `guest=${domain}` || arg.startsWith(`guest=${domain},`)) ? pid : null;
}

/** One Cinder attachment as the API shows it (admin token). */
export async function cinderAttachment(id: string): Promise<CinderAttachment> {
  const r = await cinderApi('GET', `/attachments/${id}`);
  if (r.status !== 200) throw new Error(`Cinder GET /attachments/${id}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  const a = (r.body as { attachment: Record<string, unknown> }).attachment;
  return {
    id: String(a.id),
    status: String(a.status),
    attach_mode: String(a.attach_mode),
    instance: (a.instance as string | null) ?? null,
    connection_info: a.connection_info ?? null,
  };
}

// ---------------------------------------------------------------- comparing twins

/** Replace every id we know (instance, volume, BDM, attachments) by its role, recursively. */
export function normalize(value: unknown, ids: Map<string, string>): unknown {
  if (typeof value === 'string') return ids.get(value) ?? value;
  if (Array.isArray(value)) return value.map((v) => normalize(v, ids));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, normalize(v, ids)]));
  }
  return value;
}

/** What a refresh leaves behind: the Nova rows, the volume's Cinder attachments, the volume. */
export interface Outcome {
  nova: NovaRows;
  attachments: CinderAttachment[];
  /** The volume's status and its attachments summary: [attachment_id, host_name, device]. */
  volume: { status: string; hosts: unknown[][] };
}

export async function outcomeOf(twin: Seeded): Promise<Outcome> {
  const volume = await cinderVolume(twin.volume_id);
  const hosts = volume.attachments
    .map((a) => [a.attachment_id, a.host_name, a.device])
    .sort((x, y) => String(x[0]).localeCompare(String(y[0])));
  return {
    nova: await dumpNovaRows(twin.instance_uuid),
    attachments: await cinderAttachments(twin.volume_id),
    volume: { status: volume.status, hosts },
  };
}

/** The outcome with ids replaced by roles and request ids by "<request id>": equal for twins treated alike. */
export function comparable(twin: Seeded, o: Outcome, attachments: CinderAttachment[] = o.attachments): unknown {
  const ids = new Map<string, string>([
    [twin.instance_uuid, '<instance>'],
    [twin.volume_id, '<volume>'],
    [twin.bdm_uuid, '<bdm>'],
  ]);
  if (twin.attachment_id) ids.set(twin.attachment_id, '<old attachment>');
  const bdmAttachment = o.nova.block_device_mapping[0]?.attachment_id;
  if (bdmAttachment && !ids.has(bdmAttachment)) ids.set(bdmAttachment, '<bdm attachment>');
  attachments.forEach((a, i) => {
    if (!ids.has(a.id)) ids.set(a.id, `<other attachment ${i}>`);
  });
  const nova = {
    ...o.nova,
    instance_actions: o.nova.instance_actions.map((a) => ({
      ...a,
      request_id: /^req-[0-9a-f-]{36}$/.test(a.request_id) ? '<request id>' : a.request_id,
    })),
  };
  const volume = { status: o.volume.status, hosts: o.volume.hosts.filter((h) => attachments.some((a) => a.id === h[0])) };
  // rbd volume names embed the volume id (volumes/volume-<id>)
  const named = JSON.parse(
    JSON.stringify({ nova, attachments, volume }).split(`volume-${twin.volume_id}`).join('volume-<volume>'),
  ) as unknown;
  return normalize(named, ids);
}

// ---------------------------------------------------------------- our tool

/** Runs our bundle as Ansible would with `-`: JSON arguments on stdin, one JSON object on stdout (a K result or a failure). */
export async function runOurs<K extends OutcomeKind = OutcomeKind>(
  args: Record<string, unknown>,
  timeoutMs = 240_000,
): Promise<{ status: number | null; result: Fields<ResultOf<K> | FailureResult>; stderr: string }> {
  const r = await runAsync(process.execPath, [BUNDLE, '-'], { input: JSON.stringify(args), timeoutMs });
  let result: Fields<ResultOf<K> | FailureResult>;
  try {
    result = JSON.parse(r.stdout);
  } catch {
    throw new Error(
      `our bundle printed no JSON (exit ${r.status}): stdout ${JSON.stringify(r.stdout.slice(0, 2000))} stderr ${tail(r.stderr)}`,
    );
  }
  return { status: r.status, result, stderr: r.stderr };
}

/**
 * Runs our bundle with NOVA_BDM_KILL_BEFORE_STEP=`step`: it SIGKILLs itself when its step log
 * reaches that step (as a machine stop or the OOM killer would end it there). Returns the signal
 * it ended by (null: it never reached the step) and its JSON when it printed one.
 */
export async function runOursKilledBefore(
  step: string,
  args: Record<string, unknown>,
  timeoutMs = 240_000,
): Promise<{ signal: NodeJS.Signals | null; result: Record<string, unknown> | null; stderr: string }> {
  const env = { ...process.env, NOVA_BDM_KILL_BEFORE_STEP: step };
  const r = await runAsync(process.execPath, [BUNDLE, '-'], { input: JSON.stringify(args), timeoutMs, env });
  let result: Record<string, unknown> | null = null;
  try {
    result = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    /* killed: no output */
  }
  return { signal: r.signal, result, stderr: r.stderr };
}
