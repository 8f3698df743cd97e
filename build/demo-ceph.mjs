// npm run demo:ceph: the Ceph monitor move runbook (docs/runbooks.md) on the REAL interop lab
// (test/interop/lab, Ceph flavour): real Ceph 16, Cinder 21's RBDDriver, a libvirt/KVM
// nova-compute "compute2", real Keystone and the real Nova 26 services. It
//   1. brings the lab up (up.sh is idempotent) and seeds 6 instances booted from rbd volumes on
//      compute2: 3 stopped (one is started, its disk names the mon at 127.0.0.1, and stopped
//      again) and 3 running (db1, db2 and their twin);
//   2. moves the Ceph monitor to 127.0.0.2: the running guests run on in the same QEMU;
//   3. runs the collection's playbooks by FQCN: osops.nova.audit (check mode), a start that
//      fails, the twin's hard reboot that fails (Nova leaves it in ERROR), osops.nova.refresh
//      (diff mode, running_instances online: the stopped and the running instances in one run),
//      osops.nova.audit again, a start that works, and db1/db2 still in the same QEMU, whose
//      hard reboot now works on the new mon; then the twin is stopped out of ERROR, refreshed
//      by the same playbook and started.
// Clean-up: stops the instances it started, and takes the lab down again if it was not running
// before (`--keep` leaves it up). Needs root (the lab does). Not to be run while
// `npm run test:interop` uses the lab.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { playbookRunner, root, say } from './demo-shared.mjs';

const lab = join(root, 'test/interop/lab');
const shown = (cmd) => console.log(`$ ${cmd}`);
const OLD = '127.0.0.1';
const NEW = '127.0.0.2';
const keep = process.argv.includes('--keep');

// Only this lab's settings: never the shared recipe's (they read the same variable names).
for (const k of Object.keys(process.env)) if (k.startsWith('OPENSTACK_LAB_')) delete process.env[k];
process.env.OPENSTACK_LAB_CEPH = '1';

const labEnv = () => JSON.parse(execFileSync('bash', [join(lab, 'env.sh'), '--json'], { encoding: 'utf8' }));
const running = () =>
  spawnSync('bash', ['-c', `. ${join(lab, 'lib.sh')}; for s in $LAB_SERVICES; do lab_running $s && exit 0; done; exit 1`]).status === 0;
const python = (args) => spawnSync('/usr/bin/python3', args, { encoding: 'utf8', cwd: lab });
/** tools/start_instance.py / stop_instance.py / reboot_instance.py: what nova-api's start, stop and reboot(HARD) do, then wait. */
const power = (action, uuid, timeout = 120) => {
  const r = python([join(lab, 'tools', `${action}_instance.py`), uuid, '--timeout', String(timeout)]);
  return JSON.parse(r.stdout);
};
/** The QEMU process of a libvirt domain (libvirt's system pid file), or null when none runs. */
const qemuPid = (domain) => {
  try {
    const pid = Number(readFileSync(`/run/libvirt/qemu/${domain}.pid`, 'utf8').trim());
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .some((a) => a === `guest=${domain}` || a.startsWith(`guest=${domain},`))
      ? pid
      : null;
  } catch {
    return null;
  }
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
  if (spawnSync('bash', [join(lab, 'tools/ceph_move_mon.sh'), ip], { stdio: 'inherit' }).status !== 0)
    throw new Error(`moving the mon to ${ip} failed`);
  console.log(`mon moved in ${secs(t)}`);
};

/** Instances this demo started, by uuid (stopped again at the end). */
const started = new Set();
try {
  if (monNow() !== OLD) {
    say(`setting the scene: the mon is at ${monNow()} from an earlier run; back to ${OLD}`);
    moveMon(OLD);
  }

  const seed = (count) => {
    shown(`/usr/bin/python3 test/interop/lab/seed.py --backend rbd --host compute2 --boot-from-volume --count ${count}`);
    const seeded = python([join(lab, 'seed.py'), '--backend', 'rbd', '--host', 'compute2', '--boot-from-volume', '--count', String(count)]);
    if (seeded.status !== 0) throw new Error(`seed.py failed: ${seeded.stderr.split('\n').slice(-5).join('\n')}`);
    const made = JSON.parse(seeded.stdout);
    for (const s of made)
      console.log(
        `instance ${s.instance_uuid}  volume ${s.volume_id}  mon ${s.connection_info.data.hosts.join(',')}:${s.connection_info.data.ports.join(',')}`,
      );
    return made;
  };
  say('three stopped instances on compute2 (libvirt), each booted from an rbd volume (Cinder RBDDriver)');
  const stoppedOnes = seed(3);
  const web = stoppedOnes[0];
  shown(`openstack server start ${web.instance_uuid}   # (the lab has no nova-api: tools/start_instance.py does what it does)`);
  let r = power('start', web.instance_uuid);
  if (r.error) throw new Error(`start failed: ${r.error}`);
  started.add(web.instance_uuid);
  console.log(`-> ${r.vm_state}/${r.power_state} in ${r.seconds} s, the domain's rbd disk names ${r.domain_rbd_hosts.join(', ')}`);
  r = power('stop', web.instance_uuid);
  console.log(`$ openstack server stop ${web.instance_uuid}\n-> ${r.vm_state}/${r.power_state}`);
  started.delete(web.instance_uuid);

  say('three running instances on compute2, booted from rbd volumes: db1, db2 and their twin');
  const runningOnes = seed(3);
  const [db1, db2, twin] = runningOnes;
  const names = new Map([
    [db1.instance_uuid, 'db1'],
    [db2.instance_uuid, 'db2'],
    [twin.instance_uuid, 'twin'],
  ]);
  const domains = new Map();
  const pidsBefore = new Map();
  for (const s of runningOnes) {
    shown(`openstack server start ${s.instance_uuid}   # ${names.get(s.instance_uuid)}`);
    r = power('start', s.instance_uuid);
    if (r.error) throw new Error(`start failed: ${r.error}`);
    started.add(s.instance_uuid);
    domains.set(s.instance_uuid, r.domain);
    pidsBefore.set(s.instance_uuid, r.qemu_pid);
    console.log(
      `-> ${r.vm_state}/${r.power_state} in ${r.seconds} s, domain ${r.domain} (QEMU pid ${r.qemu_pid}), its rbd disk names ${r.domain_rbd_hosts.join(', ')}`,
    );
  }

  say(`the Ceph monitor moves: ${OLD} -> ${NEW}`);
  moveMon(NEW);
  for (const s of runningOnes) {
    const pid = qemuPid(domains.get(s.instance_uuid));
    console.log(
      `${names.get(s.instance_uuid)}: ${pid === pidsBefore.get(s.instance_uuid) ? `still running in QEMU pid ${pid}` : `QEMU pid ${pidsBefore.get(s.instance_uuid)} -> ${pid}`}`,
    );
  }
  const instances = [...stoppedOnes, ...runningOnes];

  const runner = playbookRunner(state, {
    nova_bdm_config_file: env.OPENSTACK_LAB_NOVA_CONF,
    ceph_monitors: [NEW],
    nova_bdm_expect: { driver_volume_type: 'rbd', data: { hosts: [NEW], ports: ['6789'] } },
    // the running instances too, online: their rbd BDMs by Cinder and the database alone
    nova_bdm_running_instances: 'online',
    // this demo's instances only (earlier runs left others on compute2)
    nova_bdm_audit: { driver_volume_type: 'rbd', instance_uuids: instances.map((s) => s.instance_uuid) },
    // compute2 is this machine: get_connector runs here with compute2's nova.conf
    nova_bdm_host_map: { compute2: 'localhost' },
    nova_bdm_compute_config_file: [env.OPENSTACK_LAB_NOVA_CONF, env.OPENSTACK_LAB_NOVA_COMPUTE2_CONF],
    nova_bdm_report_path: join(state, 'audit.json'),
  });
  const playbook = (title, args) => {
    say(title);
    shown(`ansible-playbook ${args.join(' ')} -e @vars.json`);
    const t = Date.now();
    const p = spawnSync(...runner.command(args));
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
  console.log(
    `-> after ${secs(t0)}: ${r.vm_state}/${r.power_state}; QEMU could not reach the rbd disk's mon ${disk ? `${disk[1]}:${disk[2]}` : '(see below)'}`,
  );
  console.log(`   ${r.error.slice(0, 240)}...`);

  say('3. the twin, a running instance, is hard-rebooted before the refresh (a user, or a host reboot)');
  shown(`openstack server reboot --hard ${twin.instance_uuid}   # (tools/reboot_instance.py does what nova-api's reboot(HARD) does)`);
  t0 = Date.now();
  r = power('reboot', twin.instance_uuid);
  if (!r.error) throw new Error('the stale twin rebooted: the scenario is broken');
  if (!r.qemu_pid) started.delete(twin.instance_uuid);
  console.log(
    `-> after ${secs(t0)}: ${r.vm_state}, ${r.qemu_pid ? `QEMU pid ${r.qemu_pid}` : 'no QEMU any more'}: Nova defined the domain again from the BDM, which names ${OLD}`,
  );
  console.log(`   ${r.error.slice(0, 240)}...`);

  playbook(
    '4. refresh the whole fleet, stopped and running, in one run (get_connector on compute2, refresh on the controller; diff mode, running_instances online)',
    ['osops.nova.refresh', '-D'],
  );
  playbook('5. audit again: only the twin, which the failed reboot left in ERROR', ['osops.nova.audit', '-C']);

  say('6. the user starts the stopped instance again');
  shown(`openstack server start ${web.instance_uuid}`);
  r = power('start', web.instance_uuid);
  if (r.error) throw new Error(`the refreshed instance did not start: ${r.error}`);
  started.add(web.instance_uuid);
  console.log(`-> ${r.vm_state}/${r.power_state} in ${r.seconds} s, the domain's rbd disk names ${r.domain_rbd_hosts.join(', ')}`);

  say('7. the running instances refreshed online: the same QEMU all along, and a hard reboot now works');
  for (const s of [db1, db2]) {
    const name = names.get(s.instance_uuid);
    const pid = qemuPid(domains.get(s.instance_uuid));
    console.log(
      `${name}: ${pid === pidsBefore.get(s.instance_uuid) ? `still QEMU pid ${pid}, untouched by the refresh` : `QEMU pid ${pidsBefore.get(s.instance_uuid)} -> ${pid}`}`,
    );
    if (pid !== pidsBefore.get(s.instance_uuid)) throw new Error(`${name}'s QEMU changed during the refresh`);
    shown(`openstack server reboot --hard ${s.instance_uuid}   # ${name}`);
    r = power('reboot', s.instance_uuid, 90);
    if (r.error) throw new Error(`${name}'s hard reboot failed (was it refreshed online? the refresh's summary above says): ${r.error}`);
    console.log(
      `-> ${r.vm_state}/${r.power_state} in ${r.seconds} s, new QEMU pid ${r.qemu_pid}, the domain's rbd disk names ${r.domain_rbd_hosts.join(', ')}`,
    );
  }

  say('8. the twin, left in ERROR by its hard reboot: stop it (Nova allows that from ERROR), refresh, start');
  shown(`openstack server stop ${twin.instance_uuid}`);
  r = power('stop', twin.instance_uuid);
  if (r.error) throw new Error(`the twin did not stop: ${r.error}`);
  console.log(`-> ${r.vm_state}/${r.power_state}`);
  playbook('8b. the same refresh again: the twin now takes the stopped way, the rest is not stale', ['osops.nova.refresh']);
  shown(`openstack server start ${twin.instance_uuid}`);
  r = power('start', twin.instance_uuid);
  if (r.error) throw new Error(`the refreshed twin did not start: ${r.error}`);
  started.add(twin.instance_uuid);
  console.log(`-> ${r.vm_state}/${r.power_state} in ${r.seconds} s, the domain's rbd disk names ${r.domain_rbd_hosts.join(', ')}`);
} catch (e) {
  console.error(`\ndemo:ceph FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  say('clean-up');
  for (const uuid of started) {
    const r = power('stop', uuid);
    console.log(`stopped ${uuid}: ${r.vm_state}/${r.power_state}${r.error ? ` (${r.error})` : ''}`);
  }
  rmSync(state, { recursive: true, force: true });
  if (!wasUp && !keep) {
    shown('bash test/interop/lab/down.sh');
    spawnSync('bash', [join(lab, 'down.sh')], { stdio: 'inherit' });
  } else {
    console.log(`the lab stays up${keep ? ' (--keep)' : ' (it was running before)'}: bash test/interop/lab/down.sh stops it`);
  }
}
