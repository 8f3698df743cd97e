import { BadInput } from '../errors';
import { faultMessage, OpenStackHttpError, type OpenStackHttp } from './http';

// Keystone v3 token auth the way keystoneauth does it for nova's [cinder] and [service_user]
// sections: password or application credential; the generic plugins discover the v3 URL first.

export interface KeystoneCredentials {
  authType: string;
  authUrl: string;
  username?: string;
  userId?: string;
  password?: string;
  userDomainName?: string;
  userDomainId?: string;
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  systemScope?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: string;
}

export interface CatalogEntry {
  type: string;
  name?: string;
  endpoints: Array<{ interface: string; region_id?: string; region?: string; url: string }>;
}

export interface KeystoneToken {
  token: string;
  catalog: CatalogEntry[];
  projectId?: string;
  /** expires_at in ms since the epoch; undefined when Keystone did not say. */
  expiresAt?: number;
}

/** keystoneauth's MIN_TOKEN_LIFE_SECONDS: a token closer than this to expiry is renewed first. */
export const MIN_TOKEN_LIFE_MS = 120_000;

/**
 * After an authentication failed (its connect retries spent), callers within this long get the
 * same error at once: a fleet of 1,000 BDMs with Keystone down fails in seconds, not after
 * 1,000 rounds of retries; a later BDM of a long run still tries again.
 */
export const FAILED_AUTH_HOLD_MS = 30_000;

/**
 * One set of credentials' token, the way a keystoneauth plugin keeps it: fetched on first use,
 * shared by concurrent callers, renewed when it is about to expire, and dropped when a service
 * answered 401 to it (the caller then asks again, once).
 */
export class TokenSource {
  private pending?: Promise<KeystoneToken>;
  private current?: KeystoneToken;
  private failure?: { error: unknown; at: number };

  constructor(
    private readonly http: OpenStackHttp,
    private readonly credentials: KeystoneCredentials,
    private readonly what: string,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<KeystoneToken> {
    const c = this.current;
    if (c && (c.expiresAt === undefined || c.expiresAt - this.now() > MIN_TOKEN_LIFE_MS)) return Promise.resolve(c);
    if (!this.pending && this.failure && this.now() - this.failure.at < FAILED_AUTH_HOLD_MS) return Promise.reject(this.failure.error);
    if (!this.pending) {
      this.current = undefined;
      const pending = authenticate(this.http, this.credentials, this.what);
      this.pending = pending;
      pending
        .then(
          (t) => {
            if (this.pending === pending) this.current = t;
            this.failure = undefined;
          },
          (error: unknown) => {
            this.failure = { error, at: this.now() };
          },
        )
        .finally(() => {
          if (this.pending === pending) this.pending = undefined;
        });
    }
    return this.pending;
  }

  /** The service refused this token: the next get() authenticates again. */
  invalidate(token: string): void {
    if (this.current?.token === token) this.current = undefined;
  }
}

const PASSWORD_TYPES = new Set(['password', 'v3password']);
const APP_CREDENTIAL_TYPES = new Set(['applicationcredential', 'v3applicationcredential', 'v3_application_credential']);

export async function authenticate(http: OpenStackHttp, c: KeystoneCredentials, what: string): Promise<KeystoneToken> {
  const authType = c.authType.toLowerCase();
  if (!PASSWORD_TYPES.has(authType) && !APP_CREDENTIAL_TYPES.has(authType)) {
    throw new BadInput(`${what} auth_type ${c.authType} is not supported (password, v3password, v3applicationcredential)`);
  }
  const v3 = authType.startsWith('v3') ? c.authUrl.replace(/\/+$/, '') : await discoverV3(http, c.authUrl, what);
  const res = await http.request(
    'POST',
    `${v3}/auth/tokens`,
    { 'Content-Type': 'application/json', Accept: 'application/json' },
    { auth: authBody(c, authType, what) },
  );
  if (res.status !== 201 && res.status !== 200) {
    const why = res.status === 401 ? 'the credentials were refused' : faultMessage(res);
    throw new OpenStackHttpError(`Keystone authentication with ${what} failed: ${why} (HTTP ${res.status})`, res.status);
  }
  const token = res.headers['x-subject-token'];
  if (typeof token !== 'string' || token === '')
    throw new OpenStackHttpError(`Keystone answered ${what} without X-Subject-Token`, res.status);
  const body = res.data as { token?: { catalog?: CatalogEntry[]; project?: { id?: string }; expires_at?: string } };
  const expiresAt = body.token?.expires_at ? Date.parse(body.token.expires_at) : NaN;
  return {
    token,
    catalog: body.token?.catalog ?? [],
    projectId: body.token?.project?.id,
    expiresAt: Number.isNaN(expiresAt) ? undefined : expiresAt,
  };
}

async function discoverV3(http: OpenStackHttp, authUrl: string, what: string): Promise<string> {
  const base = authUrl.replace(/\/+$/, '');
  if (/\/v3$/.test(base)) return base;
  const res = await http.request('GET', base, { Accept: 'application/json' });
  const body = res.data as {
    versions?: { values?: Array<{ id?: string; status?: string; links?: Array<{ rel?: string; href?: string }> }> };
    version?: { id?: string; links?: Array<{ rel?: string; href?: string }> };
  };
  const candidates = body?.versions?.values ?? (body?.version ? [body.version] : []);
  const v3 = candidates.find((v) => String(v.id ?? '').startsWith('v3'));
  const href = v3?.links?.find((l) => l.rel === 'self')?.href;
  if (!href) throw new OpenStackHttpError(`Keystone at ${authUrl} (${what}) offers no v3 API (HTTP ${res.status})`, res.status);
  return href.replace(/\/+$/, '');
}

function authBody(c: KeystoneCredentials, authType: string, what: string): Record<string, unknown> {
  if (APP_CREDENTIAL_TYPES.has(authType)) {
    if (!c.applicationCredentialSecret || (!c.applicationCredentialId && !c.applicationCredentialName)) {
      throw new BadInput(`${what} needs application_credential_id (or _name) and application_credential_secret`);
    }
    const credential: Record<string, unknown> = { secret: c.applicationCredentialSecret };
    if (c.applicationCredentialId) credential.id = c.applicationCredentialId;
    else credential.name = c.applicationCredentialName;
    if (!c.applicationCredentialId) credential.user = user(c);
    return { identity: { methods: ['application_credential'], application_credential: credential } };
  }
  if (c.password === undefined || (!c.username && !c.userId)) throw new BadInput(`${what} needs username (or user_id) and password`);
  const auth: Record<string, unknown> = {
    identity: { methods: ['password'], password: { user: { ...user(c), password: c.password } } },
  };
  if (c.systemScope) auth.scope = { system: { all: true } };
  else if (c.projectId) auth.scope = { project: { id: c.projectId } };
  else if (c.projectName) {
    auth.scope = {
      project: { name: c.projectName, domain: c.projectDomainId ? { id: c.projectDomainId } : { name: c.projectDomainName ?? 'Default' } },
    };
  }
  return auth;
}

function user(c: KeystoneCredentials): Record<string, unknown> {
  if (c.userId) return { id: c.userId };
  return { name: c.username, domain: c.userDomainId ? { id: c.userDomainId } : { name: c.userDomainName ?? 'Default' } };
}
