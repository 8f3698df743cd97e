import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dbStaleReasons, expectationMismatch } from '../../src/actions/staleness';

const stored = { driver_volume_type: 'rbd', data: { hosts: ['a', 'b'], ports: ['6789', 6790], keyring: 'AQBstoredsecret==' } };

test('Ceph monitors match as host:port pairs in any order; numbers equal their strings', () => {
  assert.equal(expectationMismatch(stored, { data: { hosts: ['b', 'a'], ports: [6790, '6789'] } }), undefined);
  assert.match(String(expectationMismatch(stored, { data: { hosts: ['a', 'b'], ports: ['6790', '6789'] } })), /^data\.hosts\/ports are a:6789, b:6790, expected a:6790, b:6789$/);
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
  assert.deepEqual(dbStaleReasons({ attachment_id: null, connection_info: null }, undefined).map((r) => r.code), ['legacy_attachment', 'connection_info_missing']);
  assert.deepEqual(dbStaleReasons({ attachment_id: 'x', connection_info: '{}' }, undefined).map((r) => r.detail), ['connection_info is empty']);
  assert.deepEqual(dbStaleReasons({ attachment_id: 'x', connection_info: '{not json' }, undefined).map((r) => r.detail), ['connection_info is not valid JSON']);
});
