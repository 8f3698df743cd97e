import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RefreshEnv } from './support/refresh-env';

// A Cinder write that got no answer (the HTTP timeout struck) may still happen after the tool
// gave up: the fault matrix on the real lab found a reservation that cinder-api carried out
// once it was continued (SIGSTOP past the timeout), left as a stray beside the BDM's attachment.
// Such a run keeps the instance locked, so the next run recovers from Cinder's view.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

describe('a Cinder write without an answer', () => {
  test('reserve answered after the timeout: the instance stays locked, the next run removes the late reservation', async () => {
    const s = await env.seed();
    // The stand-in holds the POST for 2.5 s, then creates the attachment anyway; the tool waits 1 s.
    env.cloud.failNext('POST', /\/attachments$/, 0, 1, 2500);
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, cinder_auth: { timeout: 1 } });
      assert.equal(r.failed, true);
      assert.match(String(r.msg), /failed at cinder_reserve: .*timed out; Cinder gave no answer to cinder_reserve, so whether it happened is unknown; the BDM and its attachment are unchanged; the instance stays locked: run refresh again to recover$/);
      assert.equal(r.remains, String(r.msg).slice(String(r.msg).indexOf('Cinder gave no answer')));
      const rows = await env.dumpRows(s.instanceUuid);
      assert.equal(rows.instance!.locked, 1, 'still locked by the refresh');
      assert.ok(rows.sysmeta.some((m) => m.key === 'locked_reason' && /^Refreshing connection_info for BDM/.test(String(m.value))));
      await new Promise((resolve) => setTimeout(resolve, 2000));
      assert.equal(env.cloud.attachmentsOf(s.volumeId).length, 2, 'the late reservation exists beside the BDM attachment');
    } finally {
      env.cloud.clearFaults();
    }
    const again = await env.refresh({ bdm_uuid: s.bdm.uuid });
    assert.equal(again.failed, undefined, String(again.msg));
    assert.ok(again.recovered, 'the next run recovered first');
    const atts = env.cloud.attachmentsOf(s.volumeId);
    assert.deepEqual(atts.map((a) => a.status), ['attached'], 'exactly one attachment, attached');
    const rows = await env.dumpRows(s.instanceUuid);
    assert.equal(rows.bdms[0]!.attachment_id, atts[0]!.id);
    assert.equal(rows.instance!.locked, 0);
  });

  test('a failure before the lock says nothing was changed', async () => {
    const s = await env.seed();
    env.cloud.failNext('GET', /\/attachments\//, 503);
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, true);
      assert.equal(r.remains, 'nothing was changed (the instance was not locked)');
      assert.equal((await env.dumpRows(s.instanceUuid)).actions.length, 0);
    } finally {
      env.cloud.clearFaults();
    }
  });
});
