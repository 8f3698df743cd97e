import type { Attachment, AttachedHosts, CinderClient } from '../../cinder/cinder-client';

// What Cinder says in bulk, read once: every attachment (the detail listing, all projects, pages
// of 1000) and the host Cinder recorded for each attached one (the volumes' attachments
// summaries). The audit with check_cinder and a large fleet plan read it instead of two GETs
// per BDM; what it lacks is asked for one by one. The two listings are read side by side; with
// `requestsAtOnce` above 2, so are their pages (half of it each), by offset.

export interface CinderIndex {
  attachments: Map<string, Attachment>;
  hosts: AttachedHosts;
}

export async function loadCinderIndex(client: CinderClient, requestsAtOnce = 2): Promise<CinderIndex> {
  const attachments = new Map<string, Attachment>();
  const pagesAtOnce = Math.max(1, Math.floor(requestsAtOnce / 2));
  const take = (page: Attachment[]) => {
    for (const a of page) attachments.set(a.id, a);
  };
  const readAttachments = async () => {
    if (pagesAtOnce > 1) await client.readAllAttachments(pagesAtOnce, take);
    else for await (const page of client.listAllAttachments()) take(page);
  };
  const [hosts] = await Promise.all([client.listAttachedHosts(pagesAtOnce), readAttachments()]);
  return { attachments, hosts };
}

/**
 * The fleet plan reads in bulk when that costs fewer requests: the listing takes about two
 * requests per 1000 volumes, the per-BDM reads two per BDM. A page of 1000 costs Cinder more
 * than one GET, so the listing must save a good margin: at least BULK_MIN_BDMS BDMs, and
 * no more than VOLUMES_PER_BDM volumes in the cloud per BDM in the fleet.
 */
export const BULK_MIN_BDMS = 50;
export const VOLUMES_PER_BDM = 20;

/** Worth asking Cinder how many volumes it has (one request)? */
export function bulkMayPay(bdmsWithAttachment: number): boolean {
  return bdmsWithAttachment >= BULK_MIN_BDMS;
}

export function bulkPays(bdmsWithAttachment: number, volumesInCloud: number | undefined): boolean {
  return bulkMayPay(bdmsWithAttachment) && volumesInCloud !== undefined && volumesInCloud <= VOLUMES_PER_BDM * bdmsWithAttachment;
}

const byVolume = new WeakMap<CinderIndex, Map<string, Attachment[]>>();

/** The listed attachments of one volume for one instance (grouped once, on first use). */
export function listedAttachmentsOf(index: CinderIndex, volumeId: string, instanceUuid: string): Attachment[] {
  let groups = byVolume.get(index);
  if (!groups) {
    groups = new Map();
    for (const a of index.attachments.values()) {
      const list = groups.get(a.volume_id);
      if (list) list.push(a);
      else groups.set(a.volume_id, [a]);
    }
    byVolume.set(index, groups);
  }
  return (groups.get(volumeId) ?? []).filter((a) => a.instance === instanceUuid);
}
