import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runAnsible, type AnsibleRun } from '../support/ansible-run';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ISCSI_CHAP_CONNECTION_INFO } from '../support/fixtures';
import { USERS } from '../support/fake-openstack';
import { BUNDLE } from '../support/nova-env';
import { NEW_MONITORS, OLD_MONITORS, RefreshEnv } from '../support/refresh-env';
import { parseMetricsFile, sampleValue } from '../support/prometheus-text';
import type { AuditResult } from '../../src/actions/audit/audit';
import { entryFor, readRefreshSummary, withRefreshSummary, type RefreshSummaryFact } from '../support/results';

// The osops.nova collection as users run it: the tarball `ansible-galaxy collection build`
// makes from ansible/, installed with `ansible-galaxy collection install`, every playbook run
// by FQCN with the real ansible-playbook against the real Nova schema, the stand-in compute
// (oslo RPC on the real RabbitMQ) and the stand-in Keystone + Cinder.
//
// RefreshEnv serves HTTP and AMQP from this process: ansible-playbook is always spawned
// asynchronously, never with spawnSync, or the stand-ins could not answer.

const ROOT = join(__dirname, '..', '..', '..');
const SECRETS = [
  'AQBkZ2RkAAAAABAAcephkeyringsecret==', // the old rbd keyring (fixtures)
  'AQBnewkeyringsecret==', // the keyring Cinder hands out after the refresh
  ISCSI_CHAP_CONNECTION_INFO.data.auth_password,
  ISCSI_CHAP_CONNECTION_INFO.data.discovery_auth_password,
  USERS.nova,
  USERS['nova-service'],
];
const EXPECT = RefreshEnv.EXPECT_NEW_MONITORS;

let env: RefreshEnv;
let work: string;
let tarball: string;
let inventory: string;
let collectionsPath: string;

type Run = AnsibleRun;

const run = (command: string, args: string[], timeoutMs = 180_000): Promise<Run> =>
  runAnsible({ work, collectionsPath }, command, args, { timeoutMs });

/** Extra vars as a JSON file (types survive, unlike -e key=value). */
function extraVars(vars: Record<string, unknown>): string[] {
  const file = join(work, `vars-${randomUUID()}.json`);
  writeFileSync(file, JSON.stringify(vars));
  return ['-e', `@${file}`];
}

function configFile(): string[] {
  return [env.fx.env.confPath, env.extraConf];
}

function playbook(name: string, vars: Record<string, unknown>, flags: string[] = []): Promise<Run> {
  return run('ansible-playbook', ['-i', inventory, name, ...extraVars({ nova_bdm_config_file: configFile(), ...vars }), ...flags]);
}

/** The refresh playbook, then the role's summary fact written to a file (whatever the outcome). */
async function refreshPlaybook(
  vars: Record<string, unknown>,
  flags: string[] = [],
): Promise<{ run: Run; readonly summary: RefreshSummaryFact }> {
  const summaryFile = join(work, `summary-${randomUUID()}.json`);
  const wrapper = join(work, `refresh-${randomUUID()}.yml`);
  writeFileSync(
    wrapper,
    `- ansible.builtin.import_playbook: osops.nova.refresh
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        content: "{{ nova_bdm_refresh_summary | to_json }}"
        dest: ${summaryFile}
      check_mode: false
`,
  );
  const result = await playbook(wrapper, vars, flags);
  return withRefreshSummary(result, summaryFile);
}

function assertNoSecret(r: Run): void {
  const pw = env.fx.env.dbPassword;
  for (const secret of [...SECRETS, pw, encodeURIComponent(pw)])
    assert.ok(!r.out.includes(secret), `output holds a secret (${secret.slice(0, 4)}...)`);
}

function assertOk(r: Run): void {
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /PLAY RECAP/);
}

/** Every row refresh may touch, and every Cinder request that changes something. */
async function snapshot(...instances: string[]) {
  return {
    rows: await Promise.all(instances.map((i) => env.dumpRows(i))),
    mutations: env.cloud.mutations().length,
    rpc: env.compute.calls.length,
  };
}

before(async () => {
  env = await RefreshEnv.start();
  work = mkdtempSync(join(tmpdir(), 'nbt-ansible-'));
  mkdirSync(join(work, 'ansible-tmp'));
  collectionsPath = join(work, 'collections');
  inventory = join(work, 'inventory.ini');
  const node = `ansible_node_interpreter=${process.execPath} ansible_python_interpreter=/usr/bin/python3`;
  writeFileSync(inventory, `localhost ansible_connection=local ${node}\ncompute-under-test ansible_connection=local ${node}\n`);
  const built = await run('ansible-galaxy', ['collection', 'build', join(ROOT, 'ansible'), '--output-path', work, '--force']);
  assert.equal(built.code, 0, built.out);
  tarball = join(
    work,
    readdirSync(work).find((f) => /^osops-nova-.*\.tar\.gz$/.test(f))!,
  );
  const installed = await run('ansible-galaxy', ['collection', 'install', tarball, '-p', collectionsPath]);
  assert.equal(installed.code, 0, installed.out);
});

after(async () => {
  await env?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the collection tarball', () => {
  test('holds the generated module, its sidecar docs, role and playbooks; no tests, no node_modules', async () => {
    const listing = await run('tar', ['-tzf', tarball]);
    const files = listing.out.split('\n').filter(Boolean);
    for (const f of [
      'MANIFEST.json',
      'FILES.json',
      'README.md',
      'meta/runtime.yml',
      'plugins/modules/bdm.cjs',
      'plugins/modules/bdm.yml',
      'roles/refresh_connection_info/tasks/main.yml',
      'roles/refresh_connection_info/meta/argument_specs.yml',
      'roles/refresh_connection_info/README.md',
      'playbooks/show.yml',
      'playbooks/audit.yml',
      'playbooks/refresh.yml',
      'playbooks/refresh_shared.yml',
      'playbooks/ci_post_run.yml',
      'changelogs/changelog.yaml',
    ]) {
      assert.ok(files.includes(f), `${f} in the tarball`);
    }
    assert.ok(!files.some((f) => f.startsWith('tests/') || f.includes('node_modules')), files.join('\n'));
    const installed = join(collectionsPath, 'ansible_collections', 'osops', 'nova', 'plugins', 'modules', 'bdm.cjs');
    assert.ok(readFileSync(installed).equals(readFileSync(BUNDLE)), 'the installed module is the built bundle');
    assert.ok((statSync(installed).mode & 0o111) !== 0, 'and executable');
  });

  test('ansible-doc reads the sidecar of the installed module and the role argument spec', async () => {
    const mod = await run('ansible-doc', ['osops.nova.bdm']);
    assert.equal(mod.code, 0, mod.out);
    for (const s of ['get_connector', 'cinder_auth', 'application_credential_secret', 'expect', 'RETURN VALUES', 'connection_info'])
      assert.ok(mod.out.includes(s), s);
    const role = await run('ansible-doc', ['-t', 'role', 'osops.nova.refresh_connection_info']);
    assert.equal(role.code, 0, role.out);
    assert.match(role.out, /nova_bdm_connectors/);
  });
});

describe('playbooks by FQCN', () => {
  test('show: every volume BDM of an instance, masked; no secret even at -vvv', async () => {
    const instance = await env.fx.seedInstance('cell1');
    const chap = await env.fx.seedBdm('cell1', instance, { connection_info_object: ISCSI_CHAP_CONNECTION_INFO, device_name: '/dev/vdc' });
    const rbd = await env.fx.seedBdm('cell1', instance, {});
    const r = await playbook('osops.nova.show', { instance_uuid: instance }, ['-vvv']);
    assertOk(r);
    for (const s of [chap.uuid, rbd.uuid, chap.volumeId, rbd.volumeId, '"auth_password": "********"', '"keyring": "********"'])
      assert.ok(r.out.includes(s), s);
    assertNoSecret(r);

    // module_defaults through the action group: config_file set once for the group.
    const play = join(work, 'group.yml');
    writeFileSync(
      play,
      `- hosts: localhost
  gather_facts: false
  module_defaults:
    group/osops.nova.nova:
      config_file: ${JSON.stringify(configFile())}
  tasks:
    - osops.nova.bdm:
        bdm_uuid: ${rbd.uuid}
      register: shown
    - ansible.builtin.assert:
        that: shown.bdm.uuid == '${rbd.uuid}' and shown.cell.name == 'cell1'
`,
    );
    assertOk(await run('ansible-playbook', ['-i', inventory, play]));
  });

  test('audit: check mode, a JSON report, a human summary; writes nothing to Nova or Cinder', async () => {
    const stale = await env.seed();
    const active = await env.seed({ instance: { vm_state: 'active', power_state: 1 } });
    const reportPath = join(work, 'audit-report.json');
    const metricsPath = join(work, 'audit.prom');
    const before = await snapshot(stale.instanceUuid, active.instanceUuid);
    const r = await playbook('osops.nova.audit', {
      nova_bdm_audit: { hosts: [env.host], instance_uuids: [stale.instanceUuid, active.instanceUuid] },
      nova_bdm_expect: EXPECT,
      nova_bdm_check_cinder: true,
      nova_bdm_report_path: reportPath,
      nova_bdm_metrics_path: metricsPath,
    });
    assertOk(r);
    assert.equal((statSync(metricsPath).mode & 0o777).toString(8), '644');
    const metrics = parseMetricsFile(metricsPath);
    assert.equal(sampleValue(metrics, 'nova_bdm_audit_stale_bdms', { cell: 'cell1' }), 2);
    assert.equal(sampleValue(metrics, 'nova_bdm_audit_blocked_bdms', { cell: 'cell1', blocked_by: 'vm_state' }), 1);
    assert.equal(sampleValue(metrics, 'nova_bdm_audit_check_cinder'), 1);
    assert.ok(r.out.includes(`metrics: ${metricsPath}`), r.out);
    assert.deepEqual(await snapshot(stale.instanceUuid, active.instanceUuid), before);
    const report: AuditResult = JSON.parse(readFileSync(reportPath, 'utf8'));
    assert.equal((statSync(reportPath).mode & 0o777).toString(8), '600');
    assert.equal(report.totals.scanned, 2);
    assert.deepEqual(report.stale.map((s) => s.bdm_uuid).sort(), [stale.bdm.uuid, active.bdm.uuid].sort());
    assert.match(r.out, /2 volume BDMs audited in \d+ cells: 2 stale/);
    assert.ok(
      r.out.includes(
        `stale: BDM ${stale.bdm.uuid} (instance ${stale.instanceUuid}, volume ${stale.volumeId}) on ${env.host} [cell1]: expectation_mismatch; refreshable`,
      ),
      r.out,
    );
    assert.ok(
      r.out.includes(`stale: BDM ${active.bdm.uuid}`) && r.out.includes('not refreshable: vm_state active (must be stopped)'),
      r.out,
    );
    assert.match(r.out, /expectation_mismatch: 2/);
    assertNoSecret(r);
  });

  test('ci_post_run: fails the job listing the stale BDMs; passes when none is stale', async () => {
    const stale = await env.seed();
    const failing = await playbook('osops.nova.ci_post_run', {
      nova_bdm_audit: { instance_uuids: [stale.instanceUuid] },
      nova_bdm_expect: EXPECT,
    });
    assert.equal(failing.code, 2, failing.out);
    assert.match(failing.out, /1 volume BDMs audited in \d+ cells: 1 stale/);
    assert.ok(
      failing.out.includes(
        `stale: BDM ${stale.bdm.uuid} (instance ${stale.instanceUuid}, volume ${stale.volumeId}) on ${env.host} [cell1]: data.hosts/ports are`,
      ),
      failing.out,
    );
    // stale_limit 0: the job still fails (on the count), the metrics file is written.
    const metricsPath = join(work, 'ci.prom');
    const counted = await playbook('osops.nova.ci_post_run', {
      nova_bdm_audit: { instance_uuids: [stale.instanceUuid] },
      nova_bdm_expect: EXPECT,
      nova_bdm_stale_limit: 0,
      nova_bdm_metrics_path: metricsPath,
    });
    assert.equal(counted.code, 2, counted.out);
    assert.ok(counted.out.includes('... and 1 more') && !counted.out.includes(`stale: BDM ${stale.bdm.uuid}`), counted.out);
    assert.equal(sampleValue(parseMetricsFile(metricsPath), 'nova_bdm_audit_stale_bdms', { cell: 'cell1' }), 1);
    const passing = await playbook('osops.nova.ci_post_run', { nova_bdm_audit: { instance_uuids: [stale.instanceUuid] } });
    assertOk(passing);
    assert.match(passing.out, /1 volume BDMs audited in \d+ cells: 0 stale/);
  });

  test('refresh -C -D: the plan with the masked diff; writes nothing', async () => {
    const stale = await env.seed();
    const active = await env.seed({ instance: { vm_state: 'active', power_state: 1 } });
    const before = await snapshot(stale.instanceUuid, active.instanceUuid);
    const { run: r } = await refreshPlaybook(
      {
        ceph_monitors: NEW_MONITORS,
        nova_bdm_audit: { hosts: [env.host], instance_uuids: [stale.instanceUuid] },
        nova_bdm_connectors: { [env.host]: env.connector },
      },
      ['-C', '-D', '-v'],
    );
    assertOk(r);
    assert.match(r.out, /would refresh 1, skipped 0, failed 0 \(check mode: nothing was written\)/);
    assert.ok(
      r.out.includes(
        `would refresh: BDM ${stale.bdm.uuid} (instance ${stale.instanceUuid}, volume ${stale.volumeId}) on ${env.host} [cell1]: expectation_mismatch`,
      ),
      r.out,
    );
    // The diff: old monitors out, new in (the keyring, unchanged, never in clear: assertNoSecret).
    assert.ok(
      r.out.includes(
        `--- before: BDM ${stale.bdm.uuid} (instance ${stale.instanceUuid}, volume ${stale.volumeId}) connection_info (before)`,
      ),
      r.out,
    );
    assert.match(r.out, new RegExp(`^-\\s+"${OLD_MONITORS[0]!.replaceAll('.', '\\.')}",?$`, 'm'));
    assert.match(r.out, new RegExp(`^\\+\\s+"${NEW_MONITORS[0]!.replaceAll('.', '\\.')}",?$`, 'm'));

    const both = await refreshPlaybook(
      {
        ceph_monitors: NEW_MONITORS,
        nova_bdm_filters: { hosts: [env.host], instance_uuids: [stale.instanceUuid, active.instanceUuid] },
        nova_bdm_connectors: { [env.host]: env.connector },
      },
      ['-C'],
    );
    assertOk(both.run);
    assert.equal(both.summary.check_mode, true);
    assert.deepEqual(both.summary.counts, { refreshed: 1, skipped: 1, failed: 0 });
    assert.equal(both.summary.refreshed[0]!.bdm_uuid, stale.bdm.uuid);
    assert.deepEqual(both.summary.refreshed[0]!.reasons, ['expectation_mismatch']);
    assert.equal(both.summary.skips[0]!.bdm_uuid, active.bdm.uuid);
    assert.equal(both.summary.skips[0]!.why, 'vm_state active (must be stopped)');
    assert.ok(
      both.run.out.includes(
        `skipped: BDM ${active.bdm.uuid} (instance ${active.instanceUuid}, volume ${active.volumeId}): vm_state active (must be stopped)`,
      ),
    );
    assert.deepEqual(await snapshot(stale.instanceUuid, active.instanceUuid), before, 'check mode wrote nothing');
    assertNoSecret(r);
    assertNoSecret(both.run);
  });

  test('refresh -vvv: one fleet refresh, skips with why, a second run changes nothing; secret options never shown', async () => {
    const stale = await env.seed();
    const stale2 = await env.seed();
    const active = await env.seed({ instance: { vm_state: 'active', power_state: 1 } });
    const vars = {
      ceph_monitors: NEW_MONITORS,
      nova_bdm_filters: { hosts: [env.host], instance_uuids: [stale.instanceUuid, stale2.instanceUuid, active.instanceUuid] },
      nova_bdm_connectors: { [env.host]: env.connector },
      // Secret options given as arguments too (no_log in the role's argument spec).
      nova_bdm_api_database_connection: env.fx.env.apiUrl,
      nova_bdm_database_connection: env.fx.env.cell1Url,
      nova_bdm_cinder_auth: { password: USERS.nova },
    };
    const mutationsBefore = env.cloud.mutations().length;
    const { run: r, summary } = await refreshPlaybook(vars, ['-vvv']);
    assertOk(r);
    assert.equal(summary.check_mode, false);
    assert.deepEqual(summary.counts, { refreshed: 2, skipped: 1, failed: 0 });
    // One module call refreshed both: the role has no per-BDM loop any more.
    assert.equal(
      (r.out.match(/TASK \[osops\.nova\.refresh_connection_info : Refresh connection_info \| refresh the fleet on the controller\]/g) ?? [])
        .length,
      1,
    );
    for (const s of [stale, stale2]) {
      const row = (await env.dumpRows(s.instanceUuid)).bdms[0]!;
      const entry = entryFor(summary.refreshed, s.bdm.uuid);
      assert.equal(entry.new_attachment_id, row.attachment_id);
      assert.equal(entry.old_attachment_id, s.oldAttachmentId);
      assert.notEqual(row.attachment_id, s.oldAttachmentId);
      assert.deepEqual(JSON.parse(row.connection_info!).data.hosts, NEW_MONITORS);
      assert.equal((await env.dumpRows(s.instanceUuid)).instance!.locked, 0);
    }
    assert.ok(env.cloud.mutations().length > mutationsBefore);
    assert.match(r.out, /"refreshed 2, skipped 1, failed 0"/);
    assertNoSecret(r);
    for (const url of [env.fx.env.apiUrl, env.fx.env.cell1Url]) assert.ok(!r.out.includes(url), 'no database URL in the output');

    const again = await refreshPlaybook(vars);
    assertOk(again.run);
    assert.deepEqual(again.summary.counts, { refreshed: 0, skipped: 3, failed: 0 });
    assert.deepEqual(again.summary.skips.map((e) => e.why).sort(), ['not stale', 'not stale', 'vm_state active (must be stopped)']);
    assert.match(again.run.out, /"refreshed 0, skipped 3, failed 0"/);
  });

  test('-e name=value: strings reach the module, which converts them as a Python module would', async () => {
    const s = await env.seed();
    const vars = {
      ceph_monitors: NEW_MONITORS,
      nova_bdm_filters: { instance_uuids: [s.instanceUuid] },
      nova_bdm_connectors: { [env.host]: env.connector },
    };
    const strings = [
      '-e',
      'nova_bdm_max_parallel=4',
      '-e',
      'nova_bdm_per_host_parallel=1',
      '-e',
      'nova_bdm_require_libvirt=yes',
      '-e',
      'nova_bdm_refuse_locked=no',
    ];
    const first = await refreshPlaybook(vars, [...strings, '-e', 'nova_bdm_force=false']);
    assertOk(first.run);
    assert.deepEqual(first.summary.counts, { refreshed: 1, skipped: 0, failed: 0 });
    // Not stale now: "false" must mean false (a template's truthiness would refresh it again) ...
    const notForced = await refreshPlaybook(vars, [...strings, '-e', 'nova_bdm_force=false']);
    assertOk(notForced.run);
    assert.deepEqual(notForced.summary.counts, { refreshed: 0, skipped: 1, failed: 0 });
    assert.equal(notForced.summary.skips[0]!.why, 'not stale');
    // ... and "True" true.
    const forced = await refreshPlaybook(vars, [...strings, '-e', 'nova_bdm_force=True']);
    assertOk(forced.run);
    assert.deepEqual(forced.summary.counts, { refreshed: 1, skipped: 0, failed: 0 });
    assert.deepEqual(forced.summary.refreshed[0]!.reasons, ['forced']);
    const wrong = await refreshPlaybook(vars, ['-e', 'nova_bdm_max_parallel=many']);
    assert.equal(wrong.run.code, 2, wrong.run.out);
    assert.match(
      wrong.run.out,
      /argument max_parallel is of type str and could not be converted to int: \\"many\\" is not an integer|nova_bdm_max_parallel.*int/,
    );
  });

  test('a failing refresh: one readable line per BDM, the play fails after the summary', async () => {
    const stale = await env.seed();
    env.compute.behaviour = {
      kind: 'fail',
      cls: 'VolumeDriverError',
      module: 'os_brick.exception',
      message: 'rbd unmap failed: device busy',
    };
    try {
      const before = (await env.dumpRows(stale.instanceUuid)).bdms;
      const { run: r } = await refreshPlaybook({
        nova_bdm_expect: EXPECT,
        nova_bdm_bdms: [{ bdm_uuid: stale.bdm.uuid }],
        nova_bdm_connectors: { [env.host]: env.connector },
      });
      assert.equal(r.code, 2, r.out);
      const line = r.out.split('\n').find((l) => l.includes('FAILED: BDM'));
      assert.ok(line, r.out);
      assert.match(
        line!,
        new RegExp(`FAILED: BDM ${stale.bdm.uuid} \\(instance ${stale.instanceUuid}, volume ${stale.volumeId}\\): .*device busy.*; `),
      );
      assert.doesNotMatch(line!, /(the BDM and its attachment are unchanged).*\1/, 'what remains is said once');
      assert.match(r.out, /"refreshed 0, skipped 0, failed 1"/);
      assert.match(r.out, /fatal: \[localhost\]: FAILED! => \{"changed": false, "msg": "1 of 1 selected BDMs failed \(first: BDM /);
      assert.deepEqual((await env.dumpRows(stale.instanceUuid)).bdms, before, 'the BDM is unchanged');
      assert.doesNotMatch(r.out, /Traceback|at async|\.ts:\d+/);
    } finally {
      env.compute.behaviour = { kind: 'ok' };
    }
  });

  test('nova_bdm_bdms [(A, X), (B, Y)] with A/Y and B/X in the database too: exactly A/X and B/Y change', async () => {
    const ax = await env.seed();
    const by = await env.seed();
    // The crossing BDMs: A's of Y and B's of X, stale too (old monitors).
    const ay = await env.fx.seedBdm('cell1', ax.instanceUuid, { volume_id: by.volumeId, device_name: '/dev/vdc' });
    const bx = await env.fx.seedBdm('cell1', by.instanceUuid, { volume_id: ax.volumeId, device_name: '/dev/vdc' });
    const before = await snapshot(ax.instanceUuid, by.instanceUuid);
    const crossing = (rows: typeof before.rows) => rows.flatMap((r) => r.bdms).filter((b) => b.uuid === ay.uuid || b.uuid === bx.uuid);
    const { run: r, summary } = await refreshPlaybook({
      ceph_monitors: NEW_MONITORS,
      nova_bdm_bdms: [
        { instance_uuid: ax.instanceUuid, volume_id: ax.volumeId },
        { instance_uuid: by.instanceUuid, volume_id: by.volumeId },
      ],
      nova_bdm_connectors: { [env.host]: env.connector },
    });
    assertOk(r);
    assert.deepEqual(summary.counts, { refreshed: 2, skipped: 0, failed: 0 });
    assert.deepEqual(summary.refreshed.map((e) => e.bdm_uuid).sort(), [ax.bdm.uuid, by.bdm.uuid].sort());
    assert.deepEqual(summary.skips, []);
    assert.deepEqual(summary.failures, []);
    assert.equal(summary.summary[0], 'refreshed 2, skipped 0, failed 0');
    assert.ok(
      r.out.includes(
        `"refreshed: BDM ${ax.bdm.uuid} (instance ${ax.instanceUuid}, volume ${ax.volumeId}) on ${env.host} [cell1]: expectation_mismatch -> attachment `,
      ),
      r.out,
    );
    const after = await snapshot(ax.instanceUuid, by.instanceUuid);
    assert.deepEqual(crossing(after.rows), crossing(before.rows), 'A/Y and B/X unchanged');
    for (const s of [ax, by]) {
      const row = after.rows.flatMap((x) => x.bdms).find((b) => b.uuid === s.bdm.uuid)!;
      assert.notEqual(row.attachment_id, s.oldAttachmentId);
      assert.deepEqual(JSON.parse(row.connection_info!).data.hosts, NEW_MONITORS);
    }
  });

  test('nova_bdm_bdms [{A, X}, {B}]: A/X and every volume BDM of B, not A/Y', async () => {
    const ax = await env.seed();
    const ay = await env.seed({ instanceUuid: ax.instanceUuid, deviceName: '/dev/vdc' });
    const bz = await env.seed();
    const { run: r, summary } = await refreshPlaybook({
      ceph_monitors: NEW_MONITORS,
      nova_bdm_bdms: [{ instance_uuid: ax.instanceUuid, volume_id: ax.volumeId }, { instance_uuid: bz.instanceUuid }],
      nova_bdm_connectors: { [env.host]: env.connector },
    });
    assertOk(r);
    assert.deepEqual(summary.refreshed.map((e) => e.bdm_uuid).sort(), [ax.bdm.uuid, bz.bdm.uuid].sort());
    assert.deepEqual(summary.counts, { refreshed: 2, skipped: 0, failed: 0 });
    const a = (await env.dumpRows(ax.instanceUuid)).bdms;
    assert.equal(a.find((b) => b.uuid === ay.bdm.uuid)!.attachment_id, ay.oldAttachmentId, 'A/Y (stale, refreshable, not named) unchanged');
    assert.notEqual(a.find((b) => b.uuid === ax.bdm.uuid)!.attachment_id, ax.oldAttachmentId);
    assert.notEqual((await env.dumpRows(bz.instanceUuid)).bdms[0]!.attachment_id, bz.oldAttachmentId);

    // With instance_uuids in the filters too, the module refuses in one line before anything runs.
    const mixed = await refreshPlaybook({
      ceph_monitors: NEW_MONITORS,
      nova_bdm_filters: { instance_uuids: [ay.instanceUuid] },
      nova_bdm_bdms: [{ bdm_uuid: ay.bdm.uuid }],
      nova_bdm_connectors: { [env.host]: env.connector },
    });
    assert.equal(mixed.run.code, 2, mixed.run.out);
    assert.match(mixed.run.out, /volume_attachments names BDMs exactly and cannot be combined with instance_uuids/);
    assert.equal((await env.dumpRows(ax.instanceUuid)).bdms.find((b) => b.uuid === ay.bdm.uuid)!.attachment_id, ay.oldAttachmentId);
  });

  test('the role gets the connector from the compute host itself (delegate_to via nova_bdm_host_map)', async () => {
    const stale = await env.seed();
    const computeConf = join(work, 'compute-nova.conf');
    writeFileSync(computeConf, `[DEFAULT]\nhost = ${env.host}\n`);
    const { run: r, summary } = await refreshPlaybook({
      ceph_monitors: NEW_MONITORS,
      nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
      nova_bdm_host_map: { [env.host]: 'compute-under-test' },
      nova_bdm_connector_source: 'module',
      nova_bdm_compute_config_file: computeConf,
    });
    assertOk(r);
    assert.match(r.out, new RegExp(`ok: \\[localhost -> compute-under-test\\] => \\(item=${env.host}\\)`));
    assert.deepEqual(summary.counts, { refreshed: 1, skipped: 0, failed: 0 });
    const row = (await env.dumpRows(stale.instanceUuid)).bdms[0]!;
    const attachment = env.cloud.attachments.get(row.attachment_id!);
    assert.equal(attachment?.connector?.host, env.host, "Cinder got the compute's own connector");
  });

  test('refresh_shared: two controllers given the same compute host refresh every BDM exactly once', async () => {
    const seeded = [await env.seed(), await env.seed(), await env.seed()];
    const node = `ansible_node_interpreter=${process.execPath} ansible_python_interpreter=/usr/bin/python3`;
    const controllers = join(work, 'controllers.ini');
    writeFileSync(controllers, `[nova_controllers]\nctl-a ansible_connection=local ${node}\nctl-b ansible_connection=local ${node}\n`);
    const wrapper = join(work, `shared-${randomUUID()}.yml`);
    const summaries = join(work, `shared-${randomUUID()}`);
    mkdirSync(summaries);
    writeFileSync(
      wrapper,
      `- ansible.builtin.import_playbook: osops.nova.refresh_shared
- hosts: nova_controllers
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        content: "{{ nova_bdm_refresh_summary | default({}) | to_json }}"
        dest: ${summaries}/{{ inventory_hostname }}.json
      delegate_to: localhost
`,
    );
    // Overlapping shares on purpose: both controllers get the one compute host, at the same time.
    const r = await run('ansible-playbook', [
      '-i',
      controllers,
      wrapper,
      ...extraVars({
        nova_bdm_config_file: configFile(),
        ceph_monitors: NEW_MONITORS,
        nova_bdm_share_hosts: [env.host, env.host],
        nova_bdm_share_filters: { instance_uuids: seeded.map((x) => x.instanceUuid) },
        nova_bdm_connectors: { [env.host]: env.connector },
      }),
    ]);
    assertOk(r);
    assert.match(r.out, /ctl-a \(1 of 2\): \{'hosts': \['nbt-cmp-/);
    assert.match(r.out, /ctl-b \(2 of 2\): \{'hosts': \['nbt-cmp-/);
    const a = readRefreshSummary(join(summaries, 'ctl-a.json'));
    const b = readRefreshSummary(join(summaries, 'ctl-b.json'));
    const refreshed = [...a.refreshed, ...b.refreshed].map((e) => e.bdm_uuid).sort();
    assert.deepEqual(refreshed, seeded.map((x) => x.bdm.uuid).sort(), 'each BDM refreshed by exactly one controller');
    assert.equal(a.counts.failed + b.counts.failed, 0);
    for (const e of [...a.skips, ...b.skips])
      assert.match(e.why, /^(locked by another refresh|not stale|refreshed by another run meanwhile)/);
    for (const x of seeded) {
      const rows = await env.dumpRows(x.instanceUuid);
      assert.deepEqual(JSON.parse(rows.bdms[0]!.connection_info!).data.hosts, NEW_MONITORS);
      assert.equal(rows.instance!.locked, 0);
      assert.equal([...env.cloud.attachments.values()].filter((t) => t.volume_id === x.volumeId).length, 1, 'one attachment per volume');
    }
  });
});
