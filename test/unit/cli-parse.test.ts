import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCli } from '../../src/cli/parse';

const U = '5b7e1c0a-3f2d-4e8b-9a6c-1d2e3f4a5b6c';
const V = '6c8f2d1b-4a3e-4f9c-8b7d-2e3f4a5b6c7d';

function run(argv: string[]) {
  const c = parseCli(argv);
  assert.equal(c.kind, 'run', 'message' in c ? c.message : '');
  return c as Extract<ReturnType<typeof parseCli>, { kind: 'run' }>;
}

function usage(argv: string[]): string {
  const c = parseCli(argv);
  assert.equal(c.kind, 'usage-error');
  return (c as { message: string }).message;
}

test('every command builds the module arguments Ansible would send', () => {
  assert.deepEqual(run(['bdm', 'show', U]).moduleArgs, { action: 'show', bdm_uuid: U });
  assert.deepEqual(run(['volume_attachment', 'show', U, V]).moduleArgs, { action: 'show', instance_uuid: U, volume_id: V });
  assert.deepEqual(run(['get_connector']).moduleArgs, { action: 'get_connector' });
  assert.deepEqual(run(['volume_attachment', 'get_connector']).moduleArgs, { action: 'get_connector' });
  // nova-manage's get_connector takes no positional arguments either: an extra word is a usage error (exit 64), not ignored.
  assert.equal(usage(['get_connector', 'extra']), 'get_connector takes no arguments (got extra)');
  assert.equal(usage(['volume_attachment', 'get_connector', 'x']), 'get_connector takes no arguments (got x)');
  assert.deepEqual(run(['bdm', 'audit']).moduleArgs, { action: 'audit' });
  assert.deepEqual(run(['bdm', 'refresh', U, '--connector-path', '/c.json']).moduleArgs, {
    action: 'refresh',
    bdm_uuid: U,
    connector_path: '/c.json',
  });
  assert.deepEqual(run(['volume_attachment', 'refresh', U, V, '/c.json']).moduleArgs, {
    action: 'refresh',
    instance_uuid: U,
    volume_id: V,
    connector_path: '/c.json',
  });
  assert.deepEqual(run(['volume_attachment', 'refresh', U, V, '--connector_path=/c.json']).moduleArgs.connector_path, '/c.json');
});

test('flags: switches, values (both --flag V and --flag=V), repeatable lists in order, aliases', () => {
  const c = run([
    '--config-file',
    '/a.conf',
    'bdm',
    'refresh',
    U,
    '--config_file=/b.conf',
    '--connector-path=/c.json',
    '--rpc-timeout',
    '30',
    '--no-require-libvirt',
    '--force',
    '--check',
    '--reveal-secrets',
    '--connect-timeout=2.5',
    '--expect-json',
    '{"data": {"hosts": ["10.0.0.1"]}}',
    '--json',
    '--connection-info',
    '--config-file',
    '/c.conf',
  ]);
  assert.deepEqual(c.moduleArgs, {
    action: 'refresh',
    bdm_uuid: U,
    config_file: ['/a.conf', '/b.conf', '/c.conf'],
    connector_path: '/c.json',
    rpc_timeout: 30,
    require_libvirt: false,
    force: true,
    _ansible_check_mode: true,
    reveal_secrets: true,
    connect_timeout: 2.5,
    expect: { data: { hosts: ['10.0.0.1'] } },
  });
  assert.deepEqual(c.render, { json: true, connectionInfoOnly: true });
  const a = run([
    'bdm',
    'audit',
    '--host',
    'c1',
    '--host=c2',
    '--project',
    'p',
    '--driver-volume-type',
    'rbd',
    '--check-cinder',
    '--report-path',
    '/r.json',
  ]);
  assert.deepEqual(a.moduleArgs, {
    action: 'audit',
    hosts: ['c1', 'c2'],
    project_id: 'p',
    driver_volume_type: 'rbd',
    check_cinder: true,
    report_path: '/r.json',
  });
  assert.equal(run(['bdm', 'show', U, '--connection_info']).render.connectionInfoOnly, true);
  // --volume-attachment INSTANCE:VOLUME (or INSTANCE alone), repeatable: a fleet refresh of exactly those.
  const v = run(['bdm', 'refresh', '--volume-attachment', `${U}:${V}`, '--volume_attachment', U, '--connector-dir', '/d']);
  assert.deepEqual(v.moduleArgs, {
    action: 'refresh',
    volume_attachments: [{ instance_uuid: U, volume_id: V }, { instance_uuid: U }],
    connector_dir: '/d',
  });
  const m = run(['bdm', 'audit', '--metrics-file', '/var/lib/prometheus/node-exporter/nova_bdm.prom', '--stale-limit', '0']);
  assert.deepEqual(m.moduleArgs, { action: 'audit', metrics_path: '/var/lib/prometheus/node-exporter/nova_bdm.prom', stale_limit: 0 });
  assert.equal(usage(['bdm', 'audit', '--stale-limit', 'all']), '--stale-limit: "all" is not an integer');
});

test('help wins anywhere before --; wrong usage is one line naming the flag', () => {
  assert.equal(parseCli(['bdm', 'show', '--frobnicate', '-h']).kind, 'help');
  assert.equal(parseCli(['--help']).kind, 'help');
  assert.equal(usage(['bdm', 'show', U, '--frobnicate']), 'unknown option --frobnicate');
  assert.equal(usage(['bdm', 'show', U, '-x']), 'unknown option -x');
  assert.equal(usage(['bdm', 'show', U, '--config-file']), '--config-file needs a value');
  assert.equal(usage(['bdm', 'show', U, '--config-file', '--json']), '--config-file needs a value');
  assert.equal(usage(['bdm', 'show', U, '--config-file=']), '--config-file needs a value');
  assert.equal(usage(['bdm', 'show', U, '--json=yes']), '--json takes no value');
  assert.equal(usage(['bdm', 'refresh', U, '--connector-path', '/c', '--rpc-timeout', 'soon']), '--rpc-timeout: "soon" is not a number');
  assert.equal(
    usage(['bdm', 'refresh', U, '--connector-path', '/c', '--expect-json', '{oops']),
    '--expect-json: "{oops" is not valid JSON (it starts with {)',
  );
  assert.equal(usage(['bdm', 'show']), 'bdm show takes exactly one BDM_UUID');
  assert.equal(usage(['bdm', 'frobnicate']), 'unknown command: bdm frobnicate');
  assert.equal(usage([]), 'no command given');
  assert.equal(usage(['volume_attachment', 'refresh', U, V]), 'volume_attachment refresh takes INSTANCE_UUID VOLUME_ID CONNECTOR_PATH');
});

test('--running-instances sets running_instances', () => {
  assert.deepEqual(run(['bdm', 'refresh', '--host', 'compute1', '--connector-dir', '/c', '--running-instances', 'online']).moduleArgs, {
    action: 'refresh',
    hosts: ['compute1'],
    connector_dir: '/c',
    running_instances: 'online',
  });
  assert.equal(run(['bdm', 'audit', '--running-instances=online']).moduleArgs.running_instances, 'online');
});
