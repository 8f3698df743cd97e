import { spawn } from 'node:child_process';
import { openSync, readFileSync, readlinkSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import * as amqp from 'amqplib';
import * as mysql from 'mysql2/promise';
import type { LabEnv } from '../harness';

// Signals for the lab's own services (test/interop/lab/up.sh starts each with setsid, so its
// pid file names a process group): stop, continue, kill, and start it again exactly as up.sh
// started it (same command line, environment, working directory, log file, pid file).

interface Launch {
  argv: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LabService {
  private launch?: Launch;

  constructor(
    private readonly lab: LabEnv,
    readonly name: 'cinder-api' | 'nova-compute',
  ) {}

  private get pidFile(): string {
    return join(this.lab.raw.OPENSTACK_LAB_RUN_DIR!, `${this.name}.pid`);
  }

  pid(): number {
    const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${this.pidFile}: no pid`);
    return pid;
  }

  private alive(pid = this.pid()): boolean {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /** Remember how it runs now (before a kill can take that away). */
  private record(): void {
    const pid = this.pid();
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv.at(-1) === '') argv.pop();
    const env: NodeJS.ProcessEnv = {};
    for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    this.launch = { argv, env, cwd: readlinkSync(`/proc/${pid}/cwd`) };
  }

  signal(sig: 'SIGSTOP' | 'SIGCONT' | 'SIGKILL'): void {
    if (!this.launch) this.record();
    process.kill(-this.pid(), sig);
  }

  async kill(): Promise<void> {
    if (!this.launch) this.record();
    const pid = this.pid();
    process.kill(-pid, 'SIGKILL');
    for (let i = 0; i < 100 && this.alive(pid); i++) await sleep(50);
  }

  /** Start it again the way up.sh did (setsid, log to <log dir>/<name>.out, pid file), then wait until it serves. */
  async restart(): Promise<number> {
    if (!this.launch) throw new Error(`${this.name}: restart without a recorded launch`);
    const started = Date.now();
    const out = openSync(join(this.lab.logDir, `${this.name}.out`), 'a');
    const child = spawn(this.launch.argv[0]!, this.launch.argv.slice(1), {
      cwd: this.launch.cwd,
      env: this.launch.env,
      detached: true, // setsid: its own process group, like up.sh's
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    child.unref();
    writeFileSync(this.pidFile, `${child.pid}\n`);
    await this.waitServing(started);
    return Date.now() - started;
  }

  private async waitServing(since: number): Promise<void> {
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      if (await this.serving(since)) return;
      await sleep(250);
    }
    throw new Error(`${this.name} did not come back within 180 s (see ${this.lab.logDir})`);
  }

  /**
   * nova-compute serves once it consumes its queue AND has sent a heartbeat since it was
   * started: the tool judges a compute by its heartbeat (service_down_time), and after a long
   * first run the dead one's last heartbeat can be older than that (seen: 67 s, so the re-run
   * skipped every BDM as "compute down").
   */
  private async serving(since: number): Promise<boolean> {
    if (this.name === 'cinder-api') {
      try {
        const res = await fetch(this.lab.cinderUrl.replace(/\/v3$/, '/'), { signal: AbortSignal.timeout(2000) });
        return res.status === 300 || res.status === 200;
      } catch {
        return false;
      }
    }
    return (await computeConsumers(this.lab)) > 0 && (await heartbeatAgeSeconds(this.lab, 'compute1')) * 1000 <= Date.now() - since;
  }
}

/** Seconds since nova-compute on `host` last reported (by the database's clock); Infinity if never. */
async function heartbeatAgeSeconds(lab: LabEnv, host: string): Promise<number> {
  const c = await mysql.createConnection({ host: '127.0.0.1', user: lab.dbUser, password: lab.dbPassword, database: lab.databases.nova });
  try {
    const [rows] = await c.query(
      "SELECT TIMESTAMPDIFF(SECOND, COALESCE(last_seen_up, updated_at, created_at), UTC_TIMESTAMP()) AS age FROM services WHERE host = ? AND `binary` = 'nova-compute' AND deleted = 0",
      [host],
    );
    const age = (rows as Array<{ age: number | null }>)[0]?.age;
    return age === null || age === undefined ? Infinity : Number(age);
  } finally {
    await c.end();
  }
}

/** Consumers of the lab compute's queue compute.compute1 (0 when it or the queue is not there). */
export async function computeConsumers(lab: LabEnv): Promise<number> {
  const conn = await amqp.connect(lab.transportUrl.replace(/^rabbit:/, 'amqp:'));
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      return (await ch.checkQueue('compute.compute1')).consumerCount;
    } catch {
      return 0;
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}
