import { ratio, summarize, timeChild, type Summary } from './measure';
import type { FleetRefreshResult } from '../../src/actions/fleet/result';
import type { SingleRefreshResult } from '../../src/actions/refresh/result';
import type { Fields } from '../support/results';

/** What the bundle prints for a single or a fleet refresh that did not fail, read field by field. */
type RefreshOutput = Fields<SingleRefreshResult | FleetRefreshResult>;

// Section 7 of `npm run bench`: the online refresh of running instances next to the stopped
// flow, both measured in the same run (A B A B ...), one BDM and a fleet. The outside systems are
// the real MariaDB (the bench's nbb_* Nova schema) and RabbitMQ, and the stand-ins for Cinder,
// Keystone and nova-compute (test/support): what is measured is our own work and round trips, not
// Cinder's or the compute's (the stand-in compute answers remove_volume_connection at once, where
// a real one disconnects the volume first). Each run is the bundle, spawned as Ansible would.

export interface OnlineBenchContext {
  node: string;
  bundle: string;
  /** The bench's state dir and DB prefix (its nova-env.json names the nbb_* databases). */
  stateDir: string;
  prefix: string;
  log(msg: string): void;
  addSummary(section: string, measure: string, s: Summary, unit: 'ms' | 'MiB' | 'x' | '', extra?: { note?: string }): void;
  addRatio(section: string, measure: string, r: ReturnType<typeof ratio>): void;
  addRow(section: string, measure: string, unit: 'ms' | 'MiB' | 'x' | '', median: number, note?: string): void;
  sections: Record<string, unknown>;
}

const S = '7 online';
const RUNNING = { vm_state: 'active', power_state: 1 };

export async function benchOnline(
  ctx: OnlineBenchContext,
  options: { pairs: number; fleetSizes: number[]; parallel: number },
): Promise<void> {
  // The stand-ins' fixtures read the Nova schema's description from the state dir at import.
  process.env.NOVA_BDM_STATE_DIR = ctx.stateDir;
  process.env.NOVA_BDM_TEST_DB_PREFIX = ctx.prefix;
  const { RefreshEnv } = (await import('../support/refresh-env')) as typeof import('../support/refresh-env');
  const env = await RefreshEnv.start();
  try {
    const run = async (args: Record<string, unknown>, what: string) => {
      const full = {
        action: 'refresh',
        config_file: [env.fx.env.confPath, env.extraConf],
        expect: RefreshEnv.EXPECT_NEW_MONITORS,
        ...args,
      };
      const r = await timeChild(ctx.node, [ctx.bundle, '-'], { input: JSON.stringify(full), timeoutMs: 600_000 });
      let result: RefreshOutput;
      try {
        result = JSON.parse(r.stdout);
      } catch {
        throw new Error(`${what} printed no JSON: ${r.stdout.slice(0, 500)} ${r.stderr.slice(-500)}`);
      }
      if (result.failed) throw new Error(`${what} failed: ${String(result.msg)}`);
      return { ms: r.ms, result };
    };

    // One BDM: a stopped instance's refresh (with its RPC) and a running one's (online), in turn.
    const stopped: number[] = [];
    const online: number[] = [];
    const onlineSteps: Array<Array<{ step: string; ms: number }>> = [];
    const stoppedSteps: Array<Array<{ step: string; ms: number }>> = [];
    for (let k = 0; k < options.pairs; k++) {
      const a = await env.seed();
      const b = await env.seed({ instance: RUNNING });
      const runStopped = async () => {
        const { ms, result } = await run({ bdm_uuid: a.bdm.uuid, connector: env.connector }, 'stopped refresh');
        if (result.online) throw new Error('the stopped instance was refreshed online');
        stopped.push(ms);
        stoppedSteps.push(result.steps ?? []);
      };
      const runOnline = async () => {
        const { ms, result } = await run({ bdm_uuid: b.bdm.uuid, connector: env.connector, running_instances: 'online' }, 'online refresh');
        if (result.online !== true) throw new Error('the running instance was not refreshed online');
        online.push(ms);
        onlineSteps.push(result.steps ?? []);
      };
      if (k % 2 === 0) {
        await runStopped();
        await runOnline();
      } else {
        await runOnline();
        await runStopped();
      }
      ctx.log(`online pair ${k + 1}/${options.pairs}: stopped ${stopped.at(-1)!.toFixed(0)} ms, online ${online.at(-1)!.toFixed(0)} ms`);
    }
    const so = summarize(stopped);
    const on = summarize(online);
    ctx.addSummary(S, 'one BDM, stopped instance (RPC to the stand-in compute), end to end', so, 'ms');
    ctx.addSummary(S, 'one BDM, running instance, online (no RPC), end to end', on, 'ms');
    ctx.addRatio(S, 'one BDM: online / stopped', ratio(on, so));
    const perStep = (runs: Array<Array<{ step: string; ms: number }>>, names: string[]) =>
      Object.fromEntries(names.map((n) => [n, summarize(runs.map((r) => r.filter((s) => s.step === n).reduce((t, s) => t + s.ms, 0)))]));
    const onlineStepMs = perStep(onlineSteps, [
      'lock',
      'cinder_list_attachments',
      'attachment_create',
      'attachment_complete',
      'bdm_save',
      'attachment_delete',
      'unlock',
    ]);
    for (const [name, s] of Object.entries(onlineStepMs)) ctx.addSummary(S, `  online step ${name}`, s, 'ms');

    // A fleet: N running instances online, next to N stopped instances, one BDM each, one host.
    const fleets: Record<string, unknown> = {};
    for (const n of options.fleetSizes) {
      const running = [];
      const still = [];
      for (let i = 0; i < n; i++) running.push(await env.seed({ instance: RUNNING }));
      for (let i = 0; i < n; i++) still.push(await env.seed());
      const fleetArgs = (instances: Array<{ instanceUuid: string }>, extra: Record<string, unknown>) => ({
        instance_uuids: instances.map((s) => s.instanceUuid),
        connectors: { [env.host]: env.connector },
        max_parallel: options.parallel,
        per_host_parallel: options.parallel,
        ...extra,
      });
      const fs = await run(fleetArgs(still, {}), `fleet of ${n} stopped`);
      const fo = await run(fleetArgs(running, { running_instances: 'online' }), `fleet of ${n} running`);
      for (const [what, r] of [
        ['stopped', fs],
        ['online', fo],
      ] as const) {
        if (r.result.counts?.refreshed !== n) throw new Error(`fleet of ${n} ${what}: ${String(r.result.msg)}`);
      }
      if (!(fo.result.refreshed ?? []).every((x) => x.online === true)) throw new Error('a running instance was not refreshed online');
      ctx.addRow(
        S,
        `fleet of ${n} BDMs, stopped instances: wall`,
        'ms',
        fs.ms,
        `max_parallel = per_host_parallel = ${options.parallel}, one host`,
      );
      ctx.addRow(
        S,
        `fleet of ${n} BDMs, running instances online: wall`,
        'ms',
        fo.ms,
        `${fo.result.plan_cinder_requests} Cinder requests in the plan`,
      );
      ctx.addRow(S, `fleet of ${n} BDMs: online / stopped`, 'x', Number((fo.ms / fs.ms).toFixed(2)), 'one run each, measured back to back');
      const perBdm = (r: { result: RefreshOutput }) => summarize((r.result.refreshed ?? []).map((x) => x.seconds * 1000));
      ctx.addSummary(S, `fleet of ${n}: per-BDM time inside the run, stopped`, perBdm(fs), 'ms');
      ctx.addSummary(S, `fleet of ${n}: per-BDM time inside the run, online`, perBdm(fo), 'ms');
      fleets[String(n)] = {
        stopped_ms: fs.ms,
        online_ms: fo.ms,
        stopped_plan_seconds: fs.result.plan_seconds,
        online_plan_seconds: fo.result.plan_seconds,
        peak_parallel: { stopped: fs.result.peak_parallel, online: fo.result.peak_parallel },
      };
      ctx.log(`online fleet of ${n}: stopped ${fs.ms.toFixed(0)} ms, online ${fo.ms.toFixed(0)} ms`);
    }
    ctx.sections.online = { pairs: options.pairs, stopped_ms: so, online_ms: on, online_steps_ms: onlineStepMs, fleets };
  } finally {
    await env.stop();
  }
}
