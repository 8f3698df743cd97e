import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, ftruncateSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expectationMismatch } from '../../src/actions/rules/staleness';
import { loadConnector } from '../../src/args/connector-file';
import { loadNovaConf } from '../../src/config/nova-conf';
import { maskSecrets, MASK } from '../../src/output/mask-secrets';
import { TextScrubber } from '../../src/output/scrub-text';
import { execute } from '../../src/entry/run';
import { answer } from '../support/results';

// The bugs the hostile-input fuzz found, each pinned by a direct test (fast, no database).

test('a JSON "__proto__" key is an unsupported parameter, not a way to smuggle options in', async () => {
  const result = answer(
    await execute(
      JSON.parse('{"__proto__": {"action": "show", "bdm_uuid": "5f0c4a3e-0000-4000-8000-000000000001"}, "config_file": "/nonexistent"}'),
    ),
  );
  assert.equal(result.failed, true);
  assert.match(String(result.msg), /^Unsupported parameters for \(osops\.nova\.bdm\) module: __proto__\. /);
});

test('thousands of bad values: a short msg naming the first problems, not one line per item', async () => {
  const result = answer(
    await execute({
      action: 'audit',
      instance_uuids: Array(5000).fill('h'),
      cinder_auth: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i])),
      [`${'x'.repeat(100_000)}`]: 1,
    }),
  );
  assert.ok(String(result.msg).length < 3000, String(result.msg).slice(0, 300));
  const r2 = answer(
    await execute({ action: 'audit', cinder_auth: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i])) }),
  );
  assert.match(String(r2.msg), /^cinder_auth has an unsupported key: k0; .*; and 4995 more problems$/);
});

test('a FIFO, a directory or a 1 GB file as nova.conf or connector: refused at once, never read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbh-found-'));
  try {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const big = join(dir, 'big');
    const fd = openSync(big, 'w');
    ftruncateSync(fd, 1024 ** 3);
    closeSync(fd);
    assert.throws(() => loadNovaConf([fifo]), /^BadInput: cannot read config file \S+fifo: it is a FIFO, not a regular file$/);
    assert.throws(() => loadNovaConf([dir]), /it is a directory, not a regular file$/);
    assert.throws(() => loadNovaConf([big]), /it is 1073741824 bytes, more than the 16777216 this file may have$/);
    assert.throws(() => loadConnector(undefined, fifo), /^ConnectorUnreadable: Failed to open \S+: it is a FIFO, not a regular file$/);
    assert.throws(() => loadConnector(undefined, big), /more than the 1048576/);
    assert.throws(() => loadConnector(undefined, `${dir}/a\0b`), /^ConnectorMissing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an expectation mismatch never echoes a stored keyring, and keeps a 10 MB value short', () => {
  const stored = { driver_volume_type: 'rbd', data: { keyring: 'AQBsecretkeyring==', name: 'x'.repeat(10_000_000) } };
  const detail = String(expectationMismatch(stored, { data: 'x' }));
  assert.ok(!detail.includes('AQBsecretkeyring'), detail.slice(0, 300));
  assert.ok(detail.length < 1000, `${detail.length} characters`);
  assert.match(detail, /^data is \{"keyring":"\*{8}","name":"x+\.\.\. \(100000\d\d characters\), expected "x"$/);
});

test('masking keeps a "__proto__" key (masked) instead of making it the prototype', () => {
  const masked = maskSecrets(JSON.parse('{"__proto__": {"keyring": "k1"}, "data": {"auth_password": "chap1"}}'));
  assert.equal(JSON.stringify(masked), `{"__proto__":{"keyring":"${MASK}"},"data":{"auth_password":"${MASK}"}}`);
  assert.equal(Object.getPrototypeOf(masked), Object.prototype);
});

test('a secret with continuation lines (oslo.config) is hidden line by line too', () => {
  const s = new TextScrubber();
  s.add('first-part-pw\ncontinued-pw');
  assert.equal(s.scrub('db nova_api first-part-pw at x; continued-pw'), `db nova_api ${MASK} at x; ${MASK}`);
});

test('a secret value with a lone surrogate (no URL form) is still scrubbed, and execute still answers', async () => {
  const s = new TextScrubber();
  s.add('pw\ud800x');
  assert.equal(s.scrub('a pw\ud800x b'), `a ${MASK} b`);
  const result = answer(await execute({ action: 'show', config_file: '/nonexistent', expect: { password: '\ud800' } }));
  assert.equal(result.failed, true);
});

test('msg stays one short line whatever the input echoes', async () => {
  const result = answer(
    await execute({ action: 'show', bdm_uuid: '5f0c4a3e-0000-4000-8000-000000000001', config_file: `/nonexistent/${'x'.repeat(200_000)}` }),
  );
  assert.equal(result.failed, true);
  assert.ok(String(result.msg).length < 2100, `${String(result.msg).length}`);
});
