import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execute } from '../src/entry/run';
import { answer } from './support/results';
import { labSecrets } from './interop/lab-secrets';
import { BUNDLE } from './support/nova-env';
import { RefreshEnv } from './support/refresh-env';
import { configuredSecrets, findSecretsIn, recordOutput, registerSecrets, scanLog } from './support/secret-scan';

// Every failure class at every verbosity, 0 to 4, in process, through the bundle and through the
// real Ansible at -v to -vvvv: no answer carries a secret (the whole-suite scan then re-checks all
// of these with everything else the suite produced).

let env: RefreshEnv;
const argSecret = `arg-db-pw-${randomUUID().slice(0, 8)}`;
const keystoneSecret = `wrong-keystone-pw-${randomUUID().slice(0, 8)}`;
const connectorSecret = `connector-file-secret-${randomUUID().slice(0, 8)}`;
const secrets = () => {
  const { config, data } = configuredSecrets();
  return [...config, ...data, argSecret, keystoneSecret, connectorSecret];
};

before(async () => {
  env = await RefreshEnv.start();
  registerSecrets([argSecret, keystoneSecret, connectorSecret], 'config');
});
after(() => env.stop());

/** One module-args input per failure class the tool knows. */
async function failureClasses(): Promise<Array<{ name: string; args: Record<string, unknown>; prepare?: () => void }>> {
  const conf = [env.fx.env.confPath, env.extraConf];
  const stopped = await env.seed();
  const active = await env.seed({ instance: { vm_state: 'active' } });
  const midway = await env.seed();
  const notJson = join(env.dir, `connector-${randomUUID()}.txt`);
  writeFileSync(notJson, `keyring = ${connectorSecret}\npassword=${connectorSecret}\n`);
  return [
    {
      name: 'bad arguments',
      args: { action: 'show', api_database_connection: `mysql+pymysql://nova:${argSecret}@127.0.0.1:1/x`, bogus: argSecret },
    },
    {
      name: 'database refuses the password',
      args: {
        action: 'show',
        bdm_uuid: randomUUID(),
        config_file: conf,
        api_database_connection: `mysql+pymysql://${env.fx.env.dbUser}:${encodeURIComponent(argSecret)}@127.0.0.1:3306/${env.fx.env.databases.api}`,
      },
    },
    {
      name: 'database unreachable',
      args: {
        action: 'audit',
        config_file: conf,
        database_connection: `mysql+pymysql://nova:${argSecret}@127.0.0.1:1/x`,
        api_database_connection: `mysql+pymysql://nova:${argSecret}@127.0.0.1:1/x`,
        connect_timeout: 2,
      },
    },
    { name: 'BDM not found', args: { action: 'show', bdm_uuid: randomUUID(), config_file: conf } },
    {
      name: 'instance state invalid',
      args: {
        action: 'refresh',
        bdm_uuid: active.bdm.uuid,
        config_file: conf,
        connector: env.connector,
        expect: RefreshEnv.EXPECT_NEW_MONITORS,
      },
    },
    {
      name: 'connector file not JSON',
      args: { action: 'refresh', bdm_uuid: stopped.bdm.uuid, config_file: conf, connector_path: notJson },
    },
    {
      name: 'Keystone refuses the password',
      args: {
        action: 'refresh',
        bdm_uuid: stopped.bdm.uuid,
        config_file: conf,
        connector: env.connector,
        cinder_auth: { password: keystoneSecret },
      },
    },
    {
      name: 'Keystone refuses (audit check_cinder)',
      args: {
        action: 'audit',
        instance_uuids: [stopped.instanceUuid],
        config_file: conf,
        check_cinder: true,
        cinder_auth: { password: keystoneSecret },
      },
    },
    {
      name: 'Cinder fails half-way (RefreshFailed, remains)',
      args: {
        action: 'refresh',
        bdm_uuid: midway.bdm.uuid,
        config_file: conf,
        connector: env.connector,
        expect: RefreshEnv.EXPECT_NEW_MONITORS,
        _ansible_diff: true,
      },
      prepare: () => env.cloud.failNext('POST', /\/attachments$/, 500, 1),
    },
    {
      name: 'check mode with diff (stale)',
      args: {
        action: 'refresh',
        bdm_uuid: stopped.bdm.uuid,
        config_file: conf,
        connector: env.connector,
        expect: RefreshEnv.EXPECT_NEW_MONITORS,
        _ansible_check_mode: true,
        _ansible_diff: true,
      },
    },
  ];
}

const problemsOf = (text: string) => findSecretsIn(text, secrets()).map((h) => `${h.secret} as ${h.form} in ...${h.context}...`);

describe('the scan itself', () => {
  test('finds a secret raw, percent-encoded, JSON-escaped and inside base64; a revealed record may show data secrets only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbh-scan-'));
    const log = join(dir, 'outputs.jsonl');
    const db = configuredSecrets().config.find((x) => x.includes('@'))!; // the DB password, with URL-special characters
    const lines = [
      { source: 'secrets', secrets: ['made-up-secret-1'], kind: 'config' },
      { source: 'clean', text: 'rabbit://guest:********@127.0.0.1/ and (using password: YES)' },
      { source: 'raw', text: `x ${db} y` },
      { source: 'percent', text: `mysql://u:${encodeURIComponent(db)}@h/db` },
      {
        source: 'base64',
        text: Buffer.from(`Authorization: Basic ${Buffer.from(`u:made-up-secret-1`).toString('base64')}`).toString('utf8'),
      },
      { source: 'json', text: JSON.stringify({ msg: `"${db}"` }) },
      { source: 'revealed ok', revealed: true, text: JSON.stringify({ data: { auth_password: 'chapsecret-pw' } }) },
      { source: 'revealed but a password', revealed: true, text: 'nova-pw-s3cret' },
      { source: 'not revealed', text: JSON.stringify({ data: { auth_password: 'chapsecret-pw' } }) },
      { source: 'rabbit', text: 'rabbit://guest:guest@127.0.0.1:5672/' },
    ];
    writeFileSync(log, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const r = scanLog(log);
    assert.equal(r.records, lines.length - 1);
    assert.deepEqual([...new Set(r.hits.map((h) => h.source))].sort(), [
      'base64',
      'json',
      'not revealed',
      'percent',
      'rabbit',
      'raw',
      'revealed but a password',
    ]);
  });

  test("a plain-word password (the lab's nova, lab, guest) counts where it stands as a password, in every encoding, not as a bare word", () => {
    const hits = (text: string) => findSecretsIn(text, ['nova', 'lab']).map((h) => h.secret);
    assert.deepEqual(hits('nova-compute on compute1, lab cell1, nova_api, guest queue'), []);
    assert.deepEqual(hits('mysql+pymysql://lab:lab@127.0.0.1/nbi_nova'), ['lab']);
    assert.deepEqual(hits(encodeURIComponent('mysql://nova:lab@h/x')), ['lab']);
    assert.deepEqual(hits('[keystone_authtoken]\npassword = nova\n'), ['nova']);
    assert.deepEqual(hits(JSON.stringify({ msg: JSON.stringify({ auth: { password: 'nova' } }) })), ['nova']);
    assert.deepEqual(hits(`Authorization: Basic ${Buffer.from('nova:nova').toString('base64')}`), ['nova']);
    assert.deepEqual(hits("{'auth_password': 'nova'}"), ['nova']);
    assert.deepEqual(hits('rabbit://guest:guest@127.0.0.1:5672/nbi'), ['guest (RabbitMQ)']);
  });

  test("the lab's secrets are read from its own files: DB, RabbitMQ, Keystone passwords, Keystone keys, cephx keys", () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbh-lab-secrets-'));
    for (const d of ['etc/fernet-keys', 'etc/placement', 'ceph/keyring', 'ceph/mon/ceph-a']) mkdirSync(join(dir, d), { recursive: true });
    writeFileSync(
      join(dir, 'etc', 'nova.conf'),
      '[DEFAULT]\ntransport_url = rabbit://guest:rabbit-pw@127.0.0.1:5672/nbi\n[api_database]\nconnection = mysql+pymysql://lab:db%2Fpw@127.0.0.1/nbi_nova_api?charset=utf8\n[keystone_authtoken]\npassword = nova-ks-pw\n[cinder]\nauth_type = password\n',
    );
    writeFileSync(join(dir, 'etc', 'placement', 'placement.conf'), '[keystone_authtoken]\npassword=placement-pw\n');
    writeFileSync(join(dir, 'etc', 'fernet-keys', '0'), 'fernetKeyBase64AAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    writeFileSync(
      join(dir, 'ceph', 'keyring', 'ceph.client.cinder.keyring'),
      '[client.cinder]\n\tkey = AQCinderKeyAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n',
    );
    writeFileSync(
      join(dir, 'ceph', 'mon', 'ceph-a', 'keyring'),
      '[mon.]\n\tkey = AQMonKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n\tcaps mon = "allow *"\n',
    );
    const r = labSecrets({
      dir,
      dbPassword: 'db/pw',
      transportUrl: 'rabbit://guest:rabbit-pw@127.0.0.1:5672/nbi',
      raw: { OS_PASSWORD: 'admin-pw' },
    });
    assert.deepEqual(
      r.values.sort(),
      [
        'AQCinderKeyAAAAAAAAAAAAAAAAAAAAAAAAAAA==',
        'AQMonKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==',
        'admin-pw',
        'db/pw',
        'fernetKeyBase64AAAAAAAAAAAAAAAAAAAAAAAAAAA=',
        'nova-ks-pw',
        'placement-pw',
        'rabbit-pw',
      ].sort(),
    );
    assert.deepEqual(r.counts, {
      'db password': 1,
      'rabbitmq password': 1,
      'keystone admin password': 1,
      'config password': 2,
      'config URL password': 2,
      'keystone fernet/credential key': 1,
      'cephx key': 2,
    });
  });

  test('the hook records what a bundle process writes, even under another harness', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbh-hook-'));
    const log = join(dir, 'outputs.jsonl');
    const r = await run(
      process.execPath,
      ['--require', join(__dirname, 'support', 'secret-scan-hook.js'), BUNDLE, '-'],
      JSON.stringify({ action: 'show', config_file: '/nonexistent', reveal_secrets: true }),
      { NOVA_BDM_SECRET_SCAN_LOG: log },
    );
    assert.equal(r.code, 1);
    const records = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(records, [{ source: 'bundle stdout', revealed: true, text: r.stdout }]);
  });
});

describe('every failure class at every verbosity', () => {
  test('in process (execute), verbosity 0 to 4', async () => {
    for (const c of await failureClasses()) {
      for (let verbosity = 0; verbosity <= 4; verbosity++) {
        c.prepare?.();
        const result = answer(await execute({ ...c.args, _ansible_verbosity: verbosity }));
        env.cloud.clearFaults();
        if (c.name !== 'check mode with diff (stale)') assert.equal(result.failed, true, `${c.name}: ${String(result.msg)}`);
        if (verbosity < 3) assert.equal(result.exception, undefined, `${c.name} -v${verbosity}: exception only from -vvv`);
        else if (c.name !== 'bad arguments' && result.failed)
          assert.match(String(result.exception), /\n\s+at /, `${c.name} -v${verbosity}: the traceback, as Ansible shows it`);
        assert.deepEqual(problemsOf(JSON.stringify(result)), [], `${c.name} at verbosity ${verbosity}`);
      }
    }
  });

  test('through the bundle (stdin), verbosity 0 to 4', async () => {
    for (const c of await failureClasses()) {
      for (let verbosity = 0; verbosity <= 4; verbosity += 2) {
        c.prepare?.();
        const r = await run(process.execPath, [BUNDLE, '-'], JSON.stringify({ ...c.args, _ansible_verbosity: verbosity }));
        env.cloud.clearFaults();
        assert.equal(r.stdout.split('\n').length, 2, `${c.name}: one line: ${r.stdout.slice(0, 300)}`);
        assert.deepEqual(problemsOf(r.stdout + r.stderr), [], `${c.name} at verbosity ${verbosity}`);
      }
    }
  });

  test('through the real Ansible, -v to -vvvv: its own display too', async () => {
    const classes = (await failureClasses()).filter((c) =>
      ['database refuses the password', 'Keystone refuses the password', 'Cinder fails half-way (RefreshFailed, remains)'].includes(c.name),
    );
    for (const c of classes) {
      for (const v of ['-v', '-vv', '-vvv', '-vvvv']) {
        c.prepare?.();
        const moduleArgs = Object.fromEntries(Object.entries(c.args).filter(([k]) => !k.startsWith('_ansible_')));
        const r = await run(
          'ansible',
          ['localhost', '-M', dirname(BUNDLE), '-m', 'bdm', '-a', JSON.stringify(moduleArgs), '--diff', v],
          undefined,
          {
            ANSIBLE_NOCOLOR: '1',
            ANSIBLE_LOCALHOST_WARNING: 'false',
            ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false',
            ANSIBLE_HOME: join(env.dir, 'ansible-home'),
          },
        );
        env.cloud.clearFaults();
        recordOutput('ansible ad hoc', r.stdout + r.stderr);
        assert.match(r.stdout, /localhost \| FAILED! =>/, `${c.name} ${v}: ${r.stdout.slice(0, 500)}${r.stderr.slice(0, 500)}`);
        assert.deepEqual(problemsOf(r.stdout + r.stderr), [], `${c.name} at ${v}`);
      }
    }
  });
});

/** Spawned, never spawnSync: the stand-ins answer from this process. */
function run(
  command: string,
  args: string[],
  stdin?: string,
  extraEnv: Record<string, string> = {},
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
    child.stdin.end(stdin ?? '');
  });
}
