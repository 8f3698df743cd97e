import type { NovaConf } from './nova-conf';
import { BadInput } from '../errors';

/** The connection settings the Nova databases need, from arguments first, then nova.conf. */
export interface DatabaseSettings {
  apiConnection: string;
  localDatabaseConnection?: string;
  localTransportUrl?: string;
}

export function resolveDatabaseSettings(
  conf: NovaConf,
  overrides: { api_database_connection?: string; database_connection?: string },
): DatabaseSettings {
  const apiConnection = overrides.api_database_connection ?? conf.get('api_database', 'connection');
  if (apiConnection === undefined) {
    throw new BadInput(
      `[api_database] connection is not set (${conf.describeFiles()}): give api_database_connection or a config_file that sets it`,
    );
  }
  return {
    apiConnection,
    localDatabaseConnection: overrides.database_connection ?? conf.get('database', 'connection'),
    localTransportUrl: conf.get('DEFAULT', 'transport_url'),
  };
}

/** Every secret value nova.conf holds that an error message could ever echo. */
export function configSecrets(conf: NovaConf): string[] {
  const out: string[] = [];
  for (const [section, key] of [
    ['api_database', 'connection'],
    ['database', 'connection'],
    ['DEFAULT', 'transport_url'],
  ] as const) {
    const url = conf.get(section, key);
    if (url) out.push(...urlPasswords(url));
  }
  for (const section of ['cinder', 'service_user', 'keystone_authtoken']) {
    for (const key of ['password', 'application_credential_secret']) {
      const v = conf.get(section, key);
      if (v) out.push(v);
    }
  }
  return out;
}

/** The passwords inside a (possibly multi-host) URL, decoded and as written. */
export function urlPasswords(url: string): string[] {
  const out: string[] = [];
  for (const m of url.matchAll(/(?:\/\/|,)[^:/@,]*:([^@,]*)@/g)) {
    if (m[1]) {
      out.push(m[1]);
      try {
        out.push(decodeURIComponent(m[1]));
      } catch {
        // not percent-encoded: the raw form is enough
      }
    }
  }
  return out;
}
