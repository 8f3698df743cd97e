import { BdmNotFound, InconsistentData, type NovaBdmError } from '../../errors';
import type { Cell, NovaTopology } from '../../nova-db/cells';
import { findBdmByInstanceAndVolume, findBdmsByUuid } from '../../nova-db/queries';
import type { BdmRecord } from '../../nova-db/records';
import type { OneBdm } from '../../selection';
import { cellLabel } from '../../cell-label';

/** One live BDM by its uuid (searched in every cell at once) or by instance + volume. */
export async function locateOneBdm(topology: NovaTopology, selector: OneBdm, warnings: string[]): Promise<{ cell: Cell; bdm: BdmRecord }> {
  if ('bdmUuid' in selector) return findBdmInAllCells(topology, selector.bdmUuid, warnings);
  const cell = await topology.cellOfInstance(selector.instanceUuid);
  const bdm = await findBdmByInstanceAndVolume(topology.cellDatabase(cell), selector.instanceUuid, selector.volumeId);
  if (!bdm) throw new BdmNotFound(`No volume Block Device Mapping with id ${selector.volumeId}.`);
  return { cell, bdm };
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
      `BDM ${bdmUuid} is live more than once (cells: ${hits.map((h) => cellLabel(h.cell)).join(', ')}); fix the database first.`,
    );
  }
  const [hit] = hits;
  if (!hit) {
    // Not found in the cells that answered: if a cell did not answer, that is the real news.
    if (failed[0]?.error) throw failed[0].error;
    throw new BdmNotFound(`No block device mapping with uuid ${bdmUuid} in any cell.`);
  }
  for (const f of failed) warnings.push(`${cellLabel(f.cell)} was not searched: ${f.error?.message}`);
  return hit;
}
