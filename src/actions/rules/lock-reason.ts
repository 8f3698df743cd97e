import type { BdmRecord } from '../../nova-db/records';

// The text nova-manage puts in system_metadata.locked_reason while it refreshes a BDM. We write
// the same, so `openstack server show` tells the truth and a later run (ours or nova-manage's)
// recognises a lock left behind by an interrupted refresh, and which BDM it was refreshing.

const PREFIX = 'Refreshing connection_info for BDM ';

export function lockReasonFor(bdm: Pick<BdmRecord, 'uuid' | 'instance_uuid' | 'volume_id'>): string {
  return `${PREFIX}${bdm.uuid} associated with instance ${bdm.instance_uuid} and volume ${bdm.volume_id}.`;
}

/** A refresh's lock (nova-manage's or ours), not someone else's. */
export function isRefreshLockReason(reason: string | null | undefined): boolean {
  return typeof reason === 'string' && reason.startsWith(PREFIX);
}

/** The BDM uuid a refresh's locked_reason names, or undefined when it is no refresh's. */
export function bdmOfLockReason(reason: string): string | undefined {
  if (!isRefreshLockReason(reason)) return undefined;
  return /^(\S+) /.exec(reason.slice(PREFIX.length))?.[1];
}
