import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OSAPI_MAX_LIMIT, PROJECT } from './support/fake-openstack';
import { ISCSI_CHAP_CONNECTION_INFO } from './support/fixtures';
import { CONTROLLER_HOST, RefreshEnv } from './support/refresh-env';

// The rules the stand-in Cinder applies the way Cinder 21 (zed) does, each checked twice:
// on the wire (what the stand-in answers) and through a refresh whose end state depends on it.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

/** A raw Cinder call with a fresh nova token (project service, roles admin + service). */
async function cinder(method: string, path: string, body?: unknown, version = '3.44', token?: string) {
  token ??= await login('nova');
  const res = await fetch(`${env.cloud.url}/volume/v3/${PROJECT}${path}`, {
    method,
    headers: {
      'X-Auth-Token': token,
      'OpenStack-API-Version': `volume ${version}`,
      'Content-Type': 'application/json',
      Accept: 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function login(user: 'nova' | 'nova-service'): Promise<string> {
  const password = user === 'nova' ? 'nova-pw-s3cret' : 'service-pw-s3cret';
  const res = await fetch(`${env.cloud.url}/identity/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password } } } },
    }),
  });
  return res.headers.get('x-subject-token')!;
}

const connector = (extra: Record<string, unknown> = {}) => ({ ...env.connector, ...extra });

describe('attach_mode and access_mode', () => {
  test('on the wire: create mode (3.54 only), connector mode, readonly admin metadata (any string, even False)', async () => {
    const instance = randomUUID();
    const plain = randomUUID();
    env.cloud.addVolume(plain);
    let r = await cinder('POST', '/attachments', {
      attachment: { volume_uuid: plain, instance_uuid: instance, connector: null, mode: 'ro' },
    });
    assert.equal(r.status, 400, 'mode is not in the 3.44 schema');
    r = await cinder(
      'POST',
      '/attachments',
      { attachment: { volume_uuid: plain, instance_uuid: instance, connector: null, mode: 'ro' } },
      '3.54',
    );
    assert.equal(r.body.attachment.attach_mode, 'ro');
    assert.deepEqual(r.body.attachment.connection_info, {}, 'a reserve returns {}');
    let put = await cinder('PUT', `/attachments/${r.body.attachment.id}`, { attachment: { connector: connector() } });
    assert.equal(
      env.cloud.attachments.get(r.body.attachment.id)!.attach_mode,
      'ro',
      "the create mode wins over the connector's default rw",
    );
    assert.equal(put.body.attachment.connection_info.access_mode, 'rw', 'access_mode comes from the admin metadata, not the mode');

    const byConnector = randomUUID();
    env.cloud.addVolume(byConnector);
    r = await cinder('POST', '/attachments', { attachment: { volume_uuid: byConnector, instance_uuid: instance, connector: null } });
    assert.equal(r.body.attachment.attach_mode, 'null');
    await cinder('PUT', `/attachments/${r.body.attachment.id}`, { attachment: { connector: connector({ mode: 'ro' }) } });
    assert.equal(env.cloud.attachments.get(r.body.attachment.id)!.attach_mode, 'ro');

    const afterLegacy = randomUUID();
    env.cloud.addVolume(afterLegacy, { admin_metadata: { readonly: 'False' } });
    r = await cinder(
      'POST',
      '/attachments',
      { attachment: { volume_uuid: afterLegacy, instance_uuid: instance, connector: null, mode: 'rw' } },
      '3.54',
    );
    assert.equal(r.body.attachment.attach_mode, 'ro', "readonly='False' is a truthy string");
    put = await cinder('PUT', `/attachments/${r.body.attachment.id}`, { attachment: { connector: connector() } });
    assert.equal(put.body.attachment.connection_info.access_mode, 'rw', "only readonly == 'True' makes access_mode ro");

    const readonly = randomUUID();
    env.cloud.addVolume(readonly, { admin_metadata: { readonly: 'True' } });
    r = await cinder('POST', '/attachments', { attachment: { volume_uuid: readonly, instance_uuid: instance, connector: null } });
    put = await cinder('PUT', `/attachments/${r.body.attachment.id}`, { attachment: { connector: connector() } });
    assert.equal(put.body.attachment.connection_info.access_mode, 'ro');
    assert.equal(env.cloud.attachments.get(r.body.attachment.id)!.attach_mode, 'ro');
  });

  test('a read-only volume stays read-only for the guest after a refresh (data.access_mode ro, attach_mode ro)', async () => {
    const s = await env.seed({ readonly: true });
    assert.equal((s.oldInfo as any).data.access_mode, 'ro');
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
    const atts = env.cloud.attachmentsOf(s.volumeId);
    assert.deepEqual(
      atts.map((a) => [a.id, a.status, a.attach_mode]),
      [[r.new_attachment_id, 'attached', 'ro']],
    );
    const stored = JSON.parse((await env.dumpRows(s.instanceUuid)).bdms[0]!.connection_info!);
    assert.equal(stored.data.access_mode, 'ro', "the guest's mode");
  });
});

describe('connection_info as Cinder returns it', () => {
  test('flattened driver data with qos_specs, access_mode, encrypted, cacheable and attachment_id; enforce_multipath from 2025.1', async () => {
    const s = await env.seed();
    const att = (await cinder('GET', `/attachments/${s.oldAttachmentId}`)).body.attachment;
    assert.deepEqual(Object.keys(att).sort(), [
      'attach_mode',
      'attached_at',
      'connection_info',
      'detached_at',
      'id',
      'instance',
      'status',
      'volume_id',
    ]);
    const ci = att.connection_info;
    assert.equal(ci.attachment_id, s.oldAttachmentId);
    assert.equal(ci.driver_volume_type, 'rbd');
    assert.equal(ci.qos_specs, null);
    assert.equal(ci.access_mode, 'rw');
    assert.equal(ci.encrypted, false);
    assert.equal(ci.cacheable, false);
    assert.ok(!('enforce_multipath' in ci), 'zed has no enforce_multipath');
    assert.ok(!('data' in ci), 'flattened');
    // Nova's copy differs from Cinder's only by the keys each adds: a fresh seed is not stale by the Cinder rules.
    const audit = await env.refresh({ bdm_uuid: s.bdm.uuid, expect: undefined, _ansible_check_mode: true });
    assert.equal(audit.stale, false, JSON.stringify(audit.stale_reasons));

    env.cloud.release = '2025.1';
    try {
      const n = await env.seed();
      const r = await env.refresh({ bdm_uuid: n.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
      const fresh = env.cloud.attachments.get(String(r.new_attachment_id))!;
      assert.equal(fresh.connection_info!.enforce_multipath, false);
      const stored = JSON.parse((await env.dumpRows(n.instanceUuid)).bdms[0]!.connection_info!);
      assert.equal(stored.data.enforce_multipath, false, 'Nova keeps it in data, like every key but attachment_id and driver_volume_type');
      const again = await env.refresh({ bdm_uuid: n.bdm.uuid });
      assert.equal(again.changed, false, 'idempotent on the newer Cinder');
    } finally {
      env.cloud.release = 'zed';
    }
  });

  test("iSCSI: Nova's device_path is not a difference; a changed portal is", async () => {
    const iscsi = await env.seed({ template: ISCSI_CHAP_CONNECTION_INFO });
    assert.match(
      String((iscsi.oldInfo as any).data.device_path),
      /^\/dev\/disk\/by-path\/ip-192\.0\.2\.50:3260-iscsi-/,
      'the seeded BDM has what os-brick adds',
    );
    let r = await env.refresh({ bdm_uuid: iscsi.bdm.uuid, expect: undefined, _ansible_check_mode: true });
    assert.equal(r.stale, false, JSON.stringify(r.stale_reasons));
    (env.cloud.attachments.get(iscsi.oldAttachmentId)!.connection_info as Record<string, unknown>).target_portal = '192.0.2.77:3260';
    r = await env.refresh({ bdm_uuid: iscsi.bdm.uuid, expect: undefined, _ansible_check_mode: true });
    assert.deepEqual(
      (r.stale_reasons ?? []).map((x) => x.detail),
      ["Nova's connection_info differs from Cinder's attachment at data.target_portal"],
    );
  });

  test('a legacy attachment has connection_info null, a reserved one {}', async () => {
    const s = await env.seed({ legacy: true });
    const list = await cinder('GET', `/attachments/detail?volume_id=${s.volumeId}&all_tenants=1`);
    assert.deepEqual(
      list.body.attachments.map((a: any) => [a.id, a.connection_info]),
      [[s.oldAttachmentId, null]],
    );
    const reserved = await cinder('POST', '/attachments', {
      attachment: { volume_uuid: s.volumeId, instance_uuid: s.instanceUuid, connector: null },
    });
    assert.deepEqual(reserved.body.attachment.connection_info, {});
  });
});

describe('listing: all_tenants and pagination as Cinder serves them', () => {
  test('without all_tenants only the caller project; with it every project', async () => {
    const s = await env.seed();
    let r = await cinder('GET', `/attachments/detail?volume_id=${s.volumeId}&instance_id=${s.instanceUuid}`);
    assert.deepEqual(r.body.attachments, [], "the volume belongs to the instance's project, not to service");
    r = await cinder('GET', `/attachments/detail?volume_id=${s.volumeId}&instance_id=${s.instanceUuid}&all_tenants=1`);
    assert.deepEqual(
      r.body.attachments.map((a: any) => a.id),
      [s.oldAttachmentId],
    );
    r = await cinder('GET', `/attachments/detail?volume_id=${s.volumeId}&instance_id=${randomUUID()}&all_tenants=1`);
    assert.deepEqual(r.body.attachments, []);
    r = await cinder('GET', `/attachments?volume_id=${s.volumeId}&all_tenants=1`);
    assert.deepEqual(Object.keys(r.body.attachments[0]).sort(), ['id', 'instance', 'status', 'volume_id'], 'the summary view');
    r = await cinder('GET', `/attachments/detail?status=attached&volume_id=${s.volumeId}&all_tenants=1`);
    assert.deepEqual(r.body.attachments, [], 'status is no column of volume_attachment: nothing matches');
    r = await cinder('GET', `/attachments/detail?attach_status=attached&volume_id=${s.volumeId}&all_tenants=1`);
    assert.equal(r.body.attachments.length, 1);
  });

  test('limit and marker walk every attachment once, newest first; no links', async () => {
    const volumeId = randomUUID();
    env.cloud.addVolume(volumeId, { multiattach: true });
    const made: string[] = [];
    for (let i = 0; i < 7; i++) {
      // A multiattach volume takes a new reservation only once the last one is complete.
      const r = await cinder('POST', '/attachments', {
        attachment: { volume_uuid: volumeId, instance_uuid: randomUUID(), connector: null },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      made.push(r.body.attachment.id);
      await cinder('PUT', `/attachments/${r.body.attachment.id}`, { attachment: { connector: connector({ host: `h${i}` }) } });
      assert.equal(
        (await cinder('POST', '/attachments', { attachment: { volume_uuid: volumeId, instance_uuid: randomUUID(), connector: null } }))
          .status,
        400,
        'not while attaching',
      );
      await cinder('POST', `/attachments/${r.body.attachment.id}/action`, { 'os-complete': null });
      await new Promise((res) => setTimeout(res, 2));
    }
    const seen: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const r = await cinder('GET', `/attachments/detail?volume_id=${volumeId}&all_tenants=1&limit=3${marker ? `&marker=${marker}` : ''}`);
      assert.deepEqual(Object.keys(r.body), ['attachments'], 'the attachments view has no attachments_links');
      seen.push(...r.body.attachments.map((a: any) => a.id));
      if (r.body.attachments.length < 3) break;
      marker = r.body.attachments.at(-1).id;
    }
    assert.deepEqual(seen, [...made].reverse());
    assert.equal((await cinder('GET', `/attachments/detail?all_tenants=1&marker=${randomUUID()}`)).status, 404);
    assert.equal((await cinder('GET', `/attachments/detail?all_tenants=1&limit=-1`)).status, 400);
    // offset (what the audit reads side by side with): the same rows, in the same order, and after a marker.
    const byOffset: string[] = [];
    for (const offset of [0, 3, 6, 9]) {
      const r = await cinder('GET', `/attachments/detail?volume_id=${volumeId}&all_tenants=1&limit=3&offset=${offset}`);
      byOffset.push(...r.body.attachments.map((a: any) => a.id));
    }
    assert.deepEqual(byOffset, seen);
    const afterMarker = await cinder('GET', `/attachments/detail?volume_id=${volumeId}&all_tenants=1&limit=2&offset=1&marker=${seen[1]}`);
    assert.deepEqual(
      afterMarker.body.attachments.map((a: any) => a.id),
      seen.slice(3, 5),
    );
    assert.deepEqual((await cinder('GET', `/attachments/detail?all_tenants=1&offset=-1`)).body, {
      badRequest: { code: 400, message: 'offset must be >= 0' },
    });
    assert.equal((await cinder('GET', `/attachments/detail?all_tenants=1&offset=x`)).status, 400);
  });

  test('at most osapi_max_limit (1000) per page: 1003 attachments come as 1000 and 3, with no limit or a larger one, and the marker pages on', async () => {
    assert.equal(OSAPI_MAX_LIMIT, 1000, "Cinder's default osapi_max_limit");
    const volumeId = randomUUID();
    env.cloud.addVolume(volumeId, { multiattach: true });
    const made = new Set<string>();
    for (let i = 0; i < OSAPI_MAX_LIMIT + 3; i++) {
      made.add(
        env.cloud.addAttachedVolume(
          volumeId,
          randomUUID(),
          { driver_volume_type: 'rbd', data: { name: `volumes/volume-${volumeId}` } },
          false,
          `h${i % 7}`,
        ).id,
      );
    }
    const page = async (query: string) => {
      const r = await cinder('GET', `/attachments/detail?volume_id=${volumeId}&all_tenants=1${query}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return (r.body.attachments as Array<{ id: string }>).map((a) => a.id);
    };
    const unlimited = await page('');
    assert.equal(unlimited.length, 1000, 'no limit: one page of osapi_max_limit');
    const asked = await page('&limit=5000');
    assert.deepEqual(asked, unlimited, 'a larger limit is cut to osapi_max_limit');
    const rest = await page(`&limit=5000&marker=${asked.at(-1)}`);
    assert.equal(rest.length, 3, 'the marker pages on to the last 3');
    assert.deepEqual(await page(`&limit=5000&marker=${rest.at(-1)}`), [], 'and then nothing');
    const seen = [...asked, ...rest];
    assert.equal(new Set(seen).size, seen.length, 'no attachment twice');
    assert.deepEqual(new Set(seen), made, 'every attachment once');
  });
});

describe('the service-token rule (bug #2004555), decided by the service role', () => {
  async function withConf(sections: string, run: (conf: string) => Promise<void>) {
    const conf = join(env.dir, `cinder-${randomUUID().slice(0, 8)}.conf`);
    writeFileSync(conf, `[DEFAULT]\nhost = ${CONTROLLER_HOST}\n${sections}`);
    await run(conf);
  }

  test('send_service_user_token = false: the refresh goes through, since Nova maps the new attachment by the time the old one is deleted', async () => {
    await withConf(env.cloud.nova_conf_sections({ serviceUser: false }), async (conf) => {
      const s = await env.seed();
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, conf] });
      assert.equal(r.failed, undefined, String(r.msg));
      const del = env.cloud.log.filter((m) => m.method === 'DELETE' && m.path.endsWith(s.oldAttachmentId));
      assert.deepEqual(
        del.map((m) => [m.status, m.headers['x-service-token']]),
        [[200, undefined]],
      );
      assert.deepEqual(
        env.cloud.attachmentsOf(s.volumeId).map((a) => [a.id, a.status]),
        [[r.new_attachment_id, 'attached']],
      );
    });
  });

  test('send_service_user_token = false, and Nova still maps the attachment being deleted: 409 with our hint; nothing lost', async () => {
    const maps = env.cloud.novaAttachmentId;
    env.cloud.novaAttachmentId = (_i, _v, attachmentId) => attachmentId;
    try {
      await withConf(env.cloud.nova_conf_sections({ serviceUser: false }), async (conf) => {
        const s = await env.seed();
        const r = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, conf] });
        assert.equal(r.failed, true);
        assert.match(
          String(r.msg),
          /failed at cinder_delete_old: Cinder DELETE \/attachments\/\S+ failed: conflictingRequest: Detach volume from instance \S+ using the Compute API \(HTTP 409\) \(Cinder wants a service token; in nova\.conf \[service_user\], send_service_user_token must be true\)/,
        );
        const rows = await env.dumpRows(s.instanceUuid);
        // The clean-up cannot delete it either: the BDM keeps the reserved attachment, the old one stays beside it.
        assert.deepEqual(await env.danglingBdms(s.instanceUuid), []);
        assert.ok(env.cloud.attachments.has(s.oldAttachmentId));
        assert.equal(rows.instance!.locked, 0);
      });
    } finally {
      env.cloud.novaAttachmentId = maps;
    }
  });

  test('send_service_user_token = false still deletes what needs no service request: a legacy attachment', async () => {
    await withConf(env.cloud.nova_conf_sections({ serviceUser: false }), async (conf) => {
      const s = await env.seed({ legacy: true });
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: [env.fx.env.confPath, conf] });
      assert.equal(r.failed, undefined, String(r.msg));
      assert.deepEqual(
        env.cloud.attachmentsOf(s.volumeId).map((a) => a.id),
        [r.new_attachment_id],
      );
      const del = env.cloud.log.filter((m) => m.method === 'DELETE' && m.path.endsWith(s.oldAttachmentId));
      assert.deepEqual(
        del.map((m) => [m.status, m.headers['x-service-token']]),
        [[200, undefined]],
      );
    });
  });

  test('a service user without the service role, and Nova still maps the attachment: 409 and a hint about the role; with it the delete goes through', async () => {
    const roles = env.cloud.roles['nova-service'];
    const maps = env.cloud.novaAttachmentId;
    env.cloud.roles['nova-service'] = ['admin'];
    env.cloud.novaAttachmentId = (_i, _v, attachmentId) => attachmentId;
    try {
      const s = await env.seed();
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, true);
      assert.match(
        String(r.msg),
        /\(HTTP 409\) \(Cinder did not take it as a service request: the \[service_user\] user needs a role of Cinder's \[keystone_authtoken\] service_token_roles, by default service\)/,
      );
      assert.ok(env.cloud.attachments.has(s.oldAttachmentId));
      assert.deepEqual(await env.danglingBdms(s.instanceUuid), []);
    } finally {
      env.cloud.roles['nova-service'] = roles!;
      env.cloud.novaAttachmentId = maps;
    }
    const s = await env.seed();
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
  });

  test('Cinder asks Nova: an attachment Nova no longer maps may be deleted without a service token', async () => {
    const s = await env.seed();
    let r = await cinder('DELETE', `/attachments/${s.oldAttachmentId}`);
    assert.equal(r.status, 409, 'the BDM still points at it');
    await env.fx
      .cell('cell1')
      .updateTable('block_device_mapping')
      .set({ attachment_id: randomUUID() })
      .where('id', '=', s.bdm.id)
      .execute();
    r = await cinder('DELETE', `/attachments/${s.oldAttachmentId}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { attachments: [] });
    const service = await login('nova-service');
    const t = await env.seed();
    const res = await fetch(`${env.cloud.url}/volume/v3/${PROJECT}/attachments/${t.oldAttachmentId}`, {
      method: 'DELETE',
      headers: { 'X-Auth-Token': await login('nova'), 'X-Service-Token': service, 'OpenStack-API-Version': 'volume 3.44' },
    });
    assert.equal(res.status, 200, 'a service request');
  });
});

describe('reserve refused by the volume state', () => {
  test('a volume in error: Cinder answers 400 at reserve; nothing is written, the message says why', async () => {
    const s = await env.seed();
    env.cloud.volumes.get(s.volumeId)!.status = 'error';
    try {
      const before = await env.dumpRows(s.instanceUuid);
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, true);
      assert.match(
        String(r.msg),
        /failed at cinder_reserve: Cinder POST \/attachments failed: badRequest: Invalid volume: Volume attachments can not be created if the volume is in an error state.*\(HTTP 400\); the BDM and its attachment are unchanged$/,
      );
      const after = await env.dumpRows(s.instanceUuid);
      assert.deepEqual(after.bdms, before.bdms);
      assert.equal(after.instance!.locked, 0);
      assert.deepEqual(
        env.cloud.attachmentsOf(s.volumeId).map((a) => a.id),
        [s.oldAttachmentId],
      );
    } finally {
      env.cloud.volumes.get(s.volumeId)!.status = 'in-use';
    }
  });

  test('a non-multiattach volume in use by another instance cannot be reserved for ours (400)', async () => {
    const s = await env.seed();
    const r = await cinder('POST', '/attachments', {
      attachment: { volume_uuid: s.volumeId, instance_uuid: randomUUID(), connector: null },
    });
    assert.equal(r.status, 400);
    assert.match(r.body.badRequest.message, /status must be available or downloading to reserve, but the current status is in-use/);
    const ours = await cinder('POST', '/attachments', {
      attachment: { volume_uuid: s.volumeId, instance_uuid: s.instanceUuid, connector: null },
    });
    assert.equal(ours.status, 200, 'the same instance may (the refresh and migration case)');
  });
});
