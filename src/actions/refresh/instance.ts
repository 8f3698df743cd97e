import type { CinderClient } from '../../cinder/cinder-client';
import { NovaBdmError, RefreshFailed } from '../../errors';
import type { Cell } from '../../nova-db/cells';
import type { NovaDatabase } from '../../nova-db/connect';
import { findBdmById, systemMetadataOf } from '../../nova-db/refresh-reads';
import type { BdmRecord } from '../../nova-db/records';
import type { CellDatabase } from '../../nova-db/schema';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { newAdminContext, type AdminContext } from '../../rpc/request-context';
import { parseConnectionInfo, type ConnectionInfo } from '../rules/connection-info';
import { lockReasonFor } from '../rules/lock-reason';
import { inspectBdm, type Decision, type Inspector } from './inspect';
import { lockWarnings, withInstanceLock, type HeldLock, type LockRequest, type UnlockOutcome } from './lock';
import { recoverInterrupted, type Recovery } from './reconcile';
import { OnlineCleanupFailed, refreshAttachmentOnline, type OnlineStep } from './online';
import { refreshAttachment, type WorkDone } from './work';
import type { StaleReason } from '../rules/staleness';
import type { StepLog } from '../shared/step-log';

// All selected BDMs of one instance under one lock: lock once, recover an interrupted refresh
// first, refresh each BDM with Nova's records, unlock once. Used by the single refresh (one
// BDM) and by the fleet (each instance of the plan).

export type PlannedRefresh = { bdm: BdmRecord; decision: Extract<Decision, { action: 'refresh' }> };

export type BdmOutcome =
  | {
      kind: 'refreshed';
      bdm: BdmRecord;
      reasons: StaleReason[];
      forced: boolean;
      oldInfo: ConnectionInfo | null;
      newInfo: ConnectionInfo;
      newAttachmentId: string;
      /** null: refreshed online (no RPC). */
      rpcVersion: string | null;
      /** Set when refreshed online: the steps done, in order. */
      onlineSteps?: OnlineStep[];
      seconds: number;
      requestId: string;
    }
  /** Nothing left to refresh once the interrupted refresh was recovered. */
  | { kind: 'current'; bdm: BdmRecord; info: ConnectionInfo | null }
  | { kind: 'skipped'; bdm: BdmRecord; why: string; error: NovaBdmError }
  | { kind: 'failed'; bdm: BdmRecord; error: Error; undone: string[]; remains: string };

export interface InstanceRun {
  outcomes: BdmOutcome[];
  recovered?: Recovery;
  lockRequestId: string;
  /** How the instance was given back (a refreshed BDM of an instance left locked is no success). */
  unlock: UnlockOutcome;
}

export interface InstanceRunInput {
  inspector: Inspector;
  /** For reads and the recovery. */
  cinder: CinderClient;
  /** A client that sends this request id (the refresh phase of one BDM). */
  cinderFor(requestId: string): CinderClient;
  cell: Cell;
  instanceUuid: string;
  planned: PlannedRefresh[];
  eventHost: string;
  rpcTimeoutSeconds: number;
  refuseLocked: boolean;
  steps: StepLog;
  warnings: string[];
}

/** What the steps of one instance's run share: its input, its cell's database, the RPC client once connected. */
interface InstanceWork extends InstanceRunInput {
  db: NovaDatabase<CellDatabase>;
  rpc?: OsloRpcClient;
}

type RefreshDecision = PlannedRefresh['decision'];
/** A BDM judged under the lock to be refreshed now. */
type ToRefresh = { kind: 'refresh'; bdm: BdmRecord; decision: RefreshDecision };

export async function refreshInstance(input: InstanceRunInput): Promise<InstanceRun> {
  const w: InstanceWork = { ...input, db: input.inspector.topology.cellDatabase(input.cell) };
  // One flow per instance: its state decides (refreshable.ts refreshFlowOf), and the lock admits it only in that state.
  const flow = input.planned[0]!.decision.flow;
  // The online flow sends no RPC: no RabbitMQ connection for it.
  if (flow === 'stopped') w.rpc = await connectRpc(w);
  const locked = await withInstanceLock(lockRequest(w, flow), (lock) => refreshUnderLock(w, lock));
  const warning = lockWarnings.unlock(input.instanceUuid, locked.unlock);
  if (warning) input.warnings.push(warning);
  if (!locked.ok) throw locked.error;
  return { ...locked.value, unlock: locked.unlock };
}

function connectRpc(w: InstanceWork): Promise<OsloRpcClient> {
  return w.steps.run('connect_rabbitmq', () => w.inspector.rpcFor(w.cell));
}

function lockRequest(w: InstanceWork, flow: RefreshDecision['flow']): LockRequest {
  return {
    db: w.db,
    instanceUuid: w.instanceUuid,
    bdmUuids: w.planned.map((p) => p.bdm.uuid ?? String(p.bdm.id)),
    lockReason: lockReasonFor(w.planned[0]!.bdm),
    eventHost: w.eventHost,
    refuseLocked: w.refuseLocked,
    flow,
    steps: w.steps,
  };
}

/** Under the lock: recover an interrupted refresh first, then each planned BDM in turn, none after a failed one. */
async function refreshUnderLock(w: InstanceWork, lock: HeldLock): Promise<Omit<InstanceRun, 'unlock'>> {
  const run: Omit<InstanceRun, 'unlock'> = { outcomes: [], lockRequestId: lock.lockContext.requestId };
  // What the claim found under the instance's row lock decides, not what the inspection saw
  // before: the refresh it took for interrupted may have finished since.
  if (lock.leftByInterruptedRefresh) {
    w.warnings.push(lockWarnings.recovered(w.instanceUuid));
    const all = w.planned.map((p) => p.bdm);
    run.recovered = await w.steps.run('recover', () => recoverInterrupted(w.db, w.cinder, all, w.instanceUuid, w.eventHost));
  }
  const lockedReason = (await systemMetadataOf(w.db, w.instanceUuid)).locked_reason ?? null;
  let failedEarlier: string | undefined;
  for (const p of w.planned) {
    const started = performance.now();
    const next = await judgeUnderLock(w, lock, p, { recovered: run.recovered !== undefined, lockedReason, failedEarlier });
    if (next.kind !== 'refresh') {
      run.outcomes.push(next);
      continue;
    }
    const outcome = await refreshNow(w, lock, next, started);
    run.outcomes.push(outcome);
    if (outcome.kind === 'failed') failedEarlier = `the refresh of BDM ${next.bdm.uuid} of this instance failed`;
  }
  return run;
}

/** One planned BDM as the database holds it now: its outcome already, or the refresh to run. */
async function judgeUnderLock(
  w: InstanceWork,
  lock: HeldLock,
  p: PlannedRefresh,
  so: { recovered: boolean; lockedReason: string | null; failedEarlier: string | undefined },
): Promise<BdmOutcome | ToRefresh> {
  const now = await findBdmById(w.db, p.bdm.id);
  if (!now) return skipped(p.bdm, 'the BDM was deleted meanwhile', `BDM ${p.bdm.uuid} was deleted meanwhile`);
  if (so.failedEarlier) return skipped(now, `not started: ${so.failedEarlier}`, `not started: ${so.failedEarlier}`);
  let decision: Decision = p.decision;
  const changed = now.attachment_id !== p.bdm.attachment_id || now.connection_info !== p.bdm.connection_info;
  // Planned for the recovery of an interrupted refresh that the claim then did not find.
  const noInterruption = !so.recovered && decision.action === 'refresh' && decision.interrupted;
  if (so.recovered || changed || noInterruption) {
    // Judge again on what the database holds now (after the recovery, or another run's refresh).
    const facts = { cell: w.cell, bdm: now, instance: lock.instance, lockedReason: so.lockedReason };
    decision = await inspectBdm(w.inspector, facts, w.steps, true);
    if (!so.recovered && decision.action === 'current') {
      return changed
        ? skipped(now, 'refreshed by another run meanwhile', `BDM ${now.uuid} was refreshed by another run meanwhile`)
        : skipped(now, 'not stale', `BDM ${now.uuid} is not stale (the refresh that held its instance had finished)`);
    }
  }
  switch (decision.action) {
    case 'current':
      return { kind: 'current', bdm: now, info: parseConnectionInfo(now.connection_info) };
    case 'skip':
      return { kind: 'skipped', bdm: now, why: decision.why, error: decision.error };
    case 'fail':
      return { kind: 'failed', bdm: now, error: decision.error, undone: [], remains: 'nothing was changed' };
    case 'refresh':
      return { kind: 'refresh', bdm: now, decision };
  }
}

function skipped(bdm: BdmRecord, why: string, message: string): BdmOutcome {
  return { kind: 'skipped', bdm, why, error: new NovaBdmError(message) };
}

/** One BDM's writes, and what came of them. */
async function refreshNow(w: InstanceWork, lock: HeldLock, { bdm, decision }: ToRefresh, started: number): Promise<BdmOutcome> {
  const ctx = newAdminContext();
  try {
    const done = await writeRefresh(w, decision, bdm, lock.instance, ctx);
    return {
      kind: 'refreshed',
      bdm,
      reasons: decision.reasons,
      forced: decision.forced,
      oldInfo: parseConnectionInfo(bdm.connection_info),
      newInfo: done.newInfo,
      newAttachmentId: done.newAttachmentId,
      rpcVersion: decision.rpcVersion,
      ...(done.onlineSteps ? { onlineSteps: done.onlineSteps } : {}),
      seconds: Math.round(performance.now() - started) / 1000,
      requestId: ctx.requestId,
    };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    const { undone, remains } = err instanceof RefreshFailed ? err.details : { undone: [], remains: 'unknown: run refresh again' };
    if (err instanceof OnlineCleanupFailed) {
      lock.keepForRecovery(`the clean-up after the failed online refresh of BDM ${bdm.uuid} could not run`);
    }
    return { kind: 'failed', bdm, error, undone, remains };
  }
}

/** One BDM's writes, by the flow its decision names. */
async function writeRefresh(
  w: InstanceWork,
  decision: RefreshDecision,
  bdm: BdmRecord,
  instance: HeldLock['instance'],
  ctx: AdminContext,
): Promise<WorkDone & { onlineSteps?: OnlineStep[] }> {
  const common = {
    db: w.db,
    cinder: w.cinderFor(ctx.requestId),
    ctx,
    steps: w.steps,
    eventHost: w.eventHost,
    instance,
    bdm,
    connector: decision.connector,
    cinderView: decision.cinderView,
    volumeAttaching: decision.volumeAttaching,
    listedAttachments: decision.listedAttachments,
    warnings: w.warnings,
  };
  if (decision.flow === 'online') return refreshAttachmentOnline(common);
  w.rpc ??= await connectRpc(w);
  const route =
    decision.rpcVersion !== null && decision.rpcTopic !== null
      ? { version: decision.rpcVersion, topic: decision.rpcTopic }
      : await w.inspector.chooseRoute(w.steps);
  const rpc = { rpc: w.rpc, rpcVersion: route.version, rpcTopic: route.topic, rpcTimeoutSeconds: w.rpcTimeoutSeconds };
  return refreshAttachment({ ...common, ...rpc });
}
