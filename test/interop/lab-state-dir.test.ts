import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { INTEROP_SKIP } from './tier';

// The lab's scripts on a state dir that does not exist yet, as on a fresh machine: sourcing
// lib.sh (env.sh, down.sh, the tools) writes nothing, up.sh makes and marks the dir before it
// writes anything into it, and down.sh --purge leaves nothing behind. A second, Ceph-less lab on
// its own ports, database prefix and vhost, so it runs beside the tier's main lab.

const SKIP = INTEROP_SKIP;

const LAB = resolve(__dirname, '../../../test/interop/lab');
const PREFIX = 'nbls_';
const VHOST = 'nbls';
const parent = mkdtempSync(join(tmpdir(), 'nova-bdm-lab-state-'));
const stateDir = join(parent, 'not-yet', 'lab');

function labEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OPENSTACK_LAB_')) env[k] = v;
  return {
    ...env,
    OPENSTACK_LAB_DIR: dir,
    OPENSTACK_LAB_DB_PREFIX: PREFIX,
    OPENSTACK_LAB_VHOST: VHOST,
    OPENSTACK_LAB_CEPH: '0',
    OPENSTACK_LAB_KEYSTONE_PORT: '5100',
    OPENSTACK_LAB_CINDER_PORT: '8876',
    OPENSTACK_LAB_PLACEMENT_PORT: '8878',
    OPENSTACK_LAB_MEMCACHED_PORT: '11311',
  };
}

function run(cmd: string, args: string[], dir = stateDir, timeoutMs = 60_000) {
  const r = spawnSync(cmd, args, { env: labEnv(dir), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

function labDatabases(): string[] {
  const r = spawnSync('mysql', ['--protocol=socket', '-uroot', '-N', '-e', `SHOW DATABASES LIKE '${PREFIX}%'`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

function vhosts(): string[] {
  const r = spawnSync('rabbitmqctl', ['-q', 'list_vhosts'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

describe('interop lab: a state dir that does not exist yet', { skip: SKIP }, () => {
  after(() => {
    run('bash', [join(LAB, 'down.sh'), '--purge'], stateDir, 120_000);
    rmSync(parent, { recursive: true, force: true });
  });

  test('lab_pid_ours knows its process by the environment even when that is larger than a pipe buffer (pipefail, no SIGPIPE)', async () => {
    // memcached's command line cannot name the state dir: only its environment does. Under npm
    // run test:interop that environment is large, and a grep -q matching early killed its writer.
    const filler = 'y'.repeat(20_000);
    const env: NodeJS.ProcessEnv = { A: '1', OPENSTACK_LAB_ETC_DIR: join(stateDir, 'etc') };
    for (let i = 0; i < 6; i++) env[`FILLER_${i}`] = filler;
    const child = spawn('sleep', ['30'], { env, stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const lib = join(LAB, 'lib.sh');
      const r = run('bash', ['-c', `set -euo pipefail; . '${lib}'; lab_pid_ours ${child.pid} && echo ours || echo stranger`]);
      assert.equal(r.out.trim(), 'ours', r.err);
      const other = run(
        'bash',
        ['-c', `set -euo pipefail; . '${lib}'; lab_pid_ours ${child.pid} && echo ours || echo stranger`],
        join(parent, 'another-lab'),
      );
      assert.equal(other.out.trim(), 'stranger', other.err);
    } finally {
      child.kill();
    }
    assert.equal(existsSync(join(parent, 'not-yet')), false);
  });

  test('env.sh and env.sh --json print the settings and create nothing', () => {
    const sh = run('bash', [join(LAB, 'env.sh')]);
    assert.equal(sh.status, 0, sh.err);
    assert.match(sh.out, new RegExp(`^export OPENSTACK_LAB_DIR='${stateDir}'$`, 'm'));
    assert.match(sh.out, /^export OPENSTACK_LAB_DB_NOVA='nbls_nova'$/m);
    const json = run('bash', [join(LAB, 'env.sh'), '--json']);
    assert.equal(json.status, 0, json.err);
    assert.equal((JSON.parse(json.out) as Record<string, string>).OPENSTACK_LAB_VHOST, VHOST);
    assert.equal(existsSync(join(parent, 'not-yet')), false, 'env.sh created the state dir (or its parent)');
  });

  test('down.sh and down.sh --purge succeed and create nothing', () => {
    for (const args of [[], ['--purge']]) {
      const r = run('bash', [join(LAB, 'down.sh'), ...args]);
      assert.equal(r.status, 0, r.err);
      assert.match(r.out, /nothing running for/);
    }
    assert.equal(existsSync(join(parent, 'not-yet')), false, 'down.sh created the state dir');
  });

  test('a tool says to run up.sh first and creates nothing', () => {
    const r = run('/usr/bin/python3', [join(LAB, 'tools/nova_db.py')]);
    assert.notEqual(r.status, 0);
    assert.match(r.err, /run up\.sh first/);
    assert.equal(existsSync(join(parent, 'not-yet')), false, 'a tool created the state dir');
  });

  test('up.sh refuses a directory that is not empty and not a lab state dir, and adds nothing to it', () => {
    const foreign = join(parent, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'keep.txt'), 'not the lab\n');
    const r = run('bash', [join(LAB, 'up.sh')], foreign);
    assert.equal(r.status, 2, r.out + r.err);
    assert.match(r.err, /is not an openstack-lab state dir; refusing to use it/);
    assert.deepEqual(readdirSync(foreign), ['keep.txt']);
  });

  test('up.sh brings the lab up in the new state dir; down.sh --purge removes the dir, databases and vhost', () => {
    const up = run('bash', [join(LAB, 'up.sh')], stateDir, 600_000);
    assert.equal(
      up.status,
      0,
      `up.sh failed:\n${up.out
        .split('\n')
        .filter((l) => l.startsWith('[up'))
        .join('\n')}\n${up.err.slice(-4000)}`,
    );
    assert.match(up.out, /lab is up/);
    assert.ok(existsSync(join(stateDir, '.openstack-lab')), "the state dir is marked as the lab's");
    assert.ok(existsSync(join(stateDir, 'lab.env')));
    assert.equal(labDatabases().length, 6, `databases: ${labDatabases().join(' ')}`);
    assert.ok(vhosts().includes(VHOST));

    const down = run('bash', [join(LAB, 'down.sh'), '--purge'], stateDir, 120_000);
    assert.equal(down.status, 0, down.err);
    assert.equal(existsSync(stateDir), false, 'down.sh --purge left the state dir');
    assert.deepEqual(labDatabases(), []);
    assert.equal(vhosts().includes(VHOST), false, 'down.sh --purge left the vhost');
  });
});
