import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskSecrets, MASK } from '../../src/output/mask-secrets';
import { TextScrubber } from '../../src/output/scrub-text';

test('masks secret keys at any depth, keeps identifiers of secrets and nulls', () => {
  const masked = maskSecrets({
    driver_volume_type: 'rbd',
    data: {
      auth_password: 'chap',
      discovery_auth_password: 'disc',
      keyring: 'AQB==',
      secret_uuid: '457eb676-33da-42ec-9a8c-9293d545c337',
      secret_type: 'ceph',
      auth_username: 'cinder',
      nested: [{ token: 't' }, { Password: null }],
      access_mode: 'rw',
    },
  });
  assert.deepEqual(masked, {
    driver_volume_type: 'rbd',
    data: {
      auth_password: MASK,
      discovery_auth_password: MASK,
      keyring: MASK,
      secret_uuid: '457eb676-33da-42ec-9a8c-9293d545c337',
      secret_type: 'ceph',
      auth_username: 'cinder',
      nested: [{ token: MASK }, { Password: null }],
      access_mode: 'rw',
    },
  });
});

test('free text loses URL passwords and every known secret value, as written and percent-encoded; nothing else', () => {
  const s = new TextScrubber();
  s.add('p@ss/w:rd');
  s.addSecretsOf({
    cinder_auth: { password: 'abc', application_credential_name: 'nova', username: 'cinder' },
    expect: { data: { keyring: 'AQBkey==' } },
  });
  const out = s.scrub(
    "url mysql+pymysql://nova:p%40ss%2Fw%3Ard@db/nova failed; auth_password='abc' raw p@ss/w:rd secret_uuid=1234 key AQBkey== user cinder " +
      "Access denied for user 'lab'@'127.0.0.1' (using password: YES) token=notasecret",
  );
  assert.ok(!out.includes('p%40ss'), out);
  assert.ok(!out.includes('p@ss/w:rd'), out);
  assert.ok(!out.includes('abc'), out);
  assert.ok(!out.includes('AQBkey=='), out);
  assert.ok(out.includes('secret_uuid=1234'), out);
  assert.ok(out.includes(`nova:${MASK}@db/nova`), out);
  assert.ok(out.includes('user cinder'), out);
  // MySQL's own message comes out whole; a word after "token=" that is no known secret stays.
  assert.ok(out.includes("Access denied for user 'lab'@'127.0.0.1' (using password: YES)"), out);
  assert.ok(out.includes('token=notasecret'), out);
});
