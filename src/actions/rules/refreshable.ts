// The one rule that says whether an instance's BDMs can be refreshed now, and why not.
// Single refresh's preconditions, the fleet plan and audit's refreshable/blocked_by all call
// it, so the three cannot disagree.

import { isRefreshLockReason } from './lock-reason';

/** What the rule needs to know about an instance (a row of `instances` plus its locked_reason). */
export interface InstanceFacts {
  uuid: string;
  vm_state: string | null;
  task_state: string | null;
  locked: number | boolean | null;
  locked_by: string | null;
  host: string | null;
  /** nova.compute.power_state: 1 running, 3 paused, 4 shutdown, 7 suspended; only read with running_instances online. */
  power_state?: number | null;
  /** system_metadata.locked_reason; only needed when refuse_locked is set. */
  locked_reason?: string | null;
}

/** Why not, as a code: a bounded set, for counting (audit's metrics_path labels). */
export type BlockerCode = 'no_live_row' | 'vm_state' | 'power_state' | 'task_state' | 'locked' | 'no_host' | 'online_backend';

export interface Blocker {
  code: BlockerCode;
  /** Short, for lists (audit's blocked_by, the fleet's skipped[].why). */
  why: string;
  /** One line in nova-manage's words, for a single refresh's msg. */
  message: string;
}

/** What a refresh does with an instance that is running: skip it (nova-manage's rule), or refresh its rbd BDMs online. */
export type RunningInstances = 'skip' | 'online';

export interface RuleOptions {
  refuseLocked: boolean;
  /** Default skip. */
  runningInstances?: RunningInstances;
}

/** How an instance's BDMs are refreshed: with the compute's help (stopped), or by Cinder and the database alone (online). */
export type RefreshFlow = 'stopped' | 'online';

const POWER_RUNNING = 1;
const POWER_PAUSED = 3;

/** stopped for a stopped instance; online for one the online flow may take (check instanceBlocker first). */
export function refreshFlowOf(instance: Pick<InstanceFacts, 'vm_state'>): RefreshFlow {
  return instance.vm_state === 'stopped' ? 'stopped' : 'online';
}

/**
 * Why a running-mode instance is not one the online flow takes, or undefined. Running means what
 * QEMU is doing now: vm_state active or paused, no task, power_state running or paused.
 * Suspended: libvirt's resume restores the managed-save image, whose domain XML names the old
 * monitors; the BDM is not read, so a refresh changes nothing for it (docs/how-it-works.md).
 */
function notRunning(instance: InstanceFacts, cannot: (state: string, must: string) => string): Blocker | undefined {
  const vm = instance.vm_state;
  if (vm === 'suspended') {
    return {
      code: 'vm_state',
      why: 'vm_state suspended (resume restores the saved domain, not the BDM: resume it, then refresh it online)',
      message: `${cannot('vm_state suspended', 'must be stopped, active or paused')} Resume restores the domain saved at suspend, not the BDM: resume it, then refresh it online.`,
    };
  }
  if (vm === 'shelved_offloaded') {
    return {
      code: 'vm_state',
      why: 'vm_state shelved_offloaded (unshelve connects the volume anew)',
      message: `Instance ${instance.uuid} is shelved and offloaded: it has no host connection to refresh, and unshelve connects its volumes anew.`,
    };
  }
  if (vm === 'shelved') {
    return {
      code: 'vm_state',
      why: 'vm_state shelved (offload it: unshelve then connects the volume anew)',
      message: `${cannot('vm_state shelved', 'must be stopped, active or paused')} Offload it (shelve_offload): unshelve then connects its volumes anew.`,
    };
  }
  if (vm !== 'active' && vm !== 'paused') {
    return {
      code: 'vm_state',
      why: `vm_state ${vm} (must be stopped, active or paused)`,
      message: cannot(`vm_state ${vm}`, 'must be stopped, active or paused'),
    };
  }
  const power = instance.power_state ?? null;
  if (power !== POWER_RUNNING && power !== POWER_PAUSED) {
    return {
      code: 'power_state',
      why: `power_state ${power} with vm_state ${vm} (a running instance must be running or paused)`,
      message: cannot(`vm_state ${vm} with power_state ${power}`, 'a running instance must be running (1) or paused (3)'),
    };
  }
  return undefined;
}

/**
 * undefined when refreshable. An already-locked instance is refreshable and stays locked, as
 * nova-manage does since 27.5.1 / 28.3.0 / 29.0.0 (commit 211737d0ce); with refuseLocked the
 * older rule applies, except to a lock left by an interrupted refresh (recovered first).
 */
export function instanceBlocker(instance: InstanceFacts | undefined, options: RuleOptions): Blocker | undefined {
  if (!instance) return { code: 'no_live_row', why: 'the instance has no live row', message: 'The instance has no live row in its cell.' };
  const uuid = instance.uuid;
  const cannot = (state: string, must: string) =>
    `Instance ${uuid} in ${state}. Cannot refresh connection_info (${must}) while the instance is in this state.`;
  if (instance.vm_state !== 'stopped') {
    if (options.runningInstances !== 'online') {
      return {
        code: 'vm_state',
        why: `vm_state ${instance.vm_state} (must be stopped)`,
        message: cannot(`vm_state ${instance.vm_state}`, 'must be stopped'),
      };
    }
    const blocker = notRunning(instance, cannot);
    if (blocker) return blocker;
  }
  if (instance.task_state !== null) {
    return {
      code: 'task_state',
      why: `task_state ${instance.task_state} (must have no task)`,
      message: cannot(`task_state ${instance.task_state}`, 'must have no task'),
    };
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
    return {
      code: 'no_host',
      why: 'no host',
      message: `Instance ${uuid} has no host: it is not on any compute, so there is no connection to refresh.`,
    };
  }
  return undefined;
}
