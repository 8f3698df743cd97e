import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Selectable } from 'kysely';
import { DatabaseConnectionLost, InstanceChanged, LockedByAnotherRefresh, RefreshFailed } from '../../errors';
import type { NovaDatabase } from '../../nova-db/connect';
import { claimInstance, heartbeatClaim, readClaim, releaseClaim, type ClaimOutcome, type HeldClaim } from '../../nova-db/refresh-claim';
import type { CellDatabase, InstancesTable } from '../../nova-db/schema';
import { newAdminContext, type AdminContext } from '../../rpc/request-context';
import { bdmOfLockReason, isRefreshLockReason } from '../rules/lock-reason';
import { instanceBlocker, refreshFlowOf, type InstanceFacts, type RefreshFlow } from '../rules/refreshable';
import type { StepLog } from '../shared/step-log';

// The lock around a refresh's work, like nova-manage's `locked_instance` context manager:
// lock if unlocked (leave an existing lock in place), do the work, give back what we took, and
// say how it went as typed values (the warnings are worded once, in lockWarnings).
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
  /** An interrupted refresh had left the instance locked: this run took its lock over. */
  leftByInterruptedRefresh: boolean;
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
}

/** How the instance was given back at the end. */
export type UnlockOutcome =
  /** Unlocked (if we locked it) and the claim given back, or found taken over by another run first. */
  | { unlocked: true; claimTakenOver: boolean }
  /** Still locked by this run: kept for the next run's recovery (keepForRecovery), or the unlock failed. */
  | { unlocked: false; kept: boolean; reason: string };

/** The work's result, or (it threw) a RefreshFailed saying what the lock left; either way, the unlock's outcome. */
export type Locked<T> = { unlock: UnlockOutcome } & ({ ok: true; value: T } | { ok: false; error: RefreshFailed });

/**
 * Claim (and, if unlocked, lock) the instance, run `work`, then give it back, whatever `work`
 * did. Throws only when it took nothing: a lost race LockedByAnotherRefresh, a state change under
 * us InstanceChanged, a connection lost while locking RefreshFailed (the lock may have landed).
 */
export async function withInstanceLock<T>(req: LockRequest, work: (lock: HeldLock) => Promise<T>): Promise<Locked<T>> {
  const claim = await claimAndLock(req);
  const lock = heldLock(claim);
  const done = await whileHeartbeating(req.db, claim, () => work(lock));
  const unlock = await giveBack(req, claim);
  if (done.ok) return { ok: true, value: done.value, unlock };
  return { ok: false, error: failedUnderLock(done.error, unlock), unlock };
}

/** The warnings an operator gets about the lock: an interrupted refresh's lock taken over, the instance not given back. */
export const lockWarnings = {
  recovered: (instanceUuid: string) => `instance ${instanceUuid} was left locked by an interrupted refresh; recovered it first`,
  unlock(instanceUuid: string, unlock: UnlockOutcome): string | undefined {
    if (unlock.unlocked && !unlock.claimTakenOver) return undefined;
    if (unlock.unlocked) return `the claim on instance ${instanceUuid} was taken over by another run before this one gave it back`;
    if (unlock.kept) return `instance ${instanceUuid} stays locked by this refresh (${unlock.reason}): the next refresh of it recovers it`;
    return `could not unlock instance ${instanceUuid} (${unlock.reason}); the next refresh of it recovers it`;
  },
};

type Claimed = Extract<ClaimOutcome, { kind: 'claimed' }>;

/** A claim this process holds: `token` is in heldHere until it is given back or given up. */
interface Claim {
  token: string;
  lockContext: AdminContext;
  claimed: Claimed;
  /** Set by keepForRecovery: why the claim and the lock stay. */
  keptBecause?: string;
}

/** Take the claim (and the lock, if the instance is unlocked), or throw having taken nothing. */
async function claimAndLock(req: LockRequest): Promise<Claim> {
  const token = `${process.pid}-${randomUUID()}`;
  const lockContext = newAdminContext();
  heldHere.add(token);
  let outcome: ClaimOutcome;
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
    throw err instanceof DatabaseConnectionLost ? lockMayHaveLanded(err) : err;
  }
  if (outcome.kind === 'claimed') return { token, lockContext, claimed: outcome };
  heldHere.delete(token);
  if (outcome.kind === 'held') {
    const by = describeClaim(outcome.by);
    throw new LockedByAnotherRefresh(`Instance ${req.instanceUuid} is locked by another refresh: ${by}; nothing was changed.`);
  }
  const now = outcome.instance;
  const why = flowBlocker(now && { ...now, locked_reason: null }, req.flow, outcome.kind === 'locked') ?? 'the instance has no live row';
  const message = `Instance ${req.instanceUuid} changed while it was being checked (${why})`;
  throw new InstanceChanged(`${message}: another operation got there first; nothing was changed.`, why);
}

/** Why the instance no longer takes `flow` (a stopped instance started, a running one stopped), or undefined. */
function flowBlocker(instance: InstanceFacts | undefined, flow: RefreshFlow, refuseLocked: boolean): string | undefined {
  const blocker = instanceBlocker(instance, { refuseLocked, runningInstances: flow === 'online' ? 'online' : 'skip' });
  if (blocker) return blocker.why;
  if (instance && refreshFlowOf(instance) !== flow) return `vm_state ${instance.vm_state} (inspected for the ${flow} refresh)`;
  return undefined;
}

/**
 * The claim's COMMIT may have reached the server before the connection broke: the instance may
 * now be locked and claimed by this run. The next run takes the claim over (this process is gone
 * then) and recovers, as after a kill.
 */
function lockMayHaveLanded(err: DatabaseConnectionLost): RefreshFailed {
  const remains =
    'the instance may have been locked by this run (the connection broke while the lock was written): run refresh again to recover it';
  return new RefreshFailed(`${err.message}; ${remains}`, { undone: [], remains }, err);
}

function heldLock(claim: Claim): HeldLock {
  const { claimed } = claim;
  const adopted = claimed.adoptedLockReason !== undefined ? bdmOfLockReason(claimed.adoptedLockReason) : undefined;
  return {
    instance: claimed.instance,
    weLocked: claimed.value.we_locked,
    leftByInterruptedRefresh: claimed.tookOver !== undefined || claimed.adoptedLockReason !== undefined,
    interrupted: claimed.tookOver ? claimed.tookOver.bdms : adopted ? [adopted] : [],
    lockContext: claim.lockContext,
    keepForRecovery: (why) => {
      claim.keptBecause ??= why;
    },
  };
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Run `work` while a heartbeat keeps the claim fresh (another controller takes over a claim past its lease). */
async function whileHeartbeating<T>(db: NovaDatabase<CellDatabase>, claim: Claim, work: () => Promise<T>): Promise<Settled<T>> {
  const { claimId, value } = claim.claimed;
  const heartbeat = setInterval(() => {
    void heartbeatClaim(db, claimId, value).catch(() => undefined);
  }, HEARTBEAT_SECONDS * 1000);
  heartbeat.unref();
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    return { ok: false, error };
  } finally {
    clearInterval(heartbeat);
  }
}

/** Unlock (if we locked it) and give the claim back; or, kept for recovery, give it up. */
async function giveBack(req: LockRequest, claim: Claim): Promise<UnlockOutcome> {
  if (claim.keptBecause !== undefined) {
    // Given up, not given back: this process no longer holds it, so the next run (here or on
    // another controller, once the lease ran out) takes it over and recovers.
    heldHere.delete(claim.token);
    return { unlocked: false, kept: true, reason: claim.keptBecause };
  }
  try {
    const released = await req.steps.run('unlock', () =>
      releaseClaim(req.db, {
        instanceUuid: req.instanceUuid,
        claimId: claim.claimed.claimId,
        value: claim.claimed.value,
        lockReason: req.lockReason,
        ctx: newAdminContext(),
        eventHost: req.eventHost,
      }),
    );
    return { unlocked: true, claimTakenOver: !released };
  } catch (err) {
    return { unlocked: false, kept: false, reason: (err instanceof Error ? err.message : String(err)).split('\n')[0]! };
  } finally {
    heldHere.delete(claim.token);
  }
}

/**
 * `work` handles each BDM's own failure; what escapes it struck between the lock and the first
 * BDM (a read, a recovery): say what the lock left, not "nothing was changed".
 */
function failedUnderLock(thrown: unknown, unlock: UnlockOutcome): RefreshFailed {
  const error = thrown instanceof Error ? thrown : new Error(String(thrown));
  if (error instanceof RefreshFailed) return error;
  const remains = unlock.unlocked
    ? 'no BDM was refreshed; the instance was unlocked again: run refresh again'
    : 'no BDM was refreshed; the instance stays locked by this refresh (the unlock failed too): run refresh again to recover it';
  return new RefreshFailed(`${error.message.split('\n')[0]}; ${remains}`, { undone: [], remains }, error);
}
