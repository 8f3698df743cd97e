import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Fixtures, ISCSI_CHAP_CONNECTION_INFO } from './support/fixtures';
import { BUNDLE, NOVA_MANAGE } from './support/nova-env';

// Interop: the real `nova-manage volume_attachment show` (python3-nova 26) and ours, on the
// same rows of a schema the real nova-manage made. Every field nova prints must agree.

const fx = new Fixtures();
after(() => fx.close());

function novaManage(...args: string[]) {
  const r = spawnSync(NOVA_MANAGE[0]!, [...NOVA_MANAGE.slice(1), '--config-file', fx.env.confPath, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout.trim() };
}

function ours(...args: string[]) {
  const r = spawnSync(BUNDLE, ['--config-file', fx.env.confPath, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

/** nova prints "2026-01-02T03:05:00.000000" (naive UTC); we print "2026-01-02T03:05:00Z". */
function sameInstant(novaValue: unknown, ourValue: unknown): boolean {
  if (novaValue === null || ourValue === null) return novaValue === ourValue;
  return Date.parse(`${novaValue}Z`) === Date.parse(String(ourValue));
}

const TIME_FIELDS = new Set(['created_at', 'updated_at', 'deleted_at']);

async function assertSameAsNovaManage(instanceUuid: string, volumeId: string): Promise<void> {
  const theirs = novaManage('volume_attachment', 'show', instanceUuid, volumeId, '--json');
  assert.equal(theirs.status, 0, theirs.stdout);
  const mine = ours('volume_attachment', 'show', instanceUuid, volumeId, '--json', '--reveal-secrets');
  assert.equal(mine.status, 0, mine.stderr);
  const n = JSON.parse(theirs.stdout) as Record<string, unknown>;
  const o = JSON.parse(mine.stdout) as Record<string, unknown>;
  assert.ok(Object.keys(n).length >= 28, 'nova printed every BDM field');
  for (const [field, value] of Object.entries(n)) {
    assert.ok(field in o, `we print ${field}`);
    if (TIME_FIELDS.has(field)) assert.ok(sameInstant(value, o[field]), `${field}: nova ${value}, ours ${o[field]}`);
    else if (field === 'connection_info') assert.deepEqual(o[field], value === null ? null : JSON.parse(String(value)), field);
    else assert.deepEqual(o[field], value, field);
  }
}

test('a v3 BDM in the templated cell1, with unusual columns set', async () => {
  const instance = await fx.seedInstance('cell1');
  const bdm = await fx.seedBdm('cell1', instance, {
    boot_index: 0,
    delete_on_termination: 1,
    tag: 'db-disk',
    volume_type: 'ceph-ssd',
    encrypted: 1,
    encryption_secret_uuid: randomUUID(),
    encryption_format: 'luks',
    encryption_options: '{"cipher": "aes-xts-plain64"}',
    no_device: null,
    disk_bus: null,
    guest_format: 'ext4',
    snapshot_id: randomUUID(),
  });
  await assertSameAsNovaManage(instance, bdm.volumeId);
});

test('a legacy (attachment_id NULL) iSCSI/CHAP BDM in cell2', async () => {
  const instance = await fx.seedInstance('cell2');
  const bdm = await fx.seedBdm('cell2', instance, { attachment_id: null, connection_info_object: ISCSI_CHAP_CONNECTION_INFO });
  await assertSameAsNovaManage(instance, bdm.volumeId);
});

test('the same exit codes and messages when the instance or the BDM is missing', async () => {
  const ghost = randomUUID();
  const theirs = novaManage('volume_attachment', 'show', ghost, ghost);
  const mine = ours('volume_attachment', 'show', ghost, ghost);
  assert.deepEqual([mine.status, mine.stderr], [theirs.status, theirs.stdout]);
  assert.equal(mine.status, 2);

  const instance = await fx.seedInstance('cell1');
  const volume = randomUUID();
  const theirs3 = novaManage('volume_attachment', 'show', instance, volume);
  const mine3 = ours('volume_attachment', 'show', instance, volume);
  assert.deepEqual([mine3.status, mine3.stderr], [theirs3.status, theirs3.stdout]);
  assert.equal(mine3.status, 3);
});
