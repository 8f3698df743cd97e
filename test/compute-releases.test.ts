import { after, afterEach, before, describe, test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { capFromMinimumServiceVersion, capFromPin, computeTopic, removeVolumeConnectionVersion } from '../src/rpc/compute-rpc-version';
import { RefreshEnv } from './support/refresh-env';

// remove_volume_connection against a compute of each Nova release, Wallaby to Gazpacho: the
// version and topic as nova master's rpcapi picks them (delete_attachment from 6.3, commit
// dc6dac360c; the compute-alt topic from 6.5, commit d5ffb58a8d), and who deletes the old
// attachment. Each test here backs one row of docs/compatibility.md. The stand-in compute runs
// the release's service version (SERVICE_VERSION of the release's tag in openstack/nova), so it
// refuses a newer RPC version and serves compute-alt only from service version 71 on.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());
afterEach(async () => {
  await env.compute.runServiceVersion(undefined);
  await env.fx.cell('cell1').updateTable('services').set({ version: 64 }).where('host', '=', env.host).execute();
});

function pinned(pin: string): string[] {
  const path = join(env.dir, `pin-${pin}.conf`);
  writeFileSync(path, `[upgrade_levels]\ncompute = ${pin}\n`);
  return [env.fx.env.confPath, env.extraConf, path];
}

/** The compute as a release: its service row and its RPC servers. */
async function computeRuns(serviceVersion: number): Promise<void> {
  await env.fx.cell('cell1').updateTable('services').set({ version: serviceVersion }).where('host', '=', env.host).execute();
  await env.compute.runServiceVersion(serviceVersion);
}

interface Expected {
  version: string;
  topic: 'compute' | 'compute-alt';
}

/** One refresh under this pin: sent as expected, the old attachment deleted by us, no BDM ever dangling. */
async function refreshesAs(pin: string, expected: Expected) {
  const s = await env.seed();
  const calls = env.compute.calls.length;
  const watch = env.watchDanglingBdms(s.instanceUuid);
  const r = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: pinned(pin) });
  assert.deepEqual(await watch.stop(), [], 'no BDM named a deleted attachment at any Cinder request, nor after');
  assert.equal(r.failed, undefined, String(r.msg));
  assert.equal(r.rpc_version, expected.version);
  const sent = env.compute.calls.slice(calls);
  assert.equal(sent.length, 1);
  const call = sent[0]!;
  assert.equal(call.routingKey, `${expected.topic}.${env.host}`);
  const inner = call.inner as any;
  assert.equal(inner.version, expected.version);
  // nova's rpcapi sends delete_attachment from 6.3 on; we send False and delete the old attachment ourselves.
  if (expected.version === '6.3') assert.equal(inner.args.delete_attachment, false);
  else assert.ok(!('delete_attachment' in inner.args));
  const deletes = env.cloud.log.filter((m) => m.method === 'DELETE' && m.path.endsWith(s.oldAttachmentId));
  assert.deepEqual(
    deletes.map((m) => m.status),
    [200],
    'the old attachment deleted by the refresh, once',
  );
  assert.deepEqual(
    env.cloud.attachmentsOf(s.volumeId).map((a) => [a.id, a.status]),
    [[r.new_attachment_id, 'attached']],
  );
  const steps = (r.steps ?? []).map((x) => x.step);
  assert.ok(steps.indexOf('repoint_bdm') < steps.indexOf('cinder_delete_old'), 'the BDM names the new attachment before the old one goes');
  return r;
}

// Each release's SERVICE_VERSION (nova/objects/service.py at tags 23.0.0 .. 33.0.0) and its
// [upgrade_levels] compute alias (nova/compute/rpcapi.py VERSION_ALIASES).
const RELEASES: Array<{ release: string; serviceVersion: number } & Expected> = [
  { release: 'wallaby', serviceVersion: 56, version: '6.0', topic: 'compute' },
  { release: 'xena', serviceVersion: 60, version: '6.0', topic: 'compute' },
  { release: 'yoga', serviceVersion: 61, version: '6.0', topic: 'compute' },
  { release: 'zed', serviceVersion: 64, version: '6.0', topic: 'compute' },
  { release: 'antelope', serviceVersion: 66, version: '6.0', topic: 'compute' },
  { release: 'bobcat', serviceVersion: 66, version: '6.0', topic: 'compute' },
  { release: 'caracal', serviceVersion: 67, version: '6.3', topic: 'compute' },
  { release: 'dalmatian', serviceVersion: 67, version: '6.3', topic: 'compute' },
  { release: 'epoxy', serviceVersion: 68, version: '6.3', topic: 'compute' },
  { release: 'flamingo', serviceVersion: 70, version: '6.3', topic: 'compute' },
  { release: 'gazpacho', serviceVersion: 72, version: '6.3', topic: 'compute-alt' },
];

describe('a compute of each release, pinned to it', () => {
  for (const { release, serviceVersion, version, topic } of RELEASES) {
    test(`release ${release}: ${version} to ${topic}, old attachment deleted by us`, async () => {
      await computeRuns(serviceVersion);
      await refreshesAs(release, { version, topic });
      // `auto` with computes of this release alone picks the same (the shared test database
      // holds other computes, so this is checked on the mapping, not a refresh).
      const cap = capFromMinimumServiceVersion(serviceVersion);
      assert.deepEqual([removeVolumeConnectionVersion(cap), computeTopic(cap)], [version, topic]);
      assert.equal(capFromPin(release), cap, `the ${release} alias and its service version give one cap`);
    });
  }
});

describe('the compute RPC cap: 6.0, 6.3, 6.4, 6.5', () => {
  const caps: Array<{ cap: string; serviceVersion: number } & Expected> = [
    { cap: '6.0', serviceVersion: 56, version: '6.0', topic: 'compute' },
    { cap: '6.3', serviceVersion: 67, version: '6.3', topic: 'compute' },
    { cap: '6.4', serviceVersion: 70, version: '6.3', topic: 'compute' },
    { cap: '6.5', serviceVersion: 73, version: '6.3', topic: 'compute-alt' },
  ];
  for (const { cap, serviceVersion, version, topic } of caps) {
    test(`cap ${cap}: ${version} to ${topic}.<host>, old attachment deleted by us`, async () => {
      await computeRuns(serviceVersion);
      await refreshesAs(cap, { version, topic });
    });
  }

  test('cap 6.5, the compute in a graceful shutdown (compute-alt only): the refresh succeeds', async () => {
    await computeRuns(73);
    await env.compute.gracefulShutdown();
    assert.deepEqual(env.compute.servedQueues, [`compute-alt.${env.host}`]);
    await refreshesAs('6.5', { version: '6.3', topic: 'compute-alt' });
  });

  test('cap 6.4, the compute in a graceful shutdown: refused before anything is written (nothing serves compute.<host>)', async () => {
    await computeRuns(73);
    await env.compute.gracefulShutdown();
    const s = await env.seed();
    const before = await env.dumpRows(s.instanceUuid);
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: pinned('6.4') });
    assert.equal(r.failed, true);
    assert.match(String(r.msg), new RegExp(`nova-compute on ${env.host} is not consuming its queue compute\\.${env.host} on `));
    assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
  });

  test('cap 6.5 with a 6.4 compute (no compute-alt server): refused before anything is written', async () => {
    await computeRuns(70);
    const s = await env.seed();
    const before = await env.dumpRows(s.instanceUuid);
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: pinned('gazpacho') });
    assert.equal(r.failed, true);
    assert.match(String(r.msg), new RegExp(`nova-compute on ${env.host} is not consuming its queue compute-alt\\.${env.host} on `));
    assert.deepEqual(await env.dumpRows(s.instanceUuid), before);
  });

  test('a 6.0 compute pinned too high (6.3): UnsupportedVersion, rolled back, nothing lost; with its own pin it refreshes', async () => {
    await computeRuns(56);
    const s = await env.seed();
    const watch = env.watchDanglingBdms(s.instanceUuid);
    const r = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: pinned('6.3') });
    assert.deepEqual(await watch.stop(), []);
    assert.equal(r.failed, true);
    assert.match(
      String(r.msg),
      /failed at rpc_remove_volume_connection: UnsupportedVersion: Endpoint does not support RPC version 6\.3\. Attempted method: remove_volume_connection; the BDM and its attachment are unchanged$/,
    );
    assert.deepEqual(
      env.cloud.attachmentsOf(s.volumeId).map((a) => a.id),
      [s.oldAttachmentId],
    );
    const rows = await env.dumpRows(s.instanceUuid);
    assert.equal(rows.bdms[0]!.attachment_id, s.oldAttachmentId);
    assert.equal(rows.instance!.locked, 0);
    const again = await env.refresh({ bdm_uuid: s.bdm.uuid, config_file: pinned('6.0') });
    assert.equal(again.failed, undefined, String(again.msg));
    assert.equal(again.rpc_version, '6.0');
  });
});

test('the version and topic of remove_volume_connection, as nova picks them: by pin, by the oldest compute (auto), unset', () => {
  const route = (cap: string | null) => `${removeVolumeConnectionVersion(cap)} ${computeTopic(cap)}`;
  assert.deepEqual(
    [
      null,
      'queens',
      'zed',
      'antelope',
      'bobcat',
      'caracal',
      'dalmatian',
      'epoxy',
      'flamingo',
      'gazpacho',
      '6.2',
      '6.3',
      '6.4',
      '6.5',
      '6.9',
    ].map((p) => route(p === null ? null : capFromPin(p))),
    [
      '6.0 compute',
      '5.0 compute',
      '6.0 compute',
      '6.0 compute',
      '6.0 compute',
      '6.3 compute',
      '6.3 compute',
      '6.3 compute',
      '6.3 compute',
      '6.3 compute-alt',
      '6.0 compute',
      '6.3 compute',
      '6.3 compute',
      '6.3 compute-alt',
      '6.3 compute-alt',
    ],
  );
  assert.deepEqual(
    [0, 53, 56, 64, 66, 67, 68, 70, 71, 72, 73].map((v) => route(capFromMinimumServiceVersion(v))),
    [
      '6.0 compute',
      '5.0 compute',
      '6.0 compute',
      '6.0 compute',
      '6.0 compute',
      '6.3 compute',
      '6.3 compute',
      '6.3 compute',
      '6.3 compute-alt',
      '6.3 compute-alt',
      '6.3 compute-alt',
    ],
  );
  assert.throws(() => capFromMinimumServiceVersion(74), /service version 74, newer than this tool knows \(73\)/);
  assert.throws(() => removeVolumeConnectionVersion('7.0'), /newer than this tool knows \(6\.x\)/);
});
