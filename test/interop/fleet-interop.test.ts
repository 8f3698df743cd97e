import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cephMon, comparable, getConnectorJson, novaManage, outcomeOf, runOurs, seed, upLab, type LabEnv, type Seeded } from './harness';
import { INTEROP_SKIP } from './tier';

// Interop tier: one fleet refresh of 10 stale rbd BDMs on the real lab (compute2: libvirt,
// Cinder's RBDDriver, real Ceph), and the real nova-manage on a twin: each of the 10 is left
// with the rows nova-manage leaves (issue 10). Runs under `npm run test:interop`, or with
// NOVA_BDM_INTEROP=1.

const SKIP = INTEROP_SKIP;
const FLEET = 10;

describe('fleet refresh of 10 stale rbd BDMs against the real nova-manage (lab)', { skip: SKIP, timeout: 1_800_000 }, () => {
  let lab: LabEnv;

  before(async () => {
    lab = await upLab();
  });

  test('every BDM refreshed once, each left with the rows nova-manage leaves on its twin', async () => {
    const mon = cephMon().addr;
    const expect = { driver_volume_type: 'rbd', data: { hosts: [mon], ports: ['6789'] } };
    // --stale: the BDMs name a mon where nothing listens (127.0.0.254); Cinder hands out the live one.
    const seeded = await seed({ count: FLEET + 1, rbd: true, stale: true });
    assert.equal(seeded.length, FLEET + 1);
    const twin = seeded[0]!;
    const fleet = seeded.slice(1);
    const start = comparable(twin, await outcomeOf(twin));
    for (const s of fleet) assert.deepEqual(comparable(s, await outcomeOf(s)), start, 'the instances start out the same');

    const connectorPath = getConnectorJson('compute2');
    const connector = JSON.parse(readFileSync(connectorPath, 'utf8')) as Record<string, unknown>;
    const t0 = Date.now();
    const r = await runOurs<'fleet_refresh'>({
      action: 'refresh',
      config_file: lab.novaConf,
      bdm_uuids: fleet.map((s: Seeded) => s.bdm_uuid),
      connectors: { compute2: connector },
      require_libvirt: true,
      expect,
    });
    const fleetMs = Date.now() - t0;
    assert.equal(r.result.failed, undefined, `fleet refresh failed: ${JSON.stringify(r.result, null, 2)}\n${r.stderr}`);
    assert.equal(r.status, 0);
    assert.deepEqual(r.result.counts, { refreshed: FLEET, skipped: 0, failed: 0 }, JSON.stringify(r.result));
    const refreshed = r.result.refreshed ?? [];
    assert.deepEqual(refreshed.map((x) => x.bdm_uuid).sort(), fleet.map((s) => s.bdm_uuid).sort(), 'each BDM once');
    // Nova's copy names the dead mon; Cinder's attachment does not: both rules see it.
    for (const x of refreshed) assert.deepEqual([...x.reasons].sort(), ['connection_info_differs', 'expectation_mismatch']);

    const t1 = Date.now();
    const nm = novaManage(['volume_attachment', 'refresh', twin.instance_uuid, twin.volume_id, connectorPath]);
    const novaManageMs = Date.now() - t1;
    assert.equal(
      nm.status,
      0,
      `real nova-manage refresh failed (exit ${nm.status}):\n${nm.stdout}\n${nm.stderr.split('\n').slice(-15).join('\n')}`,
    );

    const theirs = await outcomeOf(twin);
    assert.equal(theirs.attachments.length, 1);
    const expected = comparable(twin, theirs);
    for (const s of fleet) {
      const mine = await outcomeOf(s);
      assert.equal(mine.attachments.length, 1, `one attachment on ${s.volume_id}`);
      assert.deepEqual((mine.nova.block_device_mapping[0]!.connection_info as { data: { hosts: string[] } }).data.hosts, [mon]);
      assert.deepEqual(comparable(s, mine), expected, `instance ${s.instance_uuid}: the rows nova-manage leaves`);
    }
    const perBdm = refreshed.map((x) => x.seconds).sort((x, y) => x - y);
    console.log(
      `fleet refresh of ${FLEET} BDMs: ${fleetMs} ms wall (per BDM: median ${perBdm[Math.floor(perBdm.length / 2)]} s, max ${perBdm[perBdm.length - 1]} s); one real nova-manage refresh: ${novaManageMs} ms`,
    );
  });
});
