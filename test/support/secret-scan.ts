import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { USERS } from './fake-openstack';
import { ISCSI_CHAP_CONNECTION_INFO, RBD_CONNECTION_INFO } from './fixtures';
import { loadNovaTestEnv, STATE_DIR } from './nova-env';
import { SCAN_LOG_ENV, type OutputRecord, type SecretKind } from './secret-scan-record';

// One secret scan over the whole suite. While `npm test` runs, every answer of the tool is
// appended to the file NOVA_BDM_SECRET_SCAN_LOG names: each in-process `execute` result and the
// report file it wrote, and every stdout/stderr chunk of every bundle process (run directly, by
// Ansible, killed half-way), all via secret-scan-hook.ts, which NODE_OPTIONS loads into every
// node process of the run; the Ansible tests add ansible-playbook's own output. After the suite
// `node dist/test/support/secret-scan.js --report` scans it for every secret the test set-up
// configures, raw, percent-encoded, JSON-escaped and base64, and fails on any hit.

export { recordOutput, registerSecrets, SCAN_LOG_ENV, type OutputRecord, type SecretKind } from './secret-scan-record';
export const DEFAULT_SCAN_LOG = join(STATE_DIR, 'outputs.jsonl');

/** Every secret the shared test set-up configures. */
export function configuredSecrets(): Record<SecretKind, string[]> {
  const config: string[] = [...Object.values(USERS)];
  try {
    config.push(loadNovaTestEnv().dbPassword);
  } catch {
    config.push('p@ss/w:rd%nbt'); // prepare-nova-schema's, when its env file is not there
  }
  const data = [
    RBD_CONNECTION_INFO.data.keyring,
    RBD_CONNECTION_INFO.data.keyring.split('= ')[1]!, // the key alone
    ISCSI_CHAP_CONNECTION_INFO.data.auth_password,
    ISCSI_CHAP_CONNECTION_INFO.data.discovery_auth_password,
    // keyrings the refresh and audit tests put into Cinder's answers and BDM rows
    'AQBnewkeyringsecret==',
    'AQBoldkeyringsecret==',
    'py-repr-secret',
  ];
  return { config, data };
}

/**
 * RabbitMQ's password here is guest (the broker's own default, shared by everybody): as a bare
 * word it is also the user name, so only its password positions count.
 */
const RABBIT_PASSWORD_FORMS = ['guest:guest', ':guest@', 'password=guest', '"password":"guest"'];

export function secretForms(secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')]);
  // Inside a longer base64 text the secret starts at one of 3 alignments: its stable middle.
  for (const prefix of ['', 'x', 'xx']) forms.add(Buffer.from(prefix + secret).toString('base64').slice(4, -4));
  return [...forms].filter((f) => f.length >= 6);
}

export interface Hit {
  source: string;
  secret: string;
  form: string;
  context: string;
}

export function findSecretsIn(text: string, secrets: readonly string[], source = ''): Hit[] {
  const hits: Hit[] = [];
  for (const secret of secrets) {
    for (const form of secretForms(secret)) {
      const at = text.indexOf(form);
      if (at >= 0) {
        hits.push({ source, secret, form, context: text.slice(Math.max(0, at - 60), at + form.length + 20) });
        break;
      }
    }
  }
  for (const form of RABBIT_PASSWORD_FORMS) {
    const at = text.indexOf(form);
    if (at >= 0) hits.push({ source, secret: 'guest (RabbitMQ)', form, context: text.slice(Math.max(0, at - 60), at + 30) });
  }
  return hits;
}

export interface ScanReport {
  records: number;
  bytes: number;
  bySource: Record<string, number>;
  secrets: number;
  hits: Hit[];
}

export function scanLog(path: string): ScanReport {
  const lines = existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  const { config, data } = configuredSecrets();
  const records: OutputRecord[] = [];
  for (const line of lines) {
    const r = JSON.parse(line) as OutputRecord;
    if (r.secrets) (r.kind === 'data' ? data : config).push(...r.secrets);
    else records.push(r);
  }
  const report: ScanReport = { records: records.length, bytes: 0, bySource: {}, secrets: config.length + data.length, hits: [] };
  for (const r of records) {
    const text = r.text ?? '';
    report.bytes += text.length;
    report.bySource[r.source] = (report.bySource[r.source] ?? 0) + 1;
    report.hits.push(...findSecretsIn(text, r.revealed ? config : [...config, ...data], r.source));
  }
  return report;
}

if (require.main === module) {
  const log = process.env[SCAN_LOG_ENV] ?? DEFAULT_SCAN_LOG;
  if (process.argv.includes('--reset')) {
    rmSync(log, { force: true });
  } else {
    const r = scanLog(log);
    const sources = Object.entries(r.bySource).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`secret scan: ${r.records} outputs (${(r.bytes / 1e6).toFixed(1)} MB: ${sources}) checked for ${r.secrets} secrets in 5 forms each: ${r.hits.length} hits`);
    for (const h of r.hits.slice(0, 20)) console.log(`  ${h.source}: ${h.secret} as ${JSON.stringify(h.form)} in ...${JSON.stringify(h.context)}...`);
    if (r.records === 0) console.log('  nothing was recorded: was the suite run with the hook (npm test)?');
    process.exitCode = r.hits.length > 0 || r.records === 0 ? 1 : 0;
  }
}
