import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cinderAttachments,
  cinderVolume,
  comparable,
  getConnectorJson,
  novaManage,
  outcomeOf,
  runOurs,
  seed,
  setCinderVolumeStatus,
  upLab,
  type CinderAttachment,
  type LabEnv,
  type Outcome,
  type Seeded,
} from './harness';
import { INTEROP_SKIP } from './tier';

// Interop tier: the REAL nova-manage 26 `volume_attachment refresh` and ours, on twin stopped
// instances seeded in the lab (test/interop/lab: real Keystone, Cinder, nova-compute with the
// fake driver). Afterwards the Nova rows and the Cinder attachments must look the same, ids,
// request ids and timestamps aside. Runs under `npm run test:interop`, or with NOVA_BDM_INTEROP=1.

const SKIP = INTEROP_SKIP;

function ourArgs(lab: LabEnv, twin: Seeded, connectorPath: string) {
  return {
    action: 'refresh',
    instance_uuid: twin.instance_uuid,
    volume_id: twin.volume_id,
    connector_path: connectorPath,
    config_file: lab.novaConf,
    // The lab's compute runs nova's fake driver, not libvirt.
    require_libvirt: false,
    // nova-manage refreshes unconditionally; so do we here, to compare what each leaves.
    force: true,
  };
}

function realRefresh(twin: Seeded, connectorPath: string): void {
  const r = novaManage(['volume_attachment', 'refresh', twin.instance_uuid, twin.volume_id, connectorPath]);
  assert.equal(
    r.status,
    0,
    `real nova-manage refresh failed (exit ${r.status}):\n${r.stdout}\n${r.stderr.split('\n').slice(-15).join('\n')}`,
  );
}

async function ourRefresh(lab: LabEnv, twin: Seeded, connectorPath: string): Promise<Record<string, unknown>> {
  const r = await runOurs(ourArgs(lab, twin, connectorPath));
  assert.equal(r.result.failed, undefined, `our refresh failed: ${JSON.stringify(r.result, null, 2)}\n${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.result.changed, true);
  return r.result;
}

/** What a finished refresh leaves in Nova, whoever ran it. */
function assertRefreshedNovaRows(twin: Seeded, o: Outcome, attachmentId: string): void {
  assert.deepEqual(
    o.nova.instance,
    { locked: false, locked_by: null, vm_state: 'stopped', task_state: null },
    'the instance is unlocked again',
  );
  assert.ok(!o.nova.system_metadata.some((m) => m.key === 'locked_reason'), 'no locked_reason left');
  assert.equal(o.nova.block_device_mapping.length, 1);
  const bdm = o.nova.block_device_mapping[0]!;
  assert.equal(bdm.attachment_id, attachmentId);
  assert.notEqual(bdm.attachment_id, twin.attachment_id, 'a new attachment');
  assert.ok(bdm.connection_info && typeof bdm.connection_info === 'object', 'connection_info is set');
  assert.equal((bdm.connection_info as Record<string, unknown>).serial, twin.volume_id);
  assert.ok(
    o.nova.instance_actions.some((a) => a.action === 'refresh_volume_attachment'),
    'a refresh_volume_attachment action',
  );
}

describe('refresh: ours against the real nova-manage 26 (lab)', { skip: SKIP, timeout: 1_800_000 }, () => {
  let lab: LabEnv;
  let connector: string;

  before(async () => {
    lab = await upLab();
    connector = getConnectorJson();
  });

  test('a v3 BDM (attachment_id set): the same Nova rows and Cinder attachments', async () => {
    const [theirs, mine] = await seed({ count: 2, vmState: 'stopped' });
    assert.ok(theirs && mine && theirs.attachment_id && mine.attachment_id);
    const beforeTheirs = comparable(theirs, await outcomeOf(theirs));
    assert.deepEqual(comparable(mine, await outcomeOf(mine)), beforeTheirs, 'the twins start out the same');

    realRefresh(theirs, connector);
    const result = await ourRefresh(lab, mine, connector);

    const t = await outcomeOf(theirs);
    const m = await outcomeOf(mine);
    // Cinder: only the new attachment is left, attached, and it is the BDM's.
    assert.equal(t.attachments.length, 1, `nova-manage leaves one attachment: ${JSON.stringify(t.attachments)}`);
    assert.equal(m.attachments.length, 1, `we leave one attachment: ${JSON.stringify(m.attachments)}`);
    assertRefreshedNovaRows(theirs, t, t.attachments[0]!.id);
    assertRefreshedNovaRows(mine, m, m.attachments[0]!.id);
    assert.equal(result.attachment_id, m.attachments[0]!.id);
    assert.equal(m.attachments[0]!.status, 'attached');
    assert.deepEqual(comparable(mine, m), comparable(theirs, t));
  });

  test('a legacy BDM (attachment_id NULL): the same Nova rows; nova-manage leaves two Cinder attachments, we leave one', async () => {
    const [theirs, mine] = await seed({ count: 2, vmState: 'stopped', legacy: true });
    assert.ok(theirs && mine);
    assert.equal(theirs.attachment_id, null);
    assert.equal(mine.attachment_id, null);
    const legacyTheirs = await cinderAttachments(theirs.volume_id);
    const legacyMine = await cinderAttachments(mine.volume_id);
    assert.equal(legacyTheirs.length, 1, 'the legacy attach made one Cinder attachment');
    assert.equal(legacyMine.length, 1, 'the legacy attach made one Cinder attachment');
    assert.deepEqual(comparable(mine, await outcomeOf(mine)), comparable(theirs, await outcomeOf(theirs)), 'the twins start out the same');

    realRefresh(theirs, connector);
    await ourRefresh(lab, mine, connector);

    const t = await outcomeOf(theirs);
    const m = await outcomeOf(mine);
    const bdmT = t.nova.block_device_mapping[0]?.attachment_id;
    const bdmM = m.nova.block_device_mapping[0]?.attachment_id;
    assert.ok(bdmT && bdmM, 'both BDMs now hold a v3 attachment');

    // nova-manage (deliberately not followed): the legacy attachment stays beside the new one.
    assert.equal(t.attachments.length, 2, `nova-manage leaves two attachments: ${JSON.stringify(t.attachments)}`);
    const keptLegacy = t.attachments.find((a) => a.id === legacyTheirs[0]!.id);
    const newTheirs = t.attachments.find((a) => a.id === bdmT);
    assert.ok(keptLegacy, 'nova-manage keeps the legacy attachment');
    assert.ok(newTheirs, "and adds the BDM's new one");
    assert.deepEqual(
      [keptLegacy.status, keptLegacy.attach_mode, keptLegacy.connection_info],
      ['attached', 'rw', null],
      'the legacy attachment is untouched',
    );
    // Cinder 21 quirk: the legacy os-attach left admin metadata readonly='False' (a string), and
    // attachment_create tests it for truth, so every later v3 attachment of the volume is 'ro'.
    assert.deepEqual([newTheirs.status, newTheirs.attach_mode], ['attached', 'ro'], "nova-manage's new attachment (Cinder marks it 'ro')");
    // Ours: exactly one attachment, the BDM's, attached; the legacy one is gone.
    assert.equal(m.attachments.length, 1, `we leave exactly one attachment: ${JSON.stringify(m.attachments)}`);
    const only = m.attachments[0]!;
    assert.equal(only.id, bdmM);
    assert.equal(only.status, 'attached');
    assert.notEqual(only.id, legacyMine[0]!.id, 'the legacy attachment is gone');

    assertRefreshedNovaRows(theirs, t, bdmT);
    assertRefreshedNovaRows(mine, m, bdmM);
    // Everything else matches nova-manage: the Nova rows, the volume, and the new attachment
    // itself, attach_mode aside (checked last, below).
    const sansMode = (list: CinderAttachment[]) => list.map((a) => ({ ...a, attach_mode: '<checked below>' }));
    assert.deepEqual(
      comparable(mine, m, sansMode(m.attachments)),
      comparable(theirs, t, sansMode(t.attachments.filter((a) => a.id === bdmT))),
    );

    // The guest gets read-write: access_mode in the stored connection_info comes from the
    // volume's attached_mode ('rw'). Cinder's own attach_mode is what Cinder assigns (it forces
    // 'ro' after a legacy attach: cinder/volume/api.py attachment_create tests the string
    // readonly='False' for truth; no API can change it while the volume is in use), the same
    // for ours and nova-manage's: the real component wins (README.md, finding a).
    assert.equal(only.attach_mode, newTheirs.attach_mode, "Cinder's attach_mode, as it assigns it to nova-manage's attachment");
    const stored = m.nova.block_device_mapping[0]!.connection_info as { data: Record<string, unknown> };
    assert.equal(stored.data.access_mode, 'rw', 'the guest is attached read-write');
  });

  test('a volume Cinder left attaching, its attachment attached (cinder-api died inside os-complete): nova-manage cannot reserve; we complete it again and refresh', async () => {
    const [theirs, mine] = await seed({ count: 2, vmState: 'stopped' });
    assert.ok(theirs && mine);
    // os-complete saves the attachment `attached`, then the volume `in-use`
    // (cinder/api/v3/attachments.py complete): cinder-api killed between the two.
    for (const twin of [theirs, mine]) await setCinderVolumeStatus(twin.volume_id, 'attaching');

    const r = novaManage(['volume_attachment', 'refresh', theirs.instance_uuid, theirs.volume_id, connector]);
    assert.notEqual(r.status, 0, `nova-manage refreshed it after all:\n${r.stdout}`);
    assert.equal((await cinderVolume(theirs.volume_id)).status, 'attaching', "nova-manage's twin: the volume is still attaching");

    const result = await ourRefresh(lab, mine, connector);
    const steps = (result.steps as Array<{ step: string }>).map((x) => x.step);
    assert.ok(steps.indexOf('cinder_complete_pending') >= 0, steps.join(' '));
    assert.ok(steps.indexOf('cinder_complete_pending') < steps.indexOf('cinder_reserve'), steps.join(' '));
    const m = await outcomeOf(mine);
    assert.equal(m.attachments.length, 1, JSON.stringify(m.attachments));
    assert.equal(m.attachments[0]!.status, 'attached');
    assertRefreshedNovaRows(mine, m, m.attachments[0]!.id);
    assert.equal((await cinderVolume(mine.volume_id)).status, 'in-use');
    await setCinderVolumeStatus(theirs.volume_id, 'in-use'); // what completing it again would do
  });
});
