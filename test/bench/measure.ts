import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { recordOutput } from '../support/secret-scan-record';

// Timing helpers of the benchmark: one child process timed from spawn to exit, the summary of
// repeated runs (median, min, max) and the side-by-side (A B A B ...) scheduling.

export interface ChildRun {
  ms: number;
  status: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set size of the child in KiB (only with `rss: true`, from GNU time's %M). */
  rssKiB?: number;
  /** CPU seconds of the child, user + system (with `rss: true`, from GNU time's %U %S): less inflated by other load than the wall time. */
  cpuS?: number;
}

export const GNU_TIME = '/usr/bin/time';

/**
 * Runs one command to completion and returns its wall time in ms (from just before spawn to the
 * 'close' event, so process start-up and exit are included). With `rss`, the command runs under
 * GNU time, which writes the child's peak RSS to a file (the wrapper's own ~1 ms start is then
 * part of the wall time too).
 */
export function timeChild(
  cmd: string,
  args: string[],
  options: { input?: string; rss?: boolean; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<ChildRun> {
  let file = cmd;
  let argv = args;
  let rssFile: string | undefined;
  if (options.rss) {
    rssFile = join(tmpdir(), `nbb-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
    file = GNU_TIME;
    argv = ['-f', '%e %M %U %S', '-o', rssFile, cmd, ...args];
  }
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(file, argv, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (status) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (timer) clearTimeout(timer);
      const run: ChildRun = { ms, status, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (rssFile) {
        if (existsSync(rssFile)) {
          const last = readFileSync(rssFile, 'utf8').trim().split('\n').pop() ?? '';
          const [, rss, user, sys] = last.split(/\s+/).map(Number);
          if (Number.isFinite(rss)) run.rssKiB = rss;
          if (Number.isFinite(user) && Number.isFinite(sys)) run.cpuS = user! + sys!;
          rmSync(rssFile, { force: true });
        }
      }
      recordOurOutput(cmd, args, options.input, run);
      resolve(run);
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function summarize(samples: number[]): Summary {
  if (samples.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN, samples };
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { n: s.length, median, min: s[0]!, max: s[s.length - 1]!, samples };
}

/** median(a) / median(b), and the range of the per-round ratios where rounds pair up one to one. */
export function ratio(a: Summary, b: Summary): { ratio: number; pairedMin?: number; pairedMax?: number } {
  const r: { ratio: number; pairedMin?: number; pairedMax?: number } = { ratio: a.median / b.median };
  if (a.samples.length === b.samples.length && a.samples.length > 0) {
    const per = a.samples.map((x, i) => x / b.samples[i]!);
    r.pairedMin = Math.min(...per);
    r.pairedMax = Math.max(...per);
  }
  return r;
}

/** Throws with the tail of the child's output when it did not exit with one of `ok`. */
export function expectStatus(run: ChildRun, what: string, ok: number[] = [0]): ChildRun {
  if (run.status === null || !ok.includes(run.status)) {
    const tail = (t: string) => t.trimEnd().split('\n').slice(-15).join('\n');
    throw new Error(`${what}: exit ${run.status}\nstdout: ${tail(run.stdout).slice(0, 3000)}\nstderr: ${tail(run.stderr).slice(0, 3000)}`);
  }
  return run;
}

/**
 * For the secret scan of `npm run bench` (a no-op without its log): what our tool printed, run
 * directly (the bundle) or through ansible-playbook. Recorded here, in the bench's process,
 * rather than by the hook inside the timed child, so the measured processes are left as they are.
 */
function recordOurOutput(cmd: string, args: string[], input: string | undefined, run: ChildRun): void {
  const ours = args.some((a) => basename(a) === 'bdm.cjs');
  const ansible = basename(cmd) === 'ansible-playbook';
  if (!ours && !ansible) return;
  const inputs = [input, ...args.filter((a) => a.endsWith('.json') && existsSync(a)).map((a) => readFileSync(a, 'utf8'))].flatMap((t) => {
    try {
      return t === undefined ? [] : [JSON.parse(t) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
  const revealed = args.includes('--reveal-secrets') || inputs.some((i) => i.reveal_secrets === true);
  const what = ours ? 'bench bundle' : 'bench ansible-playbook';
  recordOutput(`${what} stdout`, run.stdout, { revealed });
  recordOutput(`${what} stderr`, run.stderr, { revealed });
  for (const report of inputs.map((i) => i.report_path)) {
    if (typeof report === 'string' && existsSync(report)) recordOutput('bench report file', readFileSync(report, 'utf8'), { revealed });
  }
}
