import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
// configures, raw, percent-encoded, JSON-escaped and base64, and fails on any hit. The interop
// tier (`npm run test:interop`) and the bench (`npm run bench`) are scanned the same way, each
// into its own log: the harness registers the lab's secrets (its DB password, RabbitMQ's, the
// Keystone passwords of its configs, its cephx keys) when it brings the lab up.

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
 * A password that is a plain word (RabbitMQ's guest, the broker's own default; the interop lab's
 * Keystone users, whose passwords are their names: nova, cinder, placement, admin; its DB
 * password lab) is, as a bare word, all over any output: a user, a service, a queue. For those
 * only the places where it stands as a password count, in every encoding.
 */
export function isWordSecret(secret: string): boolean {
  return /^[A-Za-z]{1,12}$/.test(secret);
}

function passwordPositions(word: string): string[] {
  // no opening quote before password: auth_password and discovery_auth_password count too
  return [
    `:${word}@`,
    `${word}:${word}`,
    `password=${word}`,
    `password = ${word}`,
    `password: ${word}`,
    `password":"${word}"`,
    `password": "${word}"`,
    `password': '${word}'`,
  ];
}

/** A text raw, percent-encoded, JSON-escaped and in base64 (whole, and inside a longer base64 text). */
function encodings(text: string): string[] {
  const forms = new Set([text, encodeURIComponent(text), JSON.stringify(text).slice(1, -1), Buffer.from(text).toString('base64')]);
  // Inside a longer base64 text the secret starts at one of 3 alignments: its stable middle.
  for (const prefix of ['', 'x', 'xx'])
    forms.add(
      Buffer.from(prefix + text)
        .toString('base64')
        .slice(4, -4),
    );
  return [...forms];
}

/** Every form a secret is looked for in (for a word: as a password, see isWordSecret). */
export function secretForms(secret: string): string[] {
  // A password position (":lab@") is specific however short; a bare form under 6 characters is not.
  if (isWordSecret(secret))
    return [...new Set(passwordPositions(secret).flatMap((p) => encodings(p).filter((f) => f.length >= 6 || f === p)))];
  return encodings(secret).filter((f) => f.length >= 6);
}

/** RabbitMQ's password here: guest, for every suite (the lab's transport_url says it too). */
const RABBIT_PASSWORD = 'guest';

export interface Hit {
  source: string;
  secret: string;
  form: string;
  context: string;
}

export function findSecretsIn(text: string, secrets: readonly string[], source = ''): Hit[] {
  const hits: Hit[] = [];
  for (const secret of new Set([...secrets, RABBIT_PASSWORD])) {
    for (const form of secretForms(secret)) {
      const at = text.indexOf(form);
      if (at >= 0) {
        hits.push({
          source,
          secret: secret === RABBIT_PASSWORD ? 'guest (RabbitMQ)' : secret,
          form,
          context: text.slice(Math.max(0, at - 60), at + form.length + 20),
        });
        break;
      }
    }
  }
  return hits;
}

export interface ScanReport {
  records: number;
  bytes: number;
  bySource: Record<string, number>;
  /** Distinct secrets looked for. */
  secrets: number;
  /** Distinct secrets registered during the run, by who registered them (e.g. `lab`). */
  registeredBy: Record<string, number>;
  hits: Hit[];
}

export function scanLog(path: string): ScanReport {
  const lines = existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
  const configured = configuredSecrets();
  const config = new Set(configured.config);
  const data = new Set(configured.data);
  const registered: Record<string, Set<string>> = {};
  const records: OutputRecord[] = [];
  for (const line of lines) {
    const r = JSON.parse(line) as OutputRecord;
    if (r.secrets) {
      for (const v of r.secrets) (r.kind === 'data' ? data : config).add(v);
      const by = (registered[r.origin ?? 'tests'] ??= new Set());
      for (const v of r.secrets) by.add(v);
    } else records.push(r);
  }
  for (const v of config) data.delete(v); // a value configured anywhere is never to be shown
  const registeredBy = Object.fromEntries(Object.entries(registered).map(([k, v]) => [k, v.size]));
  const report: ScanReport = { records: records.length, bytes: 0, bySource: {}, secrets: config.size + data.size, registeredBy, hits: [] };
  const always = [...config];
  const all = [...config, ...data];
  for (const r of records) {
    const text = r.text ?? '';
    report.bytes += text.length;
    report.bySource[r.source] = (report.bySource[r.source] ?? 0) + 1;
    report.hits.push(...findSecretsIn(text, r.revealed ? always : all, r.source));
  }
  return report;
}

if (require.main === module) {
  const log = process.env[SCAN_LOG_ENV] ?? DEFAULT_SCAN_LOG;
  if (process.argv.includes('--reset')) {
    rmSync(log, { force: true });
    mkdirSync(dirname(log), { recursive: true });
  } else {
    // --require=lab: the run must have registered the lab's secrets (harness upLab does), else
    // the scan would pass without having looked for them.
    const required = process.argv.filter((a) => a.startsWith('--require=')).map((a) => a.slice('--require='.length));
    const r = scanLog(log);
    const sources = Object.entries(r.bySource)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const registered = Object.entries(r.registeredBy)
      .map(([k, v]) => `${v} from ${k}`)
      .join(', ');
    console.log(
      `secret scan: ${r.records} outputs (${(r.bytes / 1e6).toFixed(1)} MB: ${sources}) checked for ${r.secrets} secrets (${registered || 'none registered during the run'}; each raw, percent-encoded, JSON-escaped and base64; a plain-word password where it stands as a password): ${r.hits.length} hits`,
    );
    for (const h of r.hits.slice(0, 20))
      console.log(`  ${h.source}: ${h.secret} as ${JSON.stringify(h.form)} in ...${JSON.stringify(h.context)}...`);
    const missing = required.filter((origin) => !r.registeredBy[origin]);
    for (const origin of missing) console.log(`  no secrets of the ${origin} were registered: the scan did not know what to look for`);
    if (r.records === 0)
      console.log('  nothing was recorded: was the suite run with the hook (npm test, npm run test:interop, npm run bench)?');
    process.exitCode = r.hits.length > 0 || r.records === 0 || missing.length > 0 ? 1 : 0;
  }
}
