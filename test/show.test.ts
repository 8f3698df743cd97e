import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { lockReasonFor } from '../src/actions/rules/lock-reason';
import { CLAIM_KEY } from '../src/nova-db/refresh-claim';
import { execute } from '../src/entry/run';
import { infoData, type Fields } from './support/results';
import type { FailureResult } from '../src/entry/result';
import type { ShowResult } from '../src/actions/show';
import { MASK } from '../src/output/mask-secrets';
import { Fixtures, ISCSI_CHAP_CONNECTION_INFO } from './support/fixtures';

// `show` through the one core, against the real Nova schema made by nova-manage.

const fx = new Fixtures();
const env = fx.env;
const conf = { config_file: env.confPath };

after(() => fx.close());

/** show's answer (or the failure it got), read field by field. */
async function show(args: Record<string, unknown>): Promise<Fields<ShowResult | FailureResult>> {
  const outcome = await execute({ ...conf, ...args });
  assert.ok(outcome.kind === 'show' || outcome.kind === 'failure', `not a show answer: ${outcome.kind}`);
  return outcome.result;
}

describe('show by each selector, across cells', () => {
  let instance1: string;
  let bdm1: Awaited<ReturnType<Fixtures['seedBdm']>>;
  let instance2: string;
  let bdm2: Awaited<ReturnType<Fixtures['seedBdm']>>;

  before(async () => {
    instance1 = await fx.seedInstance('cell1');
    bdm1 = await fx.seedBdm('cell1', instance1);
    instance2 = await fx.seedInstance('cell2', { host: 'compute2', vm_state: 'active', power_state: 1, locked: 1, locked_by: 'owner' });
    bdm2 = await fx.seedBdm('cell2', instance2, { connection_info_object: ISCSI_CHAP_CONNECTION_INFO, device_name: '/dev/vdc' });
  });

  test('bdm_uuid in the templated cell1: every column, the instance, the cell, masked secrets', async () => {
    const r = await show({ bdm_uuid: bdm1.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.changed, false);
    assert.deepEqual(r.cell, { uuid: env.cells.cell1, name: 'cell1' });
    assert.deepEqual(r.instance, {
      uuid: instance1,
      host: 'compute1',
      node: 'compute1.example.org',
      vm_state: 'stopped',
      task_state: null,
      power_state: 4,
      locked: false,
      locked_by: null,
    });
    const bdm = r.bdm;
    assert.ok(bdm, 'one BDM shown');
    assert.deepEqual(Object.keys(bdm).sort(), [
      'attachment_id',
      'boot_index',
      'connection_info',
      'created_at',
      'delete_on_termination',
      'deleted',
      'deleted_at',
      'destination_type',
      'device_name',
      'device_type',
      'disk_bus',
      'encrypted',
      'encryption_format',
      'encryption_options',
      'encryption_secret_uuid',
      'guest_format',
      'id',
      'image_id',
      'instance_uuid',
      'no_device',
      'snapshot_id',
      'source_type',
      'tag',
      'updated_at',
      'uuid',
      'volume_id',
      'volume_size',
      'volume_type',
    ]);
    assert.equal(bdm.id, bdm1.id);
    assert.equal(bdm.uuid, bdm1.uuid);
    assert.equal(bdm.volume_id, bdm1.volumeId);
    assert.equal(bdm.delete_on_termination, false);
    assert.equal(bdm.no_device, false, 'NULL tinyint shown as false, like the BDM object');
    assert.equal(bdm.deleted, false);
    assert.equal(bdm.created_at, '2026-01-02T03:05:00Z');
    assert.equal(bdm.deleted_at, null);
    assert.equal(r.attachment_id, bdm1.attachmentId);
    const info = r.connection_info;
    assert.deepEqual(info, bdm.connection_info);
    assert.equal((info as { driver_volume_type?: unknown }).driver_volume_type, 'rbd');
    const data = infoData(info);
    assert.equal(data.keyring, MASK);
    assert.equal(data.secret_uuid, '457eb676-33da-42ec-9a8c-9293d545c337');
    assert.deepEqual(data.hosts, ['192.0.2.11', '192.0.2.12', '192.0.2.13']);
    assert.ok(!JSON.stringify(r).includes('cephkeyringsecret'));
  });

  test('bdm_uuid in cell2 (literal URL): CHAP passwords masked', async () => {
    const r = await show({ bdm_uuid: bdm2.uuid });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.deepEqual(r.cell, { uuid: env.cells.cell2, name: 'cell2' });
    assert.equal(r.instance?.locked, true);
    assert.equal(r.instance?.locked_by, 'owner');
    const data = infoData(r.connection_info);
    assert.equal(data.auth_password, MASK);
    assert.equal(data.discovery_auth_password, MASK);
    assert.equal(data.auth_username, 'chapuser');
    assert.ok(!JSON.stringify(r).includes('chapsecret-pw'));
  });

  test('reveal_secrets shows them', async () => {
    const r = await show({ bdm_uuid: bdm2.uuid, reveal_secrets: true });
    assert.equal(infoData(r.connection_info).auth_password, 'chapsecret-pw');
    assert.equal(infoData(r.bdm?.connection_info).discovery_auth_password, 'discovery-chap-pw');
  });

  test('instance_uuid + volume_id, upper-case UUIDs accepted', async () => {
    const r = await show({ instance_uuid: instance2.toUpperCase(), volume_id: bdm2.volumeId.toUpperCase() });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.bdm?.uuid, bdm2.uuid);
    assert.equal(r.bdm?.device_name, '/dev/vdc');
  });

  test('instance_uuid alone: every live volume BDM, not the image BDM nor soft-deleted ones', async () => {
    const instance = await fx.seedInstance('cell1');
    await fx.seedBdm('cell1', instance, {
      source_type: 'image',
      destination_type: 'local',
      device_name: '/dev/vda',
      boot_index: 0,
      volume_id: null,
      attachment_id: null,
      connection_info: null,
      image_id: randomUUID(),
    });
    const a = await fx.seedBdm('cell1', instance, { device_name: '/dev/vdb' });
    const b = await fx.seedBdm('cell1', instance, { device_name: '/dev/vdc', attachment_id: null });
    const gone = await fx.seedBdm('cell1', instance, { device_name: '/dev/vdd' });
    await fx
      .cell('cell1')
      .updateTable('block_device_mapping')
      .set({ deleted: gone.id, deleted_at: '2026-02-01 00:00:00' })
      .where('id', '=', gone.id)
      .execute();
    const r = await show({ instance_uuid: instance });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.bdm, undefined);
    const bdms = r.bdms ?? [];
    assert.deepEqual(
      bdms.map((x) => x.uuid),
      [a.uuid, b.uuid],
    );
    assert.equal(bdms[1]?.attachment_id, null);
    assert.equal(r.instance?.uuid, instance);
  });
});

describe('show edge cases', () => {
  test('legacy (cinder v2) BDM: attachment_id null', async () => {
    const instance = await fx.seedInstance('cell1');
    const bdm = await fx.seedBdm('cell1', instance, { attachment_id: null });
    const r = await show({ instance_uuid: instance, volume_id: bdm.volumeId });
    assert.equal(r.failed, undefined, String(r.msg));
    assert.equal(r.attachment_id, null);
    assert.equal(r.bdm?.attachment_id, null);
  });

  test('a soft-deleted BDM is not shown; the live one for the same volume is', async () => {
    const instance = await fx.seedInstance('cell2');
    const volumeId = randomUUID();
    const old = await fx.seedBdm('cell2', instance, { volume_id: volumeId, device_name: '/dev/vdb' });
    await fx
      .cell('cell2')
      .updateTable('block_device_mapping')
      .set({ deleted: old.id, deleted_at: '2026-02-01 00:00:00' })
      .where('id', '=', old.id)
      .execute();
    const live = await fx.seedBdm('cell2', instance, { volume_id: volumeId, device_name: '/dev/vdc' });
    const r = await show({ instance_uuid: instance, volume_id: volumeId });
    assert.equal(r.bdm?.uuid, live.uuid);
    const byUuid = await show({ bdm_uuid: old.uuid });
    assert.equal(byUuid.failed, true);
    assert.equal(byUuid.msg, `No block device mapping with uuid ${old.uuid} in any cell.`);
  });

  test('a non-volume BDM is refused clearly', async () => {
    const instance = await fx.seedInstance('cell1');
    const bdm = await fx.seedBdm('cell1', instance, {
      source_type: 'image',
      destination_type: 'local',
      volume_id: null,
      attachment_id: null,
      connection_info: null,
    });
    const r = await show({ bdm_uuid: bdm.uuid });
    assert.equal(r.failed, true);
    assert.equal(r.msg, `BDM ${bdm.uuid} is not a volume BDM (source_type image, destination_type local).`);
  });

  test('instance without a mapping, instance not yet in a cell, volume not attached', async () => {
    const ghost = randomUUID();
    let r = await show({ instance_uuid: ghost, volume_id: randomUUID() });
    assert.equal(r.msg, `Instance ${ghost} has no mapping to a cell.`);
    const unscheduled = randomUUID();
    await fx.api
      .insertInto('instance_mappings')
      .values({ instance_uuid: unscheduled, cell_id: null, project_id: 'p', created_at: new Date() })
      .execute();
    r = await show({ instance_uuid: unscheduled });
    assert.match(String(r.msg), /is not mapped to a cell yet/);
    const instance = await fx.seedInstance('cell1');
    const volume = randomUUID();
    r = await show({ instance_uuid: instance, volume_id: volume });
    assert.equal(r.failed, true);
    assert.equal(r.msg, `No volume Block Device Mapping with id ${volume}.`);
  });

  test('a BDM whose instance row is gone is still shown, with a warning (as nova-manage shows it)', async () => {
    const instance = await fx.seedInstance('cell1');
    const bdm = await fx.seedBdm('cell1', instance);
    await fx.cell('cell1').updateTable('instances').set({ deleted: 999999 }).where('uuid', '=', instance).execute();
    const r = await show({ bdm_uuid: bdm.uuid });
    assert.equal(r.failed, undefined);
    assert.equal(r.instance, null);
    assert.match(String(r.warnings?.[0]), /has no live row in cell1/);
  });

  test('unparsable connection_info: null plus a warning, raw text only with reveal_secrets', async () => {
    const instance = await fx.seedInstance('cell1');
    const bdm = await fx.seedBdm('cell1', instance, { connection_info: "{'auth_password': 'py-repr-secret'" });
    const r = await show({ bdm_uuid: bdm.uuid });
    assert.equal(r.connection_info, null);
    assert.match(String(r.warnings?.[0]), /not valid JSON/);
    assert.ok(!JSON.stringify(r).includes('py-repr-secret'));
    const revealed = await show({ bdm_uuid: bdm.uuid, reveal_secrets: true });
    assert.equal(revealed.connection_info, "{'auth_password': 'py-repr-secret'");
  });

  test('the same BDM uuid live in two cells is reported, not guessed', async () => {
    const uuid = randomUUID();
    await fx.seedBdm('cell1', await fx.seedInstance('cell1'), { uuid });
    await fx.seedBdm('cell2', await fx.seedInstance('cell2'), { uuid });
    const r = await show({ bdm_uuid: uuid });
    assert.equal(r.failed, true);
    assert.match(String(r.msg), /is live more than once \(cells: cell1, cell2\)/);
  });
});

describe('databases that fail', () => {
  test('API DB down: fails fast, naming the database and host', async () => {
    const started = Date.now();
    const r = await show({
      bdm_uuid: randomUUID(),
      api_database_connection: 'mysql+pymysql://nova:hunter2secret@127.0.0.1:1/nova_api',
      connect_timeout: 3,
    });
    assert.equal(r.failed, true);
    assert.equal(r.msg, 'cannot connect to the API database nova_api at 127.0.0.1:1: connection refused (is the database server running?)');
    assert.ok(Date.now() - started < 3000);
  });

  test('wrong password: access denied, and the password appears nowhere, even at -vvv', async () => {
    const r = await show({
      bdm_uuid: randomUUID(),
      api_database_connection: `mysql+pymysql://${env.dbUser}:Wr0ng%40Secret@127.0.0.1:3306/${env.databases.api}`,
      _ansible_verbosity: 3,
    });
    assert.equal(r.failed, true);
    // MySQL's message whole, parenthesis and all: scrubbing goes by secret values, not by the word "password".
    assert.equal(
      r.msg,
      `cannot connect to the API database ${env.databases.api} at 127.0.0.1:3306: Access denied for user '${env.dbUser}'@'127.0.0.1' (using password: YES)`,
    );
    assert.equal(typeof r.exception, 'string');
    const text = JSON.stringify(r);
    assert.ok(!text.includes('Wr0ng'), text);
    assert.ok(!text.includes(env.dbPassword) && !text.includes(encodeURIComponent(env.dbPassword)), text);
  });

  test('a server that never answers: timed out within connect_timeout', async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      const r = await show({
        bdm_uuid: randomUUID(),
        api_database_connection: `mysql+pymysql://nova:pw@127.0.0.1:${port}/nova_api`,
        connect_timeout: 1,
      });
      const elapsed = Date.now() - started;
      assert.equal(r.msg, `cannot connect to the API database nova_api at 127.0.0.1:${port}: timed out`);
      assert.ok(elapsed >= 900 && elapsed < 4000, `took ${elapsed} ms`);
    } finally {
      silent.close();
    }
  });

  test('one cell DB refusing us: a BDM elsewhere is still found (with a warning); one in that cell fails naming the cell', async () => {
    const instance1 = await fx.seedInstance('cell1');
    const inCell1 = await fx.seedBdm('cell1', instance1);
    const instance2 = await fx.seedInstance('cell2');
    const inCell2 = await fx.seedBdm('cell2', instance2);
    // cell1's URL is a template filled from [database] connection: a wrong password there breaks cell1 only.
    const brokenLocal = `mysql+pymysql://${env.dbUser}:N0tThePw@127.0.0.1:3306/${env.databases.cell1}?charset=utf8`;
    const found = await show({ bdm_uuid: inCell2.uuid, database_connection: brokenLocal });
    assert.equal(found.failed, undefined, String(found.msg));
    assert.match(
      String((found.warnings as string[])[0]),
      new RegExp(
        `^cell1 was not searched: cannot connect to the cell1 database ${env.databases.cell1} at 127\\.0\\.0\\.1:3306: Access denied for user '${env.dbUser}'@'127\\.0\\.0\\.1' \\(using password: YES\\)$`,
      ),
    );
    const lost = await show({ bdm_uuid: inCell1.uuid, database_connection: brokenLocal });
    assert.equal(lost.failed, true);
    assert.match(
      String(lost.msg),
      new RegExp(`^cannot connect to the cell1 database ${env.databases.cell1} at 127\\.0\\.0\\.1:3306: Access denied for user`),
    );
    assert.ok(!JSON.stringify([found, lost]).includes('N0tThePw'));
  });
});

describe('show says when a refresh of the BDM holds the instance or was interrupted', () => {
  const host = `${hostname()}${(() => {
    try {
      return ` ${readlinkSync('/proc/self/ns/pid')}`;
    } catch {
      return '';
    }
  })()}`;
  const claim = async (instanceUuid: string, bdmUuid: string, pid: number) =>
    fx
      .cell('cell1')
      .insertInto('instance_system_metadata')
      .values({
        created_at: new Date(),
        updated_at: new Date(),
        deleted: 0,
        instance_uuid: instanceUuid,
        key: CLAIM_KEY,
        value: JSON.stringify({ token: `t-${pid}`, host, pid, bdms: [bdmUuid], we_locked: false, since: '2026-12-01T03:00:00.000Z' }),
      })
      .execute();

  test("the claim of a dead refresh under the owner's lock; a running one; a refresh lock with no claim; none", async () => {
    const dead = await new Promise<number>((resolve) => {
      const child = spawn('true');
      child.on('exit', () => resolve(child.pid!));
    });
    // Killed while it refreshed under the owner's lock: the lock is the owner's, only the claim tells.
    const i1 = await fx.seedInstance('cell1', { locked: 1, locked_by: 'owner' });
    const b1 = await fx.seedBdm('cell1', i1);
    await claim(i1, b1.uuid, dead);
    const r1 = await show({ bdm_uuid: b1.uuid });
    assert.equal(r1.interrupted_refresh, true);
    assert.match(
      String((r1.warnings as string[])[0]),
      new RegExp(
        `^an interrupted refresh of this BDM \\(nova-bdm on \\S+, pid ${dead}, since 2026-12-01T03:00:00.000Z\\) left its claim on instance ${i1} and the instance locked; the next refresh of this BDM recovers it first$`,
      ),
    );

    // A live holder: running now, not interrupted.
    const live = spawn('sleep', ['30']);
    try {
      const i2 = await fx.seedInstance('cell1');
      const b2 = await fx.seedBdm('cell1', i2);
      await claim(i2, b2.uuid, live.pid!);
      const r2 = await show({ bdm_uuid: b2.uuid });
      assert.equal(r2.interrupted_refresh, undefined);
      assert.match(
        String(r2.warnings?.[0]),
        new RegExp(
          `^a refresh of this BDM is running now \\(nova-bdm on \\S+, pid ${live.pid}, since 2026-12-01T03:00:00.000Z, last heartbeat \\d+ s ago\\)$`,
        ),
      );
    } finally {
      live.kill();
    }

    // nova-manage's lock (its locked_reason, no claim of ours).
    const i3 = await fx.seedInstance('cell1', { locked: 1, locked_by: 'admin' });
    const b3 = await fx.seedBdm('cell1', i3);
    await fx
      .cell('cell1')
      .insertInto('instance_system_metadata')
      .values({
        created_at: new Date(),
        deleted: 0,
        instance_uuid: i3,
        key: 'locked_reason',
        value: lockReasonFor({ uuid: b3.uuid, instance_uuid: i3, volume_id: b3.volumeId }),
      })
      .execute();
    const r3 = await show({ bdm_uuid: b3.uuid });
    assert.equal(r3.interrupted_refresh, true);
    assert.deepEqual(r3.warnings, [
      `an interrupted refresh of this BDM left instance ${i3} locked; the next refresh of this BDM recovers it first`,
    ]);

    // Nothing of the kind: no key, no warning.
    const i4 = await fx.seedInstance('cell1', { locked: 1, locked_by: 'owner' });
    const b4 = await fx.seedBdm('cell1', i4);
    const r4 = await show({ bdm_uuid: b4.uuid });
    assert.equal(r4.interrupted_refresh, undefined);
    assert.equal(r4.warnings, undefined);
  });
});
