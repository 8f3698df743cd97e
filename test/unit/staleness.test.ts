import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cinderStaleReasons, dbStaleReasons, expectationMismatch, SELF_ADDED_DATA_KEYS } from '../../src/actions/rules/staleness';

const stored = { driver_volume_type: 'rbd', data: { hosts: ['a', 'b'], ports: ['6789', 6790], keyring: 'AQBstoredsecret==' } };

test('Ceph monitors match as host:port pairs in any order; numbers equal their strings', () => {
  assert.equal(expectationMismatch(stored, { data: { hosts: ['b', 'a'], ports: [6790, '6789'] } }), undefined);
  assert.match(
    String(expectationMismatch(stored, { data: { hosts: ['a', 'b'], ports: ['6790', '6789'] } })),
    /^data\.hosts\/ports are a:6789, b:6790, expected a:6790, b:6789$/,
  );
  assert.equal(expectationMismatch(stored, { driver_volume_type: 'rbd' }), undefined);
  assert.match(String(expectationMismatch(stored, { driver_volume_type: 'iscsi' })), /^driver_volume_type is "rbd", expected "iscsi"$/);
});

test('a secret in expect is compared but never echoed', () => {
  const detail = String(expectationMismatch(stored, { data: { keyring: 'AQBexpectedsecret==' } }));
  assert.equal(detail, 'data.keyring differs from the expected value (secret, not shown)');
  assert.equal(expectationMismatch(stored, { data: { keyring: 'AQBstoredsecret==' } }), undefined);
  const reasons = dbStaleReasons({ attachment_id: 'x', connection_info: JSON.stringify(stored) }, { data: { keyring: 'other' } });
  assert.ok(!JSON.stringify(reasons).includes('AQBstoredsecret'));
});

test('DB rules: legacy and missing connection_info', () => {
  assert.deepEqual(
    dbStaleReasons({ attachment_id: null, connection_info: null }, undefined).map((r) => r.code),
    ['legacy_attachment', 'connection_info_missing'],
  );
  assert.deepEqual(
    dbStaleReasons({ attachment_id: 'x', connection_info: '{}' }, undefined).map((r) => r.detail),
    ['connection_info is empty'],
  );
  assert.deepEqual(
    dbStaleReasons({ attachment_id: 'x', connection_info: '{not json' }, undefined).map((r) => r.detail),
    ['connection_info is not valid JSON'],
  );
});

describe('connection_info_differs ignores the keys Cinder and Nova add by themselves', () => {
  const volumeId = 'b7e1c0a5-3f2d-4e8b-9a6c-1d2e3f4a5b6c';
  const bdm = (data: Record<string, unknown>) => ({
    attachment_id: 'att-1',
    volume_id: volumeId,
    instance_uuid: 'inst-1',
    connection_info: JSON.stringify({ driver_volume_type: 'iscsi', data, serial: volumeId }),
  });
  const attachment = (connectionInfo: Record<string, unknown>) => ({
    id: 'att-1',
    status: 'attached',
    instance: 'inst-1',
    volume_id: volumeId,
    attached_at: '',
    detached_at: '',
    attach_mode: 'rw',
    connection_info: { driver_volume_type: 'iscsi', attachment_id: 'att-1', ...connectionInfo },
  });
  const target = { target_portal: '192.0.2.50:3260', target_iqn: 'iqn.x', target_lun: 1, access_mode: 'rw' };
  const codes = (stored: Record<string, unknown>, cinder: Record<string, unknown>) =>
    cinderStaleReasons(bdm(stored), attachment(cinder), undefined, 'compute1').map((r) => r.code);

  test("Cinder 2025.1's enforce_multipath, and Nova's device_path and multipath_id, are no difference", () => {
    assert.deepEqual(codes({ ...target, device_path: '/dev/sdb', multipath_id: 'mpatha' }, { ...target, enforce_multipath: false }), []);
    assert.deepEqual(codes({ ...target, enforce_multipath: true }, { ...target }), []);
  });

  test('a real change next to them still is', () => {
    const reasons = cinderStaleReasons(
      bdm({ ...target, device_path: '/dev/sdb' }),
      attachment({ ...target, target_portal: '192.0.2.51:3260', enforce_multipath: false }),
      undefined,
      'compute1',
    );
    assert.deepEqual(
      reasons.map((r) => r.code),
      ['connection_info_differs'],
    );
    assert.match(reasons[0]!.detail, /at data\.target_portal$/);
    // Keys Cinder has always set from the volume are compared.
    assert.deepEqual(codes({ ...target }, { ...target, access_mode: 'ro' }), ['connection_info_differs']);
  });

  test('each ignored key says why, citing its upstream source', () => {
    assert.deepEqual([...SELF_ADDED_DATA_KEYS.keys()].sort(), ['device_path', 'enforce_multipath', 'multipath_id']);
    for (const why of SELF_ADDED_DATA_KEYS.values()) assert.match(why, /(nova|cinder)\/[a-z_/]+\.py/);
  });
});
