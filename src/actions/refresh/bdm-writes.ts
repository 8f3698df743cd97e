import type { Selectable } from 'kysely';
import type { Connector } from '../../connector';
import type { Attachment, CinderClient } from '../../cinder/cinder-client';
import type { RefreshFailed } from '../../errors';
import type { NovaDatabase } from '../../nova-db/connect';
import { finishRefreshAction, startRefreshAction } from '../../nova-db/refresh-writes';
import type { BdmRecord } from '../../nova-db/records';
import type { CellDatabase, InstancesTable } from '../../nova-db/schema';
import type { AdminContext } from '../../rpc/request-context';
import type { StepLog } from '../shared/step-log';

// What both flows of one BDM's writes share (work.ts: the instance stopped; online.ts: running).

/** What the instance's refresh action is recorded with. */
export interface ActionRecording {
  db: NovaDatabase<CellDatabase>;
  /** The refresh phase's context: its request id goes to Cinder, the RPC (stopped flow) and the action. */
  ctx: AdminContext;
  steps: StepLog;
  /** [DEFAULT] host of this process (the action event's host). */
  eventHost: string;
  warnings: string[];
}

/** What one BDM's writes start from, in either flow. */
export interface BdmWriteInput extends ActionRecording {
  cinder: CinderClient;
  /** The instance as locked. */
  instance: Selectable<InstancesTable>;
  bdm: BdmRecord;
  connector: Connector;
  /** Cinder's view of the BDM's attachment, read by the inspection (null: none, gone, or legacy). */
  cinderView: Attachment | null;
  /** Cinder has the volume `attaching` (as the inspection read it). */
  volumeAttaching: boolean;
  /** Every attachment of (volume, instance) as a fleet plan's bulk listing showed it: no listing of our own needed. */
  listedAttachments?: Attachment[];
}

/**
 * Run `work` as the instance's refresh action, like nova-manage's _do_refresh: start it, and
 * finish it whatever came of the work, with the failure's message. A failure (the start's too)
 * first goes to `failed`, which restores the invariant and says what remains: its reconcile
 * runs before the action is finished, so the action's end covers the clean-up.
 */
export async function asRefreshAction<T>(
  a: ActionRecording,
  instanceUuid: string,
  work: () => Promise<T>,
  failed: (failure: Error) => Promise<RefreshFailed>,
): Promise<T> {
  let actionId: number | undefined;
  let failure: Error | undefined;
  try {
    actionId = await a.steps.run('start_action', () => startRefreshAction(a.db, instanceUuid, a.ctx));
    return await work();
  } catch (err) {
    failure = err instanceof Error ? err : new Error(String(err));
    throw await failed(failure);
  } finally {
    if (actionId !== undefined) await finishAction(a, actionId, failure);
  }
}

/** An action left unfinished is a warning, not a failure: the BDM's outcome stands. */
async function finishAction(a: ActionRecording, actionId: number, failure: Error | undefined): Promise<void> {
  await a.steps
    .run('finish_action', () => finishRefreshAction(a.db, actionId, a.eventHost, failure?.message))
    .catch((e: Error) => {
      a.warnings.push(`could not finish instance action: ${e.message.split('\n')[0]}`);
    });
}

/**
 * Complete the BDM's attachment if Cinder was left between its attach steps: Cinder reserves a
 * new attachment only for an in-use or reserved volume (cinder/volume/api.py _attachment_reserve).
 * - The attachment `attaching`: a run whose os-complete failed leaves it so (connection_info set),
 *   and so does a cinder-api that dies inside the PUT: cinder-volume has set `attaching` and the
 *   connector, and the API never saves the connection_info (api.py attachment_update saves it
 *   after the RPC returns). The refresh then replaces it.
 * - The attachment `attached` but the volume `attaching`: a cinder-api that dies inside
 *   os-complete, which saves the attachment and then the volume (cinder/api/v3/attachments.py
 *   complete). Completing it again saves the volume in-use.
 */
export async function completePendingAttachment(
  cinder: CinderClient,
  steps: StepLog,
  /** Cinder's view of the BDM's attachment, as the inspection read it. */
  pending: Attachment | null | undefined,
  bdm: BdmRecord,
  /** Cinder has the volume `attaching`, as the inspection read it. */
  volumeAttaching: boolean,
): Promise<void> {
  if (pending?.id !== bdm.attachment_id) return;
  if (pending.status === 'attaching' || (pending.status === 'attached' && volumeAttaching)) {
    await steps.run('cinder_complete_pending', () => cinder.completeAttachment(pending.id));
  }
}

/** The connector as Nova sends it to Cinder: the BDM's device name as the mountpoint unless it names one. */
export function connectorFor(connector: Connector, bdm: BdmRecord): Connector {
  const sent = { ...connector };
  if (sent.mountpoint === undefined && bdm.device_name) sent.mountpoint = bdm.device_name;
  return sent;
}
