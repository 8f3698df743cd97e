import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { exitCodeFor } from '../../src/cli/exit-codes';
import { parseCli } from '../../src/cli/parse';
import { renderResult } from '../../src/cli/render';
import { execute, type Outcome } from '../../src/entry/run';
import { failureMsg, warningsOf } from '../../src/entry/result';
import { BUNDLE, STATE_DIR } from '../support/nova-env';
import { arbitraries, safeStringify } from './support/arbitraries';
import { ansibleOutputProblem, cliOutputProblem, moduleResultProblem } from './support/check-answer';
import { FuzzSandbox } from './support/sandbox';

// Hostile input, generated (fast-check): thousands of inputs per run at the three ways in
// (module args as Ansible's args file or stdin, and the CLI argv), most in process through the
// same `execute` the bundle runs, a sample through the real bundle process. Every answer is one
// JSON object (or a one-line CLI error) within a bounded time: no stack trace, no write, no
// secret. Only inputs that reach `execute` (in process) or the bundle (a process) are counted:
// args text that is not JSON and argv the CLI parser answers itself (help, usage error) never
// reach `execute`, so in process they are discarded (fast-check draws another) and listed as
// not run; the bundle sample runs them for real. The counts are printed, kept in
// test/.state/fuzz-counts.json, and the total run is asserted (>= 10,000).
// NOVA_BDM_FUZZ_RUNS (default 10000, in process) and NOVA_BDM_FUZZ_BUNDLE_RUNS (300) scale it
// (below 10,000 only outside CI); the seed is always printed, every generator (the bundle
// samples too) derives its seed from it, and NOVA_BDM_FUZZ_SEED=<seed> replays the whole run.

const IN_PROCESS = Number(process.env.NOVA_BDM_FUZZ_RUNS ?? 10_000);
const BUNDLE_RUNS = Number(process.env.NOVA_BDM_FUZZ_BUNDLE_RUNS ?? 300);
const SEED = seedOf(process.env.NOVA_BDM_FUZZ_SEED);
/** The least a run must have run; a smaller NOVA_BDM_FUZZ_RUNS lowers it only outside CI. */
const MIN_TOTAL = process.env.CI || process.env.NOVA_BDM_FUZZ_RUNS === undefined ? 10_000 : Math.min(10_000, IN_PROCESS);
/** Every answer within this, however hostile the input (all targets are local and answer fast). */
const BOUND_MS = 30_000;
console.log(`fuzz seed: ${SEED} (replay this run: NOVA_BDM_FUZZ_SEED=${SEED})`);

function seedOf(given: string | undefined): number {
  if (given === undefined || given === '') return randomInt(0, 2 ** 31);
  const n = Number(given);
  if (!Number.isSafeInteger(n)) throw new Error(`NOVA_BDM_FUZZ_SEED must be an integer, not ${JSON.stringify(given)}`);
  return n | 0;
}

/** One seed per generator, all from SEED: the same SEED replays every one of them. */
const seedFor = (generator: number) => (SEED + generator) | 0;

interface Count {
  tried: number;
  passed: number;
  ms: number;
  slowestMs: number;
  slowest?: string;
}
const counts: Record<string, Count> = {};
const count = (way: string) => (counts[way] ??= { tried: 0, passed: 0, ms: 0, slowestMs: 0 });
/** Generated inputs that never reached execute in process (discarded, not counted above). */
const notRun: Record<string, number> = {};
const discard = (why: string): never => {
  notRun[why] = (notRun[why] ?? 0) + 1;
  fc.pre(false);
  throw new Error('unreachable: fc.pre(false) throws');
};
const totalRun = () => Object.values(counts).reduce((t, c) => t + c.passed, 0);

let s: FuzzSandbox;
let arb: ReturnType<typeof arbitraries>;
let scratch: string;
const originalCwd = process.cwd();
before(async () => {
  s = await FuzzSandbox.create();
  arb = arbitraries(s);
  scratch = mkdtempSync(join(tmpdir(), 'nbh-fuzz-args-'));
  process.chdir(s.cwd);
});
after(async () => {
  process.chdir(originalCwd);
  const total = Object.values(counts).reduce((t, c) => ({ tried: t.tried + c.tried, passed: t.passed + c.passed }), {
    tried: 0,
    passed: 0,
  });
  const summary = { seed: SEED, ...counts, total, notRun };
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(join(STATE_DIR, 'fuzz-counts.json'), `${JSON.stringify(summary, null, 2)}\n`);
  console.log(
    `fuzz counts (seed ${SEED}): ${Object.entries({ ...counts, total })
      .map(([k, c]) => `${k} ${c.passed}/${c.tried} passed`)
      .join(', ')}`,
  );
  console.log(`fuzz: not run in process (discarded, run by the bundle sample instead): ${JSON.stringify(notRun)}`);
  for (const [k, c] of Object.entries(counts))
    console.log(`fuzz time: ${k} ${Math.round(c.ms)} ms in all, slowest ${c.slowestMs} ms: ${c.slowest ?? ''}`);
  rmSync(scratch, { recursive: true, force: true });
  await s?.close();
});

const verbosityOf = (input: unknown) => {
  const v = (input as Record<string, unknown> | null)?._ansible_verbosity;
  return typeof v === 'number' ? v : 0;
};

/** What the answer may not contain: every configured secret, and the rows' unless revealed. */
const forbidden = (input: unknown) => (asksToReveal(input) ? s.secrets : [...s.secrets, ...s.rowSecrets]);

/** reveal_secrets as the module's coercion reads it: true, or Ansible's boolean words. */
const asksToReveal = (input: unknown) => {
  const v = (input as Record<string, unknown> | null)?.reveal_secrets;
  return v === true || v === 1 || (typeof v === 'string' && /^(y|yes|on|1|true|t)$/i.test(v.trim()));
};

async function bounded<T>(what: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${BOUND_MS} ms`)), BOUND_MS);
  });
  try {
    const value = await Promise.race([what, timeout]);
    return { value, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** One in-process input through execute, with every invariant checked (and the CLI's answer, for argv). */
async function throwAtExecute(way: string, input: unknown, render?: Parameters<typeof renderResult>[1]): Promise<void> {
  const c = count(way);
  c.tried++;
  const filesBefore = s.snapshot();
  const { value: outcome, ms } = await bounded(execute(input));
  c.ms += ms;
  if (ms > c.slowestMs) [c.slowestMs, c.slowest] = [ms, shown(input).slice(0, 300)];
  const problem = moduleResultProblem(outcome.result, verbosityOf(input), forbidden(input));
  assert.equal(problem, undefined, `${problem} for input ${shown(input)}`);
  if (render) {
    const { stdout, stderr, code } = cliAnswer(outcome, input as Record<string, unknown>, render);
    const answer = cliOutputProblem(stdout, stderr, code, forbidden(input));
    assert.equal(answer, undefined, `${answer} in the CLI's answer for input ${shown(input)}`);
  }
  assert.equal(s.snapshot(), filesBefore, `files changed for input ${shown(input)}`);
  c.passed++;
}

function shown(input: unknown): string {
  const t = safeStringify(input);
  return t.length > 600 ? `${t.slice(0, 600)}... (${t.length} chars)` : t;
}

async function unchangedWorld(run: () => Promise<void>): Promise<void> {
  const db = await s.dbDigest();
  const cinder = s.cinderMutations();
  await run();
  assert.equal(await s.dbDigest(), db, 'a DB row of the hostile instances changed');
  assert.equal(s.cinderMutations(), cinder, 'a Cinder mutation was sent');
  for (const name of readdirSync(s.okDir)) {
    assert.ok(!name.endsWith('.tmp'), `temp file left: ${name}`);
    // A report (JSON) is 0600; the audit's metrics file (the Prometheus text format, no secret) 0644.
    const path = join(s.okDir, name);
    const metrics = statSync(path).isFile() && readFileSync(path, 'utf8').startsWith('# HELP nova_bdm_audit_');
    assert.equal((statSync(path).mode & 0o777).toString(8), metrics ? '644' : '600', `${metrics ? 'metrics file' : 'report'} ${name}`);
  }
}

const runs = (share: number, generator: number): fc.Parameters<[unknown]> => ({
  numRuns: Math.max(1, Math.round(IN_PROCESS * share)),
  seed: seedFor(generator),
  endOnFailure: true, // each input is a real run: report the first failure, do not shrink
  // fast-check's own report prints the whole counterexample (megabytes here): keep it short.
  reporter: (details) => {
    if (!details.failed) return;
    const error = details.errorInstance as Error | undefined;
    throw new Error(`${error?.message ?? 'property failed'} (replay: NOVA_BDM_FUZZ_SEED=${SEED})`);
  },
});

describe('hostile input, in process', () => {
  test('every path trick at every path option and as nova.conf', async () => {
    await unchangedWorld(async () => {
      const good = s.confs.good!;
      const bdm = s.bdms[0]!;
      for (const p of Object.values(s.paths)) {
        await throwAtExecute('path tricks', { action: 'show', bdm_uuid: bdm.uuid, config_file: p });
        await throwAtExecute('path tricks', { action: 'show', bdm_uuid: bdm.uuid, config_file: [good, p] });
        await throwAtExecute('path tricks', {
          action: 'refresh',
          bdm_uuid: bdm.uuid,
          config_file: good,
          connector_path: p,
          _ansible_check_mode: true,
        });
        await throwAtExecute('path tricks', { action: 'refresh', bdm_uuid: bdm.uuid, config_file: good, connector_path: p });
        await throwAtExecute('path tricks', { action: 'get_connector', host_root: p });
      }
      for (const p of Object.values(s.writePaths)) {
        await throwAtExecute('path tricks', { action: 'audit', hosts: [s.host], config_file: good, report_path: p });
      }
      for (const conf of Object.values(s.confs)) {
        for (const action of ['show', 'audit', 'refresh'] as const) {
          await throwAtExecute('hostile nova.conf', {
            action,
            bdm_uuid: action === 'audit' ? undefined : bdm.uuid,
            config_file: conf,
            connector_path: action === 'refresh' ? s.paths.connector : undefined,
            _ansible_verbosity: 4,
          });
        }
      }
    });
  });

  test('every hostile BDM row through show, audit and refresh (check mode and not), at every verbosity', async () => {
    await unchangedWorld(async () => {
      for (const b of s.bdms) {
        for (const [verbosity, reveal] of [
          [0, false],
          [4, false],
          [4, true],
        ] as const) {
          {
            const base = { config_file: s.confs.good, _ansible_verbosity: verbosity, reveal_secrets: reveal };
            await throwAtExecute('hostile rows', { ...base, action: 'show', bdm_uuid: b.uuid });
            await throwAtExecute('hostile rows', { ...base, action: 'show', instance_uuid: b.instanceUuid, volume_id: b.volumeId });
            for (const check of [true, false]) {
              await throwAtExecute('hostile rows', {
                ...base,
                action: 'refresh',
                bdm_uuid: b.uuid,
                connector_path: s.paths.connector,
                _ansible_check_mode: check,
                _ansible_diff: true,
              });
            }
            await throwAtExecute('hostile rows', {
              ...base,
              action: 'refresh',
              bdm_uuid: b.uuid,
              connector_path: s.paths.connector,
              _ansible_check_mode: true,
              expect: { data: 'x' },
              force: true,
            });
          }
        }
      }
      for (const instance of s.instances.slice(0, 2)) {
        await throwAtExecute(
          'hostile rows',
          { action: 'show', instance_uuid: instance, config_file: s.confs.good },
          { json: false, connectionInfoOnly: false },
        );
      }
      const expects = [
        undefined,
        { driver_volume_type: 'rbd', data: { hosts: ['h'], ports: ['1'] } },
        { data: 'x' },
        { data: { name: 'x', keyring: 'y' } },
      ];
      for (const expect of expects) {
        await throwAtExecute(
          'hostile rows',
          { action: 'audit', hosts: [s.host], config_file: s.confs.good, expect, report_path: s.reportTarget() },
          { json: false, connectionInfoOnly: false },
        );
      }
      await throwAtExecute('hostile rows', {
        action: 'audit',
        instance_uuids: s.instances,
        config_file: s.confs.good,
        expect: { data: 'x' },
        check_cinder: true,
      });
      // 10 MB and 100k monitors: once each way, not thousands of times.
      await s.withHeavyRows(async (heavy) => {
        for (const b of heavy) {
          await throwAtExecute(
            'hostile rows',
            { config_file: s.confs.good, action: 'show', bdm_uuid: b.uuid, _ansible_verbosity: 4 },
            { json: false, connectionInfoOnly: false },
          );
          await throwAtExecute('hostile rows', {
            config_file: s.confs.good,
            action: 'refresh',
            bdm_uuid: b.uuid,
            connector_path: s.paths.connector,
            _ansible_check_mode: true,
            _ansible_diff: true,
            expect: { data: 'x' },
          });
        }
        await throwAtExecute('hostile rows', { action: 'show', instance_uuid: heavy[0]!.instanceUuid, config_file: s.confs.good });
        await throwAtExecute('hostile rows', {
          action: 'audit',
          hosts: [s.heavyHost],
          config_file: s.confs.good,
          expect: { data: 'x' },
          report_path: s.reportTarget(),
        });
      });
    });
  });

  test('generated module arguments (as the args file or stdin would carry them)', async () => {
    await unchangedWorld(async () => {
      await fc.assert(
        fc.asyncProperty(arb.moduleArgs, (input) => throwAtExecute('module args', input)),
        runs(0.6, 0),
      );
    });
  });

  test('generated args-file / stdin text, parsed as main.ts does', async () => {
    await unchangedWorld(async () => {
      await fc.assert(
        fc.asyncProperty(arb.argsText, async (text) => {
          let raw: unknown;
          try {
            raw = JSON.parse(text);
          } catch {
            // main.ts answers this itself, without execute: only the bundle sample runs it
            return discard('args text that is not JSON');
          }
          await throwAtExecute('args text', raw);
        }),
        runs(0.2, 1),
      );
    });
  });

  test('generated CLI argv, through parseCli, execute and the renderer, answered as main.ts does', async () => {
    await unchangedWorld(async () => {
      await fc.assert(
        fc.asyncProperty(arb.argv, async (argv) => {
          const command = parseCli(argv);
          if (command.kind === 'usage-error') {
            assert.ok(
              !/[\r\n]/.test(command.message) && command.message.length < 16 * 1024,
              `usage error not one short line: ${JSON.stringify(command.message.slice(0, 300))}`,
            );
          }
          // help and usage errors never reach execute: only the bundle sample runs them
          if (command.kind !== 'run') return discard(`argv the parser answers (${command.kind})`);
          await throwAtExecute('cli argv', command.moduleArgs, command.render);
        }),
        runs(0.2, 2),
      );
    });
  });
});

/** What main.ts prints and exits with for a CLI command's outcome (its run branch). */
function cliAnswer(
  outcome: Outcome,
  moduleArgs: Record<string, unknown>,
  render: Parameters<typeof renderResult>[1],
): { stdout: string; stderr: string; code: number } {
  const failed = failureMsg(outcome.result);
  const partial = outcome.kind === 'fleet_refresh' && failed !== undefined;
  if (failed !== undefined && !partial) {
    return {
      stdout: '',
      stderr: `${failed}\n`,
      code: exitCodeFor(outcome.kind === 'failure' ? outcome.error : undefined, String(moduleArgs.action)),
    };
  }
  const stdout = `${renderResult(outcome, render)}\n`;
  const warnings = warningsOf(outcome.result)
    .map((w) => `warning: ${w}\n`)
    .join('');
  if (partial) return { stdout, stderr: `${warnings}${failed}\n`, code: 1 };
  const stale = outcome.kind === 'audit' && outcome.result.stale.length > 0;
  return { stdout, stderr: warnings, code: stale ? 4 : 0 };
}

describe('hostile input, through the bundle process', () => {
  interface Answer {
    stdout: string;
    stderr: string;
    code: number | null;
    ms: number;
  }
  const run = (args: string[], stdin?: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const child = spawn(process.execPath, [BUNDLE, ...args], {
        cwd: s.cwd,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, NODE_OPTIONS: '' },
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      const timer = setTimeout(() => child.kill('SIGKILL'), BOUND_MS);
      child.on('error', reject);
      child.stdin.on('error', () => undefined); // the tool may answer before reading all of stdin
      child.stdin.end(stdin ?? '');
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({
          stdout: Buffer.concat(out).toString(),
          stderr: Buffer.concat(err).toString(),
          code: code ?? (Date.now() - started >= BOUND_MS ? -1 : null),
          ms: Date.now() - started,
        });
      });
    });

  type Case = { way: 'bundle args file' | 'bundle stdin' | 'bundle argv'; args: string[]; stdin?: string; input: unknown };

  async function check(c: Case): Promise<void> {
    const n = count(c.way);
    n.tried++;
    const filesBefore = s.snapshot();
    const a = await run(c.args, c.stdin);
    n.ms += a.ms;
    if (a.ms > n.slowestMs) [n.slowestMs, n.slowest] = [a.ms, shown(c.input).slice(0, 300)];
    const problem =
      c.way === 'bundle argv'
        ? cliOutputProblem(a.stdout, a.stderr, a.code, forbidden(c.input))
        : ansibleOutputProblem(a.stdout, a.stderr, a.code, verbosityOf(c.input), forbidden(c.input));
    assert.equal(problem, undefined, `${problem} for ${c.way} ${shown(c.input)}`);
    assert.equal(s.snapshot(), filesBefore, `files changed for ${c.way} ${shown(c.input)}`);
    n.passed++;
  }

  test('a sample of generated inputs, two processes at a time, and the file tricks as the args file', async () => {
    await unchangedWorld(async () => {
      const third = Math.max(1, Math.round(BUNDLE_RUNS / 3));
      const cases: Case[] = [];
      // Ansible's own calling convention: the args file, including the hostile files themselves.
      for (const p of [
        s.paths.big!,
        s.paths.linkToBig!,
        s.paths.notJson!,
        s.paths.empty!,
        s.paths.binary!,
        s.paths.deepJson!,
        s.paths.protoJson!,
        s.paths.jsonArray!,
        s.paths.fifo!,
        s.paths.dir!,
      ]) {
        cases.push({
          way: p === s.paths.fifo || p === s.paths.dir ? 'bundle argv' : 'bundle args file',
          args: [p],
          input: { args_file: p },
        });
      }
      fc.sample(
        arb.argsText.filter((t) => t.length < 8_000_000),
        { numRuns: third, seed: seedFor(3) },
      ).forEach((text, i) => {
        const file = join(scratch, `args-${i}.json`);
        writeFileSync(file, text);
        cases.push({ way: 'bundle args file', args: [file], input: tryParse(text) });
      });
      fc.sample(
        arb.argsText.filter((t) => t.length < 8_000_000),
        { numRuns: third, seed: seedFor(4) },
      ).forEach((text) => cases.push({ way: 'bundle stdin', args: ['-'], stdin: text, input: tryParse(text) }));
      // the OS limits one argument to 128 KiB and all of them to about 2 MB (E2BIG)
      fc.sample(
        arb.argv.filter(
          (argv) => argv.every((w) => !w.includes('\0') && Buffer.byteLength(w) < 100_000) && Buffer.byteLength(argv.join(' ')) < 1_000_000,
        ),
        { numRuns: third, seed: seedFor(5) },
      ).forEach((argv) => cases.push({ way: 'bundle argv', args: argv, input: cliInput(argv) }));
      let next = 0;
      const worker = async () => {
        while (next < cases.length) await check(cases[next++]!);
      };
      await Promise.all([worker(), worker()]);
    });
  });
});

function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** reveal_secrets as the CLI sets it, for the secret check. */
function cliInput(argv: string[]): unknown {
  return { argv, reveal_secrets: argv.includes('--reveal-secrets') ? true : undefined };
}

test(`the fuzz ran at least ${MIN_TOTAL.toLocaleString('en')} inputs that reached the module (seed ${SEED})`, () => {
  const total = totalRun();
  console.log(`fuzz total run: ${total} (seed ${SEED}; replay: NOVA_BDM_FUZZ_SEED=${SEED})`);
  assert.ok(total >= MIN_TOTAL, `only ${total} inputs ran (counts ${JSON.stringify(counts)}; not run ${JSON.stringify(notRun)})`);
});
