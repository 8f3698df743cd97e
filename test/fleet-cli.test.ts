import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FleetEnv } from './support/fleet-env';
import { runBundle } from './support/run-bundle';
import { RefreshEnv } from './support/refresh-env';

// nova-bdm bdm refresh FILTERS: through the built bundle, the summary table and the exit codes.

let env: FleetEnv;
before(async () => {
  env = await FleetEnv.start([
    { cell: 'cell1', count: 1 },
    { cell: 'cell2', count: 1 },
  ]);
});
after(() => env.stop());

function cli(...args: string[]) {
  return runBundle(['--config-file', env.fx.env.confPath, '--config-file', env.extraConf, ...args]);
}

const EXPECT = JSON.stringify(RefreshEnv.EXPECT_NEW_MONITORS);

test("bdm refresh --cell --instance --connector-dir: the module's summary lines, exit 0; --check first writes nothing", async () => {
  const [h1, h2] = env.hostNames() as [string, string];
  env.writeConnectors([h1, h2]);
  const a = await env.seedInstance(h1, [false, true]);
  const b = await env.seedInstance(h2, [false]);
  const uuids = [a.instanceUuid, b.instanceUuid];
  const filters = [
    '--cell',
    'cell1',
    '--cell',
    'cell2',
    '--instance',
    uuids[0]!,
    '--instance',
    uuids[1]!,
    '--connector-dir',
    env.connectorDir,
    '--expect-json',
    EXPECT,
  ];
  const check = await cli('bdm', 'refresh', ...filters, '--check');
  assert.equal(check.status, 0, check.stderr);
  assert.match(
    check.stdout,
    /^would refresh 2 of 3 selected BDMs; 1 skipped, 0 failed\nwould refresh 2, skipped 1, failed 0 \(check mode: nothing was written\)\n/,
  );
  assert.equal((await env.bdmRow(a.bdms[0]!)).attachment_id, a.bdms[0]!.oldAttachmentId);

  const r = await cli('bdm', 'refresh', ...filters, '--max-parallel', '4');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^refreshed 2 of 3 selected BDMs; 1 skipped, 0 failed\n/);
  assert.match(r.stdout, /\nrefreshed 2, skipped 1, failed 0\n/);
  const [ab, bb] = [a.bdms[0]!, b.bdms[0]!];
  assert.match(
    r.stdout,
    new RegExp(
      `\\nrefreshed: BDM ${ab.uuid} \\(instance ${a.instanceUuid}, volume ${ab.volumeId}\\) on ${h1} \\[cell1\\]: expectation_mismatch -> attachment [0-9a-f-]{36} \\([\\d.]+ s\\)\\n`,
    ),
  );
  assert.match(
    r.stdout,
    new RegExp(
      `\\nrefreshed: BDM ${bb.uuid} \\(instance ${b.instanceUuid}, volume ${bb.volumeId}\\) on ${h2} \\[cell2\\]: expectation_mismatch`,
    ),
  );
  assert.match(r.stdout, new RegExp(`\\nskipped: BDM ${a.bdms[1]!.uuid} .*: not stale`));

  // --volume-attachment INSTANCE:VOLUME names exactly that BDM (not the instance's other one).
  const named = await cli(
    'bdm',
    'refresh',
    '--volume-attachment',
    `${a.instanceUuid}:${a.bdms[1]!.volumeId}`,
    '--connector-dir',
    env.connectorDir,
    '--expect-json',
    EXPECT,
    '--check',
  );
  assert.equal(named.status, 0, named.stderr);
  assert.match(named.stdout, /^would refresh 0 of 1 selected BDMs; 1 skipped, 0 failed\n/);
  assert.match(named.stdout, new RegExp(`\\nskipped: BDM ${a.bdms[1]!.uuid} .*: not stale`));
});

test('exit 1 when any BDM failed (with the summary still printed); 64 without a selection', async () => {
  const [h1] = env.hostNames() as [string];
  const a = await env.seedInstance(h1, [false]);
  const r = await cli('bdm', 'refresh', '--instance', a.instanceUuid, '--connector-dir', env.dir, '--expect-json', EXPECT);
  assert.equal(r.status, 1);
  assert.match(r.stdout, new RegExp(`\\nFAILED: BDM ${a.bdms[0]!.uuid} .*: no connector for compute host ${h1}; nothing was changed`));
  assert.match(
    r.stderr,
    /^1 of 1 selected BDMs failed \(first: BDM \S+ on \S+: no connector for compute host \S+\); refreshed 0, skipped 0$/m,
  );
  const none = await cli('bdm', 'refresh', '--connector-dir', env.dir);
  assert.equal(none.status, 64);
  assert.match(none.stderr, /bdm refresh needs a BDM_UUID, or at least one filter/);
});
