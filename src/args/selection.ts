import { BadInput } from '../errors';
import type { BdmRef, FleetFilters, Selection } from '../selection';
import type { ModuleArgs } from './schema';

// The options that select BDMs, turned once into a typed Selection (src/selection.ts). The
// rules about which options go with which action are checked before (validate.ts); here the
// shape of each volume_attachments entry, and how it combines with the other filters.

/** The fleet filters; a refresh given any of them is a fleet refresh. */
export const FLEET_FILTERS = [
  'hosts',
  'cells',
  'instance_uuids',
  'volume_ids',
  'bdm_uuids',
  'volume_attachments',
  'project_id',
  'driver_volume_type',
] as const;

/** The filters volume_attachments replaces: it names BDMs exactly, they would cross its pairs. */
const NAMING_FILTERS = ['instance_uuids', 'volume_ids', 'bdm_uuids'] as const;

/**
 * Is this option given? An empty list filters nothing, as if it were absent (a role passes its
 * empty default through), so it never turns a refresh into one of the whole cloud.
 */
export function given(args: ModuleArgs, option: keyof ModuleArgs): boolean {
  const value = args[option];
  return value !== undefined && !(Array.isArray(value) && value.length === 0);
}

/** Does this refresh select a fleet (filters) rather than one BDM? */
export function isFleetRefresh(args: ModuleArgs): boolean {
  return args.action === 'refresh' && FLEET_FILTERS.some((f) => given(args, f));
}

export function parseSelection(args: ModuleArgs): Selection {
  if (args.action === 'get_connector') return { kind: 'this-host' };
  if (args.action === 'audit' || isFleetRefresh(args)) return { kind: 'fleet', filters: fleetFilters(args) };
  if (args.bdm_uuid !== undefined) return { kind: 'bdm', bdm: { bdmUuid: args.bdm_uuid.toLowerCase() } };
  const instanceUuid = args.instance_uuid!.toLowerCase();
  if (args.volume_id === undefined) return { kind: 'instance', instanceUuid };
  return { kind: 'bdm', bdm: { instanceUuid, volumeId: args.volume_id.toLowerCase() } };
}

function fleetFilters(args: ModuleArgs): FleetFilters {
  const lower = (list: string[] | undefined) => (list?.length ? list.map((u) => u.toLowerCase()) : undefined);
  const filters: FleetFilters = {
    cells: args.cells?.length ? args.cells : undefined,
    hosts: args.hosts?.length ? args.hosts : undefined,
    instanceUuids: lower(args.instance_uuids),
    volumeIds: lower(args.volume_ids),
    bdmUuids: lower(args.bdm_uuids),
    volumeAttachments: volumeAttachmentsOf(args),
    projectId: args.project_id,
    driverVolumeType: args.driver_volume_type,
  };
  return Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== undefined)) as FleetFilters;
}

function volumeAttachmentsOf(args: ModuleArgs): BdmRef[] | undefined {
  if (!given(args, 'volume_attachments')) return undefined;
  const crossing = NAMING_FILTERS.filter((f) => given(args, f));
  if (crossing.length > 0) {
    throw new BadInput(
      `volume_attachments names BDMs exactly and cannot be combined with ${crossing.join(', ')}: list those BDMs in volume_attachments (hosts, cells, project_id and driver_volume_type still narrow it)`,
    );
  }
  return args.volume_attachments!.map((entry, i) => bdmRefOf(entry, `volume_attachments[${i}]`));
}

/** One entry: {bdm_uuid}, {instance_uuid, volume_id} or {instance_uuid} (every volume BDM of it). */
function bdmRefOf(entry: { bdm_uuid?: string; instance_uuid?: string; volume_id?: string }, where: string): BdmRef {
  const forms = 'give bdm_uuid, or instance_uuid with an optional volume_id';
  if (entry.bdm_uuid !== undefined) {
    if (entry.instance_uuid !== undefined || entry.volume_id !== undefined) {
      throw new BadInput(`${where}: bdm_uuid names one BDM alone and cannot be combined with instance_uuid or volume_id: ${forms}`);
    }
    return { bdmUuid: entry.bdm_uuid.toLowerCase() };
  }
  if (entry.instance_uuid === undefined) {
    throw new BadInput(`${where}: ${entry.volume_id !== undefined ? 'volume_id needs instance_uuid' : 'names no BDM'}: ${forms}`);
  }
  const instanceUuid = entry.instance_uuid.toLowerCase();
  return entry.volume_id === undefined ? { instanceUuid } : { instanceUuid, volumeId: entry.volume_id.toLowerCase() };
}
