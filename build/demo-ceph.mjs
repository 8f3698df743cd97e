// npm run demo:ceph: the Ceph monitor move runbook (docs/runbooks.md) on the REAL interop lab
// (test/interop/lab, Ceph flavour): real Ceph 16, Cinder 21's RBDDriver, a libvirt/KVM
// nova-compute "compute2", real Keystone and the real Nova 26 services. It
//   1. brings the lab up (up.sh is idempotent) and seeds 3 stopped instances booted from rbd
//      volumes on compute2, starts one (its disk names the mon at 127.0.0.1) and stops it;
//   2. moves the Ceph monitor to 127.0.0.2;
//   3. runs the collection's playbooks by FQCN: osops.nova.audit (check mode), a start that
//      fails, osops.nova.refresh (diff mode), osops.nova.audit again, and a start that works.
// Clean-up: stops the instance it started, and takes the lab down again if it was not running
// before (`--keep` leaves it up). Needs root (the lab does). Not to be run while
// `npm run test:interop` uses the lab.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lab = join(root, 'test/interop/lab');
const bold = (t) => (process.stdout.isTTY ? `\x1b[1m${t}\x1b[0m` : t);
const say = (t) => console.log(`\n${bold(`== ${t}`)}`);
const shown = (cmd) => console.log(`$ ${cmd}`);
const OLD = '127.0.0.1';
const NEW = '127.0.0.2';
const keep = process.argv.includes('--keep');

// Only this lab's settings: never the shared recipe's (they read the same variable names).
for (const k of Object.keys(process.env)) if (k.startsWith('OPENSTACK_LAB_')) delete process.env[k];
process.env.OPENSTACK_LAB_CEPH = '1';

const labEnv = () => JSON.parse(execFileSync('bash', [join(lab, 'env.sh'), '--json'], { encoding: 'utf8' }));
const running = () => spawnSync('bash', ['-c', `. ${join(lab, 'lib.sh')}; for s in $LAB_SERVICES; do lab_running $s && exit 0; done; exit 1`]).status === 0;
const python = (args) => spawnSync('/usr/bin/python3', args, { encoding: 'utf8', cwd: lab });
/** tools/start_instance.py / stop_instance.py: what nova-api's start/stop do, then wait. */
const power = (action, uuid, timeout = 120) => {
  const r = python([join(lab, 'tools', `${action}_instance.py`), uuid, '--timeout', String(timeout)]);
  return JSON.parse(r.stdout);
};
const secs = (t0) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

if (process.getuid?.() !== 0) {
  console.error('demo:ceph: run as root (the lab installs packages, starts Ceph, libvirtd and the OpenStack services)');
  process.exit(2);
}
const wasUp = running();
say(`the lab (${wasUp ? 'already running: checking it' : 'starting it; the first time also installs the Debian packages'})`);
shown('bash test/interop/lab/up.sh');
let t0 = Date.now();
if (spawnSync('bash', [join(lab, 'up.sh')], { stdio: 'inherit' }).status !== 0) {
  console.error('demo:ceph: the lab did not come up (see the FAILED line above)');
  process.exit(1);
}
console.log(`lab up in ${secs(t0)}`);
const env = labEnv();
const state = join(env.OPENSTACK_LAB_STATE_DIR, 'demo-ceph');
rmSync(state, { recursive: true, force: true });
mkdirSync(state, { recursive: true });
const monNow = () => readFileSync(join(env.OPENSTACK_LAB_CEPH_DIR, 'mon.current'), 'utf8').trim().split(/\s+/)[1];
const moveMon = (ip) => {
  shown(`bash test/interop/lab/tools/ceph_move_mon.sh ${ip}`);
  const t = Date.now();
  if (spawnSync('bash', [join(lab, 'tools/ceph_move_mon.sh'), ip], { stdio: 'inherit' }).status !== 0) throw new Error(`moving the mon to ${ip} failed`);
  console.log(`mon moved in ${secs(t)}`);
};

let started;
try {
  if (monNow() !== OLD) {
    say(`setting the scene: the mon is at ${monNow()} from an earlier run; back to ${OLD}`);
    moveMon(OLD);
  }

  say('three stopped instances on compute2 (libvirt), each booted from an rbd volume (Cinder RBDDriver)');
  shown('/usr/bin/python3 test/interop/lab/seed.py --backend rbd --host compute2 --boot-from-volume --count 3');
  const seeded = python([join(lab, 'seed.py'), '--backend', 'rbd', '--host', 'compute2', '--boot-from-volume', '--count', '3']);
  if (seeded.status !== 0) throw new Error(`seed.py failed: ${seeded.stderr.split('\n').slice(-5).join('\n')}`);
  const instances = JSON.parse(seeded.stdout);
  for (const s of instances) console.log(`instance ${s.instance_uuid}  volume ${s.volume_id}  mon ${s.connection_info.data.hosts.join(',')}:${s.connection_info.data.ports.join(',')}`);
  const web = instances[0];
  shown(`openstack server start ${web.instance_uuid}   # (the lab has no nova-api: tools/start_instance.py does what it does)`);
  let r = power('start', web.instance_uuid);
  console.log(`-> ${r.vm_state}/${r.power_state} in ${r.seconds} s, the domain's rbd disk names ${r.domain_rbd_hosts.join(', ')}`);
  started = web.instance_uuid;
  r = power('stop', web.instance_uuid);
  console.log(`$ openstack server stop ${web.instance_uuid}\n-> ${r.vm_state}/${r.power_state}`);
  started = undefined;

  say(`the Ceph monitor moves: ${OLD} -> ${NEW}`);
  moveMon(NEW);

  const collections = join(state, 'collections');
  mkdirSync(join(collections, 'ansible_collections', 'osops'), { recursive: true });
  symlinkSync(join(root, 'ansible'), join(collections, 'ansible_collections', 'osops', 'nova'));
  const vars = join(state, 'vars.json');
  writeFileSync(
    vars,
    JSON.stringify({
      nova_bdm_config_file: env.OPENSTACK_LAB_NOVA_CONF,
      ceph_monitors: [NEW],
      nova_bdm_expect: { driver_volume_type: 'rbd', data: { hosts: [NEW], ports: ['6789'] } },
      // this demo's instances only (earlier runs left others on compute2)
      nova_bdm_audit: { driver_volume_type: 'rbd', instance_uuids: instances.map((s) => s.instance_uuid) },
      // compute2 is this machine: get_connector runs here with compute2's nova.conf
      nova_bdm_host_map: { compute2: 'localhost' },
      nova_bdm_compute_config_file: [env.OPENSTACK_LAB_NOVA_CONF, env.OPENSTACK_LAB_NOVA_COMPUTE2_CONF],
      nova_bdm_report_path: join(state, 'audit.json'),
      ansible_node_interpreter: process.execPath,
    }),
  );
  const playbook = (title, args) => {
    say(title);
    shown(`ansible-playbook ${args.join(' ')} -e @vars.json`);
    const t = Date.now();
    const p = spawnSync('ansible-playbook', [...args, '-e', `@${vars}`, '-i', 'localhost,', '-c', 'local'], {
      stdio: 'inherit',
      env: { ...process.env, ANSIBLE_COLLECTIONS_PATH: collections, ANSIBLE_NOCOLOR: process.stdout.isTTY ? '0' : '1', ANSIBLE_LOCALHOST_WARNING: 'false', ANSIBLE_RETRY_FILES_ENABLED: 'false' },
    });
    console.log(`(ansible-playbook exit ${p.status}, ${secs(t)})`);
    if (p.status !== 0) throw new Error(`ansible-playbook ${args[0]} failed`);
  };

  playbook('1. which BDMs are stale? (audit with the new monitors, check mode)', ['osops.nova.audit', '-C']);

  say('2. a user starts an instance before the refresh');
  shown(`openstack server start ${web.instance_uuid}`);
  t0 = Date.now();
  r = power('start', web.instance_uuid);
  if (!r.error) throw new Error('the stale instance started: the scenario is broken');
  const disk = /"server":\[\{"host":"([^"]+)","port":"(\d+)"/.exec(r.error);
  console.log(`-> after ${secs(t0)}: ${r.vm_state}/${r.power_state}; QEMU could not reach the rbd disk's mon ${disk ? `${disk[1]}:${disk[2]}` : '(see below)'}`);
  console.log(`   ${r.error.slice(0, 240)}...`);

  playbook('3. refresh them (get_connector on compute2, refresh on the controller; diff mode)', ['osops.nova.refresh', '-D']);
  playbook('4. audit again: nothing stale', ['osops.nova.audit', '-C']);

  say('5. the user starts the instance again');
  shown(`openstack server start ${web.instance_uuid}`);
  r = power('start', web.instance_uuid);
  if (r.error) throw new Error(`the refreshed instance did not start: ${r.error}`);
  started = web.instance_uuid;
  console.log(`-> ${r.vm_state}/${r.power_state} in ${r.seconds} s, the domain's rbd disk names ${r.domain_rbd_hosts.join(', ')}`);
} catch (e) {
  console.error(`\ndemo:ceph FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  say('clean-up');
  if (started) {
    const r = power('stop', started);
    console.log(`stopped ${started}: ${r.vm_state}/${r.power_state}`);
  }
  rmSync(state, { recursive: true, force: true });
  if (!wasUp && !keep) {
    shown('bash test/interop/lab/down.sh');
    spawnSync('bash', [join(lab, 'down.sh')], { stdio: 'inherit' });
  } else {
    console.log(`the lab stays up${keep ? ' (--keep)' : ' (it was running before)'}: bash test/interop/lab/down.sh stops it`);
  }
}
