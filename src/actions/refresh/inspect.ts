import type { Selectable } from 'kysely';
import type { Connector } from '../../connector';
import type { Attachment, CinderClient } from '../../cinder/cinder-client';
import {
  HostConflict,
  InstanceStateInvalid,
  LockedByAnotherRefresh,
  NotRefreshableOnline,
  NovaBdmError,
  PreconditionFailed,
} from '../../errors';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import { readRefreshHold } from '../../nova-db/refresh-claim';
import type { BdmRecord } from '../../nova-db/records';
import type { InstancesTable } from '../../nova-db/schema';
import type { ComputeTopic } from '../../rpc/compute-rpc-version';
import type { OsloRpcClient } from '../../rpc/oslo-rpc-client';
import { listedAttachmentsOf, type CinderIndex } from '../shared/cinder-index';
import { checkCompute, chooseComputeRoute, type ComputeRoute } from './preconditions';
import { describeClaim, isAbandoned } from './lock';
import { parseConnectionInfo } from '../rules/connection-info';
import { onlineBlocker, type OnlineBlockerCode } from '../rules/online-eligibility';
import { isRefreshLockReason } from '../rules/lock-reason';
import { instanceBlocker, refreshFlowOf, type RefreshFlow, type RunningInstances } from '../rules/refreshable';
import { cinderStaleReasons, dbStaleReasons, type StaleReason } from '../rules/staleness';
import type { StepLog } from '../shared/step-log';

// The read-only half of a refresh: for one BDM, decide what a refresh would do and why. The
// single refresh (and its check mode) and the fleet plan both use it; nothing here writes.

export interface InspectSettings {
  requireLibvirt: boolean;
  serviceDownTimeSeconds: number;
  /** [upgrade_levels] compute. */
  upgradeLevel: string | undefined;
  force: boolean;
  expect?: Record<string, unknown>;
  refuseLocked: boolean;
  /** skip (default): only stopped instances; online: also running ones, their rbd BDMs QEMU serves. */
  runningInstances?: RunningInstances;
}

/** What inspections share: clients and the per-host / per-run answers, asked once. */
export class Inspector {
  private readonly hostChecks = new Map<string, Promise<NovaBdmError | undefined>>();
  private route?: Promise<ComputeRoute>;
  /** Cinder's attachments read in bulk by a large fleet plan (never used under a lock: it may be stale there). */
  cinderIndex?: CinderIndex;

  constructor(
    readonly topology: NovaTopology,
    readonly cinder: CinderClient,
    readonly rpcFor: (cell: Cell) => Promise<OsloRpcClient>,
    readonly settings: InspectSettings,
    /** The connector for a compute host, or why there is none. */
    readonly connectorFor: (host: string) => Connector | NovaBdmError,
  ) {}

  /**
   * The compute is up, libvirt, and (for the stopped flow, which calls it) consumes the queue
   * remove_volume_connection goes to; once per cell, host and flow. The online flow sends no RPC:
   * it does not need the queue.
   */
  checkHost(cell: Cell, host: string, steps?: StepLog, flow: RefreshFlow = 'stopped'): Promise<NovaBdmError | undefined> {
    const key = `${cell.uuid} ${host} ${flow}`;
    let check = this.hostChecks.get(key);
    if (!check) {
      check = (async () => {
        try {
          await run(steps, 'check_compute', () => checkCompute(this.topology, cell, host, this.settings));
          if (flow === 'online') return undefined;
          const { topic } = await this.chooseRoute(steps);
          const rpc = await run(steps, 'connect_rabbitmq', () => this.rpcFor(cell));
          const queue = `${topic}.${host}`;
          const consumers = await run(steps, 'check_compute_queue', () => rpc.consumersOf(queue));
          if (consumers === 0) {
            return new PreconditionFailed(
              `nova-compute on ${host} is not consuming its queue ${queue} on ${rpc.where} (is it running and connected?)`,
            );
          }
          return undefined;
        } catch (err) {
          if (err instanceof PreconditionFailed) return err;
          throw err;
        }
      })();
      this.hostChecks.set(key, check);
    }
    return check;
  }

  chooseRoute(steps?: StepLog): Promise<ComputeRoute> {
    this.route ??= run(steps, 'choose_rpc_version', () => chooseComputeRoute(this.topology, this.settings.upgradeLevel));
    return this.route;
  }
}

function run<T>(steps: StepLog | undefined, step: string, work: () => Promise<T>): Promise<T> {
  return steps ? steps.run(step, work) : work();
}

export interface Target {
  cell: Cell;
  bdm: BdmRecord;
  instance: Selectable<InstancesTable>;
  lockedReason: string | null;
}

export type Decision =
  | {
      action: 'refresh';
      /** stopped: nova-manage's flow, with the compute's RPC; online: Cinder and the database alone, the guest untouched. */
      flow: RefreshFlow;
      reasons: StaleReason[];
      forced: boolean;
      /** A refresh of this instance was interrupted: the lock wrapper recovers it first. */
      interrupted: boolean;
      cinderView: Attachment | null;
      /** Cinder has the volume `attaching` (what completePendingAttachment reads). */
      volumeAttaching: boolean;
      /** Every attachment of (volume, instance) as the bulk listing showed it; undefined: not read in bulk. */
      listedAttachments?: Attachment[];
      connector: Connector;
      /** The compute RPC version and topic (null for the online flow, which sends none). */
      rpcVersion: string | null;
      rpcTopic: ComputeTopic | null;
    }
  | { action: 'current'; reasons: [] }
  /** Not refreshable now (the operator may fix it and run again); onlineBlocker: what the host of a running instance holds. */
  | { action: 'skip'; why: string; error: NovaBdmError; reasons: StaleReason[]; onlineBlocker?: OnlineBlockerCode }
  /** Cannot be refreshed as asked (no connector, a connector of another host). */
  | { action: 'fail'; error: NovaBdmError; reasons: StaleReason[] };

/** The compute host in the connector must be the instance's (nova's HostConflict, bug 2012365). */
export function hostConflict(connector: Connector, instanceHost: string): HostConflict | undefined {
  if (connector.host === instanceHost) return undefined;
  return new HostConflict(
    `The compute host '${connector.host}' in the connector does not match the instance host '${instanceHost}': get_connector may have been run on the wrong compute host, or the instance host may be wrong and in need of repair.`,
  );
}

/** `underLock`: called again by the holder of the instance's claim, after recovering it. */
export async function inspectBdm(ins: Inspector, t: Target, steps?: StepLog, underLock = false): Promise<Decision> {
  const { bdm, instance } = t;
  const db = ins.topology.cellDatabase(t.cell);
  // The claim and the lock as they are now, not as the target's row was read a moment ago:
  // a refresh that gave the instance back since then is not an interrupted one.
  const hold = underLock ? undefined : await run(steps, 'check_claim', () => readRefreshHold(db, instance.uuid));
  const claim = hold?.claim;
  if (claim && !isAbandoned(claim)) {
    const error = new LockedByAnotherRefresh(`Instance ${instance.uuid} is locked by another refresh: ${describeClaim(claim)}.`);
    return { action: 'skip', why: 'locked by another refresh', error, reasons: [] };
  }
  const interrupted = hold !== undefined && (claim !== undefined || (hold.locked && isRefreshLockReason(hold.lockedReason)));

  // Is it stale? The DB rules, then Cinder's view of the attachment.
  const reasons = dbStaleReasons(bdm, ins.settings.expect);
  let cinderView: Attachment | null = null;
  let volumeAttaching = false;
  const index = underLock ? undefined : ins.cinderIndex;
  const listed = bdm.attachment_id ? index?.attachments.get(bdm.attachment_id) : undefined;
  if (bdm.attachment_id) {
    const attachmentId = bdm.attachment_id;
    let attachedHost: string | null | undefined;
    if (listed) {
      cinderView = listed;
      attachedHost = index!.hosts.get(attachmentId);
      volumeAttaching = index!.attachingVolumes.has(bdm.volume_id!);
    } else {
      // Not read in bulk, or the listing lacked it. One after the other: the first call's
      // token is then validated once, not twice at once.
      cinderView = await run(steps, 'cinder_get_attachment', () => ins.cinder.getAttachment(attachmentId));
      const volume = cinderView
        ? await run(steps, 'cinder_get_volume', () => ins.cinder.volumeFacts(bdm.volume_id!, attachmentId))
        : undefined;
      attachedHost = volume?.attachedHost;
      volumeAttaching = volume?.status === 'attaching';
    }
    reasons.push(
      ...cinderStaleReasons({ ...bdm, volume_id: bdm.volume_id!, instance_uuid: instance.uuid }, cinderView, attachedHost, instance.host),
    );
  }
  if (reasons.length === 0 && !ins.settings.force && !interrupted) return { action: 'current', reasons: [] };

  const blocker = instanceBlocker(
    { ...instance, locked_reason: t.lockedReason },
    { refuseLocked: ins.settings.refuseLocked, runningInstances: ins.settings.runningInstances },
  );
  if (blocker) return { action: 'skip', why: blocker.why, error: new InstanceStateInvalid(blocker.message), reasons };
  const flow = refreshFlowOf(instance);
  const host = instance.host!;
  const connector = ins.connectorFor(host);
  if (connector instanceof NovaBdmError) return { action: 'fail', error: connector, reasons };
  const conflict = hostConflict(connector, host);
  if (conflict) return { action: 'fail', error: conflict, reasons };
  if (flow === 'online') {
    const held = onlineBlocker(
      {
        attachment_id: bdm.attachment_id,
        info: parseConnectionInfo(bdm.connection_info),
        encrypted: bdm.encrypted,
        encryption_secret_uuid: bdm.encryption_secret_uuid,
        cinderInfo: cinderView?.connection_info ?? null,
      },
      connector,
    );
    if (held) {
      const why = `running instance: ${held.why}`;
      return {
        action: 'skip',
        why,
        error: new NotRefreshableOnline(
          `BDM ${bdm.uuid} of running instance ${instance.uuid} cannot be refreshed online: ${held.why}.`,
          held.code,
        ),
        reasons,
        onlineBlocker: held.code,
      };
    }
  }
  const hostProblem = await ins.checkHost(t.cell, host, steps, flow);
  if (hostProblem) return { action: 'skip', why: hostProblem.message, error: hostProblem, reasons };
  const route = flow === 'stopped' ? await ins.chooseRoute(steps) : null;
  const listedAttachments = listed ? listedAttachmentsOf(index!, bdm.volume_id!, instance.uuid) : undefined;
  return {
    action: 'refresh',
    flow,
    reasons,
    forced: reasons.length === 0 && ins.settings.force,
    interrupted,
    cinderView,
    volumeAttaching,
    ...(listedAttachments ? { listedAttachments } : {}),
    connector,
    rpcVersion: route?.version ?? null,
    rpcTopic: route?.topic ?? null,
  };
}
