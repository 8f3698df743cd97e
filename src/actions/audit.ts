import type { CinderClient } from '../cinder/cinder-client';
import { BadInput } from '../errors';
import type { Cell, NovaTopology } from '../nova-db/cells';
import { streamVolumeBdms, type AuditFilters, type AuditRow } from '../nova-db/audit-query';
import { checkPrivateFileTarget, writePrivateFile } from '../output/private-file';
import { parseConnectionInfo } from './connection-info';
import { instanceBlocker } from './refreshable';
import { cinderStaleReasons, dbStaleReasons, type StaleCode, type StaleReason } from './staleness';

// Every attached volume BDM across all cells, judged by the staleness rules. Rows are streamed
// per cell so memory stays flat however large the cloud; only stale BDMs are kept.

export interface AuditOptions {
  filters: AuditFilters;
  /** Only these cells (names or uuids). */
  cells?: string[];
  /** The refuse_locked rule (refreshable.ts). */
  refuseLocked?: boolean;
  expect?: Record<string, unknown>;
  /** Also ask Cinder about every attachment (slower; bounded concurrency). */
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
}

interface CellTotals {
  uuid: string;
  name: string | null;
  scanned: number;
  stale: number;
  error?: string;
}

export async function auditFleet(topology: NovaTopology, options: AuditOptions): Promise<Record<string, unknown>> {
  if (options.reportPath) checkWritable(options.reportPath);
  const cells = selectCells(await topology.listCells(), options.cells);
  const stale: StaleBdm[] = [];
  const byReason: Record<string, number> = {};
  let scanned = 0;
  let cellsDone = 0;
  const progress = () => options.onProgress?.({ cellsDone, cells: cells.length, scanned, stale: stale.length });

  const perCell = await Promise.all(
    cells.map(async (cell): Promise<CellTotals> => {
      const totals: CellTotals = { uuid: cell.uuid, name: cell.name, scanned: 0, stale: 0 };
      const record = (row: AuditRow, reasons: StaleReason[]) => {
        totals.scanned++;
        scanned++;
        if (scanned % 5000 === 0) progress();
        if (reasons.length === 0) return;
        totals.stale++;
        for (const r of reasons) byReason[r.code] = (byReason[r.code] ?? 0) + 1;
        stale.push(staleEntry(row, cell, reasons, options.refuseLocked === true));
      };
      try {
        await auditCell(topology, cell, { ...options, filters: { ...options.filters, withLockedReason: options.refuseLocked === true } }, record);
      } catch (err) {
        totals.error = err instanceof Error ? err.message : String(err);
      }
      cellsDone++;
      progress();
      return totals;
    }),
  );

  const failedCells = perCell.filter((c) => c.error);
  const result: Record<string, unknown> = {
    changed: false,
    totals: { scanned, stale: stale.length, by_reason: byReason, cells: perCell },
    stale,
  };
  if (failedCells.length > 0) {
    result.failed = true;
    result.msg = `audit incomplete: ${failedCells.map((c) => `${c.name ?? c.uuid}: ${c.error}`).join('; ')} (the other cells were audited)`;
  } else {
    result.msg = `${scanned} volume BDMs audited in ${cells.length} cells: ${stale.length} stale`;
  }
  if (options.reportPath) {
    // Temp file + rename, 0600: a symlink planted at report_path is refused, never written through.
    writePrivateFile(options.reportPath, `${JSON.stringify(result, null, 2)}\n`);
    result.report_path = options.reportPath;
  }
  return result;
}

async function auditCell(
  topology: NovaTopology,
  cell: Cell,
  options: AuditOptions,
  record: (row: AuditRow, reasons: StaleReason[]) => void,
): Promise<void> {
  const db = topology.cellDatabase(cell);
  const inFlight = new Set<Promise<void>>();
  for await (const row of streamVolumeBdms(db, options.filters)) {
    const info = parseConnectionInfo(row.connection_info); // once per row: the hot path at 100k
    if (options.filters.driverVolumeType !== undefined && info?.driver_volume_type !== options.filters.driverVolumeType) continue;
    const reasons = dbStaleReasons(row, options.expect, info);
    const cinder = options.cinder;
    if (!cinder || row.attachment_id === null) {
      record(row, reasons);
      continue;
    }
    // Bounded concurrency: wait for a slot, so a huge cell never floods Cinder.
    while (inFlight.size >= cinder.concurrency) await Promise.race(inFlight);
    const attachmentId = row.attachment_id;
    const job = (async () => {
      const [attachment, host] = await Promise.all([cinder.client.getAttachment(attachmentId), cinder.client.attachedHost(row.volume_id, attachmentId)]);
      reasons.push(...cinderStaleReasons({ ...row, instance_uuid: row.instance_uuid ?? '' }, attachment, host, row.host));
      record(row, reasons);
    })().finally(() => inFlight.delete(job));
    inFlight.add(job);
  }
  await Promise.all(inFlight);
}

function staleEntry(row: AuditRow, cell: Cell, reasons: StaleReason[], refuseLocked: boolean): StaleBdm {
  const blocker = instanceBlocker(row.vm_state === null ? undefined : { ...row, uuid: row.instance_uuid ?? '' }, { refuseLocked });
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

function checkWritable(path: string): void {
  try {
    checkPrivateFileTarget(path);
  } catch (err) {
    throw new BadInput(`report_path: ${(err as Error).message}`);
  }
}

