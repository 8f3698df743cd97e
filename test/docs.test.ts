import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { argsSchema } from '../src/args/schema';
import { parseCli } from '../src/cli/parse';
import { RefreshEnv } from './support/refresh-env';
import { runBundle } from './support/run-bundle';

// The docs cannot drift: every command line they show must parse, every playbook they name must
// exist, the options table must be the schema's, and the exit code table must be what the built
// bundle does: one run per documented code.

const ROOT = join(__dirname, '..', '..');
const DOCS = [
  join(ROOT, 'README.md'),
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(ROOT, 'docs', f)),
];
const UUID = '5b7e1c0a-3f2d-4e8b-9a6c-1d2e3f4a5b6c';

/** Lines of the ```sh blocks. */
function shellLines(file: string): string[] {
  const out: string[] = [];
  let inBlock = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (/^\s*```/.test(line)) {
      inBlock = !inBlock && /```(sh|bash|console)\s*$/.test(line.trim());
      continue;
    }
    if (inBlock) out.push(line.replace(/^\s*\$ /, '').trim());
  }
  return out;
}

/** Shell-like word splitting (quotes), dropping comments and redirections. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      has = true;
    } else if (c === ' ') {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
    } else if (c === '#' && !cur) break;
    else if ((c === '>' || c === '|' || c === '<') && !cur) break;
    else cur += c;
  }
  if (has || cur) out.push(cur);
  return out;
}

/** A synopsis line ("[--json]", "BDM_UUID") made concrete. */
function concrete(argv: string[]): string[] {
  return argv
    .map((w) => w.replace(/^\[/, '').replace(/\](\.\.\.)?$/, ''))
    .filter((w) => w !== '...' && w !== 'COMMAND' && w !== '[OPTIONS]' && w !== 'OPTIONS' && !w.endsWith('...'))
    .map((w) =>
      /^(BDM_UUID|INSTANCE_UUID|VOLUME_ID|PROJECT_ID)$/.test(w)
        ? UUID
        : w === 'JSON'
          ? '{"data": {}}'
          : w === 'PATH'
            ? '/etc/nova/nova.conf'
            : w,
    );
}

test('every nova-bdm command line in the docs parses (a renamed flag breaks the build)', () => {
  let checked = 0;
  for (const file of DOCS) {
    for (const line of shellLines(file)) {
      const argv = words(line);
      if (argv[0] !== 'nova-bdm' || argv.includes('COMMAND')) continue; // the generic synopsis
      const cmd = parseCli(concrete(argv.slice(1)));
      assert.notEqual(cmd.kind, 'usage-error', `${file}: ${line}: ${'message' in cmd ? cmd.message : ''}`);
      checked++;
    }
  }
  assert.ok(checked >= 15, `only ${checked} command lines found`);
});

test('every playbook the docs run exists in the collection', () => {
  let checked = 0;
  for (const file of DOCS) {
    for (const line of shellLines(file)) {
      const argv = words(line);
      if (argv[0] !== 'ansible-playbook') continue;
      const playbook = argv
        .slice(1)
        .find(
          (w) => !w.startsWith('-') && (w.startsWith('osops.nova.') || w.endsWith('.yml')) && !argv[argv.indexOf(w) - 1]?.match(/^-(i|e)$/),
        );
      assert.ok(playbook, `${file}: ${line}: no playbook`);
      const name = playbook.startsWith('osops.nova.')
        ? playbook.slice('osops.nova.'.length)
        : playbook.replace(/^.*\//, '').replace(/\.yml$/, '');
      assert.ok(existsSync(join(ROOT, 'ansible', 'playbooks', `${name}.yml`)), `${file}: ${line}: ansible/playbooks/${name}.yml missing`);
      checked++;
    }
  }
  assert.ok(checked >= 1, 'the runbooks run playbooks');
});

test('the options table of docs/reference.md is the schema: names, defaults, secrets', () => {
  const text = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
  const section = text.slice(text.indexOf('## Module options'), text.indexOf('## Return values'));
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \| ([^|]+) \| ([^|]*) \| ([^|]*) \|/gm)].map((m) => ({
    name: m[1]!,
    default: m[3]!.trim().replace(/^`|`$/g, ''),
    secret: m[4]!.trim() === 'yes',
  }));
  const props = argsSchema.properties as Record<string, { default?: unknown; secret?: boolean }>;
  assert.deepEqual(rows.map((r) => r.name).sort(), Object.keys(props).sort());
  for (const r of rows) {
    const spec = props[r.name]!;
    assert.equal(r.default, spec.default === undefined ? '' : JSON.stringify(spec.default), `default of ${r.name}`);
    assert.equal(r.secret, spec.secret === true, `secret flag of ${r.name}`);
  }
});

test('every stale reason code the code knows is documented', () => {
  const text = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
  const source = readFileSync(join(ROOT, 'src', 'actions', 'rules', 'staleness.ts'), 'utf8');
  const typeBlock = source.slice(source.indexOf('export type StaleCode'), source.indexOf(';', source.indexOf('export type StaleCode')));
  const codes = typeBlock.match(/'([a-z_]+)'/g)!.map((c) => c.slice(1, -1));
  assert.ok(codes.length >= 7);
  for (const code of codes) assert.ok(text.includes(`\`${code}\``), code);
});

/** docs/reference.md's exit code table: command -> code -> what it says. */
function documentedExitCodes(): Map<string, Map<number, string>> {
  const text = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
  const section = text.slice(text.indexOf('## Exit codes'), text.indexOf('\n## ', text.indexOf('## Exit codes') + 1));
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const cells = (line: string) =>
    line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
  const codes = cells(lines[0]!).slice(1).map(Number);
  const table = new Map<string, Map<number, string>>();
  for (const line of lines.slice(2)) {
    const [command, ...meanings] = cells(line);
    table.set(command!.replace(/`/g, ''), new Map(meanings.flatMap((m, i) => (m ? [[codes[i]!, m] as [number, string]] : []))));
  }
  return table;
}

describe('the exit code table of docs/reference.md is what the bundle does', () => {
  let env: RefreshEnv;
  let connector: string;
  before(async () => {
    env = await RefreshEnv.start();
    connector = join(env.dir, 'connector.json');
    writeFileSync(connector, JSON.stringify(env.connector));
  });
  after(() => env.stop());
  const cli = (...args: string[]) => runBundle(['--config-file', env.fx.env.confPath, '--config-file', env.extraConf, ...args]);
  const expectJson = () => JSON.stringify(RefreshEnv.EXPECT_NEW_MONITORS);
  /** A nova.conf whose cell database refuses the password: an error nothing else explains. */
  const brokenDb = () => {
    const path = join(env.dir, 'broken-db.conf');
    writeFileSync(
      path,
      `[database]\nconnection = mysql+pymysql://${env.fx.env.dbUser}:Wr0ngPw@127.0.0.1:3306/${env.fx.env.databases.cell1}?charset=utf8\n`,
    );
    return path;
  };

  /** One run of the bundle per documented cell: [command row, code, what makes it happen]. */
  const scenarios: Array<[string, number, () => Promise<{ status: number | null; stderr: string }>]> = [
    ['show', 0, async () => cli('bdm', 'show', (await env.seed()).bdm.uuid)],
    ['show', 1, async () => cli('--config-file', brokenDb(), 'bdm', 'show', (await env.seed()).bdm.uuid)],
    ['show', 2, async () => cli('volume_attachment', 'show', randomUUID(), randomUUID())],
    ['show', 3, async () => cli('volume_attachment', 'show', (await env.seed()).instanceUuid, randomUUID())],
    ['show', 64, async () => cli('bdm', 'show')],
    [
      'refresh',
      0,
      async () => cli('bdm', 'refresh', (await env.seed()).bdm.uuid, '--connector-path', connector, '--expect-json', expectJson()),
    ],
    [
      'refresh',
      1,
      async () => {
        const s = await env.seed();
        env.compute.behaviour = { kind: 'fail', cls: 'VolumeDriverException', module: 'nova.exception', message: 'boom' };
        try {
          return await cli('bdm', 'refresh', s.bdm.uuid, '--connector-path', connector, '--force');
        } finally {
          env.compute.behaviour = { kind: 'ok' };
        }
      },
    ],
    ['refresh', 2, async () => cli('bdm', 'refresh', (await env.seed()).bdm.uuid, '--connector-path', join(env.dir, 'nope.json'))],
    [
      'refresh',
      3,
      async () => {
        writeFileSync(join(env.dir, 'bad.json'), '{');
        return cli('bdm', 'refresh', (await env.seed()).bdm.uuid, '--connector-path', join(env.dir, 'bad.json'));
      },
    ],
    ['refresh', 4, async () => cli('volume_attachment', 'refresh', randomUUID(), randomUUID(), connector)],
    [
      'refresh',
      5,
      async () =>
        cli(
          'bdm',
          'refresh',
          (await env.seed({ instance: { vm_state: 'active', power_state: 1 } })).bdm.uuid,
          '--connector-path',
          connector,
          '--force',
        ),
    ],
    ['refresh', 6, async () => cli('bdm', 'refresh', randomUUID(), '--connector-path', connector)],
    [
      'refresh',
      7,
      async () => {
        const other = join(env.dir, 'other-host.json');
        writeFileSync(other, JSON.stringify({ ...env.connector, host: `not-${env.host}` }));
        return cli('bdm', 'refresh', (await env.seed()).bdm.uuid, '--connector-path', other, '--force');
      },
    ],
    ['refresh', 64, async () => cli('bdm', 'refresh')],
    [
      'fleet refresh',
      0,
      async () => {
        const dir = join(env.dir, `connectors-${randomUUID().slice(0, 8)}`);
        mkdirSync(dir);
        writeFileSync(join(dir, `${env.host}.json`), JSON.stringify(env.connector));
        return cli('bdm', 'refresh', '--instance', (await env.seed()).instanceUuid, '--connector-dir', dir, '--expect-json', expectJson());
      },
    ],
    [
      'fleet refresh',
      1,
      async () =>
        cli(
          'bdm',
          'refresh',
          '--instance',
          (await env.seed()).instanceUuid,
          '--connector-dir',
          mkdtempSync(join(env.dir, 'empty-')),
          '--expect-json',
          expectJson(),
        ),
    ],
    ['fleet refresh', 64, async () => cli('bdm', 'refresh', '--connector-dir', env.dir)],
    ['audit', 0, async () => cli('bdm', 'audit', '--host', `nbt-nobody-${randomUUID().slice(0, 6)}`, '--expect-json', expectJson())],
    ['audit', 1, async () => cli('--config-file', brokenDb(), 'bdm', 'audit', '--host', env.host, '--expect-json', expectJson())],
    ['audit', 4, async () => cli('bdm', 'audit', '--instance', (await env.seed()).instanceUuid, '--expect-json', expectJson())],
    ['audit', 64, async () => cli('bdm', 'audit', 'extra')],
    [
      'get_connector',
      0,
      async () => {
        const conf = join(env.dir, 'compute-ok.conf');
        writeFileSync(conf, '[DEFAULT]\nhost = compute9\nmy_ip = 192.0.2.9\n');
        return runBundle(['--config-file', conf, 'get_connector', '--json']);
      },
    ],
    [
      'get_connector',
      1,
      async () => {
        const conf = join(env.dir, 'compute-multipath.conf');
        writeFileSync(conf, '[DEFAULT]\nhost = compute9\n[libvirt]\nvolume_use_multipath = true\n');
        return runBundle(['--config-file', conf, 'get_connector']);
      },
    ],
    ['get_connector', 64, async () => runBundle(['get_connector', '--no-such-option'])],
  ];

  test('every documented exit code comes out of the bundle in its case (one run per code and command)', async () => {
    const documented = documentedExitCodes();
    assert.deepEqual([...documented.keys()].sort(), ['audit', 'fleet refresh', 'get_connector', 'refresh', 'show']);
    const seen = new Map<string, Set<number>>();
    for (const [command, code, run] of scenarios) {
      const meaning = documented.get(command)?.get(code);
      assert.ok(meaning, `the bundle exits ${code} for ${command}, and the table does not list it`);
      const r = await run();
      assert.equal(r.status, code, `${command}: "${meaning}" should exit ${code}; the bundle exited ${r.status}: ${r.stderr}`);
      seen.set(command, (seen.get(command) ?? new Set()).add(code));
    }
    for (const [command, codes] of documented) {
      assert.deepEqual(
        [...(seen.get(command) ?? [])].sort((a, b) => a - b),
        [...codes.keys()].sort((a, b) => a - b),
        `${command}: every documented exit code run`,
      );
    }
  });
});

test('docs/compatibility.md: every test it names exists in the test it points to', () => {
  const text = readFileSync(join(ROOT, 'docs', 'compatibility.md'), 'utf8');
  const releases = readFileSync(join(ROOT, 'test', 'compute-releases.test.ts'), 'utf8');
  const rows = text
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| release') && !l.startsWith('| cap') && !l.startsWith('|---'));
  assert.ok(rows.length >= 11 + 8, `${rows.length} rows`);
  for (const row of rows) {
    const name = /`([^`]+)`(?: in `([^`]+)`)? \|$/.exec(row);
    assert.ok(name, `a test named in: ${row}`);
    const source = name[2] ? readFileSync(join(ROOT, name[2]), 'utf8') : releases;
    if (name[1]!.startsWith('release ')) {
      const [, release, version, topic] = /^release (\w+): (\S+) to (\S+),/.exec(name[1]!)!;
      assert.ok(
        source.includes(`release: '${release}'`) &&
          new RegExp(`release: '${release}', serviceVersion: \\d+, version: '${version!.replace('.', '\\.')}', topic: '${topic}'`).test(
            source,
          ),
        `${name[1]}`,
      );
    } else if (name[1]!.startsWith('cap ') && /^cap [\d.]+: /.test(name[1]!)) {
      const [, cap, version, topic] = /^cap ([\d.]+): (\S+) to (\S+)\.<host>,/.exec(name[1]!)!;
      assert.ok(
        new RegExp(
          `cap: '${cap!.replace('.', '\\.')}', serviceVersion: \\d+, version: '${version!.replace('.', '\\.')}', topic: '${topic}'`,
        ).test(source),
        name[1],
      );
    } else {
      assert.ok(source.includes(name[1]!), `${name[1]} is a test in ${name[2] ?? 'test/compute-releases.test.ts'}`);
    }
  }
});
