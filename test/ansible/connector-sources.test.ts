import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runAnsible, type AnsibleRun } from '../support/ansible-run';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { NEW_MONITORS, RefreshEnv } from '../support/refresh-env';
import { withRefreshSummary, type RefreshSummaryFact } from '../support/results';

// Issue 22: the role gets each compute host's connector where Node.js is not installed
// (nova-manage on the host, a command into the nova_compute container, a venv's nova-manage),
// falls back to the module where the first source gave nothing, and the module checks whatever
// came back on the controller. Run through the installed collection with the real
// ansible-playbook; the compute hosts are local-connection inventory hosts whose commands are
// small scripts standing in for nova-manage and docker (they print what nova-manage prints).

const ROOT = join(__dirname, '..', '..', '..');
const EXAMPLES = join(ROOT, 'docs', 'examples', 'inventories');
const GET_CONNECTOR = ['volume_attachment', 'get_connector', '--json'];

let env: RefreshEnv;
let work: string;
let collectionsPath: string;
/** PATH entries without node: every program of the usual folders, linked, except Node.js's. */
let noNodeBin: string;

type Run = AnsibleRun;

const run = (command: string, args: string[], env: Record<string, string> = {}): Promise<Run> =>
  runAnsible({ work, collectionsPath }, command, args, { env });

/**
 * A stand-in command: records its arguments (one JSON array per line) and whether `node` is on its
 * PATH, then prints `stdout` and exits with `rc` (stderr too when given).
 */
function fakeCommand(path: string, behaviour: { stdout?: string; stderr?: string; rc?: number }): string {
  mkdirSync(dirname(path), { recursive: true });
  const log = `${path}.calls`;
  writeFileSync(
    path,
    `#!/usr/bin/python3
import json, shutil, sys
with open(${JSON.stringify(log)}, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "node": shutil.which("node")}) + "\\n")
sys.stdout.write(${JSON.stringify(behaviour.stdout ?? '')})
sys.stderr.write(${JSON.stringify(behaviour.stderr ?? '')})
sys.exit(${behaviour.rc ?? 0})
`,
  );
  chmodSync(path, 0o755);
  return log;
}

function callsOf(log: string): Array<{ argv: string[]; node: string | null }> {
  return existsSync(log)
    ? readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
    : [];
}

/** The refresh playbook with an inventory, then the role's summary fact (whatever the outcome). */
async function refresh(
  inventory: string,
  vars: Record<string, unknown>,
  flags: string[] = [],
  extraEnv: Record<string, string> = {},
): Promise<{ run: Run; readonly summary: RefreshSummaryFact }> {
  const summaryFile = join(work, `summary-${randomUUID()}.json`);
  const wrapper = join(work, `refresh-${randomUUID()}.yml`);
  writeFileSync(
    wrapper,
    `- ansible.builtin.import_playbook: osops.nova.refresh
- hosts: "{{ nova_bdm_controller | default('localhost') }}"
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        content: "{{ nova_bdm_refresh_summary | to_json }}"
        dest: ${summaryFile}
      check_mode: false
`,
  );
  const varsFile = join(work, `vars-${randomUUID()}.json`);
  writeFileSync(
    varsFile,
    JSON.stringify({ nova_bdm_config_file: [env.fx.env.confPath, env.extraConf], ceph_monitors: NEW_MONITORS, ...vars }),
  );
  const r = await run('ansible-playbook', ['-i', inventory, wrapper, '-e', `@${varsFile}`, ...flags], extraEnv);
  return withRefreshSummary(r, summaryFile);
}

/** The summary's lines (the role's debug task) that start with `prefix`, as printed. */
function summaryLines(r: Run, prefix: string): string[] {
  return r.out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`"${prefix}`))
    .map((l) => JSON.parse(l.replace(/,$/, '')) as string);
}

/** A controller with Node.js and one compute host, both local; `compute` holds the compute's host vars. */
function inventoryWith(compute: string): string {
  const file = join(work, `inventory-${randomUUID()}.ini`);
  writeFileSync(
    file,
    `localhost ansible_connection=local ansible_node_interpreter=${process.execPath} ansible_python_interpreter=/usr/bin/python3\ncompute-a ansible_connection=local ansible_python_interpreter=/usr/bin/python3 ${compute}\n`,
  );
  return file;
}

before(async () => {
  env = await RefreshEnv.start();
  work = mkdtempSync(join(tmpdir(), 'nbt-connectors-'));
  mkdirSync(join(work, 'ansible-tmp'));
  collectionsPath = join(work, 'collections');
  const built = await run('ansible-galaxy', ['collection', 'build', join(ROOT, 'ansible'), '--output-path', work, '--force']);
  assert.equal(built.code, 0, built.out);
  const tarball = join(
    work,
    readdirSync(work).find((f) => /^osops-nova-.*\.tar\.gz$/.test(f))!,
  );
  const installed = await run('ansible-galaxy', ['collection', 'install', tarball, '-p', collectionsPath]);
  assert.equal(installed.code, 0, installed.out);
  noNodeBin = join(work, 'no-node-bin');
  mkdirSync(noNodeBin);
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin']) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      if (['node', 'nodejs', 'npm', 'npx', 'corepack'].includes(name) || existsSync(join(noNodeBin, name))) continue;
      symlinkSync(join(dir, name), join(noNodeBin, name));
    }
  }
});

after(async () => {
  await env?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the connector of a compute host without Node.js', () => {
  test('default source: nova-manage on the host (no node on its PATH) gives the connector the refresh uses', async () => {
    const stale = await env.seed();
    const fakeBin = join(work, `bin-${randomUUID()}`);
    const connector = { ...env.connector, initiator: 'iqn.2004-10.com.example:from-nova-manage' };
    const log = fakeCommand(join(fakeBin, 'nova-manage'), { stdout: `${JSON.stringify(connector)}\n` });
    const computeConf = join(work, 'compute-nova.conf');
    writeFileSync(computeConf, `[DEFAULT]\nhost = ${env.host}\n`);
    // The compute's node would be found on PATH, and there is none: the module cannot run there.
    const inventory = inventoryWith('ansible_node_interpreter=node');
    const { run: r, summary } = await refresh(
      inventory,
      {
        nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
        nova_bdm_host_map: { [env.host]: 'compute-a' },
        nova_bdm_compute_config_file: computeConf,
      },
      [],
      { PATH: `${fakeBin}:${noNodeBin}` },
    );
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(summary.counts, { refreshed: 1, skipped: 0, failed: 0 }, r.out);
    assert.deepEqual(summary.connector_errors, {});
    assert.deepEqual(
      callsOf(log),
      [{ argv: [`--config-file=${computeConf}`, ...GET_CONNECTOR], node: null }],
      'nova-manage ran once, where node is not on PATH',
    );
    assert.match(r.out, new RegExp(`ok: \\[localhost -> compute-a\\] => \\(item=${env.host}\\)`));
    assert.doesNotMatch(r.out, /fall back where the source gave no connector[^\n]*\]\n(ok|changed|fatal)/, 'no fallback');
    const row = (await env.dumpRows(stale.instanceUuid)).bdms[0]!;
    // Nova adds the BDM's mountpoint to the connector it hands Cinder.
    assert.deepEqual(
      env.cloud.attachments.get(row.attachment_id!)?.connector,
      { ...connector, mountpoint: '/dev/vdb' },
      "Cinder got nova-manage's connector",
    );
  });

  test('a command that fails: one line per host naming the command and why, the BDMs of that host fail, the play fails after the summary', async () => {
    const stale = await env.seed();
    const fakeBin = join(work, `bin-${randomUUID()}`);
    const docker = join(fakeBin, 'docker');
    fakeCommand(docker, { stderr: 'Error response from daemon: No such container: nova_compute\n', rc: 1 });
    const inventory = inventoryWith('ansible_node_interpreter=node');
    const { run: r } = await refresh(
      inventory,
      {
        nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
        nova_bdm_host_map: { [env.host]: 'compute-a' },
        nova_bdm_connector_source: 'command',
        nova_bdm_connector_command: `${docker} exec nova_compute nova-manage volume_attachment get_connector --json`,
        nova_bdm_connector_fallback: 'none',
      },
      [],
      { PATH: `${fakeBin}:${noNodeBin}` },
    );
    assert.equal(r.code, 2, r.out);
    const why = `command: \`${docker} exec nova_compute nova-manage volume_attachment get_connector --json\` failed (rc 1): Error response from daemon: No such container: nova_compute`;
    assert.deepEqual(summaryLines(r, 'get_connector failed on'), [`get_connector failed on ${env.host}: ${why}`], r.out);
    assert.deepEqual(summaryLines(r, 'refreshed'), ['refreshed 0, skipped 0, failed 1']);
    const [failed] = summaryLines(r, 'FAILED: BDM');
    assert.match(failed!, new RegExp(`^FAILED: BDM ${stale.bdm.uuid} .*no connector for compute host ${env.host}`));
    assert.doesNotMatch(r.out, /Traceback/);
  });

  test('nova-manage missing: the fallback module on that host gives the connector; both missing: one line with both reasons', async () => {
    const stale = await env.seed();
    const computeConf = join(work, 'compute-nova.conf');
    writeFileSync(computeConf, `[DEFAULT]\nhost = ${env.host}\n`);
    const vars = {
      nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
      nova_bdm_host_map: { [env.host]: 'compute-a' },
      nova_bdm_compute_config_file: computeConf,
      nova_bdm_nova_manage: join(work, 'no-such-venv', 'bin', 'nova-manage'),
    };
    const withNode = await refresh(inventoryWith(`ansible_node_interpreter=${process.execPath}`), vars, ['-C']);
    assert.equal(withNode.run.code, 0, withNode.run.out);
    assert.deepEqual(withNode.summary.counts, { refreshed: 1, skipped: 0, failed: 0 }, withNode.run.out);
    assert.deepEqual(withNode.summary.connector_errors, {}, 'the fallback found it');
    assert.match(
      withNode.run.out,
      /TASK \[osops\.nova\.refresh_connection_info : Connectors \| the module's get_connector on each host\] \*+\nok: \[localhost -> compute-a\]/,
    );

    const without = await refresh(inventoryWith('ansible_node_interpreter=/nonexistent/node'), vars, ['-C']);
    assert.equal(without.run.code, 2, without.run.out);
    const lines = summaryLines(without.run, 'get_connector failed on');
    assert.equal(lines.length, 1, without.run.out);
    assert.match(
      lines[0]!,
      new RegExp(
        `^get_connector failed on ${env.host}: nova-manage: \`${vars.nova_bdm_nova_manage} --config-file=${computeConf} volume_attachment get_connector --json\` failed \\(rc 2\\): .*No such file or directory.*; then module: .*\\(.*/nonexistent/node: .*not found\\)$`,
      ),
    );
  });

  test('an unreachable compute host: one line for it, its BDMs fail, the play goes on to the summary', async () => {
    const stale = await env.seed();
    // ssh to a closed port: refused at once.
    const inventory = join(work, `inventory-${randomUUID()}.ini`);
    writeFileSync(
      inventory,
      `localhost ansible_connection=local ansible_node_interpreter=${process.execPath} ansible_python_interpreter=/usr/bin/python3\ncompute-a ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=5'\n`,
    );
    const { run: r } = await refresh(inventory, {
      nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
      nova_bdm_host_map: { [env.host]: 'compute-a' },
    });
    assert.equal(r.code, 2, r.out);
    const lines = summaryLines(r, 'get_connector failed on');
    assert.equal(lines.length, 1, r.out);
    assert.match(
      lines[0]!,
      new RegExp(
        `^get_connector failed on ${env.host}: nova-manage: .*; then module: .*(refused|UNREACHABLE|unreachable|Failed to connect)`,
        'i',
      ),
    );
    assert.match(summaryLines(r, 'FAILED: BDM')[0]!, new RegExp(`no connector for compute host ${env.host}`));
  });

  test('nova-manage printed something that is not a connector: checked on the controller, the host named, nothing written', async () => {
    const stale = await env.seed();
    const fakeBin = join(work, `bin-${randomUUID()}`);
    fakeCommand(join(fakeBin, 'nova-manage'), { stdout: JSON.stringify({ host: env.host, ip: '192.0.2.9' }) });
    const before = (await env.dumpRows(stale.instanceUuid)).bdms;
    const { run: r } = await refresh(
      inventoryWith('ansible_node_interpreter=node'),
      {
        nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
        nova_bdm_host_map: { [env.host]: 'compute-a' },
        nova_bdm_compute_config_file: [],
      },
      [],
      { PATH: `${fakeBin}:${noNodeBin}` },
    );
    assert.equal(r.code, 2, r.out);
    assert.deepEqual(summaryLines(r, 'get_connector failed on'), [], 'nova-manage ran: not a reason to fall back');
    assert.deepEqual(
      summaryLines(r, 'FAILED: BDM'),
      [
        `FAILED: BDM ${stale.bdm.uuid} (instance ${stale.instanceUuid}, volume ${stale.volumeId}): the connector for compute host ${env.host} cannot be used: connector is not a valid host connector (missing platform, os_type, multipath); create it on the compute with get_connector; nothing was changed`,
      ],
      r.out,
    );
    assert.deepEqual((await env.dumpRows(stale.instanceUuid)).bdms, before);
  });
});

describe('the example inventories (docs/examples/inventories)', () => {
  async function hostvars(inventory: string): Promise<Record<string, Record<string, unknown>>> {
    const r = await run('ansible-inventory', ['-i', inventory, '--list']);
    assert.equal(r.code, 0, r.out);
    return JSON.parse(r.out)._meta.hostvars;
  }

  test('kolla-ansible: the connector from docker exec nova_compute; a check-mode refresh plans with it', async () => {
    const inventory = join(EXAMPLES, 'kolla-ansible.yml');
    const vars = await hostvars(inventory);
    assert.equal(vars.control01!.nova_bdm_config_file, '/etc/kolla/nova-api/nova.conf');
    assert.equal(vars.compute01!.ansible_become, true);
    const stale = await env.seed();
    const fakeBin = join(work, `bin-${randomUUID()}`);
    const log = fakeCommand(join(fakeBin, 'docker'), { stdout: `${JSON.stringify(env.connector)}\n` });
    const rowsBefore = await env.dumpRows(stale.instanceUuid);
    const { run: r, summary } = await refresh(
      inventory,
      {
        // Here every host is this machine; the module reads the test's nova.conf (above).
        nova_bdm_controller: 'control01',
        ansible_connection: 'local',
        ansible_python_interpreter: '/usr/bin/python3',
        ansible_node_interpreter: process.execPath,
        ansible_become: false,
        nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
        nova_bdm_host_map: { [env.host]: 'compute01' },
      },
      ['-C'],
      { PATH: `${fakeBin}:${noNodeBin}` },
    );
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(
      callsOf(log).map((c) => c.argv),
      [['exec', 'nova_compute', 'nova-manage', '--config-file', '/etc/nova/nova.conf', ...GET_CONNECTOR]],
    );
    assert.match(r.out, new RegExp(`ok: \\[control01 -> compute01\\] => \\(item=${env.host}\\)`));
    assert.deepEqual(summary.counts, { refreshed: 1, skipped: 0, failed: 0 });
    assert.equal(summary.check_mode, true);
    assert.deepEqual(await env.dumpRows(stale.instanceUuid), rowsBefore, 'check mode wrote nothing');
  });

  test("openstack-ansible: the venv's nova-manage with the compute's nova.conf; a check-mode refresh plans with it", async () => {
    const inventory = join(EXAMPLES, 'openstack-ansible.yml');
    const vars = await hostvars(inventory);
    assert.equal(vars.compute1!.osa_venvs, '/openstack/venvs');
    assert.equal(vars.compute1!.nova_bdm_nova_manage, '{{ osa_venvs }}/nova-{{ osa_nova_venv_tag }}/bin/nova-manage');
    const stale = await env.seed();
    // The venv as openstack-ansible lays it out, under a scratch folder instead of /.
    const venvs = join(work, `root-${randomUUID()}`, 'openstack', 'venvs');
    const log = fakeCommand(join(venvs, `nova-${String(vars.compute1!.osa_nova_venv_tag)}`, 'bin', 'nova-manage'), {
      stdout: `${JSON.stringify(env.connector)}\n`,
    });
    const rowsBefore = await env.dumpRows(stale.instanceUuid);
    const { run: r, summary } = await refresh(
      inventory,
      {
        nova_bdm_controller: 'infra1-nova-api-container-1a2b3c4d',
        osa_venvs: venvs,
        ansible_connection: 'local',
        ansible_python_interpreter: '/usr/bin/python3',
        ansible_node_interpreter: process.execPath,
        ansible_become: false,
        nova_bdm_bdms: [{ instance_uuid: stale.instanceUuid }],
        nova_bdm_host_map: { [env.host]: 'compute1' },
      },
      ['-C'],
      { PATH: noNodeBin },
    );
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(callsOf(log), [{ argv: ['--config-file=/etc/nova/nova.conf', ...GET_CONNECTOR], node: null }]);
    assert.deepEqual(summary.counts, { refreshed: 1, skipped: 0, failed: 0 });
    assert.deepEqual(await env.dumpRows(stale.instanceUuid), rowsBefore, 'check mode wrote nothing');
  });
});
