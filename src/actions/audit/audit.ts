import type { CinderClient } from '../../cinder/cinder-client';
import { Limiter, mapWithConcurrency } from '../shared/limiter';
import { ListedAttachments } from '../shared/cinder-index';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import { streamVolumeBdmBatches, type AuditRow } from '../../nova-db/audit-query';
import type { FleetFilters } from '../../selection';
import { AuditReportFile } from './report';
import { checkMetricsPath, writeAuditMetrics } from './metrics';
import { StaleTally, type StaleBdm } from './tally';
import { BadInput } from '../../errors';
import { parseConnectionInfo } from '../rules/connection-info';
import { onlineBlocker } from '../rules/online-eligibility';
import { instanceBlocker, refreshFlowOf, type BlockerCode, type RunningInstances } from '../rules/refreshable';
import { cinderStaleReasons, dbStaleReasons, type StaleCode, type StaleReason } from '../rules/staleness';
import { cellLabel } from '../../cell-label';

export type { StaleBdm } from './tally';

// Every attached volume BDM across all cells, judged by the staleness rules. A few cells are read
// side by side, each streamed in batches, so memory stays flat however large the cloud: of the
// stale BDMs only counts and the first stale_limit are kept; report_path gets them all, written
// as they are found, and metrics_path the counts.

/**
 * Cells read at once: two keep a database server and our one thread busy together. More do not
 * go faster (our JSON parsing is the limit), and cost memory: measured over a million BDMs, with
 * four at once the socket reads mysql2 holds for a row's tail lived long enough to reach V8's old
 * generation, and peak RSS grew with the fleet (+15 MiB of buffers); with two it stays flat.
 */
export const CELL_CONCURRENCY = 2;

/** The default of stale_limit: stale BDMs returned inline. */
export const STALE_LIMIT = 1000;

export interface AuditOptions {
  /** The selection (cells by names or uuids). */
  filters: FleetFilters;
  /** The refuse_locked rule (refreshable.ts). */
  refuseLocked?: boolean;
  /** The running_instances rule (refreshable.ts, online-eligibility.ts); default skip. */
  runningInstances?: RunningInstances;
  expect?: Record<string, unknown>;
  /** Also judge by Cinder: its attachment listing, per-attachment GETs (bounded) only for what it lacks. */
  cinder?: { client: CinderClient; concurrency: number };
  reportPath?: string;
  metricsPath?: string;
  /** Stale entries returned inline (the first found); the rest only in the counts, report_path and metrics_path. */
  staleLimit?: number;
  onProgress?: (p: { cellsDone: number; cells: number; scanned: number; stale: number }) => void;
}

interface CellTotals {
  uuid: string;
  name: string | null;
  scanned: number;
  stale: number;
  error?: string;
}

export interface AuditResult {
  changed: false;
  failed?: true;
  msg: string;
  totals: {
    scanned: number;
    /** Every stale BDM found, however many `stale` holds. */
    stale: number;
    by_reason: Partial<Record<StaleCode, number>>;
    refreshable: number;
    blocked_by: Partial<Record<BlockerCode, number>>;
    cells: CellTotals[];
    cinder_requests?: number;
  };
  /** The first stale_limit stale BDMs found. */
  stale: StaleBdm[];
  /** true when `stale` holds fewer than totals.stale. */
  stale_truncated: boolean;
  seconds: number;
  report_path?: string;
  metrics_path?: string;
}

export async function auditFleet(topology: NovaTopology, options: AuditOptions): Promise<AuditResult> {
  const started = performance.now();
  if (options.metricsPath) checkMetricsPath(options.metricsPath);
  const report = options.reportPath ? AuditReportFile.open(options.reportPath) : undefined;
  try {
    const { result, cells, tally } = await auditCells(topology, options, report);
    result.seconds = Math.round(performance.now() - started) / 1000;
    if (report) {
      result.report_path = options.reportPath;
      await report.commit(result);
    }
    if (options.metricsPath) {
      writeAuditMetrics(options.metricsPath, {
        cells: cells.map((c) => ({ cell: cellLabel(c), scanned: c.scanned, stale: c.stale, ok: c.error === undefined })),
        tally,
        durationSeconds: result.seconds,
        completedAt: new Date(),
        checkCinder: options.cinder !== undefined,
      });
      result.metrics_path = options.metricsPath;
    }
    return result;
  } catch (err) {
    await report?.abort();
    throw err;
  }
}

/** What Cinder said in bulk (read once before the cells), with the client for what it lacks. */
type AuditCinder = { listed: ListedAttachments; client: CinderClient; concurrency: number };

async function loadAuditCinder(cinder: NonNullable<AuditOptions['cinder']>): Promise<AuditCinder> {
  return { ...cinder, listed: await ListedAttachments.load(cinder.client, cinder.concurrency) };
}

async function auditCells(
  topology: NovaTopology,
  options: AuditOptions,
  report: AuditReportFile | undefined,
): Promise<{ result: AuditResult; cells: CellTotals[]; tally: StaleTally }> {
  const [cells, cinder] = await Promise.all([
    topology.listCells().then((all) => selectCells(all, options.filters.cells)),
    options.cinder ? loadAuditCinder(options.cinder) : undefined,
  ]);
  const tally = new StaleTally(options.staleLimit ?? STALE_LIMIT);
  let scanned = 0;
  let cellsDone = 0;
  const progress = () => options.onProgress?.({ cellsDone, cells: cells.length, scanned, stale: tally.total });

  const perCell = await mapWithConcurrency(cells, CELL_CONCURRENCY, async (cell): Promise<CellTotals> => {
    const totals: CellTotals = { uuid: cell.uuid, name: cell.name, scanned: 0, stale: 0 };
    const record = (row: AuditRow, reasons: StaleReason[]) => {
      totals.scanned++;
      scanned++;
      if (scanned % 5000 === 0) progress();
      if (reasons.length === 0) return;
      totals.stale++;
      const { entry, blocker } = staleEntry(row, cell, reasons, {
        refuseLocked: options.refuseLocked === true,
        runningInstances: options.runningInstances,
      });
      tally.add(entry, blocker);
      report?.addStale(entry);
    };
    try {
      await auditCell(topology, cell, options, cinder, record, report);
    } catch (err) {
      totals.error = err instanceof Error ? err.message : String(err);
    }
    cellsDone++;
    progress();
    return totals;
  });

  const failedCells = perCell.filter((c) => c.error);
  const result: AuditResult = {
    changed: false,
    msg: '',
    totals: {
      scanned,
      stale: tally.total,
      by_reason: tally.byReason,
      refreshable: tally.refreshable,
      blocked_by: tally.blockedBy(),
      cells: perCell,
      ...(cinder ? { cinder_requests: cinder.client.requestCount } : {}),
    },
    stale: tally.kept,
    stale_truncated: tally.truncated,
    seconds: 0,
  };
  if (failedCells.length > 0) {
    result.failed = true;
    result.msg = `audit incomplete: ${failedCells.map((c) => `${cellLabel(c)}: ${c.error}`).join('; ')} (the other cells were audited)`;
  } else {
    const shown = tally.truncated
      ? ` (the first ${tally.kept.length} listed${options.reportPath ? `; all in ${options.reportPath}` : ''})`
      : '';
    result.msg = `${scanned} volume BDMs audited in ${cells.length} cells: ${tally.total} stale${shown}`;
  }
  return { result, cells: perCell, tally };
}

async function auditCell(
  topology: NovaTopology,
  cell: Cell,
  options: AuditOptions,
  cinder: AuditCinder | undefined,
  record: (row: AuditRow, reasons: StaleReason[]) => void,
  report: AuditReportFile | undefined,
): Promise<void> {
  const db = topology.cellDatabase(cell);
  const lookups = new Limiter((lookup: () => Promise<void>) => lookup(), { limit: cinder?.concurrency ?? 1 });
  try {
    await scanCell(db, options, cinder, record, report, lookups);
  } finally {
    // The scan may break (cell DB lost) with Cinder calls still out: let them settle before the
    // cell's totals are final, or they would keep changing a result already returned.
    await lookups.settled();
  }
}

async function scanCell(
  db: ReturnType<NovaTopology['cellDatabase']>,
  options: AuditOptions,
  cinder: AuditCinder | undefined,
  record: (row: AuditRow, reasons: StaleReason[]) => void,
  report: AuditReportFile | undefined,
  lookups: Limiter<() => Promise<void>>,
): Promise<void> {
  for await (const rows of streamVolumeBdmBatches(db, options.filters, { withLockedReason: options.refuseLocked === true })) {
    for (const row of rows) {
      const info = parseConnectionInfo(row.connection_info); // once per row: the hot path at a million
      const reasons = dbStaleReasons(row, options.expect, info);
      if (!cinder || row.attachment_id === null) {
        record(row, reasons);
        continue;
      }
      const attachmentId = row.attachment_id;
      const bdm = { ...row, instance_uuid: row.instance_uuid ?? '' };
      const listed = cinder.listed.get(attachmentId, info);
      if (listed) {
        reasons.push(...cinderStaleReasons(bdm, listed.attachment, listed.host, row.host));
        record(row, reasons);
        continue;
      }
      // Not in the listing (made since, or gone): ask for it alone. Bounded, so a cell of
      // missing attachments never floods Cinder.
      await lookups.room();
      lookups.add(async () => {
        const [attachment, host] = await Promise.all([
          cinder.client.getAttachment(attachmentId),
          cinder.client.attachedHost(row.volume_id, attachmentId),
        ]);
        reasons.push(...cinderStaleReasons(bdm, attachment, host, row.host));
        record(row, reasons);
      });
    }
    // Back pressure from the report file: the disk, not memory, absorbs a slow writer.
    if (report) await report.written();
    // The async iteration keeps the last batch referenced while it waits for the next one; with
    // other cells read meanwhile, its rows would outlive two minor GCs and be promoted to V8's
    // old generation, where such garbage piles up until a full GC (peak RSS growing with the fleet).
    rows.length = 0;
  }
  await lookups.done();
}

function staleEntry(
  row: AuditRow,
  cell: Cell,
  reasons: StaleReason[],
  rule: { refuseLocked: boolean; runningInstances?: RunningInstances },
): { entry: StaleBdm; blocker: BlockerCode | undefined } {
  let blocker: { code: BlockerCode; why: string } | undefined = instanceBlocker(
    row.vm_state === null ? undefined : { ...row, uuid: row.instance_uuid ?? '' },
    rule,
  );
  const online = !blocker && refreshFlowOf(row) === 'online';
  if (online) {
    // The audit has no connectors: a local-attach host is found by the refresh, which has them.
    const held = onlineBlocker({
      attachment_id: row.attachment_id,
      info: parseConnectionInfo(row.connection_info),
      encrypted: row.encrypted,
      encryption_secret_uuid: row.encryption_secret_uuid,
    });
    if (held) blocker = { code: 'online_backend', why: `running instance: ${held.why}` };
  }
  const entry: StaleBdm = {
    bdm_uuid: row.uuid,
    instance_uuid: row.instance_uuid,
    volume_id: row.volume_id,
    host: row.host,
    cell: cellLabel(cell),
    reasons: reasons.map((r) => r.code),
    details: reasons.map((r) => r.detail),
    refreshable: blocker === undefined,
    ...(blocker ? { blocked_by: blocker.why } : {}),
    ...(online && !blocker ? { online: true as const } : {}),
  };
  return { entry, blocker: blocker?.code };
}

/** The cells named (by name or uuid), in the API database's order; an unknown name is an error. */
export function selectCells(cells: Cell[], wanted: string[] | undefined): Cell[] {
  if (!wanted?.length) return cells;
  const unknown = wanted.filter((w) => !cells.some((c) => c.name === w || c.uuid === w.toLowerCase()));
  if (unknown.length > 0) {
    throw new BadInput(`no such cell: ${unknown.join(', ')} (cells: ${cells.map(cellLabel).join(', ')})`);
  }
  return cells.filter((c) => wanted.some((w) => c.name === w || c.uuid === w.toLowerCase()));
}
