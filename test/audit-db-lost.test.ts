import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execute } from '../src/entry/run';
import { resultOf } from './support/results';
import { RBD_CONNECTION_INFO } from './support/fixtures';
import { RefreshEnv } from './support/refresh-env';
import { TcpProxy } from './support/tcp-proxy';

// A cell database lost in the middle of the audit's scan (not at connect): the rows come over
// a slow link, and the link is cut after the scan has started asking Cinder about them.

let env: RefreshEnv;
before(async () => {
  env = await RefreshEnv.start();
});
after(() => env.stop());

test(
  'the cell DB drops mid-scan: the audit says the cell is incomplete, counts only what it saw, and leaves nothing running',
  { timeout: 60_000 },
  async () => {
    const host = `nbs-lost-${randomUUID().slice(0, 6)}`;
    const db = env.fx.cell('cell1');
    const instance = await env.fx.seedInstance('cell1', { host });
    const rows = Array.from({ length: 200 }, (_, i) => ({
      created_at: '2026-01-02 03:05:00',
      uuid: randomUUID(),
      instance_uuid: instance,
      source_type: 'volume',
      destination_type: 'volume',
      device_name: `/dev/vd${i}`,
      delete_on_termination: 0,
      volume_id: randomUUID(),
      attachment_id: randomUUID(),
      connection_info: JSON.stringify(RBD_CONNECTION_INFO),
      deleted: 0,
    }));
    await db.insertInto('block_device_mapping').values(rows).execute();

    const proxy = await TcpProxy.start(3306, '127.0.0.1', { bytes: 2048, everyMs: 10 });
    const viaProxy = `mysql+pymysql://${env.fx.env.dbUser}:${encodeURIComponent(env.fx.env.dbPassword)}@127.0.0.1:${proxy.port}/${env.fx.env.databases.cell1}?charset=utf8`;
    let gets = 0;
    env.cloud.onRequest = (method, path) => {
      if (method === 'GET' && path.includes('/attachments/') && ++gets === 3) proxy.cutAll();
    };
    // Cinder answers slowly: calls are in flight when the scan breaks. Before the fix in
    // connect.ts the audit waited forever here (mysql2 told the connection, not the stream).
    env.cloud.failNext('GET', /\/attachments\//, 0, 1000, 200);
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const r = resultOf(
        await execute({
          action: 'audit',
          config_file: [env.fx.env.confPath, env.extraConf],
          hosts: [host],
          check_cinder: true,
          cinder_concurrency: 2,
          database_connection: viaProxy,
          connect_timeout: 2,
        }),
        'audit',
      );
      assert.equal(r.failed, true);
      assert.match(String(r.msg), /^audit incomplete: cell1: .*\(the other cells were audited\)$/);
      const cell1 = r.totals.cells.find((c) => c.name === 'cell1');
      assert.ok(cell1, 'cell1 is in the totals');
      assert.ok(cell1.error, 'cell1 carries its error');
      assert.ok(cell1.scanned < rows.length, `scanned ${cell1.scanned} of ${rows.length}: the cut fell mid-scan`);
      const reported = { scanned: cell1.scanned, stale: r.stale.length, total: r.totals.scanned };
      assert.equal(reported.stale, reported.scanned, 'every BDM seen is in the stale list (none exists in Cinder)');
      assert.equal(reported.total, reported.scanned);
      await new Promise((res) => setTimeout(res, 800)); // a call left running would finish now
      assert.deepEqual(
        { scanned: cell1.scanned, stale: r.stale.length, total: r.totals.scanned },
        reported,
        'nothing changes the result after it was returned',
      );
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      env.cloud.onRequest = undefined;
      env.cloud.clearFaults();
      await proxy.stop();
    }
  },
);
