import * as mysql from 'mysql2/promise';
import type { LabEnv } from '../harness';
import { amqpMethod, mysqlQuery, mysqlQueryPacket, type ProxyOptions } from './fault-proxy';
import { framers, type Rig } from './rig';

// What the single-refresh and the fleet fault matrices share: the timeouts the tool runs with,
// the cell DB hooks, a connection that holds row locks, and the printed table.

export const RPC_TIMEOUT = 8;
export const HTTP_TIMEOUT = 15;
export const LOCK_WAIT = 3;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The tool's session gets a short lock wait (what MariaDB's 50 s default does, sooner). */
function shortLockWait(): NonNullable<ProxyOptions['onClientFrame']> {
  return (frame) => {
    const q = mysqlQuery(frame);
    if (q && /^SET SESSION sql_mode/i.test(q)) return mysqlQueryPacket(`${q}, innodb_lock_wait_timeout = ${LOCK_WAIT}`, frame[3]!);
    return 'pass';
  };
}

/** The cell DB proxy's hook: the short lock wait, then `onQuery` sees each SQL text the tool sends. */
export function cellDbHook(onQuery: (sql: string) => 'pass' | 'cut' | Promise<'pass' | 'cut'>): ProxyOptions {
  const lockWait = shortLockWait();
  return {
    clientFramer: framers.mysqlClient,
    async onClientFrame(frame, n) {
      const rewritten = await lockWait(frame, n);
      if (rewritten !== 'pass') return rewritten;
      const q = mysqlQuery(frame);
      return q ? onQuery(q) : 'pass';
    },
  };
}

// The cell DB writes of a refresh, recognised by their SQL (kysely text, values inlined by mysql2).
export const DB_WRITES = {
  startAction: /^insert into `instance_actions`/i, // the lock's own action comes first
  saveBdm: /^update `block_device_mapping`/i,
  finishAction: /^update `instance_actions`/i,
  unlock: /^select `id` from `instances` where .* for update$/i, // the claim's release (the claim selects *)
};

/** Cuts the connection when the nth statement matching `sql` is sent. */
export function cutAtNth(sql: RegExp, nth: number): ProxyOptions {
  let seen = 0;
  return cellDbHook((q) => (sql.test(q) && ++seen === nth ? 'cut' : 'pass'));
}

/**
 * The server's answer to the nth statement matching `sql` is lost: the statement reaches MariaDB
 * and is carried out, then the connection is cut before the tool hears back (the outcome the tool
 * cannot know). `before` is awaited when the statement arrives, before it goes on.
 */
export function loseAnswerToNth(sql: RegExp, nth: number, before?: () => Promise<void>): ProxyOptions {
  let seen = 0;
  let armed = false;
  const base = cellDbHook(async (q): Promise<'pass'> => {
    if (sql.test(q.trim()) && ++seen === nth) {
      await before?.();
      armed = true;
    }
    return 'pass';
  });
  return { ...base, serverFramer: framers.mysqlClient, onServerFrame: () => (armed ? 'cut' : 'pass') };
}

/** The answer to the nth COMMIT is lost (see loseAnswerToNth). */
export const loseAnswerToNthCommit = (nth: number): ProxyOptions => loseAnswerToNth(/^commit$/i, nth);

/** A case's faults, one hook set per proxy. */
export type Hooks = Partial<Record<'keystone' | 'cinder' | 'amqp' | 'cellDb', ProxyOptions>>;

/** Sets a case's hooks on fresh proxies (the cell DB always gets the short lock wait). */
export function armFaults(rig: Rig, hooks: Hooks): void {
  rig.reset();
  rig.keystone.options = hooks.keystone ?? {};
  rig.cinder.options = hooks.cinder ?? {};
  rig.amqp.options = hooks.amqp ?? {};
  rig.cellDb.options = hooks.cellDb ?? cellDbHook(() => 'pass');
}

/** After the first run: no fault left but the short lock wait. */
export function disarmFaults(rig: Rig): void {
  rig.reset();
  rig.cellDb.options = cellDbHook(() => 'pass');
}

/** Runs `act` when the tool publishes its nth RPC request (the publish itself goes through). */
export function onNthPublish(nth: number, act: () => void): ProxyOptions {
  let seen = 0;
  return {
    clientFramer: framers.amqpClient,
    onClientFrame: (f) => {
      if (amqpMethod(f) === 'basic.publish' && ++seen === nth) act();
      return 'pass';
    },
  };
}

/** A connection of the test's own that holds row locks until release(). */
export class RowLockHolder {
  private held: mysql.Connection | undefined;
  constructor(private readonly lab: LabEnv) {}

  async hold(sql: string, params: unknown[]): Promise<void> {
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      user: this.lab.dbUser,
      password: this.lab.dbPassword,
      database: this.lab.databases.nova,
    });
    this.held = c;
    await c.query('BEGIN');
    await c.query(sql, params);
  }

  async release(): Promise<void> {
    const c = this.held;
    this.held = undefined;
    await c?.query('ROLLBACK').catch(() => undefined);
    await c?.end().catch(() => undefined);
  }
}

export interface Row {
  name: string;
  at: string;
  first: string;
  failSeconds: string;
  interim: string;
  rerun: string;
  end: string;
}

export function newRow(name: string, at: string): Row {
  return { name, at, first: '?', failSeconds: '?', interim: '?', rerun: '?', end: '?' };
}

/** The fault table as markdown, each cell cut at 90 characters. */
export function faultTable(rows: Row[]): string {
  const head: Row = {
    name: 'case',
    at: 'strikes at',
    first: 'first run',
    failSeconds: 'time to fail',
    interim: 'left after the first run',
    rerun: 're-run',
    end: 'end state',
  };
  const all = [head, ...rows];
  const keys: Array<keyof Row> = ['name', 'at', 'first', 'failSeconds', 'interim', 'rerun', 'end'];
  const width = (k: keyof Row) => Math.min(90, Math.max(...all.map((r) => r[k].length)));
  const line = (r: Row) => `| ${keys.map((k) => r[k].slice(0, 90).padEnd(width(k))).join(' | ')} |`;
  return [line(head), `|${keys.map((k) => '-'.repeat(width(k) + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}
