import type { Selectable } from 'kysely';
import { NovaBdmError } from '../../errors';
import { streamVolumeBdms } from '../../nova-db/audit-query';
import type { Cell } from '../../nova-db/cells';
import { listVolumeBdmsOfInstance } from '../../nova-db/queries';
import { findInstanceRow, systemMetadataOf } from '../../nova-db/refresh-reads';
import type { BdmRecord } from '../../nova-db/records';
import type { InstancesTable } from '../../nova-db/schema';
import type { FleetFilters } from '../../selection';
import { selectCells } from '../audit/audit';
import { bulkMayPay, bulkPays, loadCinderIndex } from '../shared/cinder-index';
import { mapWithConcurrency } from '../shared/limiter';
import type { Outage } from '../shared/outage';
import { inspectBdm, type Decision, type Inspector } from '../refresh/inspect';

// The fleet plan: every selected BDM with one decision, made by the same inspection a single
// refresh makes. Selection is the audit's query (same filters); then, per instance, the full
// rows are read and each BDM inspected, a bounded number of instances at a time.

export interface PlannedBdm {
  cell: Cell;
  bdm: BdmRecord;
  /** undefined: the instance has no live row. */
  instance: Selectable<InstancesTable> | undefined;
  host: string | null;
  decision: Decision;
}

export interface PlannedInstance {
  cell: Cell;
  instanceUuid: string;
  host: string | null;
  bdms: PlannedBdm[];
}

/** Select, then inspect; `concurrency` instances are inspected at once. */
export async function planFleet(ins: Inspector, filters: FleetFilters, concurrency: number, outage: Outage): Promise<PlannedInstance[]> {
  const selected = await selectInstances(ins, filters);
  await readCinderInBulkIfItPays(
    ins,
    selected.reduce((n, s) => n + s.withAttachment, 0),
  );
  const first: PlannedInstance[] = [];
  if (selected.length > 1 && !ins.cinderIndex) {
    // The first inspection alone: Cinder then validates our new token once (and caches it),
    // not once per inspection that arrives before the first validation is done.
    first.push(await planInstance(ins, selected[0]!, outage));
  }
  const rest = await mapWithConcurrency(selected.slice(first.length), concurrency, (s) => planInstance(ins, s, outage));
  return [...first, ...rest];
}

/** An instance the query selected BDMs of: their uuids, and how many have a Cinder attachment. */
type SelectedInstance = { cell: Cell; instanceUuid: string; bdmUuids: Set<string>; withAttachment: number };

/** The selected BDMs (the audit's query), grouped by instance, cell by cell in the query's order. */
async function selectInstances(ins: Inspector, filters: FleetFilters): Promise<SelectedInstance[]> {
  const selected: SelectedInstance[] = [];
  for (const cell of selectCells(await ins.topology.listCells(), filters.cells)) {
    const byInstance = new Map<string, Set<string>>();
    const attached = new Map<string, number>();
    for await (const row of streamVolumeBdms(ins.topology.cellDatabase(cell), filters)) {
      if (!row.instance_uuid || !row.uuid) continue;
      let set = byInstance.get(row.instance_uuid);
      if (!set) byInstance.set(row.instance_uuid, (set = new Set()));
      set.add(row.uuid);
      if (row.attachment_id) attached.set(row.instance_uuid, (attached.get(row.instance_uuid) ?? 0) + 1);
    }
    for (const [instanceUuid, bdmUuids] of byInstance) {
      selected.push({ cell, instanceUuid, bdmUuids, withAttachment: attached.get(instanceUuid) ?? 0 });
    }
  }
  return selected;
}

/** Large fleets read Cinder in bulk (cinder-index.ts) instead of two GETs per BDM. */
async function readCinderInBulkIfItPays(ins: Inspector, withAttachment: number): Promise<void> {
  if (!bulkMayPay(withAttachment)) return;
  try {
    if (bulkPays(withAttachment, await ins.cinder.countVolumes())) ins.cinderIndex = await loadCinderIndex(ins.cinder);
  } catch {
    // No count or no listing (an older Cinder, a policy): each BDM asks for itself, and says so if that fails too.
  }
}

async function planInstance(
  ins: Inspector,
  s: { cell: Cell; instanceUuid: string; bdmUuids: Set<string> },
  outage: Outage,
): Promise<PlannedInstance> {
  const db = ins.topology.cellDatabase(s.cell);
  const [instance, bdms, sysmeta] = await Promise.all([
    findInstanceRow(db, s.instanceUuid),
    listVolumeBdmsOfInstance(db, s.instanceUuid),
    systemMetadataOf(db, s.instanceUuid),
  ]);
  const mine = bdms.filter((b) => b.uuid !== null && s.bdmUuids.has(b.uuid) && b.volume_id);
  const host = instance?.host ?? null;
  const out: PlannedInstance = { cell: s.cell, instanceUuid: s.instanceUuid, host, bdms: [] };
  for (const bdm of mine) {
    let decision: Decision;
    if (!instance) {
      decision = {
        action: 'skip',
        why: 'the instance has no live row',
        error: new NovaBdmError(`Instance ${s.instanceUuid} has no live row in its cell`),
        reasons: [],
      };
    } else if (outage.why) {
      const why = `not inspected: ${outage.why}`;
      decision = { action: 'skip', why, error: new NovaBdmError(why), reasons: [] };
    } else {
      try {
        decision = await inspectBdm(ins, { cell: s.cell, bdm, instance, lockedReason: sysmeta.locked_reason ?? null });
      } catch (err) {
        // Cinder or a database failed for this BDM: it fails, the others go on.
        decision = { action: 'fail', error: err instanceof Error ? (err as NovaBdmError) : new NovaBdmError(String(err)), reasons: [] };
        outage.note(err);
      }
    }
    out.bdms.push({ cell: s.cell, bdm, instance, host, decision });
  }
  return out;
}
