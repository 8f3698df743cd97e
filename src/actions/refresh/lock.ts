import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Selectable } from 'kysely';
import { DatabaseConnectionLost, InstanceChanged, LockedByAnotherRefresh, RefreshFailed } from '../../errors';
import type { NovaDatabase } from '../../nova-db/connect';
import { claimInstance, heartbeatClaim, readClaim, releaseClaim, type ClaimValue, type HeldClaim } from '../../nova-db/refresh-claim';
import type { CellDatabase, InstancesTable } from '../../nova-db/schema';
import { newAdminContext, type AdminContext } from '../../rpc/request-context';
import { bdmOfLockReason, isRefreshLockReason } from '../rules/lock-reason';
import { instanceBlocker, refreshFlowOf, type InstanceFacts, type RefreshFlow } from '../rules/refreshable';
import type { StepLog } from '../shared/step-log';

// The lock around a refresh's work, like nova-manage's `locked_instance` context manager:
// lock if unlocked (leave an existing lock in place), do the work, give back what we took.
// What makes it safe between controllers is the claim (nova-db/refresh-claim.ts).

/** Seconds between heartbeats of a held claim, and how old one may get before it counts as abandoned. */
export const HEARTBEAT_SECONDS = 10;
export const LEASE_SECONDS = 90;

/** Claims this process holds now (a claim of this process not in here is left over from a failed run). */
const heldHere = new Set<string>();
const pidNamespace = (() => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
})();
const thisHost = `${hostname()}${pidNamespace ? ` ${pidNamespace}` : ''}`;

/**
 * Is the holder of a claim gone? On this host (same host name and process id namespace) we can
 * tell at once: its process is dead, or it is this process and no longer holds it. Elsewhere,
 * when its heartbeat is older than the lease.
 */
export function isAbandoned(claim: HeldClaim): boolean {
  const { host, pid, token } = claim.value;
  if (host === thisHost) {
    if (pid === process.pid) return !heldHere.has(token);
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }
  return claim.ageSeconds > LEASE_SECONDS;
}

/** The live claim of another run on this instance, if any (read-only; the plan uses it). */
export async function liveClaimOf(db: NovaDatabase<CellDatabase>, instanceUuid: string): Promise<HeldClaim | undefined> {
  const claim = await readClaim(db, instanceUuid);
  return claim && !isAbandoned(claim) ? claim : undefined;
}

/** Who holds a claim: "nova-bdm on HOST, pid PID, since TIME". */
export function claimHolder(claim: HeldClaim): string {
  const v = claim.value;
  return `nova-bdm on ${v.host.split(' ')[0]}, pid ${v.pid}, since ${v.since}`;
}

export function describeClaim(claim: HeldClaim): string {
  return `another refresh holds it (${claimHolder(claim)}, BDMs ${claim.value.bdms.join(', ')})`;
}

export interface HeldLock {
  /** The instance row as locked (locked/locked_by as saved). */
  instance: Selectable<InstancesTable>;
  /** We locked it (and unlock it at the end); false: it was locked by someone else and stays so. */
  weLocked: boolean;
  /** BDM uuids of a refresh that was interrupted here: reconcile them before anything else. */
  interrupted: string[];
  /** The request ids of the lock and unlock phases. */
  lockContext: AdminContext;
  /**
   * Leave the claim and the lock in place when the work ends: what it left needs the recovery
   * only an interrupted refresh gets (the next run takes the claim over and reconciles first).
   */
  keepForRecovery(why: string): void;
}

export interface LockRequest {
  db: NovaDatabase<CellDatabase>;
  instanceUuid: string;
  bdmUuids: string[];
  lockReason: string;
  /** [DEFAULT] host: recorded on the lock/unlock events. */
  eventHost: string;
  refuseLocked: boolean;
  /** The flow the BDMs were inspected for: the lock admits only an instance that still takes it. */
  flow: RefreshFlow;
  steps: StepLog;
  warnings: string[];
}

/** Why the instance no longer takes `flow` (a stopped instance started, a running one stopped), or undefined. */
function flowBlocker(instance: InstanceFacts | undefined, flow: RefreshFlow, refuseLocked: boolean): string | undefined {
  const blocker = instanceBlocker(instance, { refuseLocked, runningInstances: flow === 'online' ? 'online' : 'skip' });
  if (blocker) return blocker.why;
  if (instance && refreshFlowOf(instance) !== flow) return `vm_state ${instance.vm_state} (inspected for the ${flow} refresh)`;
  return undefined;
}

/**
 * Claim (and, if unlocked, lock) the instance, run `work`, then give it back, whatever `work`
 * did. A lost race throws LockedByAnotherRefresh; a state change under us InstanceStateInvalid;
 * in both cases nothing was written.
 */
export async function withInstanceLock<T>(req: LockRequest, work: (lock: HeldLock) => Promise<T>): Promise<T> {
  const token = `${process.pid}-${randomUUID()}`;
  const lockContext = newAdminContext();
  heldHere.add(token);
  let outcome: Awaited<ReturnType<typeof claimInstance>>;
  try {
    outcome = await req.steps.run('lock', () =>
      claimInstance(req.db, {
        instanceUuid: req.instanceUuid,
        value: { token, host: thisHost, pid: process.pid, bdms: req.bdmUuids },
        lockReason: req.lockReason,
        ctx: lockContext,
        eventHost: req.eventHost,
        refuseLocked: req.refuseLocked,
        isAbandoned,
        isRefreshLock: isRefreshLockReason,
        stateAllows: (i) => flowBlocker({ ...i, locked: 0, locked_reason: null }, req.flow, false) === undefined,
      }),
    );
  } catch (err) {
    heldHere.delete(token);
    if (err instanceof DatabaseConnectionLost) {
      // The claim's COMMIT may have reached the server before the connection broke: the
      // instance may now be locked and claimed by this run. The next run takes the claim over
      // (this process is gone then) and recovers, as after a kill.
      const remains = 'the instance may have been locked by this run (the connection broke while the lock was written): run refresh again to recover it';
      throw new RefreshFailed(`${err.message}; ${remains}`, { undone: [], remains }, err);
    }
    throw err;
  }
  if (outcome.kind !== 'claimed') {
    heldHere.delete(token);
    if (outcome.kind === 'held') throw new LockedByAnotherRefresh(`Instance ${req.instanceUuid} is locked by another refresh: ${describeClaim(outcome.by)}; nothing was changed.`);
    const now = outcome.instance;
    const why = flowBlocker(now && { ...now, locked_reason: null }, req.flow, outcome.kind === 'locked') ?? 'the instance has no live row';
    throw new InstanceChanged(`Instance ${req.instanceUuid} changed while it was being checked (${why}): another operation got there first; nothing was changed.`, why);
  }
  const claimed = outcome;
  const interrupted = claimed.tookOver
    ? claimed.tookOver.bdms
    : claimed.adoptedLockReason
      ? [bdmOfLockReason(claimed.adoptedLockReason) ?? ''].filter(Boolean)
      : [];
  if (claimed.tookOver || claimed.adoptedLockReason) {
    req.warnings.push(`instance ${req.instanceUuid} was left locked by an interrupted refresh; recovered it first`);
  }
  const heartbeat = setInterval(() => {
    void heartbeatClaim(req.db, claimed.claimId, claimed.value).catch(() => undefined);
  }, HEARTBEAT_SECONDS * 1000);
  heartbeat.unref();
  let done: { ok: true; value: T } | { ok: false; error: unknown };
  let kept: string | undefined;
  const keepForRecovery = (why: string) => {
    kept ??= why;
  };
  try {
    done = { ok: true, value: await work({ instance: claimed.instance, weLocked: claimed.value.we_locked, interrupted, lockContext, keepForRecovery }) };
  } catch (error) {
    done = { ok: false, error };
  }
  clearInterval(heartbeat);
  if (kept !== undefined) {
    // Given up, not given back: this process no longer holds it, so the next run (here or on
    // another controller, once the lease ran out) takes it over and recovers.
    heldHere.delete(token);
    req.warnings.push(`instance ${req.instanceUuid} stays locked by this refresh (${kept}): the next refresh of it recovers it`);
    if (done.ok) return done.value;
  }
  const unlockContext = newAdminContext();
  const unlocked = kept !== undefined ? false : await req.steps
    .run('unlock', () =>
      releaseClaim(req.db, {
        instanceUuid: req.instanceUuid,
        claimId: claimed.claimId,
        value: claimed.value as ClaimValue,
        lockReason: req.lockReason,
        ctx: unlockContext,
        eventHost: req.eventHost,
      }),
    )
    .then((released) => {
      if (!released) req.warnings.push(`the claim on instance ${req.instanceUuid} was taken over by another run before this one gave it back`);
      return true;
    })
    .catch((e: Error) => {
      req.warnings.push(`could not unlock instance ${req.instanceUuid} (${e.message.split('\n')[0]}); the next refresh of it recovers it`);
      return false;
    })
    .finally(() => heldHere.delete(token));
  if (done.ok) return done.value;
  // `work` handles each BDM's own failure; what escapes it struck between the lock and the
  // first BDM (a read, a recovery): say what the lock left, not "nothing was changed".
  const error = done.error instanceof Error ? done.error : new Error(String(done.error));
  if (error instanceof RefreshFailed) throw error;
  const remains = unlocked
    ? 'no BDM was refreshed; the instance was unlocked again: run refresh again'
    : 'no BDM was refreshed; the instance stays locked by this refresh (the unlock failed too): run refresh again to recover it';
  throw new RefreshFailed(`${error.message.split('\n')[0]}; ${remains}`, { undone: [], remains }, error);
}
