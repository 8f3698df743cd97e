import { BadInput } from '../errors';
import { faultMessage, OpenStackHttpError, type OpenStackHttp } from './http';
import { TokenSource, type CatalogEntry, type KeystoneCredentials, type KeystoneToken } from './keystone';

// The Cinder v3 attachments API as nova 26 calls it (openstack/nova stable/zed
// nova/volume/cinder.py), with
// microversion 3.44, the request id of the refresh, and a service token when configured
// (Cinder refuses to delete an in-use attachment without one).

export const ATTACHMENT_MICROVERSION = '3.44';
/** with_count on the volume listings (SUPPORT_COUNT_INFO). */
const COUNT_MICROVERSION = '3.45';

export interface CinderSettings {
  auth: KeystoneCredentials;
  /** [service_user] credentials when send_service_user_token is true. */
  serviceAuth?: KeystoneCredentials;
  /** <service_type>:<service_name>:<interface>, default volumev3::publicURL. */
  catalogInfo: string;
  regionName?: string;
  /** [cinder] endpoint_template: %(project_id)s etc. from the (admin) context. */
  endpointTemplate?: string;
}

/** Cinder's attachment view (detail). */
export interface Attachment {
  id: string;
  status: string;
  instance: string | null;
  volume_id: string;
  attached_at: string;
  detached_at: string;
  attach_mode: string;
  connection_info: Record<string, unknown> | null;
  /** Not in the detail view of every release: the host Cinder recorded, when shown. */
  [key: string]: unknown;
}

/** Keystone tokens (renewed before they expire, or after a 401) and the Cinder endpoint, shared by every client of a run. */
export class CinderSession {
  private readonly user: TokenSource;
  private readonly service?: TokenSource;
  private endpointOf?: { token: KeystoneToken; endpoint: string };
  versionChecked = false;
  /**
   * A refresh sends the service token only on its DELETE, where keystonemiddleware validates it
   * at Keystone (about as long as the DELETE itself). With `prewarmServiceToken`, the first call
   * that succeeds starts one request carrying it, in the background, while the refresh does its
   * other steps; the DELETE waits for it and finds the token validated and cached.
   */
  prewarmServiceToken = false;
  serviceWarm?: Promise<void>;

  constructor(
    readonly http: OpenStackHttp,
    readonly settings: CinderSettings,
  ) {
    this.user = new TokenSource(http, settings.auth, '[cinder]');
    if (settings.serviceAuth) this.service = new TokenSource(http, settings.serviceAuth, '[service_user]');
  }

  async get(): Promise<{ token: string; endpoint: string }> {
    const token = await this.user.get();
    if (this.endpointOf?.token !== token) this.endpointOf = { token, endpoint: this.endpoint(token) };
    return { token: token.token, endpoint: this.endpointOf.endpoint };
  }

  /**
   * The [service_user] token, fetched on first use. Only the calls Cinder checks for a service
   * request (deleting an in-use attachment) carry it: every extra token costs Cinder a
   * validation round trip to Keystone.
   */
  async serviceToken(): Promise<string | undefined> {
    return this.service ? (await this.service.get()).token : undefined;
  }

  /** Cinder answered 401: drop the tokens that request carried (keystoneauth invalidates both). */
  invalidate(userToken: string, serviceToken?: string): void {
    this.user.invalidate(userToken);
    if (serviceToken) this.service?.invalidate(serviceToken);
  }

  private endpoint(token: KeystoneToken): string {
    if (this.settings.endpointTemplate) {
      // nova formats it with the (admin) context dict: project_id is None there.
      return this.settings.endpointTemplate.replace(/%\((\w+)\)s/g, () => 'None').replace(/\/+$/, '');
    }
    const [serviceType, serviceName, iface] = this.settings.catalogInfo.split(':');
    const wantedInterface = (iface ?? 'publicURL').replace(/URL$/, '');
    const types = serviceType === 'volumev3' ? ['volumev3', 'block-storage'] : [serviceType!, 'block-storage', 'volumev3'];
    let url: string | undefined;
    for (const type of types) {
      const entries = token.catalog.filter((e: CatalogEntry) => e.type === type && (!serviceName || e.name === serviceName));
      for (const entry of entries) {
        const ep = entry.endpoints.find(
          (e) =>
            e.interface === wantedInterface &&
            e.url &&
            (!this.settings.regionName || e.region_id === this.settings.regionName || e.region === this.settings.regionName),
        );
        if (ep) {
          url = ep.url;
          break;
        }
      }
      if (url) break;
    }
    if (!url) {
      throw new BadInput(
        `no ${serviceType} ${wantedInterface} endpoint${this.settings.regionName ? ` in region ${this.settings.regionName}` : ''} in the Keystone catalog ([cinder] catalog_info = ${this.settings.catalogInfo})`,
      );
    }
    if (!/\/v3(\/|$)/.test(url)) throw new BadInput(`the Cinder endpoint ${url} is not a v3 API (nova needs /v3/)`);
    return url.replace(/\/+$/, '');
  }
}

/** The host Cinder recorded per attached attachment, from the volumes' `attachments` summaries. */
export type AttachedHosts = Map<string, string | null>;

/** Of one volume (GET /volumes/{id}): its status, and the host recorded for one attachment (undefined: none listed). */
export interface VolumeFacts {
  status: string;
  attachedHost: string | null | undefined;
}

/** A volume as the volumes views show it, the fields read here. */
interface VolumeSummary {
  id: string;
  status?: string;
  attachments?: Array<{ attachment_id?: string; host_name?: string | null }>;
}

/**
 * osapi_max_limit's default: Cinder never returns more per page (a bigger limit is cut to it).
 * The attachments list has no next link, so a page shorter than the longest one seen ends it.
 */
export const CINDER_PAGE_SIZE = 1000;

export class CinderClient {
  /** HTTP requests sent to Cinder by this client (the audit reports it). */
  requestCount = 0;

  constructor(
    private readonly session: CinderSession,
    /** X-OpenStack-Request-ID: the phase's request id, as nova sends context.global_id. */
    private readonly requestId: string,
  ) {}

  /** POST /attachments with no connector: reserves the volume for the instance. */
  async reserveAttachment(volumeId: string, instanceUuid: string): Promise<Attachment> {
    await this.checkMicroversion();
    const res = await this.call('POST', '/attachments', {
      attachment: { volume_uuid: volumeId, connector: null, instance_uuid: instanceUuid },
    });
    return (res.data as { attachment: Attachment }).attachment;
  }

  /**
   * POST /attachments with the host's connector: reserve and connect in one call. Cinder's
   * attachment_create connects without attachment_update's duplicate-connector check, so this
   * is how a second attachment of a non-multiattach volume for the same instance and host is
   * made (cinder/volume/api.py; live migration's rule, LP #1694530). The volume goes
   * `attaching` until the attachment is completed.
   */
  async createAttachment(volumeId: string, instanceUuid: string, connector: Record<string, unknown>): Promise<Attachment> {
    await this.checkMicroversion();
    const res = await this.call('POST', '/attachments', { attachment: { volume_uuid: volumeId, connector, instance_uuid: instanceUuid } });
    return (res.data as { attachment: Attachment }).attachment;
  }

  /** DELETE; 404 means already gone; 500/504 retried up to 5 attempts, like nova. */
  async deleteAttachment(attachmentId: string): Promise<'deleted' | 'not_found'> {
    for (let attempt = 1; ; attempt++) {
      const res = await this.call('DELETE', `/attachments/${attachmentId}`, undefined, [404, 500, 504]);
      if (res.status === 404) return 'not_found';
      if (res.status < 300) return 'deleted';
      if (attempt >= 5) throw this.error('DELETE', `/attachments/${attachmentId}`, res);
    }
  }

  /** PUT the host connector: Cinder exports the volume and returns its connection_info. */
  async updateAttachment(attachmentId: string, connector: Record<string, unknown>): Promise<Attachment> {
    const res = await this.call('PUT', `/attachments/${attachmentId}`, { attachment: { connector } });
    return (res.data as { attachment: Attachment }).attachment;
  }

  /** os-complete: the attachment becomes `attached`, the volume `in-use`. */
  async completeAttachment(attachmentId: string): Promise<void> {
    await this.call('POST', `/attachments/${attachmentId}/action`, { 'os-complete': null });
  }

  async getAttachment(attachmentId: string): Promise<Attachment | null> {
    const res = await this.call('GET', `/attachments/${attachmentId}`, undefined, [404]);
    return res.status === 404 ? null : (res.data as { attachment: Attachment }).attachment;
  }

  /**
   * The host Cinder recorded for an attachment: the attachments summary of the volume carries
   * it as host_name (the attachment view itself does not). undefined when Cinder does not say.
   */
  async attachedHost(volumeId: string, attachmentId: string): Promise<string | null | undefined> {
    return (await this.volumeFacts(volumeId, attachmentId))?.attachedHost;
  }

  /** The volume's status and the host Cinder recorded for one of its attachments (GET /volumes/{id}); undefined: no such volume. */
  async volumeFacts(volumeId: string, attachmentId: string): Promise<VolumeFacts | undefined> {
    const res = await this.call('GET', `/volumes/${volumeId}`, undefined, [404]);
    if (res.status === 404) return undefined;
    const volume = (res.data as { volume?: VolumeSummary }).volume;
    const entry = volume?.attachments?.find((a) => a.attachment_id === attachmentId);
    return { status: volume?.status ?? '', attachedHost: entry ? (entry.host_name ?? null) : undefined };
  }

  /** Every attachment of a volume for an instance (all projects: we act as an admin). */
  async listAttachments(volumeId: string, instanceUuid: string): Promise<Attachment[]> {
    const q = new URLSearchParams({ volume_id: volumeId, instance_id: instanceUuid, all_tenants: '1' });
    const res = await this.call('GET', `/attachments/detail?${q}`);
    return (res.data as { attachments?: Attachment[] }).attachments ?? [];
  }

  /**
   * Every attachment in Cinder, all projects, detail view (GET /attachments/detail?all_tenants=1),
   * page by page with limit and marker (the last id): one request per CINDER_PAGE_SIZE attachments.
   */
  async *listAllAttachments(): AsyncGenerator<Attachment[]> {
    let marker: string | undefined;
    let firstOfPrevious: string | undefined;
    let longest = 0;
    for (;;) {
      const q = new URLSearchParams({ all_tenants: '1', limit: String(CINDER_PAGE_SIZE) });
      if (marker) q.set('marker', marker);
      const res = await this.call('GET', `/attachments/detail?${q}`);
      const page = (res.data as { attachments?: Attachment[] }).attachments ?? [];
      const last = page.at(-1)?.id;
      // A server that ignored the marker would send the same page again: never loop on it.
      if (marker !== undefined && (last === marker || page[0]?.id === firstOfPrevious)) {
        throw new OpenStackHttpError('Cinder GET /attachments/detail ignored the marker (the same page came back twice)', res.status);
      }
      // Read before the page is handed over: the caller may empty it once taken.
      const length = page.length;
      const firstId = page[0]?.id;
      if (length > 0) yield page;
      // No next link in this view: a server with a smaller osapi_max_limit sends shorter pages.
      longest = Math.max(longest, length);
      if (length === 0 || length < longest) return;
      firstOfPrevious = firstId;
      marker = last;
    }
  }

  /** How many volumes Cinder holds, all projects (one request); undefined when it does not say. */
  async countVolumes(): Promise<number | undefined> {
    const q = new URLSearchParams({ all_tenants: '1', limit: '1', with_count: 'true' });
    const res = await this.call('GET', `/volumes/detail?${q}`, undefined, [], COUNT_MICROVERSION);
    const count = (res.data as { count?: unknown }).count;
    return typeof count === 'number' && Number.isInteger(count) && count >= 0 ? count : undefined;
  }

  /**
   * The host of every attached attachment: each volume's `attachments` summary carries it as
   * host_name (admins see it; Cinder lists only attached ones there). GET /volumes/detail with
   * all_tenants, as many volumes per request as Cinder gives: following the volumes_links next
   * link, or, with pagesAtOnce > 1, pages at offsets read side by side (readOffsetPages). Each
   * (attachment id, host) is handed over as its page arrives, and the id of each volume Cinder
   * lists as `attaching` to onAttaching.
   */
  async readAttachedHosts(
    pagesAtOnce: number,
    take: (attachmentId: string, host: string | null) => void,
    onAttaching?: (volumeId: string) => void,
  ): Promise<void> {
    type VolumesBody = { volumes?: VolumeSummary[]; volumes_links?: Array<{ rel?: string; href?: string }> };
    const takePage = (volumes: NonNullable<VolumesBody['volumes']>) => {
      for (const v of volumes) {
        if (v.status === 'attaching') onAttaching?.(v.id);
        for (const a of v.attachments ?? []) if (a.attachment_id) take(a.attachment_id, a.host_name ?? null);
      }
      volumes.length = 0; // taken: see readOffsetPages
    };
    if (pagesAtOnce > 1) {
      await this.readOffsetPages('/volumes/detail', (data) => (data as VolumesBody).volumes ?? [], pagesAtOnce, takePage);
      return;
    }
    let path: string | undefined = `/volumes/detail?${new URLSearchParams({ all_tenants: '1', limit: String(CINDER_PAGE_SIZE) })}`;
    let lastMarker: string | undefined;
    while (path) {
      const res = await this.call('GET', path);
      const body = res.data as VolumesBody;
      const volumes = body.volumes ?? [];
      const next = body.volumes_links?.find((l) => l.rel === 'next')?.href;
      const marker = volumes.at(-1)?.id;
      takePage(volumes);
      // The next link's host is the public endpoint Cinder was configured with: keep ours, take its query.
      path = next && marker && marker !== lastMarker ? `/volumes/detail?${new URL(next, 'http://x').searchParams}` : undefined;
      lastMarker = marker;
    }
  }

  /** Every attachment, all projects, detail view: one page after another by marker, or with pagesAtOnce > 1 side by side by offset. */
  async readAttachments(pagesAtOnce: number, onPage: (page: Attachment[]) => void): Promise<void> {
    if (pagesAtOnce > 1) return this.readAllAttachments(pagesAtOnce, onPage);
    for await (const page of this.listAllAttachments()) onPage(page);
  }

  /**
   * Every attachment, all projects, detail view, in pages at offsets read side by side
   * (listAllAttachments reads them one after another, by marker).
   */
  async readAllAttachments(pagesAtOnce: number, onPage: (page: Attachment[]) => void): Promise<void> {
    await this.readOffsetPages(
      '/attachments/detail',
      (data) => (data as { attachments?: Attachment[] }).attachments ?? [],
      pagesAtOnce,
      onPage,
    );
  }

  /**
   * A Cinder listing (all_tenants) read with limit and offset, which every v3 listing takes
   * (cinder/api/common.py get_pagination_params), up to `atOnce` pages in flight. The first page
   * is read alone: its length is the page size the server grants (osapi_max_limit may be below
   * our limit), so page k starts at k times it. A page shorter than that is the last; pages
   * already asked for beyond it come back empty (at most atOnce - 1 requests spent). Offsets are
   * less steady than a marker while rows come and go: an item missed between two pages is
   * asked for alone by the caller (what the listing lacks), one seen twice is the same item.
   */
  private async readOffsetPages<T extends { id: string }>(
    path: string,
    itemsOf: (data: unknown) => T[],
    atOnce: number,
    onPage: (items: T[]) => void,
  ): Promise<void> {
    const fetchPage = async (offset: number): Promise<T[]> => {
      const q = new URLSearchParams({ all_tenants: '1', limit: String(CINDER_PAGE_SIZE) });
      if (offset > 0) q.set('offset', String(offset));
      const res = await this.call('GET', `${path}?${q}`);
      return itemsOf(res.data);
    };
    // Read before a page is handed over: the caller may empty it once taken (so that its items die
    // young while the frames here still refer to it as the next pages are read).
    const first = await fetchPage(0);
    if (first.length === 0) return;
    const size = first.length;
    const firstId = first[0]!.id;
    onPage(first);
    let next = 1;
    let end = Infinity; // the index of the first page known to be short (the last one)
    let failed = false;
    const worker = async () => {
      while (!failed && next < end) {
        const k = next++;
        const page = await fetchPage(k * size).catch((err: unknown) => {
          failed = true;
          throw err;
        });
        // A server that ignored the offset would send the first page again: never loop on it.
        if (page.length > 0 && page[0]!.id === firstId) {
          failed = true;
          throw new OpenStackHttpError(`Cinder GET ${path} ignored the offset (the first page came back for offset ${k * size})`, 200);
        }
        if (page.length < size) end = Math.min(end, k);
        if (page.length > 0) onPage(page);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, atOnce) }, worker));
  }

  /** The service token's validation, started in the background (CinderSession.prewarmServiceToken). */
  private startServiceWarm(): void {
    this.session.serviceWarm = this.call('GET', '/attachments?limit=1', undefined, [], ATTACHMENT_MICROVERSION, true).then(
      () => undefined,
      () => undefined, // the DELETE then validates it itself, and says so if that fails
    );
  }

  private async call(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    allowed: number[] = [],
    microversion = ATTACHMENT_MICROVERSION,
    withServiceToken = method === 'DELETE',
  ) {
    for (let attempt = 1; ; attempt++) {
      const session = await this.ensureSession();
      this.requestCount++;
      const headers: Record<string, string> = {
        Accept: 'application/json',
        'User-Agent': 'nova-bdm',
        'X-Auth-Token': session.token,
        'X-OpenStack-Request-ID': this.requestId,
        'OpenStack-API-Version': `volume ${microversion}`,
      };
      if (method === 'DELETE' && this.session.serviceWarm) await this.session.serviceWarm;
      const serviceToken = withServiceToken ? await this.session.serviceToken() : undefined;
      if (serviceToken) headers['X-Service-Token'] = serviceToken;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      const res = await this.session.http.request(method, `${session.endpoint}${path}`, headers, body);
      if (res.status === 401 && attempt === 1) {
        // A token expired or was revoked before its time: authenticate again, once.
        this.session.invalidate(session.token, serviceToken);
        continue;
      }
      if (res.status >= 300 && !allowed.includes(res.status)) throw this.error(method, path, res);
      if (this.session.prewarmServiceToken && !this.session.serviceWarm && this.session.settings.serviceAuth && !withServiceToken) {
        // Our user token is now validated and cached by Cinder: the service token's turn.
        this.startServiceWarm();
      }
      return res;
    }
  }

  private error(method: string, path: string, res: { status: number } & Parameters<typeof faultMessage>[0]): OpenStackHttpError {
    const hint =
      res.status !== 409 || method !== 'DELETE'
        ? ''
        : !this.session.settings.serviceAuth
          ? // Worded without "token: x" or "token = x": the secret scrubber would mask those.
            ' (Cinder wants a service token; in nova.conf [service_user], send_service_user_token must be true)'
          : " (Cinder did not take it as a service request: the [service_user] user needs a role of Cinder's [keystone_authtoken] service_token_roles, by default service)";
    return new OpenStackHttpError(
      `Cinder ${method} ${path.split('?')[0]} failed: ${faultMessage(res)} (HTTP ${res.status})${hint}`,
      res.status,
    );
  }

  private ensureSession() {
    return this.session.get();
  }

  /** nova checks the server supports 3.44 before its first attachment_create. */
  private async checkMicroversion(): Promise<void> {
    if (this.session.versionChecked) return;
    let session = await this.ensureSession();
    const root = session.endpoint.replace(/\/v3(\/.*)?$/, '/');
    let res = await this.session.http.request('GET', root, { Accept: '*/*', 'X-Auth-Token': session.token });
    if (res.status === 401) {
      this.session.invalidate(session.token);
      session = await this.ensureSession();
      res = await this.session.http.request('GET', root, { Accept: '*/*', 'X-Auth-Token': session.token });
    }
    const versions = (res.data as { versions?: Array<{ version?: string }> })?.versions ?? [];
    const v3 = versions.find((v) => String(v.version ?? '').includes('3.'));
    const [maj, min] = String(v3?.version ?? '0.0')
      .split('.')
      .map(Number);
    if (!v3 || maj !== 3 || (min ?? 0) < 44) {
      throw new OpenStackHttpError(`Cinder at ${root} does not support API version 3.44 (needed for attachments)`, res.status);
    }
    this.session.versionChecked = true;
  }
}
