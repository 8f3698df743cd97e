import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBundle } from './support/run-bundle';
import { RefreshEnv } from './support/refresh-env';
import type { Fields } from './support/results';
import type { FailureResult } from '../src/entry/result';
import type { AuditResult } from '../src/actions/audit/audit';
import type { SingleRefreshResult } from '../src/actions/refresh/result';
import type { Connector } from '../src/connector';

// The exit code of every CLI path through the built bundle: bdm refresh, bdm audit
// (0 clean / 4 stale / 1 incomplete / 64 usage) and get_connector, next to what each wrote.

let env: RefreshEnv;
let connectorPath: string;
before(async () => {
  env = await RefreshEnv.start();
  connectorPath = join(env.dir, 'connector.json');
  writeFileSync(connectorPath, JSON.stringify(env.connector));
});
after(() => env.stop());

const run = runBundle;
const cli = (...args: string[]) => run(['--config-file', env.fx.env.confPath, '--config-file', env.extraConf, ...args]);

describe('wrong usage: 64, nothing run', () => {
  test('no command, unknown command, missing or extra positionals, a flag without its value', async () => {
    for (const args of [
      [],
      ['bdm', 'frobnicate'],
      ['bdm', 'refresh'],
      ['bdm', 'audit', 'extra'],
      ['volume_attachment', 'refresh', randomUUID()],
      ['bdm', 'refresh', randomUUID(), '--connector-path'],
    ]) {
      const r = await cli(...args);
      assert.equal(r.status, 64, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^nova-bdm: .+\n\nusage: nova-bdm/, args.join(' '));
      assert.equal(r.stdout, '');
    }
  });
});

describe('bdm refresh', () => {
  test('0 refreshed; 0 not stale (and nothing changed); 2 connector path missing; 3 connector unreadable; 5 instance not stopped; 6 no such BDM', async () => {
    const s = await env.seed();
    const refresh = ['bdm', 'refresh', s.bdm.uuid, '--connector-path', connectorPath];
    const expectNew = ['--expect-json', JSON.stringify(RefreshEnv.EXPECT_NEW_MONITORS), '--json'];
    let r = await cli(...refresh, ...expectNew);
    assert.equal(r.status, 0, r.stderr);
    const refreshed: Fields<SingleRefreshResult | FailureResult> = JSON.parse(r.stdout);
    assert.equal(refreshed.changed, true);
    const mutations = env.cloud.mutations().length;
    r = await cli(...refresh, ...expectNew);
    assert.equal(r.status, 0, r.stderr);
    const again: Fields<SingleRefreshResult | FailureResult> = JSON.parse(r.stdout);
    assert.equal(again.changed, false);
    assert.equal(env.cloud.mutations().length, mutations, 'a second run changes nothing');

    const t = await env.seed();
    r = await cli('bdm', 'refresh', t.bdm.uuid, '--connector-path', join(env.dir, 'nope.json'));
    assert.equal(r.status, 2);
    writeFileSync(join(env.dir, 'bad.json'), '{');
    r = await cli('bdm', 'refresh', t.bdm.uuid, '--connector-path', join(env.dir, 'bad.json'));
    assert.equal(r.status, 3);
    // nova-manage since 77851bb365: the parser's error after the question (here on one line, with line and column).
    assert.match(
      r.stderr,
      new RegExp(
        `Failed to open ${join(env.dir, 'bad.json')}\\. Does it contain valid connector_info data\\? Error: Expected property name or '\\}' in JSON at line 1 column 2`,
      ),
    );
    writeFileSync(join(env.dir, 'multi.json'), '{\n  "host": "h",\n  "ip": 1,\n}\n');
    r = await cli('bdm', 'refresh', t.bdm.uuid, '--connector-path', join(env.dir, 'multi.json'));
    assert.equal(r.status, 3);
    assert.match(r.stderr, /Error: Expected double-quoted property name in JSON at line 4 column 1/);
    // Not JSON at all, and holding a secret: the parser's excerpt of the file is not repeated.
    writeFileSync(join(env.dir, 'secret.json'), 'rbd_secret_uuid = AQBsecretkeyringvalue==\n');
    r = await cli('bdm', 'refresh', t.bdm.uuid, '--connector-path', join(env.dir, 'secret.json'));
    assert.equal(r.status, 3);
    assert.match(r.stderr, /Does it contain valid connector_info data\? Error: Unexpected token: not JSON/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes('AQBsecret') && !`${r.stdout}${r.stderr}`.includes('rbd_secret'), r.stderr);
    // Not readable (nova-manage: OSError, 3): a directory.
    r = await cli('bdm', 'refresh', t.bdm.uuid, '--connector-path', env.dir);
    assert.equal(r.status, 3);
    assert.match(r.stderr, new RegExp(`Failed to open ${env.dir}: `));
    const active = await env.seed({ instance: { vm_state: 'active', power_state: 1 } });
    r = await cli('bdm', 'refresh', active.bdm.uuid, '--connector-path', connectorPath, '--force');
    assert.equal(r.status, 5, r.stderr);
    r = await cli('bdm', 'refresh', randomUUID(), '--connector-path', connectorPath);
    assert.equal(r.status, 6, r.stderr);
    assert.equal((await env.dumpRows(t.instanceUuid)).bdms[0]!.attachment_id, t.oldAttachmentId, 'the refused runs wrote nothing');
  });

  test('1 when the refresh failed after the lock (compute error), and when Cinder still hands out data that misses expect', async () => {
    const s = await env.seed();
    env.compute.behaviour = { kind: 'fail', cls: 'VolumeDriverException', module: 'nova.exception', message: 'boom' };
    try {
      const r = await cli('bdm', 'refresh', s.bdm.uuid, '--connector-path', connectorPath, '--force');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /failed at rpc_remove_volume_connection: VolumeDriverException: boom/);
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
    const t = await env.seed();
    env.cloud.backends.set(t.volumeId, { driver_volume_type: 'rbd', data: { hosts: ['192.0.2.11'], ports: ['6789'] } });
    const r = await cli(
      'bdm',
      'refresh',
      t.bdm.uuid,
      '--connector-path',
      connectorPath,
      '--expect-json',
      JSON.stringify(RefreshEnv.EXPECT_NEW_MONITORS),
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /does not match expect/);
  });
});

describe('bdm audit', () => {
  test('0 when nothing is stale, 4 when something is, 1 when a cell could not be audited', async () => {
    const clean = `nbs-clean-${randomUUID().slice(0, 6)}`;
    const stale = `nbs-stale-${randomUUID().slice(0, 6)}`;
    const i1 = await env.fx.seedInstance('cell1', { host: clean });
    await env.fx.seedBdm('cell1', i1, {
      connection_info_object: {
        driver_volume_type: 'rbd',
        data: { hosts: ['198.51.100.21', '198.51.100.22', '198.51.100.23'], ports: ['6789', '6789', '6789'] },
      },
    });
    const i2 = await env.fx.seedInstance('cell1', { host: stale });
    await env.fx.seedBdm('cell1', i2);
    const expect = JSON.stringify(RefreshEnv.EXPECT_NEW_MONITORS);
    let r = await cli('bdm', 'audit', '--host', clean, '--expect-json', expect, '--json');
    assert.equal(r.status, 0, r.stderr);
    const cleanAudit: Fields<AuditResult | FailureResult> = JSON.parse(r.stdout);
    assert.deepEqual(cleanAudit.stale, []);
    r = await cli('bdm', 'audit', '--host', clean, '--host', stale, '--expect-json', expect, '--json');
    assert.equal(r.status, 4, r.stderr);
    const staleAudit: Fields<AuditResult | FailureResult> = JSON.parse(r.stdout);
    assert.equal(staleAudit.stale?.length, 1);
    // Counts only: still 4, and the table says what it left out.
    r = await cli('bdm', 'audit', '--host', clean, '--host', stale, '--expect-json', expect, '--stale-limit', '0');
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stdout, /^2 volume BDMs scanned, 1 stale$/m);
    assert.match(r.stdout, /^\.\.\. and 1 more stale BDMs not listed \(stale_limit 0\)$/m);
    const broken = join(env.dir, 'broken-db.conf');
    writeFileSync(
      broken,
      `[database]\nconnection = mysql+pymysql://${env.fx.env.dbUser}:Wr0ngPw@127.0.0.1:3306/${env.fx.env.databases.cell1}?charset=utf8\n`,
    );
    r = await cli('--config-file', broken, 'bdm', 'audit', '--host', stale, '--expect-json', expect);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^audit incomplete: cell1: /);
    assert.ok(!r.stderr.includes('Wr0ngPw') && !r.stdout.includes('Wr0ngPw'));
  });
});

describe('get_connector', () => {
  test('0 with the connector as JSON; 1 when the host cannot give one (multipath wanted, multipathd not running)', async () => {
    const conf = join(env.dir, 'compute.conf');
    writeFileSync(conf, '[DEFAULT]\nhost = compute9\nmy_ip = 192.0.2.9\n');
    let r = await run(['--config-file', conf, 'get_connector', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out: Connector = JSON.parse(r.stdout);
    assert.equal(out.host, 'compute9', 'the connector itself, as nova-manage get_connector --json prints it');
    assert.equal(out.ip, '192.0.2.9');
    writeFileSync(conf, '[DEFAULT]\nhost = compute9\n[libvirt]\nvolume_use_multipath = true\n');
    r = await run(['--config-file', conf, 'volume_attachment', 'get_connector']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, '[libvirt] volume_use_multipath is true but multipathd is not running on this host');
    assert.equal(r.stdout, '');
  });
});
