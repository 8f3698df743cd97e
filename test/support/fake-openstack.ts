import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

// A stand-in Keystone v3 + Cinder v3 attachments API, built to reference/cinder-keystone.md:
// token auth with the catalog, version discovery, the attachment state machine
// (reserved -> attaching -> attached, deletes), the service-token rule for deleting an in-use
// attachment, the legacy os-terminate_connection, and faults/slowness injected on command.

export interface FakeAttachment {
  id: string;
  status: string;
  instance: string | null;
  volume_id: string;
  attached_at: string;
  detached_at: string;
  attach_mode: string;
  connection_info: Record<string, unknown> | null;
  connector: Record<string, unknown> | null;
  /** Made by the legacy (pre-3.27) attach flow. */
  legacy: boolean;
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
}

const PROJECT = '8c3f2a51b3a84b6a9f0f1e2d3c4b5a69';
export const USERS = { nova: 'nova-pw-s3cret', 'nova-service': 'service-pw-s3cret' } as const;

const now = () => new Date().toISOString().replace('Z', '').padEnd(26, '0');

export class FakeOpenStack {
  readonly attachments = new Map<string, FakeAttachment>();
  /** What the (fake) volume driver hands out per volume; default an rbd volume on the "new" monitors. */
  readonly backends = new Map<string, Record<string, unknown>>();
  readonly log: LoggedRequest[] = [];
  requireServiceToken = true;
  private readonly faults: Fault[] = [];
  private readonly tokens = new Map<string, string>();
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

  /** Make the next `times` requests matching method+path answer `status` (after delayMs). */
  failNext(method: string, path: RegExp, status: number, times = 1, delayMs?: number): void {
    this.faults.push({ method, path, status, times, delayMs });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** An attachment as the attach flow leaves it (v3, or legacy with `legacy: true`). */
  addAttachedVolume(volumeId: string, instanceUuid: string, connectionInfo: Record<string, unknown>, legacy = false, host = 'old-host'): FakeAttachment {
    const a: FakeAttachment = {
      id: randomUUID(), status: 'attached', instance: instanceUuid, volume_id: volumeId, attached_at: now(), detached_at: '',
      attach_mode: 'rw', connection_info: connectionInfo, connector: { host }, legacy,
    };
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

  nova_conf_sections(): string {
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
send_service_user_token = true
auth_type = password
auth_url = ${this.url}/identity
username = nova-service
password = ${USERS['nova-service']}
project_name = service
user_domain_name = Default
project_domain_name = Default
`;
  }

  private view(a: FakeAttachment) {
    return {
      id: a.id, status: a.status, instance: a.instance, volume_id: a.volume_id, attached_at: a.attached_at, detached_at: a.detached_at,
      attach_mode: a.attach_mode, connection_info: a.connection_info ?? {},
    };
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
      res.writeHead(status, { 'Content-Type': 'application/json', 'x-openstack-request-id': `req-${randomUUID()}`, ...headers });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };
    const fault = this.faults.find((f) => f.method === method && f.path.test(url.pathname) && f.times > 0);
    if (fault) {
      fault.times--;
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.status > 0) {
        send(fault.status, { [fault.status === 404 ? 'itemNotFound' : fault.status === 409 ? 'conflictingRequest' : 'computeFault']: { code: fault.status, message: `injected ${fault.status}` } });
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
        send(401, { error: { code: 401, message: 'The request you have made requires authentication.', title: 'Unauthorized' } });
        return;
      }
      const token = `tok-${user.name}-${randomUUID()}`;
      this.tokens.set(token, user.name);
      send(
        201,
        {
          token: {
            methods: ['password'],
            user: { id: user.name, name: user.name, domain: { id: 'default', name: 'Default' } },
            project: { id: PROJECT, name: 'service', domain: { id: 'default', name: 'Default' } },
            roles: [{ id: 'r1', name: 'admin' }, { id: 'r2', name: 'service' }],
            catalog: [
              { type: 'identity', name: 'keystone', endpoints: [{ interface: 'public', region_id: 'RegionOne', region: 'RegionOne', url: `${this.url}/identity` }] },
              { type: 'volumev3', name: 'cinderv3', endpoints: [{ interface: 'public', region_id: 'RegionOne', region: 'RegionOne', url: `${this.url}/volume/v3/${PROJECT}` }] },
            ],
          },
        },
        { 'X-Subject-Token': token },
      );
      return;
    }
    // --- Cinder
    if (p === '/volume/' && method === 'GET') {
      send(300, { versions: [{ id: 'v3.0', status: 'CURRENT', version: '3.70', min_version: '3.0', links: [{ rel: 'self', href: `${this.url}/volume/v3/` }] }] });
      return;
    }
    const base = `/volume/v3/${PROJECT}`;
    if (!p.startsWith(base)) {
      send(404, { itemNotFound: { code: 404, message: 'not found' } });
      return;
    }
    if (!this.tokens.has(String(req.headers['x-auth-token']))) {
      send(401, { unauthorized: { code: 401, message: 'bad token' } });
      return;
    }
    const rest = p.slice(base.length);
    const legacyAction = /^\/volumes\/([^/]+)\/action$/.exec(rest);
    if (legacyAction && method === 'POST' && (body as any)?.['os-terminate_connection']) {
      // Legacy flow: ends the connection; the attachment record stays (that is the catch).
      for (const a of this.attachmentsOf(legacyAction[1]!)) if (a.legacy) a.connection_info = null;
      send(202);
      return;
    }
    const volume = /^\/volumes\/([^/]+)$/.exec(rest);
    if (volume && method === 'GET') {
      const atts = this.attachmentsOf(volume[1]!);
      send(200, {
        volume: {
          id: volume[1], status: atts.length ? 'in-use' : 'available',
          attachments: atts.filter((a) => a.status === 'attached').map((a) => ({
            id: a.volume_id, attachment_id: a.id, volume_id: a.volume_id, server_id: a.instance, host_name: a.connector?.host ?? null, device: '/dev/vdb', attached_at: a.attached_at,
          })),
        },
      });
      return;
    }
    if (req.headers['openstack-api-version'] !== 'volume 3.44') {
      send(404, { itemNotFound: { code: 404, message: 'VersionNotFoundForAPIMethod' } });
      return;
    }
    if (rest === '/attachments' && method === 'POST') {
      const a = (body as any)?.attachment;
      const att: FakeAttachment = {
        id: randomUUID(), status: 'reserved', instance: a.instance_uuid, volume_id: a.volume_uuid, attached_at: '', detached_at: '',
        attach_mode: 'null', connection_info: null, connector: null, legacy: false,
      };
      this.attachments.set(att.id, att);
      send(200, { attachment: this.view(att) });
      return;
    }
    if (rest === '/attachments/detail' && method === 'GET') {
      const list = [...this.attachments.values()].filter(
        (a) => (!url.searchParams.get('volume_id') || a.volume_id === url.searchParams.get('volume_id')) && (!url.searchParams.get('instance_id') || a.instance === url.searchParams.get('instance_id')),
      );
      send(200, { attachments: list.map((a) => this.view(a)) });
      return;
    }
    const one = /^\/attachments\/([^/]+)(\/action)?$/.exec(rest);
    const att = one ? this.attachments.get(one[1]!) : undefined;
    if (!one || !att) {
      send(404, { itemNotFound: { code: 404, message: `Volume attachment ${one?.[1]} could not be found.` } });
      return;
    }
    if (one[2] && method === 'POST') {
      if ((body as any) && 'os-complete' in (body as object)) {
        att.status = 'attached';
        att.attached_at = now();
        send(204);
      } else send(400, { badRequest: { code: 400, message: 'unknown action' } });
      return;
    }
    if (method === 'GET') {
      send(200, { attachment: this.view(att) });
      return;
    }
    if (method === 'DELETE') {
      const serviceToken = this.tokens.get(String(req.headers['x-service-token']));
      if (this.requireServiceToken && att.connection_info && att.instance && serviceToken !== 'nova-service') {
        send(409, { conflictingRequest: { code: 409, message: `ConflictNovaUsingAttachment: Detach volume from instance ${att.instance} using the Compute API` } });
        return;
      }
      this.attachments.delete(att.id);
      send(200, { attachments: [] });
      return;
    }
    if (method === 'PUT') {
      const connector = (body as any)?.attachment?.connector;
      if (!connector || typeof connector !== 'object' || Object.keys(connector).length === 0) {
        send(400, { badRequest: { code: 400, message: 'Invalid input for field/attribute connector.' } });
        return;
      }
      const stale = this.view(att); // Cinder zed answers with the row as it was before the update
      const backend = this.backends.get(att.volume_id) ?? { driver_volume_type: 'iscsi', data: { target_portal: '192.0.2.99:3260', target_lun: 0, access_mode: 'rw' } };
      const { data, ...top } = backend as { data: Record<string, unknown> };
      att.connection_info = { ...data, ...top, attachment_id: att.id };
      att.connector = connector;
      att.status = 'attaching';
      att.attach_mode = 'rw';
      send(200, { attachment: { ...stale, connection_info: att.connection_info } });
      return;
    }
    send(405, { badMethod: { code: 405, message: 'method not allowed' } });
  }
}
