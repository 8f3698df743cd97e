import type { BdmRecord } from '../../nova-db/records';

/**
 * The text nova-manage puts in system_metadata.locked_reason while it refreshes a BDM. We
 * write the same, so `openstack server show` tells the truth and a later run (ours or
 * nova-manage's) recognises a lock left behind by an interrupted refresh of this BDM.
 */
export function lockReasonFor(bdm: Pick<BdmRecord, 'uuid' | 'instance_uuid' | 'volume_id'>): string {
  return `Refreshing connection_info for BDM ${bdm.uuid} associated with instance ${bdm.instance_uuid} and volume ${bdm.volume_id}.`;
}
