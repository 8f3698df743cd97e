// npm run demo: a local sandbox Nova (real schema made by the real nova-manage, in the local
// MariaDB), a few stopped instances with attached volumes, and nova-bdm's `show` run every way
// an operator would run it. Safe to re-run: the sandbox databases are dropped and rebuilt.
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const bundle = join(root, 'ansible/plugins/modules/bdm.cjs');
process.env.NOVA_BDM_TEST_DB_PREFIX = 'nbdemo_';
process.env.NOVA_BDM_STATE_DIR = '/var/tmp/nova-bdm-demo';

const say = (text) => console.log(`\n\x1b[1m== ${text}\x1b[0m`);

say('local services (MariaDB, RabbitMQ)');
execFileSync('bash', [join(root, 'build/ensure-services.sh')], { stdio: 'inherit' });

say('a sandbox Nova: API DB, cell0, cell1 (templated URL), cell2, built by the real nova-manage');
execFileSync(process.execPath, [join(root, 'dist/test/support/prepare-nova-schema.js')], { stdio: 'inherit' });

const { Fixtures, ISCSI_CHAP_CONNECTION_INFO } = require(join(root, 'dist/test/support/fixtures.js'));
const fx = new Fixtures();
const ceph = await fx.seedInstance('cell1', { display_name: 'db-1', hostname: 'db-1' });
const cephBdm = await fx.seedBdm('cell1', ceph);
const iscsi = await fx.seedInstance('cell2', { display_name: 'web-1', hostname: 'web-1', host: 'compute2' });
const iscsiBdm = await fx.seedBdm('cell2', iscsi, { connection_info_object: ISCSI_CHAP_CONNECTION_INFO });
const legacyBdm = await fx.seedBdm('cell2', iscsi, { device_name: '/dev/vdc', attachment_id: null });
await fx.close();
const conf = fx.env.confPath;
console.log(`seeded: instance ${ceph} (cell1, rbd volume), instance ${iscsi} (cell2, iSCSI/CHAP volume + a legacy cinder v2 attachment)`);

function show(title, args, input) {
  say(title);
  console.log(`$ ${['nova-bdm', ...args].join(' ')}${input ? ` <<< '${input}'` : ''}`);
  const r = spawnSync(bundle, args, { input, encoding: 'utf8' });
  process.stdout.write(r.stdout);
  process.stdout.write(r.stderr);
  console.log(`(exit code ${r.status})`);
}

show('the blueprint command: one BDM by uuid, found in whichever cell holds it', ['--config-file', conf, 'bdm', 'show', cephBdm.uuid]);
show("nova-manage's surface, as JSON (secrets masked)", ['--config-file', conf, 'volume_attachment', 'show', iscsi, iscsiBdm.volumeId, '--json', '--connection_info']);
show('Ansible calling convention (arguments as JSON; here on stdin): every volume BDM of an instance', ['-'],
  JSON.stringify({ action: 'show', instance_uuid: iscsi, config_file: conf }));
show('a legacy (cinder v2) BDM has no attachment_id', ['-'], JSON.stringify({ bdm_uuid: legacyBdm.uuid, config_file: conf }));
show('a volume that is not attached: exit code 3, as nova-manage', ['--config-file', conf, 'volume_attachment', 'show', ceph, iscsiBdm.volumeId]);
show('bad input gets one clear line', ['-'], JSON.stringify({ bdm_uuid: 'not-a-uuid', config_file: conf }));
say(`done. The sandbox stays in MariaDB (databases nbdemo_*) and ${process.env.NOVA_BDM_STATE_DIR}; the next run rebuilds it.`);
