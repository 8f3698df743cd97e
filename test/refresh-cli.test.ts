import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBundle } from './support/run-bundle';
import { RefreshEnv } from './support/refresh-env';

// The refresh command lines, through the built bundle, with nova-manage's exit codes.

let env: RefreshEnv;
let connectorPath: string;
before(async () => {
  env = await RefreshEnv.start();
  connectorPath = join(env.dir, 'connector.json');
  writeFileSync(connectorPath, JSON.stringify(env.connector));
});
after(() => env.stop());

/** Runs the bundle asynchronously: the stand-in compute and Cinder live in this process. */
const run = runBundle;

function cli(...args: string[]) {
  return run(['--config-file', env.fx.env.confPath, '--config-file', env.extraConf, ...args]);
}

test('volume_attachment refresh INSTANCE VOLUME CONNECTOR_PATH: a table of what changed and the step timings', async () => {
  const s = await env.seed();
  const r = await cli(
    'volume_attachment',
    'refresh',
    s.instanceUuid,
    s.volumeId,
    connectorPath,
    '--expect-json',
    JSON.stringify(RefreshEnv.EXPECT_NEW_MONITORS),
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`\\| old_attachment_id +\\| ${s.oldAttachmentId} +\\|`));
  assert.match(r.stdout, /\| new_attachment_id +\| [0-9a-f-]{36} +\|/);
  assert.match(r.stdout, /steps:\n(.|\n)* rpc_remove_volume_connection +\d+ ms/);
});

test('bdm refresh BDM_UUID --connector-path F --check: says what would change, writes nothing', async () => {
  const s = await env.seed();
  const before = await env.dumpRows(s.instanceUuid);
  const mutations = env.cloud.mutations().length;
  const calls = env.compute.calls.length;
  const r = await cli('bdm', 'refresh', s.bdm.uuid, '--connector-path', connectorPath, '--check', '--json', '--force');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.changed, true);
  assert.match(out.msg, /^would refresh/);
  assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
  assert.equal(env.cloud.mutations().length, mutations);
  assert.equal(env.compute.calls.length, calls, 'no RPC sent');
});

test("nova-manage's refresh exit codes", async () => {
  const s = await env.seed();
  let r = await cli('volume_attachment', 'refresh', s.instanceUuid, s.volumeId, join(env.dir, 'missing.json'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^Connector file not found at/);
  const bad = join(env.dir, 'bad.json');
  writeFileSync(bad, 'not json');
  r = await cli('volume_attachment', 'refresh', s.instanceUuid, s.volumeId, bad);
  assert.equal(r.status, 3);
  const ghost = randomUUID();
  r = await cli('volume_attachment', 'refresh', ghost, s.volumeId, connectorPath);
  assert.equal(r.status, 4);
  assert.equal(r.stderr, `Instance ${ghost} has no mapping to a cell.`);
  const active = await env.seed({ instance: { vm_state: 'active' } });
  r = await cli('volume_attachment', 'refresh', active.instanceUuid, active.volumeId, connectorPath, '--force');
  assert.equal(r.status, 5);
  r = await cli('volume_attachment', 'refresh', s.instanceUuid, randomUUID(), connectorPath);
  assert.equal(r.status, 6);
  env.compute.behaviour = { kind: 'fail', cls: 'VolumeDriverException', module: 'nova.exception', message: 'boom' };
  try {
    r = await cli('volume_attachment', 'refresh', s.instanceUuid, s.volumeId, connectorPath, '--force');
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /failed at rpc_remove_volume_connection: VolumeDriverException: boom; the BDM and its attachment are unchanged$/,
    );
  } finally {
    env.compute.behaviour = { kind: 'ok' };
  }
});

test('[upgrade_levels] compute: auto follows the oldest compute (53 -> 5.0), a release pin maps like nova', async () => {
  const s = await env.seed();
  const db = env.fx.cell('cell1');
  await db.updateTable('services').set({ version: 53 }).where('host', '=', env.host).execute();
  try {
    const auto = join(env.dir, 'auto.conf');
    writeFileSync(auto, '[upgrade_levels]\ncompute = auto\n');
    let r = await cli('--config-file', auto, 'bdm', 'refresh', s.bdm.uuid, '--connector-path', connectorPath, '--force', '--json');
    assert.equal(JSON.parse(r.stdout).rpc_version, '5.0', r.stderr);
    assert.equal((env.compute.calls.at(-1)!.inner as any).version, '5.0');
    const pinned = join(env.dir, 'pinned.conf');
    writeFileSync(pinned, '[upgrade_levels]\ncompute = xena\n');
    r = await cli('--config-file', pinned, 'bdm', 'refresh', s.bdm.uuid, '--connector-path', connectorPath, '--force', '--json');
    assert.equal(JSON.parse(r.stdout).rpc_version, '6.0', r.stderr);
  } finally {
    await db.updateTable('services').set({ version: 64 }).where('host', '=', env.host).execute();
  }
});

test("volume_attachment refresh with another host's connector: exit 7, nothing written (nova-manage's HostConflict)", async () => {
  const s = await env.seed();
  const wrong = join(env.dir, 'wrong-host.json');
  writeFileSync(wrong, JSON.stringify({ ...env.connector, host: 'compute9' }));
  const before = await env.dumpRows(s.instanceUuid);
  const r = await cli('volume_attachment', 'refresh', s.instanceUuid, s.volumeId, wrong);
  assert.equal(r.status, 7, r.stderr);
  assert.match(r.stderr, new RegExp(`^The compute host 'compute9' in the connector does not match the instance host '${env.host}'`));
  assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
});
