import type { Attachment, AttachedHosts, CinderClient } from '../../cinder/cinder-client';
import { connectionInfoFromAttachment, type ConnectionInfo } from '../rules/connection-info';
import { comparable } from '../rules/staleness';

// What Cinder says in bulk, read once: every attachment (the detail listing, all projects, pages
// of 1000) and the host Cinder recorded for each attached one (the volumes' attachments
// summaries). The audit with check_cinder and a large fleet plan read it instead of two GETs
// per BDM; what it lacks is asked for one by one. The two listings are read side by side; with
// `requestsAtOnce` above 2, so are their pages (half of it each), by offset.

export interface CinderIndex {
  attachments: Map<string, Attachment>;
  hosts: AttachedHosts;
  /** The volumes Cinder lists as `attaching` (few: a volume is so only between an attachment's connect and its completion). */
  attachingVolumes: Set<string>;
}

export async function loadCinderIndex(client: CinderClient, requestsAtOnce = 2): Promise<CinderIndex> {
  const index: CinderIndex = { attachments: new Map(), hosts: new Map(), attachingVolumes: new Set() };
  const pagesAtOnce = pagesAtOnceOf(requestsAtOnce);
  await Promise.all([
    client.readAttachedHosts(
      pagesAtOnce,
      (id, host) => index.hosts.set(id, host),
      (volumeId) => index.attachingVolumes.add(volumeId),
    ),
    client.readAttachments(pagesAtOnce, (page) => {
      for (const a of page) index.attachments.set(a.id, a);
    }),
  ]);
  return index;
}

/** Half of the requests for each of the two listings, at least one page at a time. */
function pagesAtOnceOf(requestsAtOnce: number): number {
  return Math.max(1, Math.floor(requestsAtOnce / 2));
}

/** Of one listed attachment, what the staleness rules read (cinderStaleReasons). */
interface ListedFacts {
  volumeId: string;
  instance: string | null;
  status: string;
  /** The host the volumes listing gave; undefined when it did not list the attachment. */
  host: string | null | undefined;
  /** comparable() of the connection_info Nova would build from it, as JSON, the volume id as NUL (interned); undefined if none. */
  info: string | undefined;
}

/**
 * The same listings as loadCinderIndex, but holding only what the audit's staleness rules read:
 * a few fields per attachment instead of Cinder's whole view. The connection_info is kept as
 * the JSON of what is compared, with the volume id cut out, so that the attachments of one
 * backend share one string; a cloud of 100k attachments then costs tens of MiB, not hundreds.
 */
export class ListedAttachments {
  private readonly byId = new Map<string, ListedFacts>();
  /** Hosts the volumes listing gave before the attachment listing reached their attachment. */
  private readonly hostsAhead = new Map<string, string | null>();
  private readonly strings = new Map<string, string>();

  static async load(client: CinderClient, requestsAtOnce = 2): Promise<ListedAttachments> {
    const listed = new ListedAttachments();
    const pagesAtOnce = pagesAtOnceOf(requestsAtOnce);
    await Promise.all([
      client.readAttachedHosts(pagesAtOnce, (id, host) => listed.addHost(id, host)),
      client.readAttachments(pagesAtOnce, (page) => {
        for (const a of page) listed.addAttachment(a);
        // Taken: the reader's frames may still refer to the page while the next ones arrive.
        page.length = 0;
      }),
    ]);
    listed.listingsRead();
    return listed;
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * The attachment as the rules read it to judge a BDM whose connection_info is `stored`, and its
   * host; undefined when it was not listed. Its connection_info is rebuilt only when the rules
   * would find a difference: the same JSON of what is compared is no difference.
   */
  get(attachmentId: string, stored: ConnectionInfo | null): { attachment: Attachment; host: string | null | undefined } | undefined {
    const f = this.byId.get(attachmentId);
    if (!f) return undefined;
    let connectionInfo: Record<string, unknown> | null = null;
    if (f.info !== undefined && stored && !this.sameAsStored(f, stored)) {
      const compared = JSON.parse(f.info.replaceAll('\0', f.volumeId)) as { driver_volume_type: unknown; data: Record<string, unknown> };
      connectionInfo = { ...compared.data, driver_volume_type: compared.driver_volume_type };
    }
    const attachment: Attachment = {
      id: attachmentId,
      status: f.status,
      instance: f.instance,
      volume_id: f.volumeId,
      attached_at: '',
      detached_at: '',
      attach_mode: '',
      connection_info: connectionInfo,
    };
    return { attachment, host: f.host };
  }

  private sameAsStored(f: ListedFacts, stored: ConnectionInfo): boolean {
    const json = JSON.stringify(comparable(stored));
    return (f.volumeId ? json.replaceAll(f.volumeId, '\0') : json) === f.info;
  }

  /** One attachment of the attachments listing. */
  addAttachment(a: Attachment): void {
    const raw = a.connection_info;
    let info: string | undefined;
    if (raw && Object.keys(raw).length > 0) {
      const json = JSON.stringify(comparable(connectionInfoFromAttachment(a, a.volume_id, null)));
      info = this.intern(a.volume_id ? json.replaceAll(a.volume_id, '\0') : json);
    }
    // Offsets may list an attachment twice: its host, once known, stays.
    const seen = this.byId.get(a.id);
    const host = seen ? seen.host : this.hostsAhead.get(a.id);
    this.hostsAhead.delete(a.id);
    this.byId.set(a.id, { volumeId: a.volume_id, instance: a.instance, status: this.intern(a.status), host, info });
  }

  /** One (attachment, host) of the volumes listing, before or after its attachment. */
  addHost(attachmentId: string, host: string | null): void {
    const interned = host === null ? null : this.intern(host);
    const f = this.byId.get(attachmentId);
    if (f) f.host = interned;
    else this.hostsAhead.set(attachmentId, interned);
  }

  /** Both listings are in: the hosts of attachments the listing lacks go (those are asked for alone, with their host). */
  listingsRead(): void {
    this.hostsAhead.clear();
  }

  /** One string for every equal one (statuses, hosts, the connection_info of one backend). */
  private intern(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    this.strings.set(s, s);
    return s;
  }
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
