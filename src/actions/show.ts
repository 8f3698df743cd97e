import { BdmNotFound, InconsistentData, type NovaBdmError } from '../errors';
import type { Cell, NovaTopology } from '../nova-db/cells';
import { findBdmByInstanceAndVolume, findBdmsByUuid, findInstanceSummary, listVolumeBdmsOfInstance } from '../nova-db/queries';
import type { BdmRecord, InstanceSummary } from '../nova-db/records';
import { maskSecrets } from '../output/mask-secrets';

export type BdmSelector = { bdmUuid: string } | { instanceUuid: string; volumeId?: string };

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
  warnings?: string[];
};

export async function showBdm(topology: NovaTopology, selector: BdmSelector, options: { revealSecrets: boolean }): Promise<ShowResult> {
  const warnings: string[] = [];
  const view = (bdm: BdmRecord) => toView(bdm, options.revealSecrets, warnings);

  if ('bdmUuid' in selector) {
    const { cell, bdm } = await findBdmInAllCells(topology, selector.bdmUuid, warnings);
    if (bdm.destination_type !== 'volume') {
      throw new BdmNotFound(
        `BDM ${selector.bdmUuid} is not a volume BDM (source_type ${bdm.source_type}, destination_type ${bdm.destination_type}).`,
      );
    }
    const instance = await instanceOf(topology, cell, bdm.instance_uuid, warnings);
    return single(cell, instance, view(bdm), warnings);
  }

  const cell = await topology.cellOfInstance(selector.instanceUuid);
  const db = topology.cellDatabase(cell);
  if (selector.volumeId !== undefined) {
    const [bdm, instance] = await Promise.all([
      findBdmByInstanceAndVolume(db, selector.instanceUuid, selector.volumeId),
      instanceOf(topology, cell, selector.instanceUuid, warnings),
    ]);
    if (!bdm) throw new BdmNotFound(`No volume Block Device Mapping with id ${selector.volumeId}.`);
    return single(cell, instance, view(bdm), warnings);
  }
  const [bdms, instance] = await Promise.all([
    listVolumeBdmsOfInstance(db, selector.instanceUuid),
    instanceOf(topology, cell, selector.instanceUuid, warnings),
  ]);
  return withWarnings({ changed: false, cell: cellRef(cell), instance, bdms: bdms.map(view) }, warnings);
}

/** A BDM uuid is only in a cell DB: ask every cell at once and expect exactly one live row. */
async function findBdmInAllCells(topology: NovaTopology, bdmUuid: string, warnings: string[]): Promise<{ cell: Cell; bdm: BdmRecord }> {
  const cells = await topology.listCells();
  const answers = await Promise.all(
    cells.map(async (cell) => {
      try {
        return { cell, bdms: await findBdmsByUuid(topology.cellDatabase(cell), bdmUuid) };
      } catch (err) {
        return { cell, error: err as NovaBdmError };
      }
    }),
  );
  const hits = answers.flatMap((a) => (a.bdms ?? []).map((bdm) => ({ cell: a.cell, bdm })));
  const failed = answers.filter((a) => a.error);
  if (hits.length > 1) {
    throw new InconsistentData(
      `BDM ${bdmUuid} is live more than once (cells: ${hits.map((h) => h.cell.name ?? h.cell.uuid).join(', ')}); fix the database first.`,
    );
  }
  const [hit] = hits;
  if (!hit) {
    // Not found in the cells that answered: if a cell did not answer, that is the real news.
    if (failed[0]?.error) throw failed[0].error;
    throw new BdmNotFound(`No block device mapping with uuid ${bdmUuid} in any cell.`);
  }
  for (const f of failed) warnings.push(`${f.cell.name ?? f.cell.uuid} was not searched: ${f.error?.message}`);
  return hit;
}

async function instanceOf(topology: NovaTopology, cell: Cell, instanceUuid: string | null, warnings: string[]): Promise<InstanceSummary | null> {
  if (instanceUuid === null) return null;
  const instance = await findInstanceSummary(topology.cellDatabase(cell), instanceUuid);
  if (!instance) warnings.push(`instance ${instanceUuid} has no live row in ${cell.name ?? cell.uuid} (deleted?)`);
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
