import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

// Every secret of the interop lab, read from what the lab itself uses: its DB password, the
// RabbitMQ password of its transport_url, the admin password env.sh exports (OS_PASSWORD), every
// password and URL password of its configs (Keystone users of nova, cinder, placement; DB URLs),
// Keystone's fernet and credential keys, and the cephx keys of its Ceph keyrings. The secret
// scan of the interop tier and the bench looks for each of them in every output of our tool.

export interface LabSecretSource {
  /** The state dir (OPENSTACK_LAB_DIR): etc/ holds the configs, ceph/ the keyrings. */
  dir: string;
  dbPassword: string;
  transportUrl: string;
  raw: Record<string, string>;
}

/** What the lab's secrets are, and where each kind came from (for the scan's report). */
export function labSecrets(lab: LabSecretSource): { values: string[]; counts: Record<string, number> } {
  const byKind: Record<string, Set<string>> = {};
  const add = (kind: string, value: string | undefined) => {
    const v = value?.trim();
    if (v) (byKind[kind] ??= new Set()).add(v);
  };
  add('db password', lab.dbPassword);
  add('rabbitmq password', urlPasswords(lab.transportUrl)[0]);
  add('keystone admin password', lab.raw.OS_PASSWORD);
  const etc = join(lab.dir, 'etc');
  for (const file of filesUnder(etc)) {
    const text = readFileSync(file, 'utf8');
    if (/(^|\/)(fernet|credential)-keys\//.test(file.slice(etc.length))) {
      add('keystone fernet/credential key', text);
      continue;
    }
    for (const m of text.matchAll(/^\s*[\w-]*password\s*=[ \t]*(\S[^\n]*?)\s*$/gim)) add('config password', m[1]);
    for (const p of urlPasswords(text)) add('config URL password', p);
  }
  for (const file of filesUnder(join(lab.dir, 'ceph'))) {
    if (!/^(.*\.)?keyring$/.test(basename(file))) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/^\s*key\s*=\s*(\S+)\s*$/gm)) add('cephx key', m[1]);
  }
  const all = new Set(Object.values(byKind).flatMap((s) => [...s]));
  return { values: [...all], counts: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, v.size])) };
}

/** The passwords of every scheme://user:password@ URL in a text, percent-decoded. */
function urlPasswords(text: string): string[] {
  return [...text.matchAll(/[a-z][a-z0-9+.-]*:\/\/[^:/\s@]*:([^@\s/]+)@/gi)].map((m) => {
    try {
      return decodeURIComponent(m[1]!);
    } catch {
      return m[1]!;
    }
  });
}

/** Regular files under a directory (none when it is not there), not following links. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile() && statSync(path).size < 1_000_000) out.push(path);
  }
  return out;
}
