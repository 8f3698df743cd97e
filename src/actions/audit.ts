import type { CinderClient } from '../cinder/cinder-client';
import { loadCinderIndex, type CinderIndex } from './cinder-index';
import type { Cell, NovaTopology } from '../nova-db/cells';
import { streamVolumeBdmBatches, type AuditFilters, type AuditRow } from '../nova-db/audit-query';
import { AuditReportFile } from './audit-report';
import { BadInput } from '../errors';
import { parseConnectionInfo } from './connection-info';
import { onlineBlocker } from './online-eligibility';
import { instanceBlocker, refreshFlowOf, type RunningInstances } from './refreshable';
import { cinderStaleReasons, dbStaleReasons, type StaleCode, type StaleReason } from './staleness';

// Every attached volume BDM across all cells, judged by the staleness rules. A few cells are read
// side by side, each streamed in batches, so memory stays flat however large the cloud: only the
// stale BDMs are kept (and, with report_path, written to the file as they are found).

/** Cells read at once: enough to keep the database servers busy, few enough to bound memory and connections. */
export const CELL_CONCURRENCY = 4;

export interface AuditOptions {
  filters: AuditFilters;
  /** Only these cells (names or uuids). */
  cells?: string[];
  /** The refuse_locked rule (refreshable.ts). */
  refuseLocked?: boolean;
  /** The running_instances rule (refreshable.ts, online-eligibility.ts); default skip. */
  runningInstances?: RunningInstances;
  expect?: Record<string, unknown>;
  /** Also judge by Cinder: its attachment listing, per-attachment GETs (bounded) only for what it lacks. */
  cinder?: { client: CinderClient; concurrency: number };
  reportPath?: string;
  onProgress?: (p: { cellsDone: number; cells: number; scanned: number; stale: number }) => void;
}

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

interface CellTotals {
  uuid: string;
  name: string | null;
  scanned: number;
  stale: number;
  error?: string;
}

export async function auditFleet(topology: NovaTopology, options: AuditOptions): Promise<Record<string, unknown>> {
  const report = options.reportPath ? AuditReportFile.open(options.reportPath) : undefined;
  try {
    const result = await auditCells(topology, options, report);
    if (report) {
      result.report_path = options.reportPath;
      await report.commit(result);
    }
    return result;
  } catch (err) {
    await report?.abort();
    throw err;
  }
}

/** What Cinder said in bulk (read once before the cells), with the client for what it lacks. */
type AuditCinder = CinderIndex & { client: CinderClient; concurrency: number };

async function loadAuditCinder(cinder: NonNullable<AuditOptions['cinder']>): Promise<AuditCinder> {
  return { ...cinder, ...(await loadCinderIndex(cinder.client)) };
}

async function auditCells(topology: NovaTopology, options: AuditOptions, report: AuditReportFile | undefined): Promise<Record<string, unknown>> {
  const [cells, cinder] = await Promise.all([topology.listCells().then((all) => selectCells(all, options.cells)), options.cinder ? loadAuditCinder(options.cinder) : undefined]);
  const stale: StaleBdm[] = [];
  const byReason: Record<string, number> = {};
  let scanned = 0;
  let cellsDone = 0;
  const progress = () => options.onProgress?.({ cellsDone, cells: cells.length, scanned, stale: stale.length });

  const perCell = await mapBounded(cells, CELL_CONCURRENCY, async (cell): Promise<CellTotals> => {
    const totals: CellTotals = { uuid: cell.uuid, name: cell.name, scanned: 0, stale: 0 };
    const record = (row: AuditRow, reasons: StaleReason[]) => {
      totals.scanned++;
      scanned++;
      if (scanned % 5000 === 0) progress();
      if (reasons.length === 0) return;
      totals.stale++;
      for (const r of reasons) byReason[r.code] = (byReason[r.code] ?? 0) + 1;
      const entry = staleEntry(row, cell, reasons, { refuseLocked: options.refuseLocked === true, runningInstances: options.runningInstances });
      stale.push(entry);
      report?.addStale(entry);
    };
    try {
      await auditCell(topology, cell, { ...options, filters: { ...options.filters, withLockedReason: options.refuseLocked === true } }, cinder, record, report);
    } catch (err) {
      totals.error = err instanceof Error ? err.message : String(err);
    }
    cellsDone++;
    progress();
    return totals;
  });

  const failedCells = perCell.filter((c) => c.error);
  const result: Record<string, unknown> = {
    changed: false,
    totals: { scanned, stale: stale.length, by_reason: byReason, cells: perCell, ...(cinder ? { cinder_requests: cinder.client.requestCount } : {}) },
    stale,
  };
  if (failedCells.length > 0) {
    result.failed = true;
    result.msg = `audit incomplete: ${failedCells.map((c) => `${c.name ?? c.uuid}: ${c.error}`).join('; ')} (the other cells were audited)`;
  } else {
    result.msg = `${scanned} volume BDMs audited in ${cells.length} cells: ${stale.length} stale`;
  }
  return result;
}

/** fn over every item, at most `limit` at once, results in the items' order. */
async function mapBounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
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
  const inFlight = new Set<Promise<void>>();
  try {
    await scanCell(db, options, cinder, record, report, inFlight);
  } finally {
    // The scan may break (cell DB lost) with Cinder calls still out: let them settle before the
    // cell's totals are final, or they would keep changing a result already returned.
    await Promise.allSettled(inFlight);
  }
}

async function scanCell(
  db: ReturnType<NovaTopology['cellDatabase']>,
  options: AuditOptions,
  cinder: AuditCinder | undefined,
  record: (row: AuditRow, reasons: StaleReason[]) => void,
  report: AuditReportFile | undefined,
  inFlight: Set<Promise<void>>,
): Promise<void> {
  const wanted = options.filters.driverVolumeType;
  for await (const rows of streamVolumeBdmBatches(db, options.filters)) {
    for (const row of rows) {
      const info = parseConnectionInfo(row.connection_info); // once per row: the hot path at a million
      if (wanted !== undefined && info?.driver_volume_type !== wanted) continue;
      const reasons = dbStaleReasons(row, options.expect, info);
      if (!cinder || row.attachment_id === null) {
        record(row, reasons);
        continue;
      }
      const attachmentId = row.attachment_id;
      const bdm = { ...row, instance_uuid: row.instance_uuid ?? '' };
      const listed = cinder.attachments.get(attachmentId);
      if (listed) {
        reasons.push(...cinderStaleReasons(bdm, listed, cinder.hosts.get(attachmentId), row.host));
        record(row, reasons);
        continue;
      }
      // Not in the listing (made since, or gone): ask for it alone. Bounded, so a cell of
      // missing attachments never floods Cinder.
      while (inFlight.size >= cinder.concurrency) await Promise.race(inFlight);
      const job = (async () => {
        const [attachment, host] = await Promise.all([cinder.client.getAttachment(attachmentId), cinder.client.attachedHost(row.volume_id, attachmentId)]);
        reasons.push(...cinderStaleReasons(bdm, attachment, host, row.host));
        record(row, reasons);
      })().finally(() => inFlight.delete(job));
      inFlight.add(job);
    }
    // Back pressure from the report file: the disk, not memory, absorbs a slow writer.
    if (report) await report.written();
  }
  await Promise.all(inFlight);
}

function staleEntry(row: AuditRow, cell: Cell, reasons: StaleReason[], rule: { refuseLocked: boolean; runningInstances?: RunningInstances }): StaleBdm {
  let blocker: { why: string } | undefined = instanceBlocker(row.vm_state === null ? undefined : { ...row, uuid: row.instance_uuid ?? '' }, rule);
  const online = !blocker && refreshFlowOf(row) === 'online';
  if (online) {
    // The audit has no connectors: a local-attach host is found by the refresh, which has them.
    const held = onlineBlocker({ attachment_id: row.attachment_id, info: parseConnectionInfo(row.connection_info), encrypted: row.encrypted, encryption_secret_uuid: row.encryption_secret_uuid });
    if (held) blocker = { why: `running instance: ${held.why}` };
  }
  return {
    bdm_uuid: row.uuid,
    instance_uuid: row.instance_uuid,
    volume_id: row.volume_id,
    host: row.host,
    cell: cell.name ?? cell.uuid,
    reasons: reasons.map((r) => r.code),
    details: reasons.map((r) => r.detail),
    refreshable: blocker === undefined,
    ...(blocker ? { blocked_by: blocker.why } : {}),
    ...(online && !blocker ? { online: true as const } : {}),
  };
}

/** The cells named (by name or uuid), in the API database's order; an unknown name is an error. */
export function selectCells(cells: Cell[], wanted: string[] | undefined): Cell[] {
  if (!wanted?.length) return cells;
  const unknown = wanted.filter((w) => !cells.some((c) => c.name === w || c.uuid === w.toLowerCase()));
  if (unknown.length > 0) {
    throw new BadInput(`no such cell: ${unknown.join(', ')} (cells: ${cells.map((c) => c.name ?? c.uuid).join(', ')})`);
  }
  return cells.filter((c) => wanted.some((w) => c.name === w || c.uuid === w.toLowerCase()));
}
