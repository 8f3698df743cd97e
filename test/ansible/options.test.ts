import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import { Fixtures, ISCSI_CHAP_CONNECTION_INFO } from '../support/fixtures';
import { BUNDLE } from '../support/nova-env';
import { infoData, type Fields } from '../support/results';
import type { AuditResult } from '../../src/actions/audit/audit';
import type { ShowResult } from '../../src/actions/show';
import type { FailureResult } from '../../src/entry/result';

// Every option type as a user gives it to the real `ansible` ad-hoc command: `-a key=value`
// hands the module strings, which it must convert as AnsibleModule would for a Python module.

const fx = new Fixtures();
const conf = fx.env.confPath;
const tag = randomUUID().slice(0, 8);
const hosts = [`opt-${tag}-a`, `opt-${tag}-b`, `opt-${tag}-c`];
let iscsi: Awaited<ReturnType<Fixtures['seedBdm']>>;

before(async () => {
  for (const host of hosts) {
    const instance = await fx.seedInstance('cell1', { host, launched_on: host, node: host });
    const bdm = await fx.seedBdm('cell1', instance, host === hosts[0] ? { connection_info_object: ISCSI_CHAP_CONNECTION_INFO } : {});
    if (host === hosts[0]) iscsi = bdm;
  }
});
after(() => fx.close());

/** `ansible localhost -m bdm -a ARGS`: the result of the one host, and the whole output. */
function adhoc(moduleArgs: string): { status: string; result: Fields<AuditResult | ShowResult | FailureResult>; out: string } {
  const r = spawnSync('ansible', ['localhost', '-M', dirname(BUNDLE), '-m', 'bdm', '-a', moduleArgs], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCALHOST_WARNING: 'false', ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false' },
  });
  const m = /^localhost \| (SUCCESS|FAILED!|CHANGED) => (\{\n[\s\S]*?\n\})$/m.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  return { status: m[1]!, result: JSON.parse(m[2]!), out: r.stdout + r.stderr };
}

describe('options from ansible -a key=value', () => {
  test('list (hosts=a,b), int, float, bool words and a dict as a JSON string, in one audit', () => {
    const expect = JSON.stringify({ driver_volume_type: 'rbd', data: { hosts: ['192.0.2.99'] } });
    const { status, result } = adhoc(
      `action=audit hosts=${hosts[1]},${hosts[2]} cinder_concurrency=4 connect_timeout=5 check_cinder=No config_file=${conf} expect='${expect}'`,
    );
    assert.equal(status, 'SUCCESS', JSON.stringify(result));
    // Only the two listed hosts' BDMs, each stale against the expected monitors.
    assert.equal(result.totals?.scanned, 2);
    assert.deepEqual((result.stale ?? []).map((s) => s.host).sort(), [hosts[1], hosts[2]]);
    for (const s of result.stale ?? []) assert.ok(s.reasons.includes('expectation_mismatch'), JSON.stringify(s));
  });

  test('a dict as k=v pairs', () => {
    const { status, result } = adhoc(`action=audit hosts=${hosts.join(',')} config_file=${conf} expect="driver_volume_type=iscsi"`);
    assert.equal(status, 'SUCCESS', JSON.stringify(result));
    assert.equal(result.totals?.scanned, 3);
    // The two rbd BDMs differ from driver_volume_type iscsi; the iscsi one matches.
    assert.deepEqual((result.stale ?? []).map((s) => s.host).sort(), [hosts[1], hosts[2]]);
  });

  test('booleans in any case: reveal_secrets=YES reveals, reveal_secrets=off masks', () => {
    const shown = adhoc(`bdm_uuid=${iscsi.uuid} config_file=${conf} reveal_secrets=YES`);
    assert.equal(shown.status, 'SUCCESS', shown.out);
    assert.equal(infoData(shown.result.bdm?.connection_info).auth_password, ISCSI_CHAP_CONNECTION_INFO.data.auth_password);
    const masked = adhoc(`bdm_uuid=${iscsi.uuid} config_file=${conf} reveal_secrets=off`);
    assert.equal(masked.status, 'SUCCESS', masked.out);
    assert.equal(infoData(masked.result.bdm?.connection_info).auth_password, '********');
  });

  test('config_file=a,b is a list of files; values that cannot be converted fail naming option and types', () => {
    const files = adhoc(`bdm_uuid=${iscsi.uuid} config_file=/nonexistent/${tag}-a.conf,/nonexistent/${tag}-b.conf`);
    assert.equal(files.status, 'FAILED!');
    assert.match(
      String(files.result.msg),
      new RegExp(`looked in /nonexistent/${tag}-a\\.conf \\(not found\\), /nonexistent/${tag}-b\\.conf \\(not found\\)`),
    );
    const bool = adhoc(`bdm_uuid=${iscsi.uuid} config_file=${conf} reveal_secrets=maybe`);
    assert.equal(bool.status, 'FAILED!');
    assert.match(
      String(bool.result.msg),
      /^argument reveal_secrets is of type str and could not be converted to bool: "maybe" is not a valid boolean/,
    );
    const num = adhoc(`bdm_uuid=${iscsi.uuid} config_file=${conf} connect_timeout=soon`);
    assert.match(
      String(num.result.msg),
      /^argument connect_timeout is of type str and could not be converted to float: "soon" is not a number$/,
    );
    const int = adhoc(`action=audit config_file=${conf} hosts=x cinder_concurrency=2.5`);
    assert.match(String(int.result.msg), /^argument cinder_concurrency is of type str and could not be converted to int/);
    const secret = adhoc(
      `action=refresh bdm_uuid=${iscsi.uuid} config_file=${conf} connector_path=/c.json cinder_auth="password='hunter2-${tag}"`,
    );
    assert.match(String(secret.result.msg), /^argument cinder_auth is of type str and could not be converted to dict/);
    assert.ok(!secret.out.includes(`hunter2-${tag}`), 'no secret value echoed');
  });
});
