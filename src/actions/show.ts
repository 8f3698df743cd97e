import { BdmNotFound } from '../errors';
import type { Cell, NovaTopology } from '../nova-db/cells';
import { findInstanceSummary, listVolumeBdmsOfInstance } from '../nova-db/queries';
import { locateOneBdm } from './shared/locate-bdm';
import { lockReasonFor } from './rules/lock-reason';
import type { NovaDatabase } from '../nova-db/connect';
import { readClaim } from '../nova-db/refresh-claim';
import { systemMetadataOf } from '../nova-db/refresh-reads';
import type { CellDatabase } from '../nova-db/schema';
import { claimHolder, isAbandoned } from './refresh/lock';
import type { BdmRecord, InstanceSummary } from '../nova-db/records';
import { maskSecrets } from '../output/mask-secrets';
import type { BdmRef } from '../selection';
import { cellLabel } from '../cell-label';

/** A BDM as shown: every column as stored, connection_info parsed (and masked by default). */
export type BdmView = Omit<BdmRecord, 'connection_info'> & { connection_info: unknown };

export type ShowResult = {
  changed: false;
  cell: { uuid: string; name: string | null };
  instance: InstanceSummary | null;
  /** One BDM (bdm_uuid, or instance_uuid + volume_id). */
  bdm?: BdmView;
  attachment_id?: string | null;
  connection_info?: unknown;
  /** Every volume BDM of the instance (instance_uuid alone). */
  bdms?: BdmView[];
  /** A refresh of this BDM was interrupted: its claim (or its lock) is still on the instance. */
  interrupted_refresh?: boolean;
  warnings?: string[];
};

export async function showBdm(topology: NovaTopology, selector: BdmRef, options: { revealSecrets: boolean }): Promise<ShowResult> {
  const warnings: string[] = [];
  const view = (bdm: BdmRecord) => toView(bdm, options.revealSecrets, warnings);

  if ('bdmUuid' in selector || 'volumeId' in selector) {
    const { cell, bdm } = await locateOneBdm(topology, selector, warnings);
    if ('bdmUuid' in selector && bdm.destination_type !== 'volume') {
      throw new BdmNotFound(
        `BDM ${selector.bdmUuid} is not a volume BDM (source_type ${bdm.source_type}, destination_type ${bdm.destination_type}).`,
      );
    }
    const instance = await instanceOf(topology, cell, bdm.instance_uuid, warnings);
    const refresh = instance ? await refreshStateOf(topology.cellDatabase(cell), instance, bdm) : undefined;
    if (refresh) warnings.push(refresh.warning);
    const result = single(cell, instance, view(bdm), warnings);
    if (refresh?.interrupted) result.interrupted_refresh = true;
    return result;
  }

  const cell = await topology.cellOfInstance(selector.instanceUuid);
  const db = topology.cellDatabase(cell);
  const [bdms, instance] = await Promise.all([
    listVolumeBdmsOfInstance(db, selector.instanceUuid),
    instanceOf(topology, cell, selector.instanceUuid, warnings),
  ]);
  return withWarnings({ changed: false, cell: cellRef(cell), instance, bdms: bdms.map(view) }, warnings);
}

/**
 * A refresh of this BDM that holds the instance now, or was interrupted: its claim row (which
 * names the BDMs, and stays behind a refresh killed under someone else's lock too), else a lock
 * with the refresh's locked_reason (nova-manage's, or a run that left no claim).
 */
async function refreshStateOf(
  db: NovaDatabase<CellDatabase>,
  instance: InstanceSummary,
  bdm: BdmRecord,
): Promise<{ interrupted: boolean; warning: string } | undefined> {
  const [claim, sysmeta] = await Promise.all([
    readClaim(db, instance.uuid),
    instance.locked ? systemMetadataOf(db, instance.uuid) : undefined,
  ]);
  if (claim && bdm.uuid && claim.value.bdms.includes(bdm.uuid)) {
    const who = claimHolder(claim);
    if (!isAbandoned(claim))
      return { interrupted: false, warning: `a refresh of this BDM is running now (${who}, last heartbeat ${claim.ageSeconds} s ago)` };
    return {
      interrupted: true,
      warning: `an interrupted refresh of this BDM (${who}) left its claim on instance ${instance.uuid}${instance.locked ? ' and the instance locked' : ''}; the next refresh of this BDM recovers it first`,
    };
  }
  if (sysmeta?.locked_reason === lockReasonFor(bdm)) {
    return {
      interrupted: true,
      warning: `an interrupted refresh of this BDM left instance ${instance.uuid} locked; the next refresh of this BDM recovers it first`,
    };
  }
  return undefined;
}

async function instanceOf(
  topology: NovaTopology,
  cell: Cell,
  instanceUuid: string | null,
  warnings: string[],
): Promise<InstanceSummary | null> {
  if (instanceUuid === null) return null;
  const instance = await findInstanceSummary(topology.cellDatabase(cell), instanceUuid);
  if (!instance) warnings.push(`instance ${instanceUuid} has no live row in ${cellLabel(cell)} (deleted?)`);
  return instance ?? null;
}

function toView(bdm: BdmRecord, revealSecrets: boolean, warnings: string[]): BdmView {
  let connectionInfo: unknown = null;
  if (bdm.connection_info !== null && bdm.connection_info !== '') {
    try {
      connectionInfo = JSON.parse(bdm.connection_info);
    } catch {
      warnings.push(`connection_info of BDM ${bdm.uuid} is not valid JSON (${bdm.connection_info.length} characters)`);
      // Unparsable text cannot be masked key by key: show it only when secrets are wanted.
      connectionInfo = revealSecrets ? bdm.connection_info : null;
    }
  }
  return { ...bdm, connection_info: revealSecrets ? connectionInfo : maskSecrets(connectionInfo) };
}

function single(cell: Cell, instance: InstanceSummary | null, bdm: BdmView, warnings: string[]): ShowResult {
  return withWarnings(
    { changed: false, cell: cellRef(cell), instance, bdm, attachment_id: bdm.attachment_id, connection_info: bdm.connection_info },
    warnings,
  );
}

function cellRef(cell: Cell): ShowResult['cell'] {
  return { uuid: cell.uuid, name: cell.name };
}

function withWarnings(result: ShowResult, warnings: string[]): ShowResult {
  return warnings.length > 0 ? { ...result, warnings } : result;
}
