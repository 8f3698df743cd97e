import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CinderClient, CinderSession } from '../src/cinder/cinder-client';
import { OpenStackHttp } from '../src/cinder/http';
import { execute } from '../src/entry/run';
import { resultOf } from './support/results';
import { USERS } from './support/fake-openstack';
import { RefreshEnv } from './support/refresh-env';

// Tokens that expire: the stand-in Keystone issues them with expires_at and expires them on
// command, the stand-in Cinder refuses them like keystonemiddleware; our client renews a token
// before it expires and authenticates again, once, after a 401.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

function session(): CinderSession {
  const creds = (username: string, password: string) => ({
    authType: 'password',
    authUrl: `${env.cloud.url}/identity`,
    username,
    password,
    userDomainName: 'Default',
    projectName: 'service',
    projectDomainName: 'Default',
  });
  return new CinderSession(new OpenStackHttp({ insecure: false, timeoutSeconds: 10, connectRetries: 0 }), {
    auth: creds('nova', USERS.nova),
    serviceAuth: creds('nova-service', USERS['nova-service']),
    catalogInfo: 'volumev3::publicURL',
    regionName: 'RegionOne',
  });
}

const issued = () => ({ nova: env.cloud.tokensIssued('nova'), service: env.cloud.tokensIssued('nova-service') });
const unauthorized = (from: number) => env.cloud.log.slice(from).filter((m) => m.status === 401 && m.path.startsWith('/volume'));

describe('the stand-in Keystone and keystonemiddleware', () => {
  test('tokens carry expires_at; an expired token is refused with 401; a valid service token with the service role lets an expired user token through', async () => {
    const s = await env.seed();
    const login = await fetch(`${env.cloud.url}/identity/v3/auth/tokens`, {
      method: 'POST',
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: 'nova', domain: { name: 'Default' }, password: USERS.nova } } },
        },
      }),
    });
    const body = (await login.json()) as { token: { expires_at: string; issued_at: string } };
    assert.match(body.token.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal(Date.parse(body.token.expires_at) - Date.parse(body.token.issued_at), 3600_000);
    const token = login.headers.get('x-subject-token')!;
    const get = (headers: Record<string, string>) =>
      fetch(`${env.cloud.url}/volume/v3/8c3f2a51b3a84b6a9f0f1e2d3c4b5a69/attachments/${s.oldAttachmentId}`, {
        headers: { 'OpenStack-API-Version': 'volume 3.44', ...headers },
      });
    assert.equal((await get({ 'X-Auth-Token': token })).status, 200);
    env.cloud.expireTokens('nova');
    const refused = await get({ 'X-Auth-Token': token });
    assert.equal(refused.status, 401);
    assert.deepEqual(await refused.json(), {
      error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' },
    });
    assert.match(String(refused.headers.get('www-authenticate')), /^Keystone uri=/);
    const service = await fetch(`${env.cloud.url}/identity/v3/auth/tokens`, {
      method: 'POST',
      body: JSON.stringify({
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: 'nova-service', domain: { name: 'Default' }, password: USERS['nova-service'] } },
          },
        },
      }),
    });
    const serviceToken = service.headers.get('x-subject-token')!;
    assert.equal((await get({ 'X-Auth-Token': token, 'X-Service-Token': serviceToken })).status, 200, 'allow_expired with a service token');
    env.cloud.expireTokens('nova-service');
    assert.equal(
      (await get({ 'X-Auth-Token': token, 'X-Service-Token': serviceToken })).status,
      401,
      'an invalid service token is refused',
    );
  });
});

describe('our client', () => {
  test('keeps one token while it is fresh, renews it before it expires (120 s margin), without a 401', async () => {
    const s = await env.seed();
    const client = new CinderClient(session(), `req-${randomUUID()}`);
    const before = issued();
    const log = env.cloud.log.length;
    await client.getAttachment(s.oldAttachmentId);
    await client.getAttachment(s.oldAttachmentId);
    assert.equal(issued().nova - before.nova, 1, 'one token for both calls');

    env.cloud.tokenLifetimeSeconds = 121.5;
    try {
      const short = new CinderClient(session(), `req-${randomUUID()}`);
      const start = issued().nova;
      await short.getAttachment(s.oldAttachmentId);
      assert.equal(issued().nova - start, 1);
      await new Promise((r) => setTimeout(r, 1600)); // now less than 120 s are left
      await short.getAttachment(s.oldAttachmentId);
      assert.equal(issued().nova - start, 2, 'renewed before use');
    } finally {
      env.cloud.tokenLifetimeSeconds = 3600;
    }
    assert.deepEqual(unauthorized(log), [], 'never sent a token Cinder had to refuse');
  });

  test('a 401 makes it authenticate again once and retry; a second 401 fails with a clear message', async () => {
    const s = await env.seed();
    const client = new CinderClient(session(), `req-${randomUUID()}`);
    await client.getAttachment(s.oldAttachmentId);
    const before = issued();
    env.cloud.expireTokens();
    const got = await client.getAttachment(s.oldAttachmentId);
    assert.equal(got?.id, s.oldAttachmentId);
    assert.equal(issued().nova - before.nova, 1);

    const log = env.cloud.log.length;
    env.cloud.failNext('GET', /\/attachments\//, 401, 3);
    try {
      await assert.rejects(
        client.getAttachment(s.oldAttachmentId),
        /^OpenStackHttpError: Cinder GET \/attachments\/\S+ failed: error: The request you have made requires authentication\. \(HTTP 401\)$/,
      );
      assert.equal(
        env.cloud.log.slice(log).filter((m) => m.method === 'GET' && m.path.includes('/attachments/')).length,
        2,
        'one retry, not a loop',
      );
    } finally {
      env.cloud.clearFaults();
    }
  });

  test('a refresh spanning an expiry: both tokens expire as the DELETE arrives; it is refused once, both are renewed, the refresh completes', async () => {
    const s = await env.seed();
    const before = issued();
    const log = env.cloud.log.length;
    let expired = false;
    env.cloud.onRequest = (method) => {
      if (method === 'DELETE' && !expired) {
        expired = true;
        env.cloud.expireTokens();
      }
    };
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
      assert.deepEqual(
        env.cloud.attachmentsOf(s.volumeId).map((a) => [a.id, a.status]),
        [[r.new_attachment_id, 'attached']],
      );
      assert.equal((await env.dumpRows(s.instanceUuid)).bdms[0]!.attachment_id, r.new_attachment_id);
    } finally {
      env.cloud.onRequest = undefined;
    }
    assert.deepEqual(
      unauthorized(log).map((m) => m.method),
      ['DELETE'],
    );
    const deletes = env.cloud.log.slice(log).filter((m) => m.method === 'DELETE' && m.path.endsWith(s.oldAttachmentId));
    assert.deepEqual(
      deletes.map((m) => m.status),
      [401, 200],
    );
    assert.notEqual(deletes[0]!.headers['x-auth-token'], deletes[1]!.headers['x-auth-token']);
    assert.notEqual(deletes[0]!.headers['x-service-token'], deletes[1]!.headers['x-service-token']);
    assert.equal(env.cloud.tokenUser(deletes[1]!.headers['x-service-token']), 'nova-service');
    assert.deepEqual({ nova: issued().nova - before.nova, service: issued().service - before.service }, { nova: 2, service: 2 });
  });

  test('the user token expires during the RPC: the DELETE passes on the service token (allow_expired), the PUT renews the user token alone', async () => {
    const s = await env.seed();
    const log = env.cloud.log.length;
    env.compute.onCall = () => env.cloud.expireTokens('nova');
    try {
      const r = await env.refresh({ bdm_uuid: s.bdm.uuid });
      assert.equal(r.failed, undefined, String(r.msg));
    } finally {
      env.compute.onCall = undefined;
    }
    const after = env.cloud.log.slice(log).filter((m) => m.path.startsWith('/volume/v3') && m.method !== 'GET');
    const seq = after.map((m) => `${m.method} ${m.status}`);
    assert.deepEqual(seq.slice(-2), ['PUT 200', 'POST 204']);
    seq.forEach((x, i) => {
      if (x.endsWith(' 401'))
        assert.equal(
          seq[i + 1],
          `${x.split(' ')[0]} ${x.startsWith('DELETE') ? 200 : x.startsWith('PUT') ? 200 : seq[i + 1]!.split(' ')[1]}`,
          `one retry after ${x}: ${seq.join(', ')}`,
        );
    });
    assert.ok(!seq.some((x) => x === 'DELETE 401'), `the DELETE passed on the service token: ${seq.join(', ')}`);
    const refreshLogins = env.cloud.log
      .slice(log)
      .filter((m) => m.method === 'POST' && m.path.endsWith('/auth/tokens'))
      .map((m) => (m.body as any).auth.identity.password.user.name);
    assert.deepEqual(
      refreshLogins.filter((u) => u === 'nova-service').length,
      1,
      'the service token was fetched once (first DELETE) and not renewed',
    );
  });

  test('an audit with the Cinder rules spanning an expiry checks every BDM', async () => {
    const seeded = await Promise.all([1, 2, 3, 4, 5, 6].map(() => env.seed()));
    const last = seeded.at(-1)!;
    env.cloud.attachments.get(last.oldAttachmentId)!.status = 'reserved'; // only Cinder can tell this one is stale
    // The audit lists Cinder in bulk: the tokens expire as its first Cinder request arrives.
    let gets = 0;
    env.cloud.onRequest = (method, path) => {
      if (method === 'GET' && path.startsWith('/volume/v3/') && ++gets === 1) env.cloud.expireTokens();
    };
    const before = issued();
    try {
      const r = resultOf(
        await execute({
          action: 'audit',
          config_file: [env.fx.env.confPath, env.extraConf],
          instance_uuids: seeded.map((s) => s.instanceUuid),
          check_cinder: true,
          cinder_concurrency: 2,
        }),
        'audit',
      );
      assert.equal(r.failed, undefined, String(r.msg));
      assert.deepEqual(
        r.stale.map((x) => [x.bdm_uuid, x.reasons]),
        [[last.bdm.uuid, ['attachment_not_attached']]],
        'every BDM checked, none misreported for a refused token',
      );
      assert.equal(r.totals.cells.find((c) => c.name === 'cell1')?.scanned, 6);
    } finally {
      env.cloud.onRequest = undefined;
    }
    assert.ok(gets > 2, 'the expiry fell in the middle of the run');
    assert.equal(issued().nova - before.nova, 2, 'one login, one renewal shared by the concurrent calls');
  });
});
