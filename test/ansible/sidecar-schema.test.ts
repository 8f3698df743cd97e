import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { argsSchema, SECRET_OPTIONS } from '../../src/args/schema';
import { loadYaml, parseYaml } from '../support/yaml';

// The Ansible sidecar documentation (ansible/plugins/modules/bdm.yml) and the ajv JSON Schema
// (src/args/schema.ts, the one source of truth) must say the same thing: option names, types,
// list elements, suboptions, defaults, choices, and which options are secret. Plus the
// collection metadata (galaxy.yml version = package.json version, the action group), and every
// osops.nova.bdm task of the role and playbooks uses only real options.
//
// YAML is read by the system Python's PyYAML (installed with ansible-core), not an npm package.
//
// Type mapping, JSON Schema -> Ansible:
//   string -> str, boolean -> bool, integer -> int, number -> float,
//   object -> dict (with suboptions when the schema lists properties),
//   array -> list, elements mapped the same way,
//   anyOf [string, array of strings] -> raw (config_file: "a path or a list of paths"; Ansible's
//   `list` would promise comma-splitting of a string, which a non-Python module never gets).

const ROOT = join(__dirname, '..', '..', '..');
const COLLECTION = join(ROOT, 'ansible');

type JsonSchema = {
  type?: string;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  enum?: readonly unknown[];
  default?: unknown;
  secret?: boolean;
};

const JSON_TO_ANSIBLE: Record<string, string> = {
  string: 'str',
  boolean: 'bool',
  integer: 'int',
  number: 'float',
  object: 'dict',
  array: 'list',
};

/** The Ansible `type` (and `elements`) a JSON Schema property maps to. */
export function ansibleTypeOf(spec: JsonSchema): { type: string; elements?: string } {
  if (spec.anyOf) {
    const kinds = spec.anyOf.map((s) => (s.type === 'array' ? `array<${s.items?.type}>` : s.type));
    assert.deepEqual([...kinds].sort(), ['array<string>', 'string'], `unsupported anyOf: ${kinds}`);
    return { type: 'raw' };
  }
  const type = JSON_TO_ANSIBLE[spec.type ?? ''];
  assert.ok(type, `no Ansible type for JSON Schema type ${spec.type}`);
  if (spec.type === 'array') return { type, elements: ansibleTypeOf(spec.items ?? {}).type };
  return { type };
}

const sidecar = loadYaml(join(COLLECTION, 'plugins', 'modules', 'bdm.yml'));
const doc = sidecar.DOCUMENTATION;
const schemaOptions = argsSchema.properties as unknown as Record<string, JsonSchema>;

function compareOptions(where: string, schema: Record<string, JsonSchema>, documented: Record<string, any>): void {
  assert.deepEqual(Object.keys(documented).sort(), Object.keys(schema).sort(), `${where}: option names`);
  for (const [name, spec] of Object.entries(schema)) {
    const d = documented[name];
    const what = `${where}${name}`;
    const { type, elements } = ansibleTypeOf(spec);
    assert.equal(d.type, type, `${what}: type`);
    assert.equal(d.elements, elements, `${what}: elements`);
    if (spec.default === undefined) assert.equal(d.default, undefined, `${what}: no default in the schema`);
    else assert.deepEqual(d.default, spec.default, `${what}: default`);
    if (spec.enum) assert.deepEqual(d.choices, [...spec.enum], `${what}: choices`);
    else assert.equal(d.choices, undefined, `${what}: no choices in the schema`);
    assert.notEqual(d.required, true, `${what}: the schema requires no option`);
    const text = ([] as string[]).concat(d.description ?? []).join(' ');
    assert.ok(text.trim().length > 0, `${what}: description`);
    // A dict's keys, or the keys of each dict of a list (volume_attachments), are suboptions.
    const keys = spec.properties ?? (spec.type === 'array' ? spec.items?.properties : undefined);
    if (keys) compareOptions(`${what}.`, keys, d.suboptions ?? {});
    else assert.equal(d.suboptions, undefined, `${what}: suboptions without schema properties`);
  }
}

describe('the sidecar documentation agrees with the JSON Schema', () => {
  test('module name, the same options, types, elements, defaults, choices, suboptions', () => {
    assert.equal(doc.module, 'bdm');
    compareOptions('', schemaOptions, doc.options);
  });

  test('exactly the secret options are documented as secret', () => {
    assert.deepEqual([...SECRET_OPTIONS].sort(), ['api_database_connection', 'cinder_auth', 'database_connection']);
    const marked = Object.entries(doc.options as Record<string, { description: string[] }>)
      .filter(([, d]) => String([d.description].flat()[0]).startsWith('B(Secret:)'))
      .map(([name]) => name)
      .sort();
    assert.deepEqual(marked, [...SECRET_OPTIONS].sort());
  });

  test('RETURN documents every key each action returns', () => {
    const expected = {
      show: ['bdm', 'bdms', 'instance', 'cell', 'attachment_id', 'connection_info', 'warnings', 'interrupted_refresh'],
      refresh: [
        'changed',
        'counts',
        'refreshed',
        'skips',
        'failures',
        'summary',
        'hosts_without_connector',
        'stale',
        'stale_reasons',
        'old_attachment_id',
        'new_attachment_id',
        'attachment_id',
        'connection_info',
        'diff',
        'steps',
        'request_ids',
        'recovered',
        'rpc_version',
        'undone',
        'remains',
        'msg',
        'bdm_uuid',
        'instance_uuid',
        'volume_id',
        'host',
        'cell',
      ],
      audit: ['totals', 'stale', 'stale_truncated', 'seconds', 'report_path', 'metrics_path', 'msg'],
      get_connector: ['connector'],
    };
    for (const [action, keys] of Object.entries(expected)) {
      for (const key of keys) {
        assert.ok(sidecar.RETURN[key], `RETURN.${key} (${action})`);
        assert.ok(sidecar.RETURN[key].description && sidecar.RETURN[key].type, `RETURN.${key}: description and type`);
      }
    }
  });

  test('EXAMPLES are YAML and use only real options', () => {
    const examples = parseYaml(sidecar.EXAMPLES);
    const used = moduleTasks(examples);
    assert.ok(used.length >= 4, 'the examples call the module');
    for (const args of used) {
      for (const key of Object.keys(args)) assert.ok(key in schemaOptions, `EXAMPLES use unknown option ${key}`);
    }
  });
});

/** Every `osops.nova.bdm` (or `bdm`) task's arguments, at any depth (blocks, plays). */
function moduleTasks(node: unknown, found: Record<string, unknown>[] = []): Record<string, unknown>[] {
  if (Array.isArray(node)) for (const n of node) moduleTasks(n, found);
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if ((key === 'osops.nova.bdm' || key === 'bdm') && value && typeof value === 'object' && !Array.isArray(value))
        found.push(value as Record<string, unknown>);
      else moduleTasks(value, found);
    }
  }
  return found;
}

describe('the collection', () => {
  test('galaxy.yml: osops.nova, version = package.json version, tests and node_modules never shipped', () => {
    const galaxy = loadYaml(join(COLLECTION, 'galaxy.yml'));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(galaxy.namespace, 'osops');
    assert.equal(galaxy.name, 'nova');
    assert.equal(galaxy.version, pkg.version);
    for (const p of ['node_modules', 'tests', '*.tar.gz']) assert.ok(galaxy.build_ignore.includes(p), p);
  });

  test('meta/runtime.yml: requires ansible >= 2.14; the action group nova holds bdm', () => {
    const runtime = loadYaml(join(COLLECTION, 'meta', 'runtime.yml'));
    assert.equal(runtime.requires_ansible, '>=2.14.0');
    assert.deepEqual(runtime.action_groups, { nova: ['bdm'] });
    assert.deepEqual(doc.attributes.action_group.membership, ['osops.nova.nova']);
  });

  test('the role and playbooks pass only real options to osops.nova.bdm', () => {
    const files = [
      ...readdirSync(join(COLLECTION, 'roles', 'refresh_connection_info', 'tasks'))
        .filter((f) => f.endsWith('.yml'))
        .map((f) => join(COLLECTION, 'roles', 'refresh_connection_info', 'tasks', f)),
      ...readdirSync(join(COLLECTION, 'playbooks'))
        .filter((f) => f.endsWith('.yml'))
        .map((f) => join(COLLECTION, 'playbooks', f)),
    ];
    const actions = new Set<string>();
    for (const file of files) {
      for (const args of moduleTasks(loadYaml(file))) {
        for (const key of Object.keys(args)) assert.ok(key in schemaOptions, `${file}: unknown option ${key}`);
        actions.add(String(args.action));
      }
    }
    assert.deepEqual([...actions].sort(), ['audit', 'get_connector', 'refresh', 'show']);
  });

  test('role: argument_specs defaults match defaults/main.yml; secrets are no_log', () => {
    const roleDir = join(COLLECTION, 'roles', 'refresh_connection_info');
    const spec = loadYaml(join(roleDir, 'meta', 'argument_specs.yml')).argument_specs.main.options as Record<string, any>;
    const defaults = loadYaml(join(roleDir, 'defaults', 'main.yml')) as Record<string, unknown>;
    for (const [name, option] of Object.entries(spec)) {
      if (option.default !== undefined) assert.deepEqual(defaults[name], option.default, `${name}: default`);
      else assert.ok(!(name in defaults) || String(defaults[name]).includes('{{'), `${name}: documented without a default`);
    }
    for (const name of Object.keys(defaults)) assert.ok(name in spec, `${name}: in defaults/main.yml but not in argument_specs`);
    const noLog = Object.entries(spec)
      .filter(([, o]) => o.no_log === true)
      .map(([n]) => n)
      .sort();
    assert.deepEqual(noLog, SECRET_OPTIONS.map((o) => `nova_bdm_${o}`).sort());
  });
});
