import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { OpenStackHttp } from '../../src/cinder/http';
import { FAILED_AUTH_HOLD_MS, TokenSource } from '../../src/cinder/keystone';

// Keystone down: one authentication spends its connect retries; the callers after it within
// FAILED_AUTH_HOLD_MS get the same error without a request (a fleet fails in seconds, not
// after a round of retries per BDM), and a caller after that tries again.

test('a failed authentication is shared for FAILED_AUTH_HOLD_MS, then tried again', async () => {
  let connections = 0;
  const server = createServer((s) => {
    connections++;
    s.destroy(); // a Keystone that drops every connection
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  let now = 1_000_000;
  const source = new TokenSource(
    new OpenStackHttp({ insecure: false, timeoutSeconds: 5, connectRetries: 1 }),
    {
      authType: 'v3password',
      authUrl: `http://127.0.0.1:${port}/v3`,
      username: 'nova',
      password: 'pw-not-shown',
      userDomainName: 'Default',
      projectName: 'service',
      projectDomainName: 'Default',
    },
    '[cinder]',
    () => now,
  );
  try {
    const first = await source.get().then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(first instanceof Error);
    assert.equal(connections, 2, 'the first caller: one attempt and its one retry');
    for (let i = 0; i < 20; i++) {
      now += 1000;
      const again = await source.get().then(
        () => undefined,
        (e: Error) => e,
      );
      assert.equal(again, first, 'the same error, at once');
    }
    assert.equal(connections, 2, 'no request while the failure is held');
    now += FAILED_AUTH_HOLD_MS;
    await source.get().catch(() => undefined);
    assert.equal(connections, 4, 'after the hold: tried again, with its retry');
  } finally {
    await new Promise((r) => server.close(r));
  }
});
