import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// `ansible-test sanity` on the collection, offline. ansible-test wants the collection at
// .../ansible_collections/osops/nova/ (a copy: it resolves symlinks) and installs each test's
// Python requirements into a cached virtualenv with pip from PyPI, which this machine cannot
// reach. The tests with no requirements run as they are. For validate-modules and
// runtime-metadata, whose requirements (voluptuous, PyYAML, Jinja2) Debian's ansible-core
// already brings into the system Python, the cached virtualenv is made beforehand with
// --system-site-packages in a throw-away HOME, with the marker files ansible-test writes
// after a successful install, so it uses it instead of calling pip.
// Their Debian packages (python3-voluptuous, python3-yaml, python3-jinja2; .ci/run installs
// them) are required under CI (CI set): missing there, the test fails. Outside CI the two tests
// are skipped, and the skip says so.
// Not run: yamllint, pylint/pep8/import/compile/... (yamllint wants its own pip-installed
// virtualenv; no Python files: "No tests applicable"). What is ignored, and why:
// ansible/tests/sanity/ignore-2.14.txt.

const ROOT = join(__dirname, '..', '..', '..');
const work = mkdtempSync(join(tmpdir(), 'nbt-sanity-'));
const home = join(work, 'home');
const collection = join(work, 'ansible_collections', 'osops', 'nova');
after(() => rmSync(work, { recursive: true, force: true }));

const NO_REQUIREMENTS = [
  'shebang',
  'no-smart-quotes',
  'line-endings',
  'symlinks',
  'no-illegal-filenames',
  'ignores',
  'empty-init',
  'ansible-doc',
  'action-plugin-docs',
];
const SYSTEM_REQUIREMENTS = ['validate-modules', 'runtime-metadata'];
const REQUIRED_MODULES = { voluptuous: 'python3-voluptuous', yaml: 'python3-yaml', jinja2: 'python3-jinja2' };
const missingModules = Object.entries(REQUIRED_MODULES).filter(
  ([module]) => spawnSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' }).status !== 0,
);
const missingWhat = `${missingModules.map(([m]) => m).join(', ')} missing from /usr/bin/python3 (apt-get install ${missingModules.map(([, p]) => p).join(' ')})`;
const IN_CI = Boolean(process.env.CI) && process.env.CI !== 'false';

function ansibleTest(tests: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ansible-test', ['sanity', '--python', '3.11', ...tests.flatMap((t) => ['--test', t])], {
      cwd: collection,
      env: { ...process.env, HOME: home, ANSIBLE_NOCOLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Make the virtualenv ansible-test would build for `name` from the system Python's packages. */
async function systemVenvFor(name: string): Promise<void> {
  const probe = await ansibleTest([name]); // fails at pip, after naming the virtualenv it wants
  const venv =
    /Created Python 3\.11 virtual environment using "venv": (\S+)/.exec(probe.out)?.[1] ??
    /"(\S+\/venv\/sanity\.[^"]+)\/bin\/python"/.exec(probe.out)?.[1];
  assert.ok(venv, `no virtualenv path in:\n${probe.out}`);
  rmSync(venv, { recursive: true, force: true });
  const made = spawnSync('/usr/bin/python3.11', ['-m', 'venv', '--without-pip', '--system-site-packages', venv], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const cloader =
    spawnSync('/usr/bin/python3', ['-c', 'import yaml; print(hasattr(yaml, "CLoader"))'], { encoding: 'utf8' }).stdout.trim() === 'True';
  writeFileSync(join(venv, 'meta.install.json'), '[]');
  writeFileSync(join(venv, 'meta.yaml.json'), JSON.stringify(cloader));
  writeFileSync(join(venv, 'marker.txt'), '');
}

before(() => {
  mkdirSync(home, { recursive: true });
  cpSync(join(ROOT, 'ansible'), collection, { recursive: true, filter: (src) => !src.includes(`${join('tests', 'output')}`) });
  assert.ok(existsSync(join(collection, 'plugins', 'modules', 'bdm.cjs')), 'run npm run build first');
});

test('ansible-test sanity: shebang, ansible-doc, symlinks, ... (the tests without Python requirements) pass with the documented ignores', async () => {
  const r = await ansibleTest(NO_REQUIREMENTS);
  assert.equal(r.code, 0, r.out);
  for (const name of NO_REQUIREMENTS) assert.match(r.out, new RegExp(`Running sanity test "${name}"`));
  assert.doesNotMatch(r.out, /ERROR:/);
});

const skipRequirements =
  missingModules.length > 0 && !IN_CI ? `validate-modules, runtime-metadata and the broken-sidecar check not run: ${missingWhat}` : false;

test(
  'ansible-test sanity: validate-modules (sidecar docs) and runtime-metadata pass, and a broken sidecar fails validate-modules',
  { skip: skipRequirements },
  async () => {
    assert.deepEqual(missingModules, [], `under CI these sanity tests must run: ${missingWhat}`);
    for (const name of SYSTEM_REQUIREMENTS) await systemVenvFor(name);
    const r = await ansibleTest(SYSTEM_REQUIREMENTS);
    assert.equal(r.code, 0, r.out);
    for (const name of SYSTEM_REQUIREMENTS) assert.match(r.out, new RegExp(`Running sanity test "${name}"`));
    assert.doesNotMatch(r.out, /ERROR:/);
    // validate-modules really read the sidecar: a broken one must fail.
    const sidecar = join(collection, 'plugins', 'modules', 'bdm.yml');
    const good = readFileSync(sidecar, 'utf8');
    writeFileSync(sidecar, 'DOCUMENTATION:\n  module: bdm\n  options: {action: {type: nonsense}}\n');
    try {
      const broken = await ansibleTest(['validate-modules']);
      assert.notEqual(broken.code, 0);
      assert.match(broken.out, /plugins\/modules\/bdm\.yml:0:0: invalid-documentation/);
    } finally {
      writeFileSync(sidecar, good);
    }
  },
);
