import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Fixtures, ISCSI_CHAP_CONNECTION_INFO } from './support/fixtures';
import { BUNDLE } from './support/nova-env';

// The built single-file module, run the three ways users run it, plus by the real Ansible.

const fx = new Fixtures();
const conf = fx.env.confPath;
const tmp = mkdtempSync(join(tmpdir(), 'nbt-bundle-'));
let instance: string;
let bdm: Awaited<ReturnType<Fixtures['seedBdm']>>;

before(async () => {
  instance = await fx.seedInstance('cell2');
  bdm = await fx.seedBdm('cell2', instance, { connection_info_object: ISCSI_CHAP_CONNECTION_INFO });
});
after(() => fx.close());

function run(args: string[], input?: string) {
  const r = spawnSync(BUNDLE, args, { input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the bundle file', () => {
  const bytes = readFileSync(BUNDLE);
  const text = bytes.toString('utf8');

  test('starts with #!/usr/bin/node, carries WANT_JSON near the top, and is executable', () => {
    assert.equal(text.split('\n')[0], '#!/usr/bin/node');
    assert.ok(
      text
        .split('\n')
        .slice(0, 5)
        .some((l) => l.includes('WANT_JSON')),
    );
    assert.ok((statSync(BUNDLE).mode & 0o111) !== 0);
  });

  test("holds none of Ansible's other module-style markers and no binary bytes in the first KiB", () => {
    for (const marker of [
      '#<<INCLUDE_ANSIBLE_MODULE_COMMON>>',
      '<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>',
      '# POWERSHELL_COMMON',
      '<<ANSIBLE_VERSION>>',
      '<<INCLUDE_ANSIBLE_MODULE_COMPLEX_ARGS>>',
      '<<SELINUX_SPECIAL_FILESYSTEMS>>',
    ]) {
      assert.ok(!text.includes(marker), marker);
    }
    assert.doesNotMatch(text, /#Requires -(Module|Version)|#AnsibleRequires/i);
    assert.doesNotMatch(
      text,
      /from +ansible\.module_utils.* +import |import +ansible\.module_utils\.|from +ansible_collections\.[^.]+\.[^.]+\.plugins\.module_utils.* +import /,
    );
    const allowed = new Set([7, 8, 9, 10, 12, 13, 27]);
    for (const b of bytes.subarray(0, 1024)) assert.ok(allowed.has(b) || (b >= 0x20 && b !== 0x7f), `byte ${b}`);
  });

  test('runs alone: nothing from node_modules is required at run time', () => {
    assert.doesNotMatch(text, /require\(["'](ajv|kysely|mysql2)["']\)/);
    const copy = join(tmp, 'bdm.cjs');
    writeFileSync(copy, bytes, { mode: 0o755 });
    const r = spawnSync(process.execPath, [copy, '-'], {
      input: JSON.stringify({ bdm_uuid: bdm.uuid, config_file: conf }),
      encoding: 'utf8',
      cwd: tmp,
    });
    assert.equal(JSON.parse(r.stdout).bdm.uuid, bdm.uuid);
  });
});

describe('Ansible calling convention and stdin', () => {
  test('args file in, exactly one JSON object out; _ansible_* keys accepted', () => {
    const argsFile = join(tmp, 'args');
    writeFileSync(
      argsFile,
      JSON.stringify({
        bdm_uuid: bdm.uuid,
        config_file: conf,
        _ansible_check_mode: false,
        _ansible_diff: false,
        _ansible_verbosity: 0,
        _ansible_module_name: 'osops.nova.bdm',
        _ansible_keep_remote_files: false,
      }),
    );
    const r = run([argsFile]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    assert.equal(out.changed, false);
    assert.equal(out.bdm.uuid, bdm.uuid);
    assert.equal(out.connection_info.data.auth_password, '********');
    assert.equal(r.stderr, '');
  });

  test('stdin form; a failure is failed + one-line msg, no stack trace', () => {
    const ok = run(['-'], JSON.stringify({ instance_uuid: instance, volume_id: bdm.volumeId, config_file: conf }));
    assert.equal(JSON.parse(ok.stdout).bdm.uuid, bdm.uuid);
    const bad = run(['-'], JSON.stringify({ instance_uuid: instance, volume_id: 'nope', config_file: conf }));
    assert.deepEqual(JSON.parse(bad.stdout), {
      changed: false,
      failed: true,
      msg: 'volume_id is not a valid UUID (expected the form 8-4-4-4-12 hex digits)',
    });
    const garbage = run(['-'], '{not json');
    assert.deepEqual(JSON.parse(garbage.stdout), {
      changed: false,
      failed: true,
      msg: 'module arguments in standard input is not valid JSON',
    });
    assert.doesNotMatch(bad.stdout + bad.stderr + garbage.stdout + garbage.stderr, /\n\s+at /);
  });
});

describe('human CLI', () => {
  test('bdm show BDM_UUID prints a Property/Value table with secrets masked', () => {
    const r = run(['--config-file', conf, 'bdm', 'show', bdm.uuid]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\+-+\+-+\+\n\| Property +\| Value +\|/);
    assert.match(r.stdout, new RegExp(`\\| uuid +\\| ${bdm.uuid} +\\|`));
    assert.match(r.stdout, /\| boot_index +\| None +\|/);
    assert.ok(r.stdout.includes('"auth_password":"********"'));
    assert.ok(!r.stdout.includes('chapsecret-pw'));
  });

  test('volume_attachment show --json and --connection_info --json', () => {
    const r = run(['volume_attachment', 'show', instance, bdm.volumeId, '--json', '--config-file', conf]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).attachment_id, bdm.attachmentId);
    const ci = run(['volume_attachment', 'show', instance, bdm.volumeId, '--json', '--connection_info', `--config-file=${conf}`]);
    assert.deepEqual(Object.keys(JSON.parse(ci.stdout)).sort(), ['data', 'driver_volume_type', 'serial']);
    assert.equal(JSON.parse(ci.stdout).data.discovery_auth_password, '********');
    const revealed = run([
      'volume_attachment',
      'show',
      instance,
      bdm.volumeId,
      '--json',
      '--connection_info',
      '--reveal-secrets',
      '--config-file',
      conf,
    ]);
    assert.equal(JSON.parse(revealed.stdout).data.auth_password, 'chapsecret-pw');
  });

  test("nova-manage's exit codes: 2 instance not found, 3 volume not attached, 1 unexpected; 64 usage", () => {
    const ghost = randomUUID();
    let r = run(['volume_attachment', 'show', ghost, randomUUID(), '--config-file', conf]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `Instance ${ghost} has no mapping to a cell.\n`);
    const volume = randomUUID();
    r = run(['volume_attachment', 'show', instance, volume, '--config-file', conf]);
    assert.equal(r.status, 3);
    assert.equal(r.stderr, `No volume Block Device Mapping with id ${volume}.\n`);
    r = run(['bdm', 'show', randomUUID(), '--config-file', join(tmp, 'nonexistent.conf')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^\[api_database\] connection is not set \(looked in .*nonexistent\.conf \(not found\)\)/);
    r = run(['bdm', 'frobnicate']);
    assert.equal(r.status, 64);
    assert.match(r.stderr, /unknown command: bdm frobnicate/);
    r = run(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /volume_attachment show INSTANCE_UUID VOLUME_ID/);
  });
});

describe('through the real Ansible (ansible-core)', () => {
  const ansible = (moduleArgs: string, extra: string[] = []) =>
    spawnSync('ansible', ['localhost', '-M', dirname(BUNDLE), '-m', 'bdm', '-a', moduleArgs, ...extra], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, ANSIBLE_NOCOLOR: '1', ANSIBLE_LOCALHOST_WARNING: 'false', ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false' },
    });
  /** The ad-hoc result: `localhost | SUCCESS => {...}` (pretty JSON up to a closing brace at column 0). */
  const resultOf = (stdout: string) => {
    const m = /^localhost \| (SUCCESS|FAILED!) => (\{\n[\s\S]*?\n\})$/m.exec(stdout);
    assert.ok(m, stdout);
    return { status: m[1], ...JSON.parse(m[2]!) };
  };

  test('show succeeds and masks; a failure shows the one-line msg; -vvv prints no secret', () => {
    const ok = ansible(JSON.stringify({ bdm_uuid: bdm.uuid, config_file: conf }), ['-vvv']);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const okResult = resultOf(ok.stdout);
    assert.equal(okResult.bdm.uuid, bdm.uuid);
    assert.equal(okResult.changed, false);
    assert.equal(okResult.status, 'SUCCESS');
    for (const secret of ['chapsecret-pw', 'discovery-chap-pw', fx.env.dbPassword, encodeURIComponent(fx.env.dbPassword)]) {
      assert.ok(!(ok.stdout + ok.stderr).includes(secret), secret);
    }
    const failed = ansible(JSON.stringify({ instance_uuid: instance, volume_id: randomUUID(), config_file: conf }));
    assert.notEqual(failed.status, 0);
    const failedResult = resultOf(failed.stdout);
    assert.equal(failedResult.status, 'FAILED!');
    assert.match(failedResult.msg, /^No volume Block Device Mapping with id [0-9a-f-]{36}\.$/);
  });
});
