import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadYaml } from '../support/yaml';

// The collection as Galaxy and its users lint it: ansible-lint at the production profile and
// yamllint (both Debian packages: .ci/run installs them), and a changelog antsibull-changelog
// can read (changelogs/changelog.yaml, config.yaml, fragments).

const ROOT = join(__dirname, '..', '..', '..');
const COLLECTION = join(ROOT, 'ansible');

function tool(command: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, NO_COLOR: '1', ...env } });
  assert.ok(!r.error, `${command} is not installed (apt-get install ${command}): ${r.error?.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('linters', () => {
  test('yamllint (ansible/.yamllint: defaults, 160 columns as ansible-lint) finds nothing', () => {
    const r = tool('yamllint', ['-f', 'parsable', '-c', join(COLLECTION, '.yamllint'), '.'], COLLECTION);
    assert.equal(r.out.trim(), '');
    assert.equal(r.status, 0);
  });

  test('ansible-lint --profile production passes with no failure and no warning', () => {
    // The collection where Ansible looks for it, so FQCNs resolve to our own files.
    const home = mkdtempSync(join(tmpdir(), 'nbt-lint-'));
    try {
      mkdirSync(join(home, 'ansible_collections', 'osops'), { recursive: true });
      symlinkSync(COLLECTION, join(home, 'ansible_collections', 'osops', 'nova'));
      const r = tool('ansible-lint', ['--profile', 'production', '--nocolor', 'ansible/'], ROOT, {
        ANSIBLE_COLLECTIONS_PATH: home,
        HOME: home,
      });
      assert.equal(r.status, 0, r.out);
      assert.match(r.out, /Passed with production profile: 0 failure\(s\), 0 warning\(s\) on \d+ files/);
      const files = Number(/on (\d+) files/.exec(r.out)![1]);
      assert.ok(files >= 15, `linted ${files} files`);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('changelog (antsibull-changelog layout)', () => {
  const config = loadYaml(join(COLLECTION, 'changelogs', 'config.yaml'));
  const changelog = loadYaml(join(COLLECTION, 'changelogs', 'changelog.yaml'));
  const galaxy = loadYaml(join(COLLECTION, 'galaxy.yml'));
  const sections = new Set<string>([
    ...config.sections.map((s: string[]) => s[0]),
    config.prelude_section_name,
    config.trivial_section_name,
  ]);
  const fragmentsDir = join(COLLECTION, 'changelogs', config.notesdir);

  test("galaxy.yml's version is >= 1.0.0 and is a release of changelog.yaml", () => {
    assert.match(galaxy.version, /^[1-9]\d*\.\d+\.\d+$/);
    assert.ok(changelog.releases[galaxy.version], `changelog.yaml has no release ${galaxy.version}`);
    assert.equal(changelog.ancestor, null);
  });

  test('every release: known sections, entries are strings, a summary, a date, its fragments named', () => {
    for (const [version, release] of Object.entries<any>(changelog.releases)) {
      assert.match(String(release.release_date), /^\d{4}-\d{2}-\d{2}$/, version);
      for (const [section, entries] of Object.entries<any>(release.changes ?? {})) {
        assert.ok(sections.has(section), `${version}: unknown section ${section}`);
        if (section === config.prelude_section_name) assert.equal(typeof entries, 'string');
        else for (const e of entries) assert.equal(typeof e, 'string', `${version} ${section}`);
      }
      assert.equal(typeof release.changes?.release_summary, 'string', `${version} has a release summary`);
      assert.ok(Array.isArray(release.fragments) && release.fragments.length > 0, `${version} names its fragments`);
      for (const m of release.modules ?? []) assert.ok(existsSync(join(COLLECTION, 'plugins', 'modules', `${m.name}.yml`)), m.name);
    }
  });

  test('pending fragments: YAML with known sections, lists of strings, none already released', () => {
    const released = new Set(Object.values<any>(changelog.releases).flatMap((r) => r.fragments ?? []));
    for (const name of readdirSync(fragmentsDir).filter((f) => /\.ya?ml$/.test(f))) {
      assert.ok(!released.has(name), `${name} is already in a release`);
      const fragment = loadYaml(join(fragmentsDir, name));
      for (const [section, entries] of Object.entries<any>(fragment)) {
        assert.ok(sections.has(section), `${name}: unknown section ${section}`);
        if (section !== config.prelude_section_name) for (const e of entries) assert.equal(typeof e, 'string', `${name} ${section}`);
      }
    }
    assert.equal(readFileSync(join(fragmentsDir, 'README.md'), 'utf8').includes('antsibull-changelog release'), true);
  });
});
