import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runAnsible, type AnsibleRun } from '../support/ansible-run';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getConnectorJson, ROOT, upLab, type LabEnv } from './harness';
import { readConnectorAttempts, type ConnectorAttempt } from '../../src/entry/connector-attempts';
import { INTEROP_SKIP } from './tier';

// Issue 22 item 1 on the real lab: the role reads compute2's connector through ansible-playbook
// with the real nova-manage of Nova 26 (the lab's wrapper, run as compute2 runs it) and with our
// module's get_connector on the same host and configuration. Both must equal what the real
// `nova-manage volume_attachment get_connector --json` prints there (the harness runs it
// directly). Runs under `npm run test:interop`, or with NOVA_BDM_INTEROP=1.

const SKIP = INTEROP_SKIP;

let lab: LabEnv;
let work: string;
let collectionsPath: string;

// The tier's bundle outputs are scanned through its hook; these playbook outputs are not recorded.
const run = (command: string, args: string[], env: Record<string, string> = {}): Promise<AnsibleRun> =>
  runAnsible({ work, collectionsPath }, command, args, { env, timeoutMs: 600_000, record: false });

/**
 * The role's connector tasks (tasks_from: connectors) for compute2 from one source; what the module
 * takes from their results (the connector of each host, and why a host gave none).
 */
async function roleConnector(
  source: 'nova-manage' | 'module',
  vars: Record<string, unknown>,
): Promise<{ found: Record<string, unknown>; failed: Record<string, string>; out: string }> {
  const inventory = join(work, 'inventory.ini');
  writeFileSync(
    inventory,
    `controller ansible_connection=local ansible_python_interpreter=/usr/bin/python3\ncompute2 ansible_connection=local ansible_python_interpreter=/usr/bin/python3 ansible_node_interpreter=${process.execPath}\n`,
  );
  const result = join(work, `${source}.json`);
  const play = join(work, `${source}.yml`);
  writeFileSync(
    play,
    `- hosts: controller
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: osops.nova.refresh_connection_info
        tasks_from: connectors
      vars:
        _nova_bdm_connector_from: ${source}
        _nova_bdm_connector_hosts: [compute2]
    - ansible.builtin.copy:
        content: "{{ _nova_bdm_connector_attempts | to_json }}"
        dest: ${result}
`,
  );
  const varsFile = join(work, `${source}-vars.json`);
  writeFileSync(varsFile, JSON.stringify(vars));
  // The lab's nova-manage wrapper runs as compute2 (its nova.conf and nova-compute2.conf).
  const r = await run('ansible-playbook', ['-i', inventory, play, '-e', `@${varsFile}`], {
    OPENSTACK_LAB_DIR: lab.dir,
    OPENSTACK_LAB_NOVA_MANAGE_HOST: 'compute2',
  });
  assert.equal(r.code, 0, r.out);
  const attempts = JSON.parse(readFileSync(result, 'utf8')) as ConnectorAttempt[];
  assert.deepEqual(
    attempts.map((a) => [a.item, a.source]),
    [['compute2', source]],
    r.out,
  );
  const { connectors, errors } = readConnectorAttempts(attempts);
  return { found: connectors, failed: errors, out: r.out };
}

before(async () => {
  if (SKIP) return;
  lab = await upLab();
  work = mkdtempSync(join(tmpdir(), 'nbi-connectors-'));
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
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test(
  "compute2's connector: the real Nova 26 nova-manage through the role, our module through the role, and nova-manage run directly agree",
  { skip: SKIP, timeout: 900_000 },
  async () => {
    const real = JSON.parse(readFileSync(getConnectorJson('compute2'), 'utf8')) as Record<string, unknown>;
    assert.equal(real.host, 'compute2');

    // The wrapper passes compute2's own --config-file options; the role adds none (an empty list).
    const viaNovaManage = await roleConnector('nova-manage', { nova_bdm_nova_manage: lab.novaManage, nova_bdm_compute_config_file: [] });
    assert.deepEqual(viaNovaManage.failed, {}, viaNovaManage.out);
    const text = viaNovaManage.found.compute2;
    assert.equal(typeof text, 'string', 'nova-manage hands over its output as text, for the module to check');
    assert.deepEqual(JSON.parse(text as string), real, 'nova-manage through the role = nova-manage run directly');

    const viaModule = await roleConnector('module', {
      nova_bdm_compute_config_file: [lab.novaConf, join(lab.dir, 'etc', 'nova-compute2.conf')],
    });
    assert.deepEqual(viaModule.failed, {}, viaModule.out);
    assert.deepEqual(viaModule.found.compute2, real, "our get_connector = Nova 26's on compute2");
  },
);
