import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseModuleInput } from '../../src/args/validate';
import { coerceOptions } from '../../src/args/coerce';

// What AnsibleModule does to a Python module's options, done to ours before validation.
const U = '5b7e1c0a-3f2d-4e8b-9a6c-1d2e3f4a5b6c';
const U2 = '6c8f2d1b-4a3e-4f9c-8b7d-2e3f4a5b6c7d';

function args(raw: Record<string, unknown>) {
  return parseModuleInput(raw).args as Record<string, unknown>;
}

function fails(raw: Record<string, unknown>, pattern: RegExp): string {
  let message = '';
  assert.throws(
    () => parseModuleInput(raw),
    (err: Error) => {
      assert.equal(err.name, 'BadInput');
      assert.match(err.message, pattern);
      message = err.message;
      return true;
    },
  );
  return message;
}

test("booleans: Ansible's BOOLEANS_TRUE/BOOLEANS_FALSE in any case, and 1/0", () => {
  for (const word of ['yes', 'YES', 'on', 'On', 'true', 'True', 'y', 't', '1', 1]) {
    assert.equal(args({ bdm_uuid: U, reveal_secrets: word }).reveal_secrets, true, String(word));
  }
  for (const word of ['no', 'No', 'off', 'OFF', 'false', 'False', 'n', 'f', '0', 0]) {
    assert.equal(args({ bdm_uuid: U, reveal_secrets: word }).reveal_secrets, false, String(word));
  }
  fails(
    { bdm_uuid: U, reveal_secrets: 'maybe' },
    /^argument reveal_secrets is of type str and could not be converted to bool: "maybe" is not a valid boolean; valid booleans include: y, yes, on, 1, true, t, n, no, off, 0, false, f/,
  );
  fails({ bdm_uuid: U, reveal_secrets: 2 }, /^argument reveal_secrets is of type int and could not be converted to bool/);
  fails({ bdm_uuid: U, reveal_secrets: '' }, /could not be converted to bool/);
});

test('integers and numbers from numeric strings; anything else names the option and the type', () => {
  const a = args({ action: 'audit', cinder_concurrency: '16', connect_timeout: '2.5' });
  assert.equal(a.cinder_concurrency, 16);
  assert.equal(a.connect_timeout, 2.5);
  assert.equal(args({ bdm_uuid: U, connect_timeout: ' 5 ' }).connect_timeout, 5);
  assert.equal(args({ bdm_uuid: U, connect_timeout: '1e1' }).connect_timeout, 10);
  fails(
    { action: 'audit', cinder_concurrency: '2.5' },
    /^argument cinder_concurrency is of type str and could not be converted to int: "2.5" is not an integer$/,
  );
  fails({ action: 'audit', cinder_concurrency: 2.5 }, /^argument cinder_concurrency is of type float and could not be converted to int/);
  fails(
    { bdm_uuid: U, connect_timeout: '5s' },
    /^argument connect_timeout is of type str and could not be converted to float: "5s" is not a number$/,
  );
  fails({ bdm_uuid: U, connect_timeout: true }, /^argument connect_timeout is of type bool and could not be converted to float/);
  // Converted values still meet the schema's bounds.
  fails({ bdm_uuid: U, connect_timeout: '0' }, /^connect_timeout must be > 0/);
  fails({ action: 'audit', cinder_concurrency: '1000' }, /^cinder_concurrency must be <= 64/);
});

test('lists from comma-separated strings, items converted to the item type and validated', () => {
  const a = args({ action: 'audit', hosts: 'compute1,compute2, compute3', instance_uuids: `${U},${U2}` });
  assert.deepEqual(a.hosts, ['compute1', 'compute2', 'compute3']);
  assert.deepEqual(a.instance_uuids, [U, U2]);
  assert.deepEqual(args({ action: 'audit', hosts: 'compute1' }).hosts, ['compute1']);
  assert.deepEqual(args({ action: 'audit', hosts: ['a', 7] }).hosts, ['a', '7']);
  fails({ action: 'audit', instance_uuids: `${U},nope` }, /^instance_uuids is not a valid UUID/);
  fails({ action: 'audit', hosts: { a: 1 } }, /^argument hosts is of type dict and could not be converted to list/);
  fails({ action: 'audit', hosts: 'a,,b' }, /^hosts must not be empty/);
});

test('dicts from a JSON string or k=v pairs; known sub-options converted too', () => {
  const expect = args({
    action: 'refresh',
    bdm_uuid: U,
    connector_path: '/c',
    expect: '{"driver_volume_type": "rbd", "data": {"hosts": ["10.0.0.1"]}}',
  }).expect;
  assert.deepEqual(expect, { driver_volume_type: 'rbd', data: { hosts: ['10.0.0.1'] } });
  assert.deepEqual(args({ action: 'refresh', bdm_uuid: U, connector_path: '/c', expect: 'driver_volume_type=rbd' }).expect, {
    driver_volume_type: 'rbd',
  });
  const auth = args({
    action: 'refresh',
    bdm_uuid: U,
    connector_path: '/c',
    cinder_auth: 'auth_type=password username=nova "password=p w" insecure=yes timeout=30',
  }).cinder_auth;
  assert.deepEqual(auth, { auth_type: 'password', username: 'nova', password: 'p w', insecure: true, timeout: 30 });
  assert.deepEqual(
    args({ action: 'refresh', bdm_uuid: U, connector_path: '/c', cinder_auth: 'auth_type=password, insecure=0' }).cinder_auth,
    { auth_type: 'password', insecure: false },
  );
  fails(
    { action: 'refresh', bdm_uuid: U, connector_path: '/c', expect: '{"data": ' },
    /^argument expect is of type str and could not be converted to dict: "\{\\"data\\": " is not valid JSON \(it starts with \{\)$/,
  );
  fails({ action: 'refresh', bdm_uuid: U, connector_path: '/c', expect: '["a"]' }, /could not be converted to dict/);
  fails(
    { action: 'refresh', bdm_uuid: U, connector_path: '/c', expect: 'rbd' },
    /^argument expect is of type str and could not be converted to dict: "rbd" is not k1=v1 k2=v2 \(every field needs a key and an =\)$/,
  );
});

test('a secret option never has its value echoed, even inside a sub-option', () => {
  const m1 = fails(
    { action: 'refresh', bdm_uuid: U, connector_path: '/c', cinder_auth: { auth_type: 'password', insecure: 'hunter2-secret' } },
    /^argument cinder_auth\.insecure is of type str and could not be converted to bool/,
  );
  assert.ok(!m1.includes('hunter2'), m1);
  const m2 = fails(
    { bdm_uuid: U, api_database_connection: ['mysql://u:hunter2@h/db'] },
    /^argument api_database_connection is of type list and could not be converted to str/,
  );
  assert.ok(!m2.includes('hunter2'), m2);
  const m3 = fails(
    { action: 'refresh', bdm_uuid: U, connector_path: '/c', cinder_auth: "password='hunter2" },
    /^argument cinder_auth is of type str and could not be converted to dict: not k1=v1 k2=v2 \(a quote is not closed\)$/,
  );
  assert.ok(!m3.includes('hunter2'), m3);
});

test('strings from scalars; config_file: a path, a list, or a comma-separated list of paths', () => {
  assert.equal(args({ action: 'audit', project_id: 12345 }).project_id, '12345');
  assert.equal(args({ bdm_uuid: U, config_file: '/etc/nova/nova.conf' }).config_file, '/etc/nova/nova.conf');
  assert.deepEqual(args({ bdm_uuid: U, config_file: '/etc/nova/nova.conf,/etc/nova/extra.conf' }).config_file, [
    '/etc/nova/nova.conf',
    '/etc/nova/extra.conf',
  ]);
  assert.deepEqual(args({ bdm_uuid: U, config_file: ['/a.conf'] }).config_file, ['/a.conf']);
  fails({ bdm_uuid: U, config_file: { a: 1 } }, /^argument config_file is of type dict and could not be converted to str or list/);
});

test('values that already fit, unknown options and nulls pass through unchanged', () => {
  const props = { n: { type: 'integer' }, b: { type: 'boolean' } };
  const input = { n: 3, b: false, other: 'x', nothing: null };
  assert.deepEqual(coerceOptions(input, props), input);
  // Ansible's internal keys are not options: untouched.
  assert.equal(parseModuleInput({ bdm_uuid: U, _ansible_check_mode: true }).ansible.checkMode, true);
});
