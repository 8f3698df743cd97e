import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { execute } from '../src/entry/run';
import { resultOf } from './support/results';
import { OSAPI_MAX_LIMIT } from './support/fake-openstack';
import { RefreshEnv } from './support/refresh-env';

// audit with check_cinder reads Cinder in bulk: the attachments list (detail, all_tenants,
// limit/marker) and the volumes list (all_tenants, next links) once, then judges every BDM from
// them; only an attachment the listing did not return is asked for alone. With cinder_concurrency
// above 3 the pages of each list are read side by side, by offset.

describe('audit check_cinder in bulk', () => {
  let env: RefreshEnv;
  before(async () => {
    env = await RefreshEnv.start();
  });
  after(async () => {
    await env?.stop();
  });

  test('two listings paged to the end, one GET pair only for the attachment Cinder no longer has; same verdicts as one by one', async () => {
    // Other projects' volumes and attachments: more than two pages of each, so paging is needed.
    const others = 2 * OSAPI_MAX_LIMIT + 7;
    for (let i = 0; i < others; i++) {
      const volumeId = randomUUID();
      env.cloud.addVolume(volumeId, { project_id: `other-${i % 3}` });
      env.cloud.addAttachedVolume(
        volumeId,
        randomUUID(),
        { driver_volume_type: 'rbd', data: { name: `volumes/volume-${volumeId}` } },
        false,
        `other-host-${i % 5}`,
      );
    }
    const ok = await env.seed();
    const reserved = await env.seed();
    env.cloud.attachments.get(reserved.oldAttachmentId)!.status = 'reserved';
    const gone = await env.seed();
    env.cloud.attachments.delete(gone.oldAttachmentId);
    const moved = await env.seed();
    env.cloud.attachments.get(moved.oldAttachmentId)!.attached_host = 'some-other-compute';
    const mine = [ok, reserved, gone, moved];

    const logged = env.cloud.log.length;
    const r = resultOf(
      await execute({
        action: 'audit',
        config_file: [env.fx.env.confPath, env.extraConf],
        instance_uuids: mine.map((s) => s.instanceUuid),
        check_cinder: true,
        cinder_concurrency: 2,
      }),
      'audit',
    );
    assert.equal(r.failed, undefined, String(r.msg));
    const byBdm = new Map(r.stale.map((x) => [x.bdm_uuid, x.reasons]));
    assert.equal(byBdm.has(ok.bdm.uuid), false);
    assert.deepEqual(byBdm.get(reserved.bdm.uuid), ['attachment_not_attached']);
    assert.deepEqual(byBdm.get(gone.bdm.uuid), ['attachment_missing']);
    assert.deepEqual(byBdm.get(moved.bdm.uuid), ['attachment_host_mismatch']);

    const requests = env.cloud.log.slice(logged).filter((l) => l.path.includes('/volume/v3/'));
    const paths = requests.map((l) => `${l.method} ${l.path.replace(/^.*\/volume\/v3\/[^/]+/, '').split('?')[0]}`);
    const total = others + mine.length;
    const pages = Math.floor(total / OSAPI_MAX_LIMIT) + 1;
    assert.equal(paths.filter((p) => p === 'GET /attachments/detail').length, pages);
    assert.equal(paths.filter((p) => p === 'GET /volumes/detail').length, pages);
    // Only the attachment that is gone is looked up alone (its attachment and its volume).
    assert.deepEqual(paths.filter((p) => !p.endsWith('/detail')).sort(), [
      `GET /attachments/${gone.oldAttachmentId}`,
      `GET /volumes/${gone.volumeId}`,
    ]);
    for (const l of requests.filter((x) => x.path.includes('/attachments/detail'))) assert.match(l.path, /[?&]all_tenants=1(&|$)/);
    assert.equal(r.totals.cinder_requests, requests.length);

    // Side by side (cinder_concurrency 8: 4 pages of each list in flight), by offset: the same
    // verdicts, every page read, and past the end only the few asked for before the last came back.
    const logged8 = env.cloud.log.length;
    const r8 = resultOf(
      await execute({
        action: 'audit',
        config_file: [env.fx.env.confPath, env.extraConf],
        instance_uuids: mine.map((s) => s.instanceUuid),
        check_cinder: true,
        cinder_concurrency: 8,
      }),
      'audit',
    );
    assert.equal(r8.failed, undefined, String(r8.msg));
    assert.deepEqual(new Map(r8.stale.map((x) => [x.bdm_uuid, x.reasons])), byBdm);
    const requests8 = env.cloud.log.slice(logged8).filter((l) => l.path.includes('/volume/v3/'));
    for (const list of ['/attachments/detail', '/volumes/detail']) {
      const offsets = requests8
        .filter((l) => l.path.split('?')[0]!.endsWith(list))
        .map((l) => Number(new URLSearchParams(l.path.split('?')[1]).get('offset') ?? 0));
      assert.equal(new Set(offsets).size, offsets.length, `${list}: no page read twice`);
      for (let k = 0; k < pages; k++)
        assert.ok(offsets.includes(k * OSAPI_MAX_LIMIT), `${list}: page at offset ${k * OSAPI_MAX_LIMIT} (${offsets})`);
      assert.ok(offsets.length <= pages + 4, `${list}: ${offsets.length} requests for ${pages} pages`);
      assert.ok(requests8.filter((l) => l.path.includes(list)).every((l) => !l.path.includes('marker=')));
    }
    assert.equal(r8.totals.cinder_requests, requests8.length);
  });
});
