import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Attachment } from '../../src/cinder/cinder-client';
import { ListedAttachments } from '../../src/actions/shared/cinder-index';
import { cinderStaleReasons } from '../../src/actions/rules/staleness';
import { parseConnectionInfo } from '../../src/actions/rules/connection-info';

// The audit keeps of Cinder's listings only what the staleness rules read (ListedAttachments):
// every rule must come out exactly as it does on Cinder's whole attachment view.

const VOL = 'b7e1c0a5-3f2d-4e8b-9a6c-1d2e3f4a5b6c';
const INST = '0c7a3a8e-1111-4c2b-9d3e-5f6a7b8c9d0e';

function attachment(id: string, over: Partial<Attachment> = {}, info: Record<string, unknown> | null = rbd(VOL)): Attachment {
  return {
    id,
    status: 'attached',
    instance: INST,
    volume_id: VOL,
    attached_at: '2026-01-01T00:00:00.000000',
    detached_at: '',
    attach_mode: 'rw',
    connection_info: info === null ? null : { ...info, attachment_id: id },
    ...over,
  };
}

function rbd(volumeId: string, hosts = ['192.0.2.1', '192.0.2.2']): Record<string, unknown> {
  return {
    driver_volume_type: 'rbd',
    name: `volumes/volume-${volumeId}`,
    volume_id: volumeId,
    hosts,
    ports: ['6789', '6789'],
    auth_enabled: true,
    auth_username: 'cinder',
    secret_type: 'ceph',
    secret_uuid: 's-1',
    cluster_name: 'ceph',
    discard: true,
    qos_specs: null,
    access_mode: 'rw',
    encrypted: false,
    enforce_multipath: false,
  };
}

function bdm(attachmentId: string, stored: Record<string, unknown> | string | null) {
  const text = stored === null ? null : typeof stored === 'string' ? stored : JSON.stringify(stored);
  return { attachment_id: attachmentId, volume_id: VOL, instance_uuid: INST, connection_info: text };
}

function nova(info: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { driver_volume_type, ...data } = info;
  return { driver_volume_type, data: { ...data, ...extra }, serial: VOL };
}

test('every staleness rule reads the same from the compact listing as from the whole attachment', () => {
  const iscsi = (lun: number) => ({
    driver_volume_type: 'iscsi',
    target_portal: '192.0.2.50:3260',
    target_iqn: `iqn.2010-10.org.openstack:volume-${VOL}`,
    target_lun: lun,
    auth_method: 'CHAP',
    auth_password: 'pw',
    access_mode: 'rw',
  });
  type Case = {
    name: string;
    a: Attachment;
    stored: Record<string, unknown> | string | null;
    host?: string | null;
    hostFirst?: true;
    instanceHost?: string;
  };
  const cases: Case[] = [
    { name: 'same rbd info', a: attachment('a1'), stored: nova(rbd(VOL)) },
    { name: 'moved monitors', a: attachment('a2', {}, rbd(VOL, ['198.51.100.1'])), stored: nova(rbd(VOL)) },
    { name: 'self-added keys only', a: attachment('a3'), stored: nova(rbd(VOL), { device_path: '/dev/rbd0', multipath_id: 'm' }) },
    { name: 'iscsi, volume id in the iqn, other lun', a: attachment('a4', {}, iscsi(2)), stored: nova(iscsi(1)) },
    { name: 'iscsi same', a: attachment('a5', {}, iscsi(1)), stored: nova(iscsi(1)) },
    { name: 'no connection_info in Cinder', a: attachment('a6', {}, null), stored: nova(rbd(VOL)) },
    { name: 'empty connection_info in Cinder', a: { ...attachment('a7'), connection_info: {} }, stored: nova(rbd(VOL)) },
    { name: 'only an attachment_id in Cinder', a: attachment('a8', {}, {}), stored: nova(rbd(VOL)) },
    { name: 'no driver_volume_type in Cinder', a: attachment('a9', {}, { hosts: ['x'] }), stored: nova(rbd(VOL)) },
    { name: 'Nova has none', a: attachment('a10'), stored: null },
    { name: 'Nova has bad JSON', a: attachment('a11'), stored: '{nope' },
    { name: 'detached', a: attachment('a12', { status: 'detached' }), stored: nova(rbd(VOL)) },
    { name: 'another volume', a: attachment('a13', { volume_id: 'other-volume' }), stored: nova(rbd(VOL)) },
    { name: 'another instance', a: attachment('a14', { instance: 'other-instance' }), stored: nova(rbd(VOL)) },
    { name: 'host mismatch', a: attachment('a15'), stored: nova(rbd(VOL)), host: 'compute9', instanceHost: 'compute1' },
    { name: 'host null', a: attachment('a16'), stored: nova(rbd(VOL)), host: null, hostFirst: true, instanceHost: 'compute1' },
    {
      name: 'nested data order',
      a: attachment('a17', {}, { ...rbd(VOL), qos_specs: { b: 1, a: [{ y: 1, x: 2 }] } }),
      stored: nova({ ...rbd(VOL), qos_specs: { a: [{ x: 2, y: 1 }], b: 1 } }),
    },
  ];
  const listed = new ListedAttachments();
  for (const c of cases) {
    if (c.host !== undefined && c.hostFirst) listed.addHost(c.a.id, c.host); // the volumes listing got there first
    listed.addAttachment(c.a);
    if (c.host !== undefined && !c.hostFirst) listed.addHost(c.a.id, c.host);
  }
  listed.listingsRead();
  assert.equal(listed.size, cases.length);
  for (const c of cases) {
    const row = bdm(c.a.id, c.stored);
    const whole = cinderStaleReasons(row, c.a, c.host, c.instanceHost ?? 'compute1');
    const got = listed.get(c.a.id, parseConnectionInfo(row.connection_info));
    assert.ok(got, c.name);
    assert.equal(got.host, c.host, c.name);
    assert.deepEqual(cinderStaleReasons(row, got.attachment, got.host, c.instanceHost ?? 'compute1'), whole, c.name);
  }
  // Cinder's connection_info is rebuilt only where the rules would find a difference.
  const rebuilt = (id: string) => {
    const c = cases.find((x) => x.a.id === id)!;
    return listed.get(id, parseConnectionInfo(bdm(id, c.stored).connection_info))!.attachment.connection_info !== null;
  };
  assert.equal(rebuilt('a1'), false);
  assert.equal(rebuilt('a2'), true);
  assert.equal(rebuilt('a17'), true); // the same data in another key order: rebuilt, and no difference found above
  // The cases differ where they should (the comparison above is not vacuous).
  const codes = (id: string) => {
    const c = cases.find((x) => x.a.id === id)!;
    return cinderStaleReasons(bdm(id, c.stored), c.a, c.host, c.instanceHost ?? 'compute1').map((r) => r.code);
  };
  assert.deepEqual(codes('a1'), []);
  assert.deepEqual(codes('a2'), ['connection_info_differs']);
  assert.deepEqual(codes('a4'), ['connection_info_differs']);
  assert.deepEqual(codes('a12'), ['attachment_not_attached']);
  assert.deepEqual(codes('a13'), ['attachment_missing']);
  assert.deepEqual(codes('a15'), ['attachment_host_mismatch']);
});

test('a host listed before, after or without its attachment; an attachment listed twice keeps its host', () => {
  const listed = new ListedAttachments();
  listed.addHost('early', 'compute1');
  listed.addAttachment(attachment('early'));
  listed.addAttachment(attachment('late'));
  listed.addHost('late', 'compute2');
  listed.addAttachment(attachment('late')); // offsets shifted: the same attachment on the next page
  listed.addAttachment(attachment('none'));
  listed.addHost('unlisted', 'compute3');
  listed.listingsRead();
  assert.equal(listed.get('early', null)?.host, 'compute1');
  assert.equal(listed.get('late', null)?.host, 'compute2');
  assert.equal(listed.get('none', null)?.host, undefined);
  assert.equal(listed.get('unlisted', null), undefined);
});

test('attachments of one backend share one string for what is compared', () => {
  const listed = new ListedAttachments();
  const ids = ['11111111-aaaa-4bbb-8ccc-000000000001', '11111111-aaaa-4bbb-8ccc-000000000002'];
  for (const [i, id] of ids.entries()) {
    const vol = `22222222-aaaa-4bbb-8ccc-00000000000${i}`;
    listed.addAttachment(attachment(id, { volume_id: vol }, rbd(vol)));
  }
  const infos = ids.map((id) => (listed as unknown as { byId: Map<string, { info: string }> }).byId.get(id)!.info);
  assert.equal(infos[0], infos[1]);
  const info = listed.get(ids[1]!, { driver_volume_type: 'rbd', data: {} })!.attachment.connection_info as { name: string };
  assert.equal(info.name, 'volumes/volume-22222222-aaaa-4bbb-8ccc-000000000001');
});
