import type { CinderClient } from '../../cinder/cinder-client';
import {
  BadInput,
  ConnectorMissing,
  InstanceChanged,
  LockedByAnotherRefresh,
  NotRefreshableOnline,
  NovaBdmError,
  RefreshFailed,
} from '../../errors';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { checkPrivateFileTarget, writePrivateFile } from '../../output/private-file';
import { newAdminContext } from '../../rpc/request-context';
import type { Connector } from '../../connector';
import { parseConnectionInfo } from '../rules/connection-info';
import type { OnlineBlockerCode } from '../rules/online-eligibility';
import { Limiter } from '../shared/limiter';
import { Outage } from '../shared/outage';
import type { FleetFilters } from '../../selection';
import { planFleet, type PlannedBdm, type PlannedInstance } from './plan';
import { fleetSummary } from './summary';
import type { FleetFailure, FleetItem, FleetRefreshResult, FleetRefreshed, FleetSkipped } from './result';
import { Inspector, type InspectSettings } from '../refresh/inspect';
import { refreshInstance, type BdmOutcome, type PlannedRefresh } from '../refresh/instance';
import { connectionInfoDiff, listItemOf, masker, summaryOf, type ConnectionInfoDiff } from '../refresh/result';
import { expectationMismatch, predictedConnectionInfo, stillMismatchedMessage } from '../rules/staleness';
import { StepLog, type StepEntry } from '../shared/step-log';

// A fleet refresh: one plan (plan.ts), then the instances in parallel, at most
// maxParallel at once and perHostParallel per compute host, each under its own lock.

export interface FleetDeps {
  topology: NovaTopology;
  cinderFor(requestId: string): CinderClient;
  rpcFor(cell: Cell): Promise<OsloRpcClient>;
  connectorFor(host: string): Connector | NovaBdmError;
}

export interface FleetSettings extends InspectSettings {
  rpcTimeoutSeconds: number;
  localHost: string;
  revealSecrets: boolean;
  checkMode: boolean;
  diff: boolean;
  maxParallel: number;
  perHostParallel: number;
  maxFailures?: number;
  reportPath?: string;
  onProgress?: (p: FleetProgress) => void;
}

export type FleetProgress = { instancesDone: number; instances: number; refreshed: number; skipped: number; failed: number };

export async function refreshFleet(deps: FleetDeps, filters: FleetFilters, settings: FleetSettings): Promise<FleetRefreshResult> {
  if (settings.reportPath) checkWritable(settings.reportPath);
  const cinder = deps.cinderFor(newAdminContext().requestId);
  const inspector = new Inspector(deps.topology, cinder, deps.rpcFor, settings, deps.connectorFor);
  const outage = new Outage();
  const planned = await timedPlan(inspector, filters, settings, outage);
  const tally = new FleetTally(settings);
  const queue = partition(planned.plan, tally, settings);
  const peakParallel = settings.checkMode ? 0 : await runInstances(queue, { deps, inspector, cinder, settings, outage, tally });
  const result = summarize(tally, { ...planned.stats, peak_parallel: peakParallel }, settings);
  if (settings.reportPath) {
    result.report_path = settings.reportPath;
    // Temp file + rename, 0600: a symlink planted at report_path is refused, never written through.
    writePrivateFile(settings.reportPath, `${JSON.stringify(result, null, 2)}\n`);
  }
  return result;
}

type PlanStats = Pick<FleetRefreshResult, 'plan_seconds' | 'plan_cinder_requests'>;

/** The plan (plan.ts), with what it cost: its seconds and its requests to Cinder. */
async function timedPlan(
  inspector: Inspector,
  filters: FleetFilters,
  settings: FleetSettings,
  outage: Outage,
): Promise<{ plan: PlannedInstance[]; stats: PlanStats }> {
  const planStarted = performance.now();
  const plan = await planFleet(inspector, filters, settings.maxParallel, outage);
  const planSeconds = Math.round(performance.now() - planStarted) / 1000;
  return { plan, stats: { plan_seconds: planSeconds, plan_cinder_requests: inspector.cinder.requestCount } };
}

/** Where a BDM is: what every entry of the result names. */
type BdmPlace = Pick<PlannedBdm, 'cell' | 'bdm' | 'host'>;

/** The lists of the result, filled in the order the BDMs are decided. */
class FleetTally {
  readonly refreshed: FleetRefreshed[] = [];
  readonly skips: FleetSkipped[] = [];
  readonly failures: FleetFailure[] = [];
  readonly diffs: ConnectionInfoDiff[] = [];
  readonly warnings: string[] = [];
  readonly hostsWithoutConnector = new Set<string>();
  readonly mask: (info: unknown) => unknown;

  constructor(readonly settings: FleetSettings) {
    this.mask = masker(settings.revealSecrets);
  }

  skip(p: BdmPlace, why: string, onlineBlocker?: OnlineBlockerCode): void {
    this.skips.push({ ...item(p), why, ...(onlineBlocker ? { online_blocker: onlineBlocker } : {}) });
  }

  fail(p: BdmPlace, error: Error, undone: string[], remains: string): void {
    this.failures.push({ ...item(p), msg: firstLine(error.message), undone, remains });
  }

  diff(p: BdmPlace, old: unknown, updated: unknown): void {
    if (this.settings.diff) this.diffs.push(connectionInfoDiff(summary(p), this.mask(old), this.mask(updated)));
  }
}

/** The instance of the plan with the BDMs to refresh in it. */
type QueuedInstance = { instance: PlannedInstance; planned: PlannedRefresh[] };

/**
 * The plan's decisions: current, skipped and failed BDMs go to the result at once, and in check
 * mode the ones to refresh too (with their predicted diff); the instances left to run remain.
 */
function partition(plan: PlannedInstance[], tally: FleetTally, settings: FleetSettings): QueuedInstance[] {
  const queue: QueuedInstance[] = [];
  for (const instance of plan) {
    const planned: PlannedRefresh[] = [];
    for (const p of instance.bdms) {
      const d = p.decision;
      if (d.action === 'current') tally.skip(p, 'not stale');
      else if (d.action === 'skip') tally.skip(p, d.why, d.onlineBlocker);
      else if (d.action === 'fail') {
        tally.fail(p, d.error, [], 'nothing was changed');
        if (d.error instanceof ConnectorMissing && p.host) tally.hostsWithoutConnector.add(p.host);
      } else if (settings.checkMode) wouldRefresh(p, d, tally, settings);
      else planned.push({ bdm: p.bdm, decision: d });
    }
    if (planned.length > 0) queue.push({ instance, planned });
  }
  return queue;
}

/** Check mode: what a refresh would do, its connection_info predicted from Cinder's view or expect. */
function wouldRefresh(p: PlannedBdm, d: PlannedRefresh['decision'], tally: FleetTally, settings: FleetSettings): void {
  tally.refreshed.push({
    ...item(p),
    reasons: reasonCodes(d),
    old_attachment_id: p.bdm.attachment_id,
    new_attachment_id: null,
    seconds: 0,
    rpc_version: d.rpcVersion,
    ...(d.flow === 'online' ? { online: true as const } : {}),
  });
  if (!settings.diff) return;
  const old = parseConnectionInfo(p.bdm.connection_info);
  const predicted = predictedConnectionInfo(old, p.bdm.volume_id!, d, settings.expect);
  tally.diff(p, old, predicted);
}

interface RunContext {
  deps: FleetDeps;
  inspector: Inspector;
  cinder: CinderClient;
  settings: FleetSettings;
  outage: Outage;
  tally: FleetTally;
}

/**
 * The instances in parallel, each under its own lock: at most maxParallel at once and
 * perHostParallel per compute host; after maxFailures failed BDMs, or once Cinder could not be
 * reached (outage.ts), nothing new starts and the running finish. Returns the most run at once.
 */
async function runInstances(queue: QueuedInstance[], run: RunContext): Promise<number> {
  const { settings, outage } = run;
  const progress: FleetProgress = { instancesDone: 0, instances: queue.length, refreshed: 0, skipped: 0, failed: 0 };
  const stopped = () => outage.why !== undefined || (settings.maxFailures !== undefined && progress.failed >= settings.maxFailures);
  const limiter = new Limiter<QueuedInstance>(
    async (queued) => {
      const { outcomes, steps } = await runInstance(queued, run);
      countOutcomes(progress, outcomes, outage);
      for (const o of outcomes) recordOutcome(run.tally, queued.instance, o, steps);
      settings.onProgress?.(progress);
    },
    { limit: settings.maxParallel, group: { of: (q) => q.instance.host ?? '', limit: settings.perHostParallel }, stopWhen: stopped },
  );
  for (const queued of queue) limiter.add(queued);
  const notStarted = await limiter.done();
  const why = outage.why ? `not started: ${outage.why}` : 'not started: max_failures reached';
  for (const { instance, planned } of notStarted) {
    for (const p of planned) recordOutcome(run.tally, instance, { kind: 'skipped', bdm: p.bdm, why, error: new NovaBdmError(why) });
  }
  return limiter.peak;
}

/** One instance's BDMs under one lock (refresh/instance.ts); a lock not taken is an outcome too. */
async function runInstance(
  { instance, planned }: QueuedInstance,
  run: RunContext,
): Promise<{ outcomes: BdmOutcome[]; steps: StepEntry[] }> {
  const { deps, inspector, cinder, settings, tally } = run;
  const steps = new StepLog();
  try {
    const { outcomes } = await refreshInstance({
      inspector,
      cinder,
      cinderFor: deps.cinderFor,
      cell: instance.cell,
      instanceUuid: instance.instanceUuid,
      planned,
      eventHost: settings.localHost,
      rpcTimeoutSeconds: settings.rpcTimeoutSeconds,
      refuseLocked: settings.refuseLocked,
      steps,
      warnings: tally.warnings,
    });
    return { outcomes, steps: steps.entries };
  } catch (err) {
    return { outcomes: outcomesForLockError(planned, err), steps: steps.entries };
  }
}

function countOutcomes(progress: FleetProgress, outcomes: BdmOutcome[], outage: Outage): void {
  for (const o of outcomes) {
    if (o.kind === 'refreshed') progress.refreshed++;
    else if (o.kind === 'failed') {
      progress.failed++;
      outage.note(o.error);
    } else progress.skipped++;
  }
  progress.instancesDone++;
}

/** One BDM's outcome of the run into the result; a refresh that still misses expect is a failure too. */
function recordOutcome(tally: FleetTally, instance: PlannedInstance, o: BdmOutcome, steps?: StepEntry[]): void {
  const p: BdmPlace = { cell: instance.cell, bdm: o.bdm, host: instance.host };
  switch (o.kind) {
    case 'current':
      return tally.skip(p, 'not stale (after recovering an interrupted refresh)');
    case 'skipped':
      return tally.skip(p, o.why, o.error instanceof NotRefreshableOnline ? (o.error.code as OnlineBlockerCode) : undefined);
    case 'failed':
      return tally.fail(p, o.error, o.undone, o.remains);
    case 'refreshed': {
      const stillWrong = tally.settings.expect ? expectationMismatch(o.newInfo, tally.settings.expect) : undefined;
      if (stillWrong) {
        tally.failures.push({
          ...item(p),
          msg: `refreshed, but ${stillMismatchedMessage(stillWrong)}`,
          undone: [],
          remains: `the BDM holds the new attachment ${o.newAttachmentId} with what Cinder hands out`,
        });
      }
      tally.refreshed.push({
        ...item(p),
        reasons: reasonCodes(o),
        old_attachment_id: o.bdm.attachment_id,
        new_attachment_id: o.newAttachmentId,
        seconds: o.seconds,
        rpc_version: o.rpcVersion,
        ...(o.onlineSteps ? { online: true as const } : {}),
        ...(steps ? { steps } : {}),
      });
      tally.diff(p, o.oldInfo, o.newInfo);
    }
  }
}

/** The counts, msg and summary of the run, its lists, and what the plan and the run cost. */
function summarize(
  tally: FleetTally,
  stats: PlanStats & Pick<FleetRefreshResult, 'peak_parallel'>,
  settings: FleetSettings,
): FleetRefreshResult {
  const out = { refreshed: tally.refreshed, skips: tally.skips, failures: tally.failures };
  const counts = { refreshed: out.refreshed.length, skipped: out.skips.length, failed: out.failures.length };
  const total = counts.refreshed + counts.skipped + counts.failed;
  const verb = settings.checkMode ? 'would refresh' : 'refreshed';
  const result: FleetRefreshResult = {
    changed: counts.refreshed > 0,
    msg: `${verb} ${counts.refreshed} of ${total} selected BDMs; ${counts.skipped} skipped, ${counts.failed} failed`,
    counts,
    ...out,
    ...(settings.diff && tally.diffs.length ? { diff: tally.diffs } : {}),
    ...(tally.warnings.length ? { warnings: tally.warnings } : {}),
    ...stats,
    hosts_without_connector: [...tally.hostsWithoutConnector].sort(),
    summary: fleetSummary({ counts, ...out, report_path: settings.reportPath }, settings.checkMode),
  };
  if (counts.failed > 0) {
    result.failed = true;
    const first = out.failures[0]!;
    result.msg = `${counts.failed} of ${total} selected BDMs failed (first: BDM ${first.bdm_uuid} on ${first.host ?? 'no host'}: ${first.msg}); ${verb} ${counts.refreshed}, skipped ${counts.skipped}`;
  }
  return result;
}

/** The lock was not ours to take (another refresh, a state change) or taking it failed. */
function outcomesForLockError(planned: PlannedRefresh[], err: unknown): BdmOutcome[] {
  const error = err instanceof Error ? err : new Error(String(err));
  if (error instanceof LockedByAnotherRefresh)
    return planned.map((p) => ({ kind: 'skipped', bdm: p.bdm, why: 'locked by another refresh', error }));
  if (error instanceof InstanceChanged)
    return planned.map((p) => ({ kind: 'skipped', bdm: p.bdm, why: `changed meanwhile: ${error.why}`, error }));
  if (error instanceof RefreshFailed) {
    const { undone, remains } = error.details;
    return planned.map((p) => ({ kind: 'failed', bdm: p.bdm, error, undone, remains }));
  }
  return planned.map((p) => ({
    kind: 'failed',
    bdm: p.bdm,
    error,
    undone: [],
    remains: 'the instance could not be locked; nothing was changed',
  }));
}

/**
 * Why a BDM is (or would be) refreshed, the one order for the plan and the run: its stale reason
 * codes; with none, 'forced' (force given), else 'interrupted' (recovering a refresh cut short).
 */
function reasonCodes(why: { reasons: Array<{ code: string }>; forced: boolean }): string[] {
  if (why.reasons.length) return why.reasons.map((r) => r.code);
  return why.forced ? ['forced'] : ['interrupted'];
}

function item(p: BdmPlace): FleetItem {
  return listItemOf(p.bdm, p.host, p.cell);
}

function summary(p: BdmPlace) {
  return summaryOf(p.bdm, p.host, p.cell);
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

function checkWritable(path: string): void {
  try {
    checkPrivateFileTarget(path);
  } catch (err) {
    throw new BadInput(`report_path: ${(err as Error).message}`);
  }
}
