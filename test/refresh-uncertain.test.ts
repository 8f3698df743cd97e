import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RefreshEnv } from './support/refresh-env';

// A Cinder write that got no answer (the HTTP timeout struck) may still happen after the tool
// gave up: the fault matrix on the real lab found a reservation that cinder-api carried out
// once it was continued (SIGSTOP past the timeout), left as a stray beside the BDM's attachment.
// The next refresh of the BDM removes it.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

type Seeded = Awaited<ReturnType<RefreshEnv['seed']>>;

/** Refresh again: it must succeed and leave one attachment, attached, the BDM's, the instance unlocked. Returns them. */
async function refreshConverges(s: Seeded) {
  const again = await env.refresh({ bdm_uuid: s.bdm.uuid });
  assert.equal(again.failed, undefined, String(again.msg));
  const atts = env.cloud.attachmentsOf(s.volumeId);
  assert.deepEqual(
    atts.map((a) => a.status),
    ['attached'],
    'exactly one attachment, attached',
  );
  const rows = await env.dumpRows(s.instanceUuid);
  assert.equal(rows.bdms[0]!.attachment_id, atts[0]!.id);
  assert.equal(rows.instance!.locked, 0);
  return { attachment: atts[0]!, bdm: rows.bdms[0]! };
}

describe('a Cinder write without an answer', () => {
  test('reserve answered after the timeout: the next run removes the late reservation', async () => {
    const s = await env.seed();
    // The stand-in holds the POST for 2.5 s, then creates the attachment anyway; the tool waits 1 s.
    env.cloud.failNext('POST', /\/attachments$/, 0, 1, 2500);
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, cinder_auth: { timeout: 1 } });
      assert.equal(r.failed, true);
      assert.match(String(r.msg), /failed at cinder_reserve: cannot reach \S+: timed out/);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(env.cloud.attachmentsOf(s.volumeId).length, 2, 'the late reservation exists beside the BDM attachment');
    } finally {
      env.cloud.clearFaults();
    }
    await refreshConverges(s);
  });

  test('a clean-up that could not finish: the BDM names a deleted attachment, a connected one is left attaching; the next run reconciles first', async () => {
    // What the interop fault matrix's "lock wait at save_bdm" leaves: the run deleted the old
    // attachment, connected the new one, then neither save_bdm nor the clean-up could write the BDM.
    const s = await env.seed();
    const connected = env.cloud.addAttachedVolume(
      s.volumeId,
      s.instanceUuid,
      { driver_volume_type: 'rbd', name: `volumes/volume-${s.volumeId}`, hosts: ['198.51.100.21'], ports: ['6789'] },
      false,
      env.host,
    );
    connected.status = 'attaching';
    env.cloud.volumes.get(s.volumeId)!.status = 'attaching';
    env.cloud.attachments.delete(s.oldAttachmentId);
    const { bdm } = await refreshConverges(s);
    assert.equal(JSON.parse(String(bdm.connection_info)).data.hosts[0], '198.51.100.21');
  });

  test('a cinder-api that died inside the PUT: the BDM names an attachment left attaching with no connection_info; the next run completes it, then refreshes', async () => {
    // What the fleet fault matrix's "cinder-api SIGKILL before PUT" left on the real lab: an
    // earlier run deleted the old attachment and pointed the BDM (connection_info cleared) at its
    // reservation; cinder-volume then took the PUT (attaching, connector) and cinder-api died
    // before saving the connection_info. Cinder reserves nothing for an `attaching` volume.
    const s = await env.seed();
    const left = env.cloud.attachments.get(s.oldAttachmentId)!;
    left.status = 'attaching';
    left.connection_info = {};
    env.cloud.volumes.get(s.volumeId)!.status = 'attaching';
    await env.fx.cell('cell1').updateTable('block_device_mapping').set({ connection_info: null }).where('id', '=', s.bdm.id).execute();
    const { attachment, bdm } = await refreshConverges(s);
    assert.notEqual(attachment.id, s.oldAttachmentId, 'a new attachment replaced the one left attaching');
    assert.deepEqual(JSON.parse(String(bdm.connection_info)).data.hosts, RefreshEnv.EXPECT_NEW_MONITORS.data.hosts);
  });

  test('a cinder-api that died inside os-complete: the attachment attached, the volume left attaching; the next run completes it again, then refreshes', async () => {
    // What the fleet fault matrix's "cinder-api SIGKILL before POST os-complete" left on the real
    // lab: os-complete saves the attachment, then the volume (cinder/api/v3/attachments.py
    // complete), and cinder-api died between the two. Cinder reserves nothing for an `attaching` volume.
    const s = await env.seed();
    env.cloud.volumes.get(s.volumeId)!.status = 'attaching';
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
    const steps = (r.steps ?? []).map((x) => x.step);
    const completed = steps.indexOf('cinder_complete_pending');
    assert.ok(completed >= 0 && completed < steps.indexOf('cinder_reserve'), `completed again before the reserve: ${steps.join(' ')}`);
    assert.equal(env.cloud.volumes.get(s.volumeId)!.status, 'in-use');
    await refreshConverges(s);
  });
});
