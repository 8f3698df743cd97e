import type { BlockerCode } from '../rules/refreshable';
import type { StaleCode } from '../rules/staleness';

// What the audit keeps of the stale BDMs it finds: counts, and the first `limit` entries. Ansible
// holds every task's result in memory and hands it to every callback, so the result must not
// grow with the cloud; the full list goes to report_path as it is found, and the counts (by cell,
// compute host and reason, and by what blocks a refresh) feed the result and metrics_path.
// Everything kept here is bounded by cells x hosts x reasons, never by BDMs.

/** One stale BDM as the audit reports it. */
export interface StaleBdm {
  bdm_uuid: string | null;
  instance_uuid: string | null;
  volume_id: string;
  host: string | null;
  cell: string;
  reasons: StaleCode[];
  details: string[];
  refreshable: boolean;
  blocked_by?: string;
  /** Refreshable online, the instance running (running_instances: online). */
  online?: true;
}

/** Stale BDMs of one (cell, host, reason): a BDM with several reasons counts under each. */
export interface StaleCount {
  cell: string;
  host: string | null;
  reason: StaleCode;
  count: number;
}

export interface BlockedCount {
  cell: string;
  blocker: BlockerCode;
  count: number;
}

export class StaleTally {
  /** Stale BDMs found (each once, whatever its reasons). */
  total = 0;
  readonly byReason: Partial<Record<StaleCode, number>> = {};
  readonly kept: StaleBdm[] = [];
  private readonly byCellHostReason = new Map<string, StaleCount>();
  private readonly refreshableByCell = new Map<string, number>();
  private readonly blockedByCell = new Map<string, BlockedCount>();

  constructor(private readonly limit: number) {}

  add(entry: StaleBdm, blocker: BlockerCode | undefined): void {
    this.total++;
    if (this.kept.length < this.limit) this.kept.push(entry);
    for (const reason of entry.reasons) {
      this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
      const key = JSON.stringify([entry.cell, entry.host, reason]);
      const c = this.byCellHostReason.get(key);
      if (c) c.count++;
      else this.byCellHostReason.set(key, { cell: entry.cell, host: entry.host, reason, count: 1 });
    }
    if (blocker === undefined) {
      this.refreshableByCell.set(entry.cell, (this.refreshableByCell.get(entry.cell) ?? 0) + 1);
    } else {
      const key = JSON.stringify([entry.cell, blocker]);
      const c = this.blockedByCell.get(key);
      if (c) c.count++;
      else this.blockedByCell.set(key, { cell: entry.cell, blocker, count: 1 });
    }
  }

  get truncated(): boolean {
    return this.total > this.kept.length;
  }

  get refreshable(): number {
    let n = 0;
    for (const v of this.refreshableByCell.values()) n += v;
    return n;
  }

  /** Stale BDMs not refreshable now, per blocker code. */
  blockedBy(): Partial<Record<BlockerCode, number>> {
    const out: Partial<Record<BlockerCode, number>> = {};
    for (const c of this.blockedByCell.values()) out[c.blocker] = (out[c.blocker] ?? 0) + c.count;
    return out;
  }

  staleCounts(): StaleCount[] {
    return [...this.byCellHostReason.values()];
  }

  refreshableIn(cell: string): number {
    return this.refreshableByCell.get(cell) ?? 0;
  }

  blockedCounts(): BlockedCount[] {
    return [...this.blockedByCell.values()];
  }
}
