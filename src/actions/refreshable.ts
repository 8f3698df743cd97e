// The one rule that says whether an instance's BDMs can be refreshed now, and why not.
// Single refresh's preconditions, the fleet plan and audit's refreshable/blocked_by all call
// it, so the three cannot disagree.

/** What the rule needs to know about an instance (a row of `instances` plus its locked_reason). */
export interface InstanceFacts {
  uuid: string;
  vm_state: string | null;
  task_state: string | null;
  locked: number | boolean | null;
  locked_by: string | null;
  host: string | null;
  /** system_metadata.locked_reason; only needed when refuse_locked is set. */
  locked_reason?: string | null;
}

/** Why not, as a code: a bounded set, for counting (audit's metrics_path labels). */
export type BlockerCode = 'no_live_row' | 'vm_state' | 'task_state' | 'locked' | 'no_host';

export interface Blocker {
  code: BlockerCode;
  /** Short, for lists (audit's blocked_by, the fleet's skipped[].why). */
  why: string;
  /** One line in nova-manage's words, for a single refresh's msg. */
  message: string;
}

/** The text a refresh (nova-manage's or ours) puts in locked_reason: its lock, not someone else's. */
const REFRESH_LOCK_REASON = /^Refreshing connection_info for BDM /;

export function isRefreshLockReason(reason: string | null | undefined): boolean {
  return typeof reason === 'string' && REFRESH_LOCK_REASON.test(reason);
}

/**
 * undefined when refreshable. An already-locked instance is refreshable and stays locked, as
 * nova-manage does since 27.5.1 / 28.3.0 / 29.0.0 (commit 211737d0ce); with refuseLocked the
 * older rule applies, except to a lock left by an interrupted refresh (recovered first).
 */
export function instanceBlocker(instance: InstanceFacts | undefined, options: { refuseLocked: boolean }): Blocker | undefined {
  if (!instance) return { code: 'no_live_row', why: 'the instance has no live row', message: 'The instance has no live row in its cell.' };
  const uuid = instance.uuid;
  const cannot = (state: string, must: string) => `Instance ${uuid} in ${state}. Cannot refresh connection_info (${must}) while the instance is in this state.`;
  if (instance.vm_state !== 'stopped') {
    return { code: 'vm_state', why: `vm_state ${instance.vm_state} (must be stopped)`, message: cannot(`vm_state ${instance.vm_state}`, 'must be stopped') };
  }
  if (instance.task_state !== null) {
    return { code: 'task_state', why: `task_state ${instance.task_state} (must have no task)`, message: cannot(`task_state ${instance.task_state}`, 'must have no task') };
  }
  if (instance.locked && options.refuseLocked && !isRefreshLockReason(instance.locked_reason)) {
    const by = instance.locked_by ?? 'unknown';
    return {
      code: 'locked',
      why: `locked by someone else (by ${by}; refuse_locked)`,
      message: `${cannot(`locked True (by ${by})`, 'must be unlocked')} (refuse_locked is set)`,
    };
  }
  if (!instance.host) {
    return { code: 'no_host', why: 'no host', message: `Instance ${uuid} has no host: it is not on any compute, so there is no connection to refresh.` };
  }
  return undefined;
}
