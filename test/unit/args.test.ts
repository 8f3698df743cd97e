import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModuleInput } from '../../src/args/validate';

const U = '5b7e1c0a-3f2d-4e8b-9a6c-1d2e3f4a5b6c';

function failsWith(raw: unknown, pattern: RegExp): void {
  assert.throws(
    () => parseModuleInput(raw),
    (err: Error) => {
      assert.equal(err.name, 'BadInput');
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    },
  );
}

test('defaults are applied and Ansible internals honoured, other _ansible keys ignored', () => {
  const { args, ansible } = parseModuleInput({
    bdm_uuid: U,
    _ansible_check_mode: true,
    _ansible_diff: true,
    _ansible_verbosity: 3,
    _ansible_module_name: 'osops.nova.bdm',
    _ansible_tmpdir: '/tmp/x',
    volume_id: null,
  });
  assert.deepEqual(args, {
    bdm_uuid: U,
    action: 'show',
    config_file: '/etc/nova/nova.conf',
    reveal_secrets: false,
    connect_timeout: 10,
    require_libvirt: true,
    force: false,
    check_cinder: false,
    cinder_concurrency: 8,
    host_root: '/',
    max_parallel: 8,
    per_host_parallel: 2,
    refuse_locked: false,
    stale_limit: 1000,
    running_instances: 'skip',
  });
  assert.deepEqual(ansible, { checkMode: true, diff: true, verbosity: 3 });
});

test('each bad argument gets a clear one-line message', () => {
  failsWith(
    { bdm_uuid: U, colour: 'red', zzz: 1 },
    /Unsupported parameters for \(osops\.nova\.bdm\) module: colour, zzz\. Supported parameters include: action, .*volume_id, volume_ids\./,
  );
  failsWith({ bdm_uuid: 'not-a-uuid' }, /^bdm_uuid is not a valid UUID/);
  failsWith({ instance_uuid: U, volume_id: '1234' }, /^volume_id is not a valid UUID/);
  failsWith({}, /^no BDM selected: give one of bdm_uuid, or instance_uuid/);
  failsWith(
    { action: 'refresh', connectors: {} },
    /^no BDM selected: .*at least one fleet filter \(hosts, cells, .*a refresh never means the whole cloud$/,
  );
  failsWith({ action: 'refresh', cells: ['cell1'] }, /^a fleet refresh needs the connector of every compute host/);
  failsWith(
    { action: 'refresh', cells: ['cell1'], bdm_uuid: U, connector_dir: '/x' },
    /^bdm_uuid selects one BDM and cannot be combined with the fleet filters \(cells\)/,
  );
  failsWith({ action: 'refresh', cells: ['cell1'], connector_dir: '/x', max_parallel: 0 }, /^max_parallel must be >= 1$/);
  failsWith({ bdm_uuid: U, instance_uuid: U }, /^bdm_uuid and instance_uuid are mutually exclusive/);
  failsWith({ volume_id: U }, /^volume_id needs instance_uuid/);
  failsWith({ bdm_uuid: U, volume_id: U }, /^volume_id goes with instance_uuid, not with bdm_uuid/);
  failsWith({ bdm_uuid: U, action: 'destroy' }, /^value of action must be one of: show, refresh/);
  failsWith(
    { action: 'refresh', instance_uuid: U, connector: {} },
    /^refresh works on one BDM: give bdm_uuid, or instance_uuid with volume_id/,
  );
  failsWith(
    { action: 'refresh', bdm_uuid: U },
    /^refresh needs the compute host's connector: give exactly one of connector or connector_path/,
  );
  failsWith({ action: 'refresh', bdm_uuid: U, connector: {}, connector_path: '/c.json' }, /exactly one of connector or connector_path/);
  failsWith({ bdm_uuid: U, connector_path: '/c.json' }, /^connector_path is only used by action refresh/);
  failsWith(
    { action: 'refresh', bdm_uuid: U, connector: {}, cinder_auth: { passwd: 'x' } },
    /^cinder_auth has an unsupported key: passwd$/,
  );
  failsWith(
    { bdm_uuid: U, reveal_secrets: 'maybe' },
    /^argument reveal_secrets is of type str and could not be converted to bool: "maybe" is not a valid boolean/,
  );
  failsWith({ bdm_uuid: U, reveal_secrets: [true] }, /^argument reveal_secrets is of type list and could not be converted to bool/);
  failsWith({ bdm_uuid: U, config_file: [] }, /^config_file must be a path or a non-empty list of paths/);
  failsWith({ bdm_uuid: U, connect_timeout: 0 }, /^connect_timeout must be > 0 \(seconds\)/);
  failsWith([U], /^module arguments must be a JSON object/);
});

test('a list of config files is accepted', () => {
  const { args } = parseModuleInput({ instance_uuid: U, config_file: ['/a.conf', '/b.conf'] });
  assert.deepEqual(args.config_file, ['/a.conf', '/b.conf']);
});

test('the selection is parsed once: one BDM, one instance, the fleet filters (lowercase, empty lists dropped)', () => {
  const V = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
  const B = '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
  assert.deepEqual(parseModuleInput({ bdm_uuid: U.toUpperCase() }).selection, { kind: 'bdm', bdm: { bdmUuid: U } });
  assert.deepEqual(parseModuleInput({ instance_uuid: U, volume_id: V.toUpperCase() }).selection, {
    kind: 'bdm',
    bdm: { instanceUuid: U, volumeId: V },
  });
  assert.deepEqual(parseModuleInput({ instance_uuid: U }).selection, { kind: 'instance', instanceUuid: U });
  assert.deepEqual(parseModuleInput({ action: 'get_connector' }).selection, { kind: 'this-host' });
  assert.deepEqual(parseModuleInput({ action: 'audit' }).selection, { kind: 'fleet', filters: {} });
  const audit = parseModuleInput({
    action: 'audit',
    hosts: 'cmp-1, cmp-2',
    cells: [],
    driver_volume_type: 'rbd',
    // As Ansible may send them: a dict, a k=v string, an unset (None) suboption.
    volume_attachments: [{ instance_uuid: U.toUpperCase(), volume_id: V }, `instance_uuid=${B}`, { bdm_uuid: V, instance_uuid: null }],
  });
  assert.deepEqual(audit.selection, {
    kind: 'fleet',
    filters: {
      hosts: ['cmp-1', 'cmp-2'],
      driverVolumeType: 'rbd',
      volumeAttachments: [{ instanceUuid: U, volumeId: V }, { instanceUuid: B }, { bdmUuid: V }],
    },
  });
  // A refresh with volume_attachments is a fleet refresh; an empty one is no filter at all.
  const fleet = parseModuleInput({ action: 'refresh', volume_attachments: [{ instance_uuid: U, volume_id: V }], connector_dir: '/c' });
  assert.equal(fleet.selection.kind, 'fleet');
  assert.equal(
    parseModuleInput({ action: 'refresh', bdm_uuid: U, volume_attachments: [], connector_path: '/c.json' }).selection.kind,
    'bdm',
  );
});

test('volume_attachments: each entry one of the three forms, never with the filters it would cross; one line each', () => {
  const V = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
  const audit = (extra: Record<string, unknown>) => ({ action: 'audit', ...extra });
  failsWith(
    audit({ volume_attachments: [{ instance_uuid: U, volume_id: V }], volume_ids: [V], bdm_uuids: [U] }),
    /^volume_attachments names BDMs exactly and cannot be combined with volume_ids, bdm_uuids: /,
  );
  failsWith(
    audit({ volume_attachments: [{}] }),
    /^volume_attachments\[0\]: names no BDM: give bdm_uuid, or instance_uuid with an optional volume_id$/,
  );
  failsWith(
    audit({ volume_attachments: [{ instance_uuid: U }, { volume_id: V }] }),
    /^volume_attachments\[1\]: volume_id needs instance_uuid: /,
  );
  failsWith(
    audit({ volume_attachments: [{ bdm_uuid: U, volume_id: V }] }),
    /^volume_attachments\[0\]: bdm_uuid names one BDM alone and cannot be combined with instance_uuid or volume_id: /,
  );
  failsWith(audit({ volume_attachments: [{ instance_uuid: U, volume: V }] }), /^volume_attachments\[0\] has an unsupported key: volume$/);
  failsWith(audit({ volume_attachments: [{ instance_uuid: 'x' }] }), /^volume_attachments\[0\]\.instance_uuid is not a valid UUID/);
  failsWith(audit({ volume_attachments: [5] }), /^argument volume_attachments\[0\] is of type int and could not be converted to dict/);
  failsWith(
    { volume_attachments: [{ instance_uuid: U }], bdm_uuid: U },
    /^volume_attachments is only used by action audit and by a fleet refresh$/,
  );
  failsWith(
    { action: 'refresh', volume_attachments: [{ instance_uuid: U }], bdm_uuid: U, connector_dir: '/c' },
    /^bdm_uuid selects one BDM and cannot be combined with the fleet filters \(volume_attachments\)/,
  );
  // Only empty lists: no filter, so no fleet; a refresh never means the whole cloud.
  failsWith(
    { action: 'refresh', volume_attachments: [], instance_uuids: [], connector_dir: '/c' },
    /^no BDM selected: .*a refresh never means the whole cloud$/,
  );
});

test('running_instances: skip or online, for refresh and audit only', () => {
  assert.equal(parseModuleInput({ action: 'audit', running_instances: 'online' }).args.running_instances, 'online');
  assert.equal(
    parseModuleInput({ action: 'refresh', bdm_uuid: U, connector_path: '/c.json', running_instances: 'online' }).args.running_instances,
    'online',
  );
  failsWith(
    { action: 'refresh', bdm_uuid: U, connector_path: '/c.json', running_instances: 'yes' },
    /^value of running_instances must be one of: skip, online$/,
  );
  failsWith({ action: 'show', bdm_uuid: U, running_instances: 'online' }, /^running_instances is only used by action refresh and audit$/);
});
