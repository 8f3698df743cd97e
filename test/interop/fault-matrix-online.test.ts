import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cephMon,
  getConnectorJson,
  hardReboot,
  powerInstance,
  qemuPid,
  runOurs,
  runOursKilledBefore,
  seed,
  upLab,
  type LabEnv,
  type Seeded,
} from './harness';
import { danglingBdmProblems, failedActionProblems, finalProblems, interimProblems, snapshot, type Snapshot } from './faults/end-state';
import { LabService } from './faults/lab-services';
import { startRig, type Rig } from './faults/rig';
import {
  armFaults,
  cellDbHook,
  DB_WRITES,
  disarmFaults,
  faultTable,
  HTTP_TIMEOUT,
  LOCK_WAIT,
  loseAnswerToNth,
  newRow,
  type Hooks,
  type Row,
} from './faults/matrix';
import { INTEROP_SKIP } from './tier';

// Issue 23 item 4: the fault matrix of the online refresh (running_instances: online) on the real
// lab. Two rbd guests run on compute2 (libvirt, QEMU's librbd) for the whole file. Each case
// refreshes one of them (force: true, expect = the live mon) with one fault at one step of the
// online flow (attachment create, complete, BDM save, old attachment delete): cinder-api
// SIGKILLed between two of those calls, the cell DB connection cut before the BDM save, or our
// own process SIGKILLed before a step. Then the same refresh runs once more. Throughout, the
// guest keeps its QEMU process; at every check point (at the fault when the test can look then,
// after the first run, after the re-run) the BDM names an attachment Cinder has; after the
// re-run the instance is active and unlocked, the volume in-use with exactly one attachment (the
// BDM's), and the BDM's connection_info names the live mon. The table is printed at the end.

const SKIP = INTEROP_SKIP;

/** Running guests shared by the cases (each case leaves its guest consistent, so the next can reuse it). */
const GUESTS = 2;

interface Guest extends Seeded {
  /** The QEMU process started before the first case; it must serve the guest to the end. */
  pid: number;
}

interface Ctx {
  rig: Rig;
  cinderApi: LabService;
  /** Looks at the BDM and Cinder now (Cinder must be up) and records a dangling BDM. */
  checkpoint(label: string): Promise<void>;
}

interface Case {
  name: string;
  /** Where it strikes, in the online flow's steps. */
  at: string;
  /** Proxy hooks (and service signals) for the first run. */
  inject?(ctx: Ctx): Hooks;
  /** Our process kills itself when its step log reaches this step. */
  killBefore?: string;
  /** The step the first run reports as failed (cases where it lives to report). */
  failsAt?: string;
  /** Whether the BDM names a new attachment after the first run (the save went through before the fault). */
  saved: boolean;
  /** Ends the fault after the first run. */
  heal?(ctx: Ctx): Promise<void>;
}

// The Cinder calls of the online flow, by request line (each call its own connection).
const CREATE = /^POST \S+\/attachments HTTP/;
const COMPLETE = /^POST \S+\/attachments\/[0-9a-f-]+\/action HTTP/;
const DELETE = /^DELETE \S+\/attachments\/[0-9a-f-]+ HTTP/;

/** Once, before the first Cinder request that matches: look, then `act`. */
function beforeCinderCall(call: RegExp, c: Ctx, label: string, act: () => Promise<void>): Hooks {
  let done = false;
  return {
    cinder: {
      onHttpRequest: async (line) => {
        if (done || !call.test(line)) return;
        done = true;
        await c.checkpoint(label);
        await act();
      },
    },
  };
}

/** Once, before the tool's first BDM write reaches the cell DB: look, then `act` and pass it or cut the connection. */
function beforeBdmSave(c: Ctx, label: string, act: () => Promise<'pass' | 'cut'>): Hooks {
  let done = false;
  return {
    cellDb: cellDbHook(async (q) => {
      if (done || !DB_WRITES.saveBdm.test(q)) return 'pass';
      done = true;
      await c.checkpoint(label);
      return act();
    }),
  };
}

const restartCinder = async (c: Ctx) => void (await c.cinderApi.restart());

const cases: Case[] = [
  {
    name: 'cinder-api SIGKILL before attachment_create',
    at: 'after the reads, before attachment_create',
    inject: (c) => beforeCinderCall(CREATE, c, 'before attachment_create', () => c.cinderApi.kill()),
    heal: restartCinder,
    failsAt: 'attachment_create',
    saved: false,
  },
  {
    name: 'cinder-api SIGKILL between attachment_create and attachment_complete',
    at: 'attachment_complete',
    inject: (c) => beforeCinderCall(COMPLETE, c, 'before attachment_complete', () => c.cinderApi.kill()),
    heal: restartCinder,
    failsAt: 'attachment_complete',
    saved: false,
  },
  {
    name: 'cinder-api SIGKILL between attachment_complete and bdm_save',
    at: 'bdm_save (Cinder down from then on)',
    inject: (c) =>
      beforeBdmSave(c, 'before bdm_save', async () => {
        await c.cinderApi.kill();
        return 'pass';
      }),
    heal: restartCinder,
    failsAt: 'attachment_delete',
    saved: true,
  },
  {
    name: 'cinder-api SIGKILL between bdm_save and attachment_delete',
    at: 'attachment_delete',
    inject: (c) => beforeCinderCall(DELETE, c, 'before attachment_delete', () => c.cinderApi.kill()),
    heal: restartCinder,
    failsAt: 'attachment_delete',
    saved: true,
  },
  {
    name: 'cell DB connection cut before bdm_save',
    at: 'bdm_save',
    inject: (c) => beforeBdmSave(c, 'before bdm_save', async () => 'cut'),
    failsAt: 'bdm_save',
    saved: false,
  },
  {
    name: 'cell DB connection lost after the BDM save reached the server (its answer lost)',
    at: 'bdm_save (its answer)',
    inject: (c) => ({ cellDb: loseAnswerToNth(DB_WRITES.saveBdm, 1, () => c.checkpoint('before bdm_save')) }),
    failsAt: 'bdm_save',
    saved: true,
  },
  ...['attachment_create', 'attachment_complete', 'bdm_save', 'attachment_delete', 'finish_action', 'unlock'].map((step, i): Case => ({
    name: `our process SIGKILLed before ${step}`,
    at: step,
    killBefore: step,
    saved: i >= 3,
  })),
];

function failedStep(r: Record<string, unknown>): string {
  const steps = r.steps as Array<{ step: string; ok: boolean }> | undefined;
  return steps?.find((s) => !s.ok)?.step ?? (typeof r.remains === 'string' ? 'the lock' : 'a read before the lock: nothing written');
}

describe('fault matrix: online refresh of running rbd guests on the real lab (issue 23 item 4)', { skip: SKIP, timeout: 3_600_000 }, () => {
  let lab: LabEnv;
  let rig: Rig;
  let connector: string;
  let liveMon: string;
  const guests: Guest[] = [];
  const rows: Row[] = [];

  before(async () => {
    lab = await upLab();
    liveMon = cephMon().addr;
    connector = getConnectorJson('compute2');
    rig = await startRig(lab, { httpTimeoutSeconds: HTTP_TIMEOUT });
    const seeded = await seed({ count: GUESTS, rbd: true });
    for (const s of seeded) {
      const started = await powerInstance('start', s.instance_uuid);
      assert.equal(started.error, null, `start failed: ${started.error}`);
      assert.deepEqual([started.vm_state, started.power_state, started.domain_rbd_hosts], ['active', 'running', [liveMon]]);
      assert.ok(started.qemu_pid, 'the guest has a QEMU process');
      guests.push({ ...s, pid: started.qemu_pid });
    }
  });

  after(async () => {
    await rig?.stop();
    for (const g of guests) await powerInstance('stop', g.instance_uuid).catch(() => undefined);
    if (rows.length) {
      const head = `fault matrix (online refresh of a running rbd guest; Cinder timeout ${HTTP_TIMEOUT} s, lock wait ${LOCK_WAIT} s)`;
      process.stdout.write(`\n${head}:\n${faultTable(rows)}\n`);
    }
  });

  cases.forEach((fault, index) => {
    test(fault.name, async () => {
      // The next guest that is consistent now (a failed case must not spoil the next ones).
      let guest: Guest | undefined;
      for (let k = 0; k < guests.length && !guest; k++) {
        const candidate = guests[(index + k) % guests.length]!;
        if (finalProblems(candidate, await snapshot(candidate), Infinity, 'active').length === 0) guest = candidate;
      }
      assert.ok(guest, 'a consistent running guest to start from (every guest was left inconsistent by earlier cases)');
      const g = guest;
      assert.equal(await qemuPid(g.instance_uuid), g.pid, 'the guest runs in the QEMU process it started with');

      const reason = `Refreshing connection_info for BDM ${g.bdm_uuid} associated with instance ${g.instance_uuid} and volume ${g.volume_id}.`;
      const checkpoints: string[] = [];
      const dangling: string[] = [];
      const look = (label: string, s: Snapshot) => {
        checkpoints.push(label);
        for (const p of danglingBdmProblems(s)) dangling.push(`${label}: ${p}`);
      };
      const ctx: Ctx = {
        rig,
        cinderApi: new LabService(lab, 'cinder-api'),
        checkpoint: async (label) => look(label, await snapshot(g)),
      };
      const args = {
        action: 'refresh',
        instance_uuid: g.instance_uuid,
        volume_id: g.volume_id,
        connector_path: connector,
        require_libvirt: true,
        running_instances: 'online',
        expect: { driver_volume_type: 'rbd', data: { hosts: [liveMon], ports: ['6789'] } },
        force: true,
        ...rig.toolArgs,
      };
      const row = newRow(fault.name, fault.at);
      rows.push(row);
      const before = await snapshot(g);
      const actionsBefore = before.nova.instance_actions.length;

      armFaults(rig, fault.inject?.(ctx) ?? {});
      const t0 = Date.now();
      let r1: Record<string, unknown> | null;
      let signal: NodeJS.Signals | null = null;
      try {
        if (fault.killBefore) ({ signal, result: r1 } = await runOursKilledBefore(fault.killBefore, args, 180_000));
        else r1 = (await runOurs(args, 180_000)).result;
      } finally {
        disarmFaults(rig);
        await fault.heal?.(ctx);
      }
      const seconds = ((Date.now() - t0) / 1000).toFixed(1);
      const msg = String(r1?.msg ?? '');
      row.first = signal
        ? `killed (${signal})`
        : r1?.failed
          ? `failed at ${failedStep(r1)}`
          : `ok (${r1?.changed ? 'changed' : 'unchanged'})`;
      row.failSeconds = signal || r1?.failed ? `${seconds} s` : '-';
      process.stdout.write(`# ${fault.name}: first run ${seconds} s: ${signal ?? msg}\n`);

      const interim = await snapshot(g);
      look('after the first run', interim);
      const pidAfterFirst = await qemuPid(g.instance_uuid);
      const cleanupFailed = /clean-up failed too/.test(String(r1?.remains ?? ''));
      const interimIssues = [...interimProblems(g, interim, reason, cleanupFailed), ...failedActionProblems(interim, actionsBefore)];
      row.interim = dangling.length
        ? `DANGLING: ${dangling.join('; ')}`
        : interimIssues.length
          ? `INCONSISTENT: ${interimIssues.join('; ')}`
          : `${interim.nova.instance?.locked ? 'locked by the refresh (next run recovers)' : 'unlocked, BDM consistent'}; ` +
            `${interim.attachments.length} attachment(s)`;

      // The same refresh again: it must converge, online.
      const r2 = (await runOurs(args, 180_000)).result;
      row.rerun = r2.failed ? `FAILED: ${String(r2.msg)}` : `ok${r2.recovered ? ' (recovered)' : ''}${r2.online ? ', online' : ''}`;
      const end = await snapshot(g);
      look('after the re-run', end);
      const pidAtEnd = await qemuPid(g.instance_uuid);
      const endIssues = finalProblems(g, end, actionsBefore, 'active');
      const hosts = (end.nova.block_device_mapping[0]?.connection_info as { data?: { hosts?: unknown } } | null)?.data?.hosts;
      if (JSON.stringify(hosts) !== JSON.stringify([liveMon])) {
        endIssues.push(`connection_info names ${JSON.stringify(hosts)}, not the live mon ${liveMon}`);
      }
      if (pidAfterFirst !== g.pid || pidAtEnd !== g.pid) endIssues.push(`QEMU pid ${g.pid} -> ${pidAfterFirst} -> ${pidAtEnd}`);
      row.end = endIssues.length ? `INCONSISTENT: ${endIssues.join('; ')}` : `consistent, same QEMU pid (${checkpoints.length} checks)`;

      // The first run ended by the fault: killed, or failed with one line that says what is left.
      if (fault.killBefore) {
        assert.equal(signal, 'SIGKILL', `the run reached ${fault.killBefore} and was killed there: ${JSON.stringify(r1)}`);
        assert.equal(interim.nova.instance?.locked, true, 'the killed run left its lock (the next run recovers)');
      } else {
        assert.ok(r1, 'the first run printed its JSON');
        assert.equal(r1.failed, true, `the first run should fail: ${JSON.stringify(r1)}`);
        assert.equal(failedStep(r1), fault.failsAt, `it fails where the fault struck: ${msg}`);
        assert.ok(msg.length > 0 && !msg.includes('\n'), `one line: ${msg}`);
        assert.ok(!/unexpected error/.test(msg), msg);
        assert.equal(typeof r1.remains, 'string', `past the lock, the result says what remains: ${JSON.stringify(r1)}`);
        assert.ok(msg.includes(String(r1.remains)), `the message says what remains: ${msg}`);
      }
      assert.ok(checkpoints.length >= (fault.inject ? 3 : 2), `the fault struck where it should (check points: ${checkpoints.join(', ')})`);
      assert.deepEqual(dangling, [], 'at every check point the BDM names an attachment Cinder has');
      assert.deepEqual(interimIssues, [], 'what the first run leaves is consistent or locked for recovery');
      const interimAttachment = interim.nova.block_device_mapping[0]?.attachment_id;
      const moved = interimAttachment !== before.nova.block_device_mapping[0]?.attachment_id;
      assert.equal(moved, fault.saved, `the BDM was ${fault.saved ? '' : 'not '}saved before the fault`);
      assert.equal(pidAfterFirst, g.pid, 'the guest kept its QEMU process through the fault');
      assert.equal(r2.failed, undefined, `the re-run converges: ${JSON.stringify(r2)}`);
      if (interim.nova.instance?.locked) {
        assert.ok(r2.recovered, `the re-run recovered the interrupted refresh first: ${JSON.stringify(r2)}`);
      }
      assert.equal(r2.online, true, `the re-run refreshed online: ${JSON.stringify(r2)}`);
      assert.notEqual(end.nova.block_device_mapping[0]?.attachment_id, interimAttachment, 'the re-run made a new attachment (force)');
      assert.deepEqual(endIssues, [], 'end state');
    });
  });

  test('the fleet form, both guests at once: cinder-api SIGKILL before the 2nd attachment_complete; the same fleet refresh again converges on both', async () => {
    assert.ok(guests.length === GUESTS);
    for (const g of guests) {
      assert.deepEqual(finalProblems(g, await snapshot(g), Infinity, 'active'), [], 'each guest is consistent to start from');
      assert.equal(await qemuPid(g.instance_uuid), g.pid);
    }
    const args = {
      action: 'refresh',
      instance_uuids: guests.map((g) => g.instance_uuid),
      connector_path: connector,
      require_libvirt: true,
      running_instances: 'online',
      expect: { driver_volume_type: 'rbd', data: { hosts: [liveMon], ports: ['6789'] } },
      force: true,
      max_parallel: GUESTS,
      per_host_parallel: GUESTS,
      ...rig.toolArgs,
    };
    const actionsBefore = await Promise.all(guests.map(async (g) => (await snapshot(g)).nova.instance_actions.length));
    const cinderApi = new LabService(lab, 'cinder-api');
    let completes = 0;
    armFaults(rig, { cinder: { onHttpRequest: (line) => (COMPLETE.test(line) && ++completes === 2 ? cinderApi.kill() : undefined) } });
    let r1: Record<string, unknown>;
    try {
      r1 = (await runOurs(args, 180_000)).result;
    } finally {
      disarmFaults(rig);
      await cinderApi.restart();
    }
    process.stdout.write(`# fleet form: first run: ${String(r1.msg)}\n`);
    const counts = r1.counts as { refreshed: number; skipped: number; failed: number } | undefined;
    const failures = (r1.failures ?? []) as Array<{ msg: string; remains: string }>;
    assert.equal(r1.failed, true, JSON.stringify(r1).slice(0, 2000));
    assert.ok(counts && counts.refreshed + counts.skipped + counts.failed === GUESTS && counts.failed >= 1, JSON.stringify(counts));
    for (const f of failures)
      assert.ok(!f.msg.includes('\n') && f.remains.length > 0, `one line, saying what remains: ${JSON.stringify(f)}`);
    for (const g of guests) {
      const interim = await snapshot(g);
      assert.deepEqual(danglingBdmProblems(interim), [], `${g.instance_uuid}: its BDM names an attachment Cinder has`);
      assert.equal(await qemuPid(g.instance_uuid), g.pid, `${g.instance_uuid}: the guest kept its QEMU process through the fault`);
    }

    const r2 = (await runOurs(args, 180_000)).result;
    assert.equal(r2.failed, undefined, `the re-run converges: ${JSON.stringify(r2).slice(0, 3000)}`);
    const refreshed = (r2.refreshed ?? []) as Array<{ instance_uuid: string; online?: boolean }>;
    assert.deepEqual(
      refreshed.map((e) => [e.instance_uuid, e.online]).sort(),
      guests.map((g) => [g.instance_uuid, true]).sort(),
      'both refreshed online',
    );
    for (const [i, g] of guests.entries()) {
      const end = await snapshot(g);
      assert.deepEqual(finalProblems(g, end, actionsBefore[i]!, 'active'), [], `${g.instance_uuid}: end state`);
      const hosts = (end.nova.block_device_mapping[0]?.connection_info as { data?: { hosts?: unknown } } | null)?.data?.hosts;
      assert.deepEqual(hosts, [liveMon], `${g.instance_uuid}: connection_info names the live mon`);
      assert.equal(await qemuPid(g.instance_uuid), g.pid, `${g.instance_uuid}: still the QEMU process it started with`);
    }
  });

  test('after every case, a hard reboot rebuilds each guest from the BDM the cases left', async () => {
    for (const g of guests) {
      const r = await hardReboot(g.instance_uuid, 60);
      assert.equal(r.error, null, `hard reboot failed: ${r.error}`);
      assert.deepEqual([r.vm_state, r.power_state, r.task_state, r.domain_rbd_hosts], ['active', 'running', null, [liveMon]]);
      assert.equal(r.qemu_pid_before, g.pid, 'the QEMU process started before the first case ran through every case');
      assert.ok(r.qemu_pid && r.qemu_pid !== g.pid, 'a new QEMU process, its domain defined again from the BDM');
    }
  });
});
