import { osloBool, type NovaConf } from '../config/nova-conf';
import type { CinderSettings } from './cinder-client';
import type { HttpSettings } from './http';
import type { KeystoneCredentials } from './keystone';
import { BadInput } from '../errors';

/** keystoneauth option names (as in nova.conf) -> our credential fields. */
const CREDENTIAL_OPTIONS: Record<string, keyof KeystoneCredentials> = {
  auth_type: 'authType',
  auth_url: 'authUrl',
  username: 'username',
  user_id: 'userId',
  password: 'password',
  user_domain_name: 'userDomainName',
  user_domain_id: 'userDomainId',
  project_name: 'projectName',
  project_id: 'projectId',
  project_domain_name: 'projectDomainName',
  project_domain_id: 'projectDomainId',
  system_scope: 'systemScope',
  application_credential_id: 'applicationCredentialId',
  application_credential_name: 'applicationCredentialName',
  application_credential_secret: 'applicationCredentialSecret',
};

function credentials(get: (key: string) => string | undefined, section: string): KeystoneCredentials | undefined {
  const c: Partial<KeystoneCredentials> = {};
  for (const [option, field] of Object.entries(CREDENTIAL_OPTIONS)) {
    const v = get(option);
    if (v !== undefined) c[field] = v;
  }
  if (!c.authType) return undefined;
  if (!c.authUrl) throw new BadInput(`[${section}] auth_url is not set`);
  return c as KeystoneCredentials;
}

/** Cinder access the way nova-manage gets it: [cinder] (overridable by `cinder_auth`) and [service_user]. */
export function cinderSettings(conf: NovaConf, override: Record<string, unknown> = {}): { cinder: CinderSettings; http: HttpSettings } {
  const get = (key: string): string | undefined => {
    const v = override[key];
    if (v !== undefined && v !== null) return String(v);
    if (key === 'region_name') return conf.get('cinder', 'os_region_name') ?? conf.get('cinder', 'region_name');
    return conf.get('cinder', key);
  };
  const auth = credentials(get, 'cinder');
  if (!auth) {
    throw new BadInput(
      `[cinder] auth_type is not set (${conf.describeFiles()}): nova's [cinder] section or the cinder_auth argument must give Keystone credentials`,
    );
  }
  const sendServiceToken = conf.getBool('service_user', 'send_service_user_token', false);
  const serviceAuth = sendServiceToken ? credentials((k) => conf.get('service_user', k), 'service_user') : undefined;
  if (sendServiceToken && !serviceAuth)
    throw new BadInput('[service_user] send_service_user_token is true but [service_user] auth_type is not set');
  const timeout = Number(get('timeout'));
  const insecureText = get('insecure');
  const insecure = insecureText === undefined ? false : osloBool(insecureText);
  if (insecure === undefined) throw new BadInput(`[cinder] insecure = ${insecureText} is not a boolean`);
  return {
    cinder: {
      auth,
      serviceAuth,
      catalogInfo: get('catalog_info') ?? 'volumev3::publicURL',
      regionName: get('region_name'),
      endpointTemplate: get('endpoint_template'),
    },
    http: {
      cafile: get('cafile'),
      insecure,
      // keystoneauth has no timeout by default; a tool run at 3 a.m. must not hang forever.
      timeoutSeconds: Number.isFinite(timeout) && timeout > 0 ? timeout : 60,
      connectRetries: conf.getNumber('cinder', 'http_retries', 3),
    },
  };
}

/** Secret values of the Cinder settings, for scrubbing messages. */
export function cinderSecrets(s: CinderSettings): string[] {
  return [s.auth, s.serviceAuth].flatMap((c) => (c ? [c.password, c.applicationCredentialSecret].filter((v): v is string => !!v) : []));
}
