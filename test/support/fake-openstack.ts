import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

// A stand-in Keystone v3 + Cinder v3 attachments API that applies the rules of the real ones
// (Cinder zed = 21, keystonemiddleware) rather than answers decided by a test:
// * Keystone tokens carry expires_at and expire on command; Cinder (keystonemiddleware) answers
//   401 to an unknown or expired user token, and to an invalid service token; a valid service
//   token with the service role lets an expired user token through (allow_expired).
// * The attachment state machine and the volume status (cinder/volume/api.py attachment_create,
//   _attachment_reserve, attachment_update, attachment_delete; cinder/api/v3/attachments.py).
// * attach_mode: the create `mode` (3.54+), else the connector's `mode`, else rw; volume admin
//   metadata `readonly` overrides both with ro whenever the key holds any non-empty string (so
//   the 'False' a legacy os-attach stores counts as true). data.access_mode comes from the
//   admin metadata attached_mode, else `readonly == 'True'` (manager._parse_connection_options).
// * connection_info as Cinder returns it: the driver's data flattened with the top-level keys,
//   qos_specs, access_mode, encrypted, cacheable (volume type), attachment_id, and
//   enforce_multipath from Cinder 2025.1 on; `{}` after a reserve, `null` for a legacy attach.
// * Listing: the caller's project only unless an admin passes all_tenants; limit/marker with
//   osapi_max_limit 1000, sorted created_at desc, id desc; no links (the attachments view has none).
// * Deleting an attachment that is connected to an instance Nova still maps to it needs a
//   service request: a valid service token whose roles include one of service_token_roles.
// Faults and slowness are still injectable, for what a rule cannot produce.

export interface FakeAttachment {
  id: string;
  /** attach_status */
  status: string;
  instance: string | null;
  volume_id: string;
  attached_at: string;
  detached_at: string;
  attach_mode: string;
  /** `{}` once reserved, the flattened driver info once connected, null for a legacy attach. */
  connection_info: Record<string, unknown> | null;
  connector: Record<string, unknown> | null;
  attached_host: string | null;
  /** Made by the legacy (pre-3.27) attach flow. */
  legacy: boolean;
  created_at: string;
}

export interface FakeVolume {
  id: string;
  project_id: string;
  status: string;
  multiattach: boolean;
  /** Keys as Cinder stores them: strings ('readonly', 'attached_mode'). */
  admin_metadata: Record<string, string>;
  /** The volume type's `cacheable` extra spec; undefined = no volume type. */
  cacheable_spec?: string;
  encrypted: boolean;
}

export interface LoggedRequest {
  method: string;
  path: string;
  status: number;
  body: unknown;
  headers: Record<string, string | undefined>;
}

interface Fault {
  method: string;
  path: RegExp;
  status: number;
  times: number;
  delayMs?: number;
  /** Do the work first and answer late (the caller may give up on an answer to a done deed). */
  answerLate?: boolean;
}

interface IssuedToken {
  user: string;
  roles: string[];
  expiresAt: number;
}

/** The project of the nova service users (their tokens are scoped to it). */
export const PROJECT = '8c3f2a51b3a84b6a9f0f1e2d3c4b5a69';
/** The project that owns the instances and volumes. */
export const VOLUME_PROJECT = '6d1f4e8a2b3c4d5e9f0a1b2c3d4e5f60';
export const USERS = { nova: 'nova-pw-s3cret', 'nova-service': 'service-pw-s3cret' } as const;
export const OSAPI_MAX_LIMIT = 1000;

const now = () => new Date().toISOString().replace('Z', '').padEnd(26, '0');
/** Keystone's time format: microseconds and a Z. */
const keystoneTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
const UNAUTHORIZED = { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } };

export class FakeOpenStack {
  readonly attachments = new Map<string, FakeAttachment>();
  readonly volumes = new Map<string, FakeVolume>();
  /** What the (fake) volume driver hands out per volume; default an iscsi target. */
  readonly backends = new Map<string, Record<string, unknown>>();
  readonly log: LoggedRequest[] = [];
  /** Roles of each user's tokens (the lab's nova user has admin and service). */
  readonly roles: Record<string, string[]> = { nova: ['admin', 'member', 'reader', 'service'], 'nova-service': ['admin', 'service'] };
  /** Keystone [token] expiration. */
  tokenLifetimeSeconds = 3600;
  /** keystonemiddleware [keystone_authtoken] service_token_roles / _required. */
  serviceTokenRoles = ['service'];
  serviceTokenRolesRequired = false;
  /** Cinder release: from 2025.1 on, connection_info carries enforce_multipath. */
  release: 'zed' | '2025.1' = 'zed';
  /**
   * The attachment id Nova reports for (instance, volume) (GET os-volume_attachments), as
   * attachment_deletion_allowed asks it; undefined = the volume is not attached in Nova.
   * Default: Nova maps the volume to the attachment being deleted.
   */
  novaAttachmentId: (instanceUuid: string, volumeId: string, attachmentId: string) => Promise<string | undefined> | string | undefined = (
    _i,
    _v,
    a,
  ) => a;
  /** Runs before every request is handled (e.g. to expire the tokens after the n-th call). */
  onRequest?: (method: string, path: string) => void;
  /** Awaited before every request is handled (e.g. to check Nova's rows while the client waits). */
  beforeRequest?: (method: string, path: string) => Promise<void>;
  private readonly faults: Fault[] = [];
  private readonly tokens = new Map<string, IssuedToken>();
  private server!: Server;
  url = '';

  static async start(): Promise<FakeOpenStack> {
    const fake = new FakeOpenStack();
    fake.server = createServer((req, res) => void fake.handle(req, res));
    await new Promise<void>((r) => fake.server.listen(0, '127.0.0.1', r));
    fake.url = `http://127.0.0.1:${(fake.server.address() as { port: number }).port}`;
    return fake;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  private readonly meters: Array<{ method: string; path: RegExp; now: number; peak: number; total: number }> = [];

  /**
   * Counts the requests matching method+path from now on: how many in all, and the most in
   * flight at once (from arrival to the answer's end, a late answer included).
   */
  meter(method: string, path: RegExp): { readonly peak: number; readonly total: number } {
    const m = { method, path, now: 0, peak: 0, total: 0 };
    this.meters.push(m);
    return m;
  }

  /** Make the next `times` requests matching method+path answer `status` (after delayMs; status 0 = only the delay). */
  failNext(method: string, path: RegExp, status: number, times = 1, delayMs?: number): void {
    this.faults.push({ method, path, status, times, delayMs });
  }

  /** The next `times` matching requests are carried out at once but answered only after delayMs. */
  answerLate(method: string, path: RegExp, delayMs: number, times = 1): void {
    this.faults.push({ method, path, status: 0, times, delayMs, answerLate: true });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Every token issued so far (or only `user`'s) expires now, as if `[token] expiration` had passed. */
  expireTokens(user?: string): void {
    for (const t of this.tokens.values()) if (!user || t.user === user) t.expiresAt = Date.now() - 1000;
  }

  /** How many tokens Keystone issued to `user`. */
  tokensIssued(user: string): number {
    return this.log.filter(
      (r) =>
        r.method === 'POST' &&
        r.path.endsWith('/auth/tokens') &&
        r.status === 201 &&
        (r.body as any)?.auth?.identity?.password?.user?.name === user,
    ).length;
  }

  tokenUser(token: string | undefined): string | undefined {
    return token ? this.tokens.get(token)?.user : undefined;
  }

  addVolume(volumeId: string, options: Partial<Omit<FakeVolume, 'id'>> = {}): FakeVolume {
    const v: FakeVolume = {
      id: volumeId,
      project_id: VOLUME_PROJECT,
      status: 'available',
      multiattach: false,
      admin_metadata: {},
      cacheable_spec: '',
      encrypted: false,
      ...options,
    };
    this.volumes.set(volumeId, v);
    return v;
  }

  /**
   * An attachment as the attach flow leaves it: v3 (reserve, update with the host's connector,
   * complete) or legacy (os-attach: connection_info null, no host, admin metadata
   * readonly='False' and attached_mode).
   */
  addAttachedVolume(
    volumeId: string,
    instanceUuid: string,
    driverInfo: Record<string, unknown>,
    legacy = false,
    host = 'old-host',
    options: { mode?: 'rw' | 'ro' } = {},
  ): FakeAttachment {
    const volume = this.volumes.get(volumeId) ?? this.addVolume(volumeId);
    const a: FakeAttachment = {
      id: randomUUID(),
      status: 'attached',
      instance: instanceUuid,
      volume_id: volumeId,
      attached_at: now(),
      detached_at: '',
      attach_mode: options.mode ?? 'rw',
      connection_info: null,
      connector: null,
      attached_host: null,
      legacy,
      created_at: now(),
    };
    if (legacy) {
      volume.admin_metadata.readonly ??= 'False';
      volume.admin_metadata.attached_mode = a.attach_mode;
    } else {
      if (options.mode === 'ro') volume.admin_metadata.readonly = 'True';
      a.connector = { host, ip: '192.0.2.10', platform: 'x86_64', os_type: 'linux', multipath: false, mountpoint: '/dev/vdb' };
      a.attached_host = host;
      a.connection_info = this.connectionInfo(volume, a, driverInfo);
    }
    volume.status = 'in-use';
    this.attachments.set(a.id, a);
    return a;
  }

  attachmentsOf(volumeId: string): FakeAttachment[] {
    return [...this.attachments.values()].filter((a) => a.volume_id === volumeId);
  }

  /** The requests Cinder received that changed something. */
  mutations(): LoggedRequest[] {
    return this.log.filter((r) => r.method !== 'GET' && !r.path.startsWith('/identity'));
  }

  nova_conf_sections(options: { serviceUser?: boolean } = {}): string {
    const serviceUser = options.serviceUser ?? true;
    return `[cinder]
auth_type = password
auth_url = ${this.url}/identity
username = nova
password = ${USERS.nova}
project_name = service
user_domain_name = Default
project_domain_name = Default
os_region_name = RegionOne
[service_user]
send_service_user_token = ${serviceUser}
auth_type = password
auth_url = ${this.url}/identity
username = nova-service
password = ${USERS['nova-service']}
project_name = service
user_domain_name = Default
project_domain_name = Default
`;
  }

  /**
   * manager._connection_create: the driver's info, _parse_connection_options' keys, flattened
   * (data first, then the top-level keys), attachment_id, and enforce_multipath on 2025.1+.
   */
  private connectionInfo(volume: FakeVolume, a: FakeAttachment, driverInfo: Record<string, unknown>): Record<string, unknown> {
    const { data: driverData, ...top } = driverInfo as { data?: Record<string, unknown> };
    const data: Record<string, unknown> = { ...(driverData ?? {}) };
    data.qos_specs = null;
    const attachedMode = volume.admin_metadata.attached_mode;
    data.access_mode = attachedMode ?? (volume.admin_metadata.readonly === 'True' ? 'ro' : 'rw');
    if (data.encrypted === undefined || data.encrypted === null) data.encrypted = volume.encrypted;
    if (volume.cacheable_spec !== undefined) {
      data.cacheable =
        data.cacheable !== undefined && data.cacheable !== null
          ? Boolean(data.cacheable) && volume.cacheable_spec === '<is> True'
          : volume.cacheable_spec === '<is> True';
    }
    const info: Record<string, unknown> = { ...data, ...top, attachment_id: a.id };
    if (this.release !== 'zed') info.enforce_multipath = a.connector?.enforce_multipath ?? false;
    return info;
  }

  private view(a: FakeAttachment) {
    return {
      id: a.id,
      status: a.status,
      instance: a.instance,
      volume_id: a.volume_id,
      attached_at: a.attached_at,
      detached_at: a.detached_at,
      attach_mode: a.attach_mode,
      connection_info: a.connection_info,
    };
  }

  private summary(a: FakeAttachment) {
    return { id: a.id, status: a.status, instance: a.instance, volume_id: a.volume_id };
  }

  /** volume_detached: the volume's status from the attachments that remain. */
  private settleVolumeStatus(volume: FakeVolume): void {
    const statuses = this.attachmentsOf(volume.id).map((a) => a.status);
    volume.status = statuses.includes('attached')
      ? 'in-use'
      : statuses.includes('attaching')
        ? 'attaching'
        : statuses.includes('detaching')
          ? 'detaching'
          : statuses.includes('reserved')
            ? 'reserved'
            : 'available';
  }

  /** keystonemiddleware: the user token's validity, and the roles of a valid service token. */
  private authenticateRequest(req: IncomingMessage): { ok: boolean; admin: boolean; serviceRoles: string[] } {
    const at = Date.now();
    const userToken = req.headers['x-auth-token'] as string | undefined;
    const serviceToken = req.headers['x-service-token'] as string | undefined;
    let serviceValid = true;
    let serviceRoles: string[] = [];
    let allowExpired = false;
    if (serviceToken) {
      const s = this.tokens.get(serviceToken);
      if (!s || s.expiresAt <= at) serviceValid = false;
      else {
        const rolePassed = s.roles.some((r) => this.serviceTokenRoles.includes(r));
        serviceValid = this.serviceTokenRolesRequired ? rolePassed : true;
        allowExpired = rolePassed;
        if (serviceValid) serviceRoles = s.roles;
      }
    }
    const u = userToken ? this.tokens.get(userToken) : undefined;
    const userValid = u !== undefined && (u.expiresAt > at || allowExpired);
    return { ok: userValid && serviceValid, admin: Boolean(u?.roles.includes('admin')), serviceRoles };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    let lateMs = 0;
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      this.log.push({
        method,
        path: url.pathname + url.search,
        status,
        body,
        headers: {
          'x-auth-token': req.headers['x-auth-token'] as string | undefined,
          'x-service-token': req.headers['x-service-token'] as string | undefined,
          'openstack-api-version': req.headers['openstack-api-version'] as string | undefined,
          'x-openstack-request-id': req.headers['x-openstack-request-id'] as string | undefined,
        },
      });
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(status, { 'Content-Type': 'application/json', 'x-openstack-request-id': `req-${randomUUID()}`, ...headers });
        res.end(payload === undefined ? '' : JSON.stringify(payload));
      };
      if (lateMs) setTimeout(answer, lateMs);
      else answer();
    };
    this.onRequest?.(method, url.pathname);
    await this.beforeRequest?.(method, url.pathname);
    const meters = this.meters.filter((m) => m.method === method && m.path.test(url.pathname));
    for (const m of meters) {
      m.total++;
      m.peak = Math.max(m.peak, ++m.now);
    }
    if (meters.length > 0) res.once('close', () => meters.forEach((m) => m.now--));
    const fault = this.faults.find((f) => f.method === method && f.path.test(url.pathname) && f.times > 0);
    if (fault) {
      fault.times--;
      if (fault.answerLate) lateMs = fault.delayMs ?? 0;
      else if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.status === 401) {
        send(401, UNAUTHORIZED, { 'WWW-Authenticate': `Keystone uri="${this.url}/identity"` });
        return;
      }
      if (fault.status > 0) {
        send(fault.status, {
          [fault.status === 404
            ? 'itemNotFound'
            : fault.status === 409
              ? 'conflictingRequest'
              : fault.status === 400
                ? 'badRequest'
                : 'computeFault']: { code: fault.status, message: `injected ${fault.status}` },
        });
        return;
      }
    }
    const p = url.pathname;
    // --- Keystone
    if (p === '/identity' || p === '/identity/') {
      send(300, { versions: { values: [{ id: 'v3.14', status: 'stable', links: [{ rel: 'self', href: `${this.url}/identity/v3/` }] }] } });
      return;
    }
    if (p === '/identity/v3/auth/tokens' && method === 'POST') {
      const user = (body as any)?.auth?.identity?.password?.user;
      if (!user || USERS[user.name as keyof typeof USERS] !== user.password) {
        send(401, UNAUTHORIZED);
        return;
      }
      const token = `tok-${user.name}-${randomUUID()}`;
      const issuedAt = Date.now();
      const roles = this.roles[user.name] ?? [];
      this.tokens.set(token, { user: user.name, roles, expiresAt: issuedAt + this.tokenLifetimeSeconds * 1000 });
      send(
        201,
        {
          token: {
            methods: ['password'],
            user: { id: user.name, name: user.name, domain: { id: 'default', name: 'Default' }, password_expires_at: null },
            audit_ids: [randomUUID().slice(0, 22)],
            issued_at: keystoneTime(issuedAt),
            expires_at: keystoneTime(issuedAt + this.tokenLifetimeSeconds * 1000),
            project: { id: PROJECT, name: 'service', domain: { id: 'default', name: 'Default' } },
            is_domain: false,
            roles: roles.map((name, i) => ({ id: `r${i}`, name })),
            catalog: [
              {
                type: 'identity',
                name: 'keystone',
                endpoints: [{ interface: 'public', region_id: 'RegionOne', region: 'RegionOne', url: `${this.url}/identity` }],
              },
              {
                type: 'volumev3',
                name: 'cinderv3',
                endpoints: [{ interface: 'public', region_id: 'RegionOne', region: 'RegionOne', url: `${this.url}/volume/v3/${PROJECT}` }],
              },
            ],
          },
        },
        { 'X-Subject-Token': token },
      );
      return;
    }
    // --- Cinder
    if (p === '/volume/' && method === 'GET') {
      send(300, {
        versions: [
          { id: 'v3.0', status: 'CURRENT', version: '3.70', min_version: '3.0', links: [{ rel: 'self', href: `${this.url}/volume/v3/` }] },
        ],
      });
      return;
    }
    const base = `/volume/v3/${PROJECT}`;
    if (!p.startsWith(base)) {
      send(404, { itemNotFound: { code: 404, message: 'not found' } });
      return;
    }
    const auth = this.authenticateRequest(req);
    if (!auth.ok) {
      send(401, UNAUTHORIZED, { 'WWW-Authenticate': `Keystone uri="${this.url}/identity"` });
      return;
    }
    const rest = p.slice(base.length);
    const legacyAction = /^\/volumes\/([^/]+)\/action$/.exec(rest);
    if (legacyAction && method === 'POST' && (body as any)?.['os-terminate_connection']) {
      // The legacy flow ends the driver's connection; the attachment records stay as they are.
      if (!this.volumes.has(legacyAction[1]!))
        send(404, { itemNotFound: { code: 404, message: `Volume ${legacyAction[1]} could not be found.` } });
      else send(202);
      return;
    }
    if (rest === '/volumes/detail' && method === 'GET') {
      const mv = /^volume 3\.(\d+)$/.exec(String(req.headers['openstack-api-version'] ?? ''));
      this.listVolumes(url, auth.admin, send, mv ? Number(mv[1]) : 0);
      return;
    }
    const volumeMatch = /^\/volumes\/([^/]+)$/.exec(rest);
    if (volumeMatch && method === 'GET') {
      const volume = this.volumes.get(volumeMatch[1]!);
      if (!volume) {
        send(404, { itemNotFound: { code: 404, message: `Volume ${volumeMatch[1]} could not be found.` } });
        return;
      }
      send(200, {
        volume: {
          id: volume.id,
          status: volume.status,
          multiattach: volume.multiattach,
          attachments: this.attachmentsOf(volume.id)
            .filter((a) => a.status === 'attached')
            .map((a) => ({
              id: a.volume_id,
              attachment_id: a.id,
              volume_id: a.volume_id,
              server_id: a.instance,
              host_name: a.attached_host,
              device: a.connector?.mountpoint ?? null,
              attached_at: a.attached_at,
            })),
        },
      });
      return;
    }
    const version = /^volume (\d+)\.(\d+)$/.exec(String(req.headers['openstack-api-version'] ?? ''));
    const minor = version && version[1] === '3' ? Number(version[2]) : 0;
    if (minor < 27) {
      send(404, { itemNotFound: { code: 404, message: 'The resource could not be found.' } });
      return;
    }
    if (rest === '/attachments' && method === 'POST') {
      await this.createAttachment(body as any, minor, send);
      return;
    }
    if ((rest === '/attachments/detail' || rest === '/attachments') && method === 'GET') {
      this.listAttachments(url.searchParams, auth.admin, rest.endsWith('/detail'), send);
      return;
    }
    const one = /^\/attachments\/([^/]+)(\/action)?$/.exec(rest);
    const att = one ? this.attachments.get(one[1]!) : undefined;
    if (!one || !att) {
      send(404, { itemNotFound: { code: 404, message: `Volume attachment could not be found with filter: attachment_id = ${one?.[1]}.` } });
      return;
    }
    const volume = this.volumes.get(att.volume_id)!;
    if (one[2] && method === 'POST') {
      if (minor < 44) send(404, { itemNotFound: { code: 404, message: 'The resource could not be found.' } });
      else if ((body as any) && 'os-complete' in (body as object)) {
        att.status = 'attached';
        volume.status = 'in-use';
        send(204);
      } else send(400, { badRequest: { code: 400, message: 'There is no such action' } });
      return;
    }
    if (method === 'GET') {
      send(200, { attachment: this.view(att) });
      return;
    }
    if (method === 'DELETE') {
      // attachment_deletion_allowed (bug #2004555): a service request may always delete.
      const serviceRequest = auth.serviceRoles.some((r) => this.serviceTokenRoles.includes(r));
      const connected = att.instance && att.connection_info && Object.keys(att.connection_info).length > 0;
      if (!serviceRequest && connected && (await this.novaAttachmentId(att.instance!, att.volume_id, att.id)) === att.id) {
        send(409, { conflictingRequest: { code: 409, message: `Detach volume from instance ${att.instance} using the Compute API` } });
        return;
      }
      this.attachments.delete(att.id);
      delete volume.admin_metadata.attached_mode; // finish_detach
      this.settleVolumeStatus(volume);
      send(200, { attachments: this.attachmentsOf(volume.id).map((a) => this.summary(a)) });
      return;
    }
    if (method === 'PUT') {
      const connector = (body as any)?.attachment?.connector;
      if (!connector || typeof connector !== 'object' || Array.isArray(connector) || Object.keys(connector).length === 0) {
        send(400, {
          badRequest: { code: 400, message: "Invalid input for field/attribute connector. Value: None. None is not of type 'object'" },
        });
        return;
      }
      const stale = this.view(att); // the API's object was loaded before the volume service updated the row
      const err = this.connect(volume, att, connector);
      if (err) {
        send(500, { computeFault: { code: 500, message: `Unable to update attachment.(${err}).` } });
        return;
      }
      send(200, { attachment: { ...stale, connection_info: att.connection_info } });
      return;
    }
    send(405, { badMethod: { code: 405, message: 'method not allowed' } });
  }

  /** api.attachment_create: reserve (conditional on the volume status), maybe connect, then the mode. */
  private async createAttachment(
    body: { attachment?: Record<string, unknown> },
    minor: number,
    send: (s: number, p?: unknown) => void,
  ): Promise<void> {
    const a = body?.attachment;
    if (!a || typeof a.volume_uuid !== 'string' || (a.mode !== undefined && minor < 54)) {
      send(400, {
        badRequest: {
          code: 400,
          message: "Invalid input for field/attribute attachment. Additional properties are not allowed ('mode' was unexpected)",
        },
      });
      return;
    }
    const volume = this.volumes.get(a.volume_uuid);
    if (!volume) {
      send(404, { itemNotFound: { code: 404, message: `Volume ${a.volume_uuid} could not be found.` } });
      return;
    }
    if (volume.status.includes('error')) {
      send(400, {
        badRequest: {
          code: 400,
          message: `Invalid volume: Volume attachments can not be created if the volume is in an error state. The Volume ${volume.id} currently has a status of: ${volume.status} `,
        },
      });
      return;
    }
    const instance = (a.instance_uuid as string | null | undefined) ?? null;
    const expected = volume.multiattach ? ['available', 'in-use', 'downloading'] : ['available', 'downloading'];
    if (expected.includes(volume.status)) volume.status = 'reserved';
    else {
      const sameInstance =
        instance !== null &&
        ['in-use', 'reserved'].includes(volume.status) &&
        this.attachmentsOf(volume.id).some((x) => x.instance === instance);
      if (!sameInstance) {
        const statuses = expected.length === 2 ? 'available or downloading' : 'available, in-use or downloading';
        send(400, {
          badRequest: {
            code: 400,
            message: `Invalid volume: Volume ${volume.id} status must be ${statuses} to reserve, but the current status is ${volume.status}.`,
          },
        });
        return;
      }
    }
    const att: FakeAttachment = {
      id: randomUUID(),
      status: 'reserved',
      instance,
      volume_id: volume.id,
      attached_at: '',
      detached_at: '',
      attach_mode: 'null',
      connection_info: {},
      connector: null,
      attached_host: null,
      legacy: false,
      created_at: now(),
    };
    this.attachments.set(att.id, att);
    if (a.connector && typeof a.connector === 'object') {
      const err = this.connect(volume, att, a.connector as Record<string, unknown>, 'create');
      if (err) {
        send(500, { computeFault: { code: 500, message: `Unable to create attachment for volume (${err}).` } });
        return;
      }
    }
    // The admin metadata overrides the mode; any non-empty string is true here.
    att.attach_mode = volume.admin_metadata.readonly ? 'ro' : minor >= 54 && typeof a.mode === 'string' ? a.mode : 'null';
    send(200, { attachment: this.view(att) });
  }

  /**
   * api + manager attachment_update; returns an error text instead of connecting. Only the API's
   * PUT checks for duplicate connectors: attachment_create with a connector calls the volume
   * service directly (cinder/volume/api.py), which is how a second attachment of the same
   * instance on an in-use volume gets connected.
   */
  private connect(
    volume: FakeVolume,
    att: FakeAttachment,
    connectorIn: Record<string, unknown>,
    via: 'update' | 'create' = 'update',
  ): string | undefined {
    if (volume.status.includes('error')) return `Volume attachments can not be updated if the volume is in an error state`;
    const others = this.attachmentsOf(volume.id);
    if (
      via === 'update' &&
      others.length > 1 &&
      !volume.multiattach &&
      others.some((x) => x.connection_info && Object.keys(x.connection_info).length > 0)
    ) {
      return `Invalid volume: duplicate connectors detected on volume ${volume.id}`;
    }
    const connector = { ...connectorIn };
    let mode = typeof connector.mode === 'string' ? connector.mode : 'rw';
    if (att.attach_mode !== 'null') {
      mode = att.attach_mode;
      connector.mode = mode;
    }
    att.connector = connector;
    const backend = this.backends.get(volume.id) ?? {
      driver_volume_type: 'iscsi',
      data: {
        target_discovered: false,
        target_portal: '192.0.2.99:3260',
        target_iqn: `iqn.2010-10.org.openstack:volume-${volume.id}`,
        target_lun: 0,
        volume_id: volume.id,
      },
    };
    att.connection_info = this.connectionInfo(volume, att, JSON.parse(JSON.stringify(backend)));
    // volume_attached(mark_attached=False)
    att.status = 'attaching';
    att.attached_host = typeof connector.host === 'string' ? connector.host : '';
    att.attached_at = now();
    att.attach_mode = mode;
    volume.status = 'attaching';
    return undefined;
  }

  /** AttachmentsController._items: project scoping, filters, sort, marker, limit. */
  private listAttachments(params: URLSearchParams, admin: boolean, detail: boolean, send: (s: number, p?: unknown) => void): void {
    const q = Object.fromEntries(params.entries());
    const limit = q.limit === undefined ? OSAPI_MAX_LIMIT : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 0) {
      send(400, {
        badRequest: { code: 400, message: Number.isInteger(limit) ? 'limit param must be positive' : 'limit param must be an integer' },
      });
      return;
    }
    const { marker, sort: _s, sort_key: _k, sort_dir: _d, offset: offsetText, limit: _l, ...filters } = q;
    void [_s, _k, _d, _l];
    const offset = pageOffset(offsetText, send);
    if (offset === undefined) return;
    const allTenants = admin && 'all_tenants' in filters;
    delete filters.all_tenants;
    if (filters.instance_id) {
      filters.instance_uuid = filters.instance_id;
      delete filters.instance_id;
    }
    const column: Record<string, (a: FakeAttachment) => unknown> = {
      id: (a) => a.id,
      volume_id: (a) => a.volume_id,
      instance_uuid: (a) => a.instance,
      attach_status: (a) => a.status,
      attach_mode: (a) => a.attach_mode,
      attached_host: (a) => a.attached_host,
    };
    // A filter that is not a column of volume_attachment (e.g. `status`) matches nothing.
    if (Object.keys(filters).some((k) => !(k in column))) {
      send(200, { attachments: [] });
      return;
    }
    let list = [...this.attachments.values()]
      .filter((a) => allTenants || this.volumes.get(a.volume_id)?.project_id === PROJECT)
      .filter((a) => Object.entries(filters).every(([k, v]) => String(column[k]!(a)) === v))
      .sort((x, y) => (x.created_at === y.created_at ? (x.id < y.id ? 1 : -1) : x.created_at < y.created_at ? 1 : -1));
    if (marker !== undefined) {
      // paginate_query: the rows after the marker's (created_at, id) in the sort order.
      const m = this.attachments.get(marker);
      if (!m) {
        send(404, { itemNotFound: { code: 404, message: `Volume attachment could not be found with filter: attachment_id = ${marker}.` } });
        return;
      }
      list = list.filter((a) => a.created_at < m.created_at || (a.created_at === m.created_at && a.id < m.id));
    }
    list = list.slice(offset, offset + Math.min(limit, OSAPI_MAX_LIMIT));
    send(200, { attachments: list.map((a) => (detail ? this.view(a) : this.summary(a))) });
  }

  /**
   * VolumeController.detail, only what the audit reads: project scoping (all_tenants for an
   * admin), limit/marker (osapi_max_limit), sorted by id descending here, and the volumes_links
   * next link when the page is full (api/common.py _get_collection_links). Each volume's
   * `attachments` lists its attached attachments with host_name, as views/volumes.py does for an admin.
   */
  private listVolumes(url: URL, admin: boolean, send: (s: number, p?: unknown) => void, minor: number): void {
    const q = Object.fromEntries(url.searchParams.entries());
    const limit = q.limit === undefined ? OSAPI_MAX_LIMIT : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 0) {
      send(400, { badRequest: { code: 400, message: 'limit param must be an integer' } });
      return;
    }
    let list = [...this.volumes.values()]
      .filter((v) => (admin && 'all_tenants' in q) || v.project_id === PROJECT)
      .sort((x, y) => (x.id < y.id ? 1 : -1));
    // with_count (3.45, SUPPORT_COUNT_INFO): the number of volumes the filters match, before paging.
    const count = minor >= 45 && ['true', '1', 'yes'].includes(String(q.with_count).toLowerCase()) ? list.length : undefined;
    if (q.marker !== undefined) {
      if (!this.volumes.has(q.marker)) {
        send(404, { itemNotFound: { code: 404, message: `Volume ${q.marker} could not be found.` } });
        return;
      }
      list = list.filter((v) => v.id < q.marker!);
    }
    const offset = pageOffset(q.offset, send);
    if (offset === undefined) return;
    const pageLimit = Math.min(limit, OSAPI_MAX_LIMIT);
    list = list.slice(offset, offset + pageLimit);
    const attached = new Map<string, FakeAttachment[]>();
    for (const a of this.attachments.values())
      if (a.status === 'attached') attached.set(a.volume_id, [...(attached.get(a.volume_id) ?? []), a]);
    const volumes = list.map((v) => ({
      id: v.id,
      status: v.status,
      multiattach: v.multiattach,
      attachments: (attached.get(v.id) ?? []).map((a) => ({
        id: a.volume_id,
        attachment_id: a.id,
        volume_id: a.volume_id,
        server_id: a.instance,
        host_name: admin ? a.attached_host : null,
        device: a.connector?.mountpoint ?? null,
        attached_at: a.attached_at,
      })),
    }));
    const body: Record<string, unknown> = { volumes, ...(count !== undefined ? { count } : {}) };
    if (list.length > 0 && list.length >= pageLimit) {
      const next = new URLSearchParams(url.searchParams);
      next.set('marker', list.at(-1)!.id);
      body.volumes_links = [{ rel: 'next', href: `${this.url}/volume/v3/${PROJECT}/volumes/detail?${next}` }];
    }
    send(200, body);
  }
}

/** api/common.py _get_offset_param: rows skipped after the marker (or from the first); 400 unless an integer >= 0 (oslo's validate_integer words). */
function pageOffset(text: string | undefined, send: (s: number, p?: unknown) => void): number | undefined {
  if (text === undefined) return 0;
  const offset = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(offset)) {
    send(400, { badRequest: { code: 400, message: 'offset must be an integer' } });
    return undefined;
  }
  if (offset < 0) {
    send(400, { badRequest: { code: 400, message: 'offset must be >= 0' } });
    return undefined;
  }
  return offset;
}
