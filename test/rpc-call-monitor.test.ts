import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { OsloRpcClient } from '../src/rpc/oslo-rpc-client';
import { FakeCompute } from './support/fake-compute';
import { RefreshEnv } from './support/refresh-env';

// oslo.messaging's call monitor on the real RabbitMQ: the stand-in compute sends heartbeats
// only for a call with `_timeout` (every _timeout/2 s while the method runs), and our client
// keeps waiting on them, fails when they stop, and still honours the overall timeout.

let compute: FakeCompute;
let client: OsloRpcClient;
const host = `nbs-rpc-${randomUUID().slice(0, 8)}`;

before(async () => {
  compute = await FakeCompute.start(host);
  client = await OsloRpcClient.connect(
    {
      transport: { brokers: [{ host: '127.0.0.1', port: 5672, username: 'guest', password: 'guest' }], virtualHost: '/', query: {} },
      exchange: 'nova',
      durable: false,
      autoDelete: false,
      heartbeatSeconds: 60,
      transientQueuesTtlSeconds: 1800,
      haQueues: false,
    },
    5000,
  );
});
after(async () => {
  await client.close();
  await compute.destroy();
});

async function call(timeoutSeconds: number, callMonitorSeconds: number | null) {
  const started = Date.now();
  try {
    const result = await client.call(
      `compute.${host}`,
      { method: 'remove_volume_connection', args: { volume_id: randomUUID() }, version: '6.0' },
      { is_admin: true },
      { timeoutSeconds, callMonitorSeconds },
    );
    return { ok: true as const, result, at: Date.now(), seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    return { ok: false as const, error: (err as Error).message, at: Date.now(), seconds: (Date.now() - started) / 1000 };
  }
}

describe('without the call monitor (_timeout null, rpc_response_timeout <= 60)', () => {
  test('no heartbeats; a compute slower than the timeout fails the call at the timeout', async () => {
    compute.behaviour = { kind: 'slow', seconds: 3 };
    const r = await call(1.5, null);
    assert.equal(r.ok, false);
    assert.match(String(r.error), /^timed out after 1\.5 s waiting for a reply to message ID [0-9a-f]{32}$/);
    assert.ok(r.seconds >= 1.4 && r.seconds < 2.5, `${r.seconds} s`);
    const c = compute.calls.at(-1)!;
    assert.equal(c.inner._timeout, null);
    assert.equal(c.heartbeats, 0);
  });

  test('a compute within the timeout: the reply comes after the method finished', async () => {
    compute.behaviour = { kind: 'slow', seconds: 2 };
    const r = await call(5, null);
    assert.equal(r.ok, true, r.ok ? '' : r.error);
    const c = compute.calls.at(-1)!;
    assert.equal(c.heartbeats, 0);
    assert.ok(c.finishedAt && r.at >= c.finishedAt, 'not before the compute was done');
  });
});

describe('with the call monitor (_timeout N: heartbeats every N/2 s)', () => {
  test('a compute slower than the call-monitor timeout keeps the call alive with heartbeats; the reply is the final one', async () => {
    compute.behaviour = { kind: 'slow', seconds: 3.5 };
    const r = await call(8, 2);
    assert.equal(r.ok, true, r.ok ? '' : r.error);
    const c = compute.calls.at(-1)!;
    assert.equal(c.inner._timeout, 2);
    assert.ok(c.heartbeats >= 3, `${c.heartbeats} heartbeats`);
    assert.ok(c.finishedAt && r.at >= c.finishedAt, 'did not return on a heartbeat');
    assert.ok(r.seconds >= 3.4, `${r.seconds} s`);
  });

  test('a compute slower than the overall timeout still fails at the overall timeout, heartbeats or not', async () => {
    compute.behaviour = { kind: 'hang' };
    const r = await call(3, 2);
    assert.equal(r.ok, false);
    assert.match(String(r.error), /^timed out after 3 s/);
    assert.ok(r.seconds >= 2.9 && r.seconds < 4, `${r.seconds} s`);
    assert.ok(compute.calls.at(-1)!.heartbeats >= 2);
  });

  test('a compute that took the message and died: the call fails when the heartbeats stop, long before the overall timeout', async () => {
    compute.behaviour = { kind: 'silent' };
    const r = await call(30, 2);
    assert.equal(r.ok, false);
    assert.match(String(r.error), /^no heartbeat from the compute for 2 s \(message ID [0-9a-f]{32}\)$/);
    assert.ok(r.seconds >= 1.9 && r.seconds < 4, `${r.seconds} s`);
  });

  test('a call-monitor timeout below 2 s gets no heartbeats (oslo: interval < 1 s is ignored)', async () => {
    compute.behaviour = { kind: 'slow', seconds: 1.5 };
    const r = await call(5, 1);
    assert.equal(r.ok, true, r.ok ? '' : r.error);
    assert.equal(compute.calls.at(-1)!.heartbeats, 0);
  });
});

describe('through refresh', () => {
  let env: RefreshEnv;
  before(async () => {
    env = await RefreshEnv.start();
  });
  after(() => env.stop());

  test('rpc_timeout 60 sends _timeout null; above 60 the call monitor is 60 (nova rpc.HEARTBEAT_THRESHOLD)', async () => {
    let s = await env.seed();
    let r = await env.refresh({ bdm_uuid: s.bdm.uuid, rpc_timeout: 60 });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(env.compute.calls.at(-1)!.inner._timeout, null);
    assert.equal(env.compute.calls.at(-1)!.properties.expiration, '60000');
    s = await env.seed();
    r = await env.refresh({ bdm_uuid: s.bdm.uuid, rpc_timeout: 180 });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(env.compute.calls.at(-1)!.inner._timeout, 60);
    assert.equal(env.compute.calls.at(-1)!.properties.expiration, '180000');
  });

  test('a compute slower than rpc_timeout: the refresh fails at the RPC and leaves the BDM and its attachment as they were', async () => {
    const s = await env.seed();
    env.compute.behaviour = { kind: 'slow', seconds: 3 };
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid, rpc_timeout: 1.5 });
      assert.equal(r.failed, true);
      assert.match(String(r.msg), /failed at rpc_remove_volume_connection: timed out after 1\.5 s/);
      const rows = await env.dumpRows(s.instanceUuid);
      assert.equal(rows.bdms[0]!.attachment_id, s.oldAttachmentId);
      assert.equal(rows.instance!.locked, 0);
      assert.deepEqual(
        env.cloud.attachmentsOf(s.volumeId).map((a) => [a.id, a.status]),
        [[s.oldAttachmentId, 'attached']],
      );
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
  });
});
