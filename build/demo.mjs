// npm run demo: a local demo cloud on this machine and the Ceph-monitor-move runbook on it.
//   - the real Nova 26 schema, made by the real nova-manage, in the local MariaDB (nbdemo_*)
//   - the local RabbitMQ, with the test stand-in nova-compute on it (test/support/fake-compute.ts)
//   - the test stand-in Keystone + Cinder (test/support/fake-openstack.ts)
//   - stopped instances whose rbd volumes still carry the old Ceph monitors (and one running)
// Then the real ansible-playbook runs the collection's audit (check mode), refresh and audit
// playbooks by FQCN. It cleans up after itself and is safe to re-run.
import { execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { playbookRunner, root, say } from './demo-shared.mjs';

const require = createRequire(import.meta.url);
const stateDir = '/var/tmp/nova-bdm-demo';
process.env.NOVA_BDM_TEST_DB_PREFIX = 'nbdemo_';
process.env.NOVA_BDM_STATE_DIR = stateDir;

say('local services (MariaDB, RabbitMQ)');
execFileSync('bash', [join(root, 'build/ensure-services.sh')], { stdio: 'inherit' });

say('a demo Nova: API DB, cell0, cell1 (templated URL), cell2, built by the real nova-manage');
rmSync(stateDir, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'dist/test/support/prepare-nova-schema.js')], { stdio: 'inherit' });

const { RefreshEnv, NEW_MONITORS, OLD_MONITORS } = require(join(root, 'dist/test/support/refresh-env.js'));
const env = await RefreshEnv.start('compute1');
try {
  say(`stand-ins up: nova-compute "compute1" on RabbitMQ, Keystone + Cinder at ${env.cloud.url}`);
  const seeded = [];
  for (let i = 0; i < 3; i++) seeded.push(await env.seed({ instance: { display_name: `db-${i}`, hostname: `db-${i}` } }));
  const running = await env.seed({ instance: { display_name: 'web-0', hostname: 'web-0', vm_state: 'active', power_state: 1 } });
  console.log(
    `seeded 3 stopped instances and 1 running one (${running.instanceUuid}), each with an rbd volume on the old monitors ${OLD_MONITORS.join(', ')}`,
  );
  console.log(`the Ceph monitors are now ${NEW_MONITORS.join(', ')} (Cinder already hands those out)`);

  // The collection, by FQCN, straight from this checkout.
  const runner = playbookRunner(stateDir, {
    nova_bdm_config_file: [env.fx.env.confPath, env.extraConf],
    ceph_monitors: NEW_MONITORS,
    nova_bdm_expect: RefreshEnv.EXPECT_NEW_MONITORS,
    // The stand-in compute is not a host Ansible can log in to: give its connector directly.
    nova_bdm_connectors: { compute1: env.connector },
    nova_bdm_report_path: join(stateDir, 'audit.json'),
  });
  const playbook = (title, args) =>
    new Promise((resolve) => {
      say(title);
      console.log(`$ ansible-playbook ${args.join(' ')}`);
      // Asynchronous: the stand-ins answer from this process while the playbook runs.
      const child = spawn(...runner.command(args));
      child.on('close', (code) => resolve(code));
    });
  await playbook('1. which BDMs are stale? (audit, check mode)', ['osops.nova.audit', '-C']);
  await playbook('2. refresh them (diff mode shows the masked before/after)', ['osops.nova.refresh', '-D']);
  await playbook('3. audit again: the stopped instances are clean; the running one still waits for a stop', ['osops.nova.audit', '-C']);
  const rows = await env.dumpRows(seeded[0].instanceUuid);
  say('what Nova now holds for db-0');
  console.log(`attachment_id ${rows.bdms[0].attachment_id} (was ${seeded[0].oldAttachmentId}); instance locked: ${rows.instance.locked}`);
  console.log(`instance actions: ${rows.actions.map((a) => a.action).join(', ')}`);
  if (process.argv.includes('--keep')) {
    // Keep the demo cloud up so the runbooks (docs/runbooks.md) can be followed by hand.
    say('the demo cloud stays up until you press Ctrl-C; in another shell:');
    console.log(`export ANSIBLE_COLLECTIONS_PATH=${runner.collections}`);
    console.log(`ansible-playbook osops.nova.audit -C -i localhost, -c local -e @${runner.varsPath}`);
    console.log(
      `node ${join(root, 'ansible/plugins/modules/bdm.cjs')} --config-file ${env.fx.env.confPath} --config-file ${env.extraConf} bdm audit --expect-json '${JSON.stringify(RefreshEnv.EXPECT_NEW_MONITORS)}'`,
    );
    console.log(
      `node ${join(root, 'ansible/plugins/modules/bdm.cjs')} --config-file ${env.fx.env.confPath} bdm show ${seeded[1].bdm.uuid}`,
    );
    await new Promise((resolve) => process.once('SIGINT', resolve));
  }
} finally {
  await env.stop();
  say('clean-up: dropping the demo databases and state');
  const dbs = ['api', 'cell0', 'cell1', 'cell2'].map((c) => `nbdemo_${c}`);
  execFileSync('mysql', ['-uroot', '-e', dbs.map((d) => `DROP DATABASE IF EXISTS \`${d}\`;`).join(' ')]);
  rmSync(stateDir, { recursive: true, force: true });
}
