import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { argsSchema } from '../src/args/schema';
import { parseCli } from '../src/cli/parse';

// The docs cannot drift: every command line they show must parse, every playbook they name must
// exist, and the options table must be the schema's.

const ROOT = join(__dirname, '..', '..');
const DOCS = [join(ROOT, 'README.md'), ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f))];
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
    .map((w) => (/^(BDM_UUID|INSTANCE_UUID|VOLUME_ID|PROJECT_ID)$/.test(w) ? UUID : w === 'JSON' ? '{"data": {}}' : w === 'PATH' ? '/etc/nova/nova.conf' : w));
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
      const playbook = argv.slice(1).find((w) => !w.startsWith('-') && (w.startsWith('osops.nova.') || w.endsWith('.yml')) && !argv[argv.indexOf(w) - 1]?.match(/^-(i|e)$/));
      assert.ok(playbook, `${file}: ${line}: no playbook`);
      const name = playbook.startsWith('osops.nova.') ? playbook.slice('osops.nova.'.length) : playbook.replace(/^.*\//, '').replace(/\.yml$/, '');
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

test('every stale reason code and exit code the code knows is documented', () => {
  const text = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
  const source = readFileSync(join(ROOT, 'src', 'actions', 'staleness.ts'), 'utf8');
  const typeBlock = source.slice(source.indexOf('export type StaleCode'), source.indexOf(';', source.indexOf('export type StaleCode')));
  const codes = typeBlock.match(/'([a-z_]+)'/g)!.map((c) => c.slice(1, -1));
  assert.ok(codes.length >= 7);
  for (const code of codes) assert.ok(text.includes(`\`${code}\``), code);
});

test('the exit-code table: every code exitCodeFor returns has its cell, and 3 is the connector file (unreadable or not JSON, nova-manage 77851bb365)', () => {
  const text = readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8');
  const table = text.slice(text.indexOf('## Exit codes'));
  const header = table.split('\n').find((l) => l.startsWith('| command |'))!.split('|').map((c) => c.trim());
  const row = (command: string) => {
    const cells = table.split('\n').find((l) => l.startsWith(`| \`${command}\` |`))!.split('|').map((c) => c.trim());
    return (code: number) => cells[header.indexOf(String(code))]!;
  };
  const source = readFileSync(join(ROOT, 'src', 'cli', 'exit-codes.ts'), 'utf8');
  const refreshPart = source.slice(source.indexOf("if (action === 'refresh')"), source.indexOf('return 1;'));
  const showPart = source.slice(source.indexOf('return 1;') + 1);
  const codes = (part: string) => [...part.matchAll(/return (\d+);/g)].map((m) => Number(m[1]));
  assert.deepEqual(codes(refreshPart), [2, 3, 4, 5, 6, 7]);
  for (const code of codes(refreshPart)) assert.notEqual(row('refresh')(code), '', `refresh exit ${code} documented`);
  for (const code of codes(showPart).filter((c) => c > 1)) assert.notEqual(row('show')(code), '', `show exit ${code} documented`);
  assert.match(row('refresh')(3), /unreadable/);
  assert.match(row('refresh')(3), /not JSON/);
  assert.match(row('refresh')(2), /connector path missing/);
});

test('docs/compatibility.md: every test it names exists in the test it points to', () => {
  const text = readFileSync(join(ROOT, 'docs', 'compatibility.md'), 'utf8');
  const releases = readFileSync(join(ROOT, 'test', 'compute-releases.test.ts'), 'utf8');
  const rows = text.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| release') && !l.startsWith('| cap') && !l.startsWith('|---'));
  assert.ok(rows.length >= 11 + 8, `${rows.length} rows`);
  for (const row of rows) {
    const name = /`([^`]+)`(?: in `([^`]+)`)? \|$/.exec(row);
    assert.ok(name, `a test named in: ${row}`);
    const source = name[2] ? readFileSync(join(ROOT, name[2]), 'utf8') : releases;
    if (name[1]!.startsWith('release ')) {
      const [, release, version, topic] = /^release (\w+): (\S+) to (\S+),/.exec(name[1]!)!;
      assert.ok(source.includes(`release: '${release}'`) && new RegExp(`release: '${release}', serviceVersion: \\d+, version: '${version!.replace('.', '\\.')}', topic: '${topic}'`).test(source), `${name[1]}`);
    } else if (name[1]!.startsWith('cap ') && /^cap [\d.]+: /.test(name[1]!)) {
      const [, cap, version, topic] = /^cap ([\d.]+): (\S+) to (\S+)\.<host>,/.exec(name[1]!)!;
      assert.ok(new RegExp(`cap: '${cap!.replace('.', '\\.')}', serviceVersion: \\d+, version: '${version!.replace('.', '\\.')}', topic: '${topic}'`).test(source), name[1]);
    } else {
      assert.ok(source.includes(name[1]!), `${name[1]} is a test in ${name[2] ?? 'test/compute-releases.test.ts'}`);
    }
  }
});
