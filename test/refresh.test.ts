import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MASK } from '../src/output/mask-secrets';
import { pythonJsonDumps } from '../src/actions/rules/connection-info';
import { CONTROLLER_HOST, NEW_MONITORS, RefreshEnv } from './support/refresh-env';
import { infoData } from './support/results';

// refresh on the real MariaDB (Nova schema made by nova-manage) and the real RabbitMQ, with
// the stand-in compute and Keystone + Cinder. Rows are checked against reference/nova-db.md §8.

const REQ_ID = /^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

describe('the happy path', () => {
  test('a v3 BDM: every row written, the RPC sent, one fresh attached rw attachment', async () => {
    const s = await env.seed();
    const r = await env.refresh({ instance_uuid: s.instanceUuid, volume_id: s.volumeId, _ansible_diff: true });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.changed, true);
    assert.equal(r.old_attachment_id, s.oldAttachmentId);
    const newId = String(r.new_attachment_id);
    assert.notEqual(newId, s.oldAttachmentId);
    assert.equal(r.attachment_id, newId);
    assert.equal(r.rpc_version, '6.0');
    assert.deepEqual(infoData(r.connection_info).hosts, NEW_MONITORS);
    assert.equal(infoData(r.connection_info).keyring, MASK);
    assert.ok(!JSON.stringify(r).includes('AQBnewkeyringsecret'));
    const diff = r.diff;
    assert.ok(diff, 'a diff (-D)');
    assert.match(diff.before_header!, new RegExp(`BDM ${s.bdm.uuid} \\(instance ${s.instanceUuid}, volume ${s.volumeId}\\)`));
    assert.ok(diff.before!.includes('192.0.2.11') && diff.after!.includes(NEW_MONITORS[0]!));
    assert.ok(!diff.after!.includes('AQBnewkeyringsecret'));
    assert.ok((r.steps ?? []).some((x) => x.step === 'rpc_remove_volume_connection'));

    // Cinder: exactly one attachment, the new one, attached rw, connected with our connector + mountpoint.
    const atts = env.cloud.attachmentsOf(s.volumeId);
    assert.deepEqual(
      atts.map((a) => [a.id, a.status, a.attach_mode]),
      [[newId, 'attached', 'rw']],
    );
    assert.equal(infoData(r.connection_info).access_mode, 'rw', "the guest's mode");
    assert.deepEqual(atts[0]!.connector, { ...env.connector, mountpoint: '/dev/vdb' });
    const calls = env.cloud
      .mutations()
      .filter((m) => m.path.includes(s.volumeId) || m.path.includes(newId) || m.path.includes(s.oldAttachmentId));
    assert.deepEqual(
      calls.map((m) => `${m.method} ${m.path.replace(/^\/volume\/v3\/\w+/, '')} ${m.status}`),
      [`DELETE /attachments/${s.oldAttachmentId} 200`, `PUT /attachments/${newId} 200`, `POST /attachments/${newId}/action 204`],
    );
    const reserve = env.cloud.log.find(
      (m) => m.method === 'POST' && m.path.endsWith('/attachments') && (m.body as any).attachment.volume_uuid === s.volumeId,
    )!;
    assert.deepEqual(reserve.body, { attachment: { volume_uuid: s.volumeId, connector: null, instance_uuid: s.instanceUuid } });
    const del = env.cloud.log.find((m) => m.method === 'DELETE' && m.path.endsWith(s.oldAttachmentId))!;
    assert.ok(del.headers['x-service-token'], 'service token sent');
    // Its validation was started earlier, in the background: one GET carrying the same service token, before the DELETE.
    const warm = env.cloud.log.findIndex(
      (m) =>
        m.method === 'GET' && m.path.endsWith('/attachments?limit=1') && m.headers['x-service-token'] === del.headers['x-service-token'],
    );
    assert.ok(warm >= 0 && warm < env.cloud.log.indexOf(del), 'the service token was sent ahead, alone, before the DELETE');
    assert.equal(del.headers['openstack-api-version'], 'volume 3.44');
    const refreshRequestId = del.headers['x-openstack-request-id'];

    // The RPC: remove_volume_connection to compute.<host>, 6.0, the Instance 2.7 primitive.
    const call = env.compute.calls.at(-1)!;
    assert.equal(call.routingKey, `compute.${env.host}`);
    assert.equal(call.properties.contentType, 'application/json');
    assert.equal(call.properties.deliveryMode, 2);
    assert.equal(call.properties.expiration, '60000');
    const inner = call.inner as any;
    assert.equal(inner.method, 'remove_volume_connection');
    assert.equal(inner.version, '6.0');
    assert.deepEqual(Object.keys(inner.args).sort(), ['instance', 'volume_id']);
    assert.equal(inner.args.volume_id, s.volumeId);
    assert.equal(inner._timeout, null);
    assert.match(inner._msg_id, /^[0-9a-f]{32}$/);
    assert.match(inner._reply_q, /^reply_[0-9a-f]{32}$/);
    assert.equal(inner._context_is_admin, true);
    assert.equal(inner._context_request_id, refreshRequestId);
    assert.match(inner._context_timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    const instance = inner.args.instance;
    assert.equal(instance['nova_object.name'], 'Instance');
    assert.equal(instance['nova_object.version'], '2.7');
    const data = instance['nova_object.data'];
    assert.equal(data.uuid, s.instanceUuid);
    assert.equal(data.locked, true);
    assert.equal(data.locked_by, 'admin');
    assert.equal(data.deleted, false);
    assert.equal(data.created_at, '2026-01-02T03:04:05Z');
    assert.equal(
      data.system_metadata.locked_reason,
      `Refreshing connection_info for BDM ${s.bdm.uuid} associated with instance ${s.instanceUuid} and volume ${s.volumeId}.`,
    );
    assert.equal(data.security_groups['nova_object.name'], 'SecurityGroupList');
    assert.ok(!('internal_id' in data));

    // Nova's rows (nova-db.md §8.6).
    const rows = await env.dumpRows(s.instanceUuid);
    assert.equal(rows.instance!.locked, 0);
    assert.equal(rows.instance!.locked_by, null);
    assert.deepEqual(rows.sysmeta, []);
    const bdm = rows.bdms[0]!;
    assert.equal(bdm.attachment_id, newId);
    const stored = JSON.parse(bdm.connection_info!);
    assert.equal(bdm.connection_info, pythonJsonDumps(stored), 'stored with Python json.dumps separators');
    assert.equal(stored.driver_volume_type, 'rbd');
    assert.deepEqual(stored.data.hosts, NEW_MONITORS);
    assert.equal(stored.data.keyring, 'AQBnewkeyringsecret==');
    assert.equal(stored.serial, s.volumeId);
    assert.equal(stored.status, 'reserved', "Cinder's PUT answer is stale, as in zed");
    assert.equal(stored.instance, s.instanceUuid);
    assert.equal(stored.volume_id, s.volumeId);
    assert.ok(!('attachment_id' in stored.data));
    assert.notEqual(bdm.updated_at, '2026-01-02 03:06:00');
    assert.deepEqual(
      rows.actions.map((a) => [a.action, a.finish_time === null, a.message, a.user_id, a.project_id, a.deleted]),
      [
        ['lock', true, null, null, null, 0],
        ['refresh_volume_attachment', false, null, null, null, 0],
        ['unlock', true, null, null, null, 0],
      ],
    );
    const ids = rows.actions.map((a) => a.request_id!);
    for (const id of ids) assert.match(id, REQ_ID);
    assert.equal(new Set(ids).size, 3, 'distinct request ids for lock, refresh, unlock');
    assert.equal(ids[1], refreshRequestId);
    for (const a of rows.actions) assert.ok(a.created_at && a.start_time && a.updated_at);
    assert.deepEqual(
      rows.events.map((e) => [e.event, e.result, e.host, e.finish_time !== null, e.traceback, e.details, e.deleted]),
      [
        ['api_lock', 'Success', CONTROLLER_HOST, true, null, null, 0],
        ['api_unlock', 'Success', CONTROLLER_HOST, true, null, null, 0],
      ],
    );
  });

  test("a legacy (cinder v2) BDM is migrated to v3: one attachment, ro by Cinder's readonly quirk, the guest still rw", async () => {
    const s = await env.seed({ legacy: true });
    assert.equal(env.cloud.attachmentsOf(s.volumeId)[0]!.connection_info, null, 'Cinder keeps no connection_info for a legacy attach');
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.old_attachment_id, null);
    // The legacy os-attach left admin metadata readonly='False', a truthy string: Cinder makes
    // every later attachment 'ro', while data.access_mode (what the guest gets) stays rw.
    const atts = env.cloud.attachmentsOf(s.volumeId);
    assert.deepEqual(
      atts.map((a) => [a.id, a.status, a.attach_mode, a.legacy]),
      [[r.new_attachment_id, 'attached', 'ro', false]],
    );
    const rows = await env.dumpRows(s.instanceUuid);
    assert.equal(rows.bdms[0]!.attachment_id, r.new_attachment_id);
    const stored = JSON.parse(rows.bdms[0]!.connection_info!);
    assert.equal(stored.data.access_mode, 'rw');
    assert.ok(!('connector' in stored), "the legacy connector key is gone, as after nova-manage's refresh");
    assert.equal(rows.instance!.locked, 0);
  });

  test('multiattach flag and multipath_id of the old connection_info are kept, serial set', async () => {
    const s = await env.seed({
      oldInfo: {
        driver_volume_type: 'iscsi',
        data: { target_portal: '192.0.2.5:3260', multipath_id: 'mpath-42', access_mode: 'rw' },
        multiattach: true,
        serial: 'x',
      },
    });
    env.cloud.backends.set(s.volumeId, {
      driver_volume_type: 'iscsi',
      data: { target_portal: '192.0.2.6:3260', target_lun: 3, access_mode: 'rw' },
    });
    const r = await env.refresh({
      instance_uuid: s.instanceUuid,
      volume_id: s.volumeId,
      reveal_secrets: true,
      expect: undefined,
      force: true,
    });
    assert.equal(r.failed, undefined, String(r.msg));
    const stored = JSON.parse((await env.dumpRows(s.instanceUuid)).bdms[0]!.connection_info!);
    assert.equal(stored.multiattach, true);
    assert.equal(stored.data.multipath_id, 'mpath-42');
    assert.equal(stored.data.target_portal, '192.0.2.6:3260');
    assert.equal(stored.serial, s.volumeId);
  });
});
