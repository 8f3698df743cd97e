import { BadInput } from '../../errors';
import { checkPrivateFileTarget, writePublicFile } from '../../output/private-file';
import { renderGauges, type GaugeFamily } from '../../output/prometheus-text';
import type { StaleTally } from './tally';

// The audit's metrics_path: the run's counts in the Prometheus text format, for node_exporter's
// textfile collector (or any scraper of such files). Series per cell, compute host, stale reason
// and refresh blocker, never per BDM, so a cloud of a million BDMs makes a file of a few
// thousand lines at most. No secret: cell names, host names and codes only. Written 0644
// (the collector often runs as another user), atomically (a scrape sees the old file or the new).

export interface CellOutcome {
  /** The cell's name, or its uuid when it has none (as in the stale entries). */
  cell: string;
  scanned: number;
  stale: number;
  ok: boolean;
}

export interface AuditRun {
  cells: CellOutcome[];
  tally: StaleTally;
  durationSeconds: number;
  completedAt: Date;
  checkCinder: boolean;
}

/** Refuses a path the write would refuse, before the audit starts. */
export function checkMetricsPath(path: string): void {
  try {
    checkPrivateFileTarget(path);
  } catch (err) {
    throw new BadInput(`metrics_path: ${(err as Error).message}`);
  }
}

export function writeAuditMetrics(path: string, run: AuditRun): void {
  try {
    writePublicFile(path, renderGauges(auditMetricFamilies(run)));
  } catch (err) {
    throw new BadInput(`metrics_path: ${(err as Error).message}`);
  }
}

export function auditMetricFamilies(run: AuditRun): GaugeFamily[] {
  const perCell = (value: (c: CellOutcome) => number) => run.cells.map((c) => ({ labels: { cell: c.cell }, value: value(c) }));
  return [
    {
      name: 'nova_bdm_audit_stale_bdms',
      help: 'Stale volume BDMs the last audit found, per cell.',
      samples: perCell((c) => c.stale),
    },
    {
      name: 'nova_bdm_audit_stale_bdms_by_reason',
      help: 'Stale volume BDMs per cell, compute host (empty: none) and reason code; a BDM with several reasons counts under each.',
      samples: run.tally.staleCounts().map((s) => ({ labels: { cell: s.cell, host: s.host ?? '', reason: s.reason }, value: s.count })),
    },
    {
      name: 'nova_bdm_audit_refreshable_bdms',
      help: 'Stale volume BDMs a refresh could fix now, per cell.',
      samples: perCell((c) => run.tally.refreshableIn(c.cell)),
    },
    {
      name: 'nova_bdm_audit_blocked_bdms',
      help: 'Stale volume BDMs a refresh would skip now, per cell and blocker (vm_state, task_state, locked, no_host, no_live_row).',
      samples: run.tally.blockedCounts().map((b) => ({ labels: { cell: b.cell, blocked_by: b.blocker }, value: b.count })),
    },
    {
      name: 'nova_bdm_audit_scanned_bdms',
      help: 'Attached volume BDMs the last audit read, per cell.',
      samples: perCell((c) => c.scanned),
    },
    {
      name: 'nova_bdm_audit_cell_success',
      help: 'Whether the last audit read the whole cell (1) or lost it part way (0: its counts are partial).',
      samples: perCell((c) => (c.ok ? 1 : 0)),
    },
    {
      name: 'nova_bdm_audit_check_cinder',
      help: 'Whether the last audit also applied the Cinder rules (check_cinder).',
      samples: [{ value: run.checkCinder ? 1 : 0 }],
    },
    {
      name: 'nova_bdm_audit_duration_seconds',
      help: 'How long the last audit took.',
      samples: [{ value: Math.round(run.durationSeconds * 1000) / 1000 }],
    },
    {
      name: 'nova_bdm_audit_completion_timestamp_seconds',
      help: 'When the last audit ended (Unix time).',
      samples: [{ value: Math.round(run.completedAt.getTime() / 1000) }],
    },
  ];
}
