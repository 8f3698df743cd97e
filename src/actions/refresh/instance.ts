import type { CinderClient } from '../../cinder/cinder-client';
import { NovaBdmError, RefreshFailed } from '../../errors';
import type { Cell } from '../../nova-db/cells';
import { findBdmById, systemMetadataOf } from '../../nova-db/refresh-reads';
import type { BdmRecord } from '../../nova-db/records';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { newAdminContext, type AdminContext } from '../../rpc/request-context';
import { parseConnectionInfo, type ConnectionInfo } from '../rules/connection-info';
import { lockReasonFor } from '../rules/lock-reason';
import { inspectBdm, type Decision, type Inspector } from './inspect';
import { withInstanceLock, type HeldLock } from './lock';
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

export async function refreshInstance(input: InstanceRunInput): Promise<InstanceRun> {
  const { inspector, cinder, cell, planned } = input;
  const db = inspector.topology.cellDatabase(cell);
  // One flow per instance: its state decides (refreshable.ts refreshFlowOf), and the lock admits it only in that state.
  const flow = planned[0]!.decision.flow;
  // The online flow sends no RPC: no RabbitMQ connection for it.
  let rpc: OsloRpcClient | undefined = flow === 'stopped' ? await input.steps.run('connect_rabbitmq', () => inspector.rpcFor(cell)) : undefined;
  /** One BDM's writes, by the flow its decision names. */
  const refreshOne = async (decision: PlannedRefresh['decision'], bdm: BdmRecord, instance: HeldLock['instance'], ctx: AdminContext): Promise<WorkDone & { onlineSteps?: OnlineStep[] }> => {
    const common = {
      db, cinder: input.cinderFor(ctx.requestId), ctx, steps: input.steps, eventHost: input.eventHost, instance, bdm,
      connector: decision.connector, cinderView: decision.cinderView, listedAttachments: decision.listedAttachments, warnings: input.warnings,
    };
    if (decision.flow === 'online') return refreshAttachmentOnline(common);
    rpc ??= await input.steps.run('connect_rabbitmq', () => inspector.rpcFor(cell));
    const route = decision.rpcVersion !== null && decision.rpcTopic !== null
      ? { version: decision.rpcVersion, topic: decision.rpcTopic }
      : await inspector.chooseRoute(input.steps);
    return refreshAttachment({ ...common, rpc, rpcVersion: route.version, rpcTopic: route.topic, rpcTimeoutSeconds: input.rpcTimeoutSeconds });
  };
  const lockReason = lockReasonFor(planned[0]!.bdm);
  return withInstanceLock(
    {
      db,
      instanceUuid: input.instanceUuid,
      bdmUuids: planned.map((p) => p.bdm.uuid ?? String(p.bdm.id)),
      lockReason,
      eventHost: input.eventHost,
      refuseLocked: input.refuseLocked,
      flow,
      steps: input.steps,
      warnings: input.warnings,
    },
    async (lock) => {
      const run: InstanceRun = { outcomes: [], lockRequestId: lock.lockContext.requestId };
      if (lock.interrupted.length > 0 || planned.some((p) => p.decision.interrupted)) {
        const all = planned.map((p) => p.bdm);
        run.recovered = await input.steps.run('recover', () => recoverInterrupted(db, cinder, all, input.instanceUuid, input.eventHost));
      }
      const lockedReason = (await systemMetadataOf(db, input.instanceUuid)).locked_reason ?? null;
      let failedEarlier: string | undefined;
      for (const p of planned) {
        const started = performance.now();
        const now = await findBdmById(db, p.bdm.id);
        if (!now) {
          run.outcomes.push({ kind: 'skipped', bdm: p.bdm, why: 'the BDM was deleted meanwhile', error: new NovaBdmError(`BDM ${p.bdm.uuid} was deleted meanwhile`) });
          continue;
        }
        if (failedEarlier) {
          run.outcomes.push({ kind: 'skipped', bdm: now, why: `not started: ${failedEarlier}`, error: new NovaBdmError(`not started: ${failedEarlier}`) });
          continue;
        }
        let decision: Decision = p.decision;
        const changed = now.attachment_id !== p.bdm.attachment_id || now.connection_info !== p.bdm.connection_info;
        if (run.recovered || changed) {
          // Judge again on what the database holds now (after the recovery, or another run's refresh).
          decision = await inspectBdm(inspector, { cell, bdm: now, instance: lock.instance, lockedReason }, input.steps, true);
          if (changed && !run.recovered && decision.action === 'current') {
            run.outcomes.push({ kind: 'skipped', bdm: now, why: 'refreshed by another run meanwhile', error: new NovaBdmError(`BDM ${now.uuid} was refreshed by another run meanwhile`) });
            continue;
          }
        }
        if (decision.action === 'current') {
          run.outcomes.push({ kind: 'current', bdm: now, info: parseConnectionInfo(now.connection_info) });
          continue;
        }
        if (decision.action !== 'refresh') {
          const error = decision.error;
          if (decision.action === 'skip') run.outcomes.push({ kind: 'skipped', bdm: now, why: decision.why, error });
          else run.outcomes.push({ kind: 'failed', bdm: now, error, undone: [], remains: 'nothing was changed' });
          continue;
        }
        const ctx = newAdminContext();
        try {
          const done = await refreshOne(decision, now, lock.instance, ctx);
          run.outcomes.push({
            kind: 'refreshed', bdm: now, reasons: decision.reasons, forced: decision.forced, oldInfo: parseConnectionInfo(now.connection_info),
            newInfo: done.newInfo, newAttachmentId: done.newAttachmentId, rpcVersion: decision.rpcVersion,
            ...(done.onlineSteps ? { onlineSteps: done.onlineSteps } : {}),
            seconds: Math.round(performance.now() - started) / 1000, requestId: ctx.requestId,
          });
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          const details = err instanceof RefreshFailed ? err.details : { undone: [], remains: 'unknown: run refresh again' };
          run.outcomes.push({ kind: 'failed', bdm: now, error, undone: details.undone, remains: details.remains });
          if (err instanceof OnlineCleanupFailed) lock.keepForRecovery(`the clean-up after the failed online refresh of BDM ${now.uuid} could not run`);
          failedEarlier = `the refresh of BDM ${now.uuid} of this instance failed`;
        }
      }
      return run;
    },
  );
}
