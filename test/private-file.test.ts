import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
  chmodSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execute } from '../src/entry/run';
import { answer } from './support/results';
import { checkPrivateFileTarget, openPrivateFileStream, writePrivateFile } from '../src/output/private-file';
import { Fixtures } from './support/fixtures';

// Files we write for the user (report_path): never through a planted link, always 0600, atomic.

const dir = mkdtempSync(join(tmpdir(), 'nbt-private-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);
const fresh = () => {
  const d = join(dir, randomUUID().slice(0, 8));
  mkdirSync(d);
  return d;
};

/** The unprivileged user root's run of the suite uses to see permissions apply (setpriv, util-linux). */
const UNPRIVILEGED = { uid: 65534, gid: 65534 }; // nobody:nogroup

/**
 * writePrivateFile(path, data) as a user without root's DAC override: in this process when it is
 * not root, else in a node child run by setpriv as nobody, which loads the same compiled module.
 */
function writeAsUnprivileged(path: string, data: string): { error?: { name: string; message: string } } {
  const attempt = (): { error?: { name: string; message: string } } => {
    try {
      writePrivateFile(path, data);
      return {};
    } catch (err) {
      return { error: { name: (err as Error).name, message: (err as Error).message } };
    }
  };
  if (process.getuid?.() !== 0) return attempt();
  const module = join(__dirname, '..', 'src', 'output', 'private-file.js');
  const script = `try { require(${JSON.stringify(module)}).writePrivateFile(process.argv[1], process.argv[2]); console.log('{}'); } catch (err) { console.log(JSON.stringify({ error: { name: err.name, message: err.message } })); }`;
  const r = spawnSync(
    'setpriv',
    [`--reuid=${UNPRIVILEGED.uid}`, `--regid=${UNPRIVILEGED.gid}`, '--clear-groups', process.execPath, '-e', script, path, data],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `setpriv as nobody: ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { error?: { name: string; message: string } };
}

describe('writePrivateFile', () => {
  test('a new file is created 0600 with the data, and no temp file stays behind', () => {
    const d = fresh();
    const p = join(d, 'report.json');
    const old = process.umask(0);
    try {
      writePrivateFile(p, '{"a":1}\n');
    } finally {
      process.umask(old);
    }
    assert.equal(readFileSync(p, 'utf8'), '{"a":1}\n');
    assert.equal(mode(p), '600');
    assert.deepEqual(readdirSync(d), ['report.json']);
  });

  test('an existing world-readable file is replaced by a new 0600 inode (atomic rename, not rewritten in place)', () => {
    const d = fresh();
    const p = join(d, 'report.json');
    writeFileSync(p, 'old contents that are longer than the new ones');
    chmodSync(p, 0o644);
    const hardlink = join(d, 'other-name');
    execFileSync('ln', [p, hardlink]); // another name for the old inode: must keep the old data
    const inodeBefore = statSync(p).ino;
    writePrivateFile(p, 'new');
    assert.equal(readFileSync(p, 'utf8'), 'new');
    assert.equal(mode(p), '600');
    assert.notEqual(statSync(p).ino, inodeBefore, 'renamed over, not truncated');
    assert.equal(readFileSync(hardlink, 'utf8'), 'old contents that are longer than the new ones');
    assert.equal(mode(hardlink), '644', 'the old inode is not chmod-ed');
    assert.deepEqual(readdirSync(d).sort(), ['other-name', 'report.json']);
  });

  test('a symlink planted at the path is refused; the file it points to stays untouched, mode and all', () => {
    const d = fresh();
    const victim = join(d, 'shadow');
    writeFileSync(victim, 'root:x:0:0\n');
    chmodSync(victim, 0o644);
    const p = join(d, 'report.json');
    symlinkSync(victim, p);
    assert.throws(
      () => writePrivateFile(p, 'pwned'),
      (err: Error) => {
        assert.equal(err.name, 'BadInput');
        assert.equal(
          err.message,
          `refusing to write ${p}: it is a symbolic link (nova-bdm only replaces a regular file there; remove it or choose another path)`,
        );
        return true;
      },
    );
    assert.equal(readFileSync(victim, 'utf8'), 'root:x:0:0\n');
    assert.equal(mode(victim), '644');
    assert.ok(lstatSync(p).isSymbolicLink(), 'the link itself is left alone too');
    assert.equal(readlinkSync(p), victim);
    // a dangling link is refused as well (following it would create the target)
    const dangling = join(d, 'dangling.json');
    symlinkSync(join(d, 'would-be-created'), dangling);
    assert.throws(() => writePrivateFile(dangling, 'x'), /it is a symbolic link/);
    assert.deepEqual(readdirSync(d).sort(), ['dangling.json', 'report.json', 'shadow']);
  });

  test('a directory, a FIFO, a device are refused with one line; nothing is created', () => {
    const d = fresh();
    const sub = join(d, 'sub');
    mkdirSync(sub);
    assert.throws(() => writePrivateFile(sub, 'x'), /^BadInput: refusing to write .*sub: it is a directory \(/);
    const fifo = join(d, 'fifo');
    execFileSync('mkfifo', [fifo]);
    assert.throws(() => writePrivateFile(fifo, 'x'), /it is a FIFO/);
    assert.throws(() => writePrivateFile('/dev/null', 'x'), /refusing to write \/dev\/null: it is a device/);
    assert.deepEqual(readdirSync(d).sort(), ['fifo', 'sub']);
    assert.deepEqual(readdirSync(sub), []);
  });

  test('a directory that does not exist or cannot be written: one clear line, no temp file', () => {
    assert.throws(
      () => writePrivateFile(join(dir, 'missing', 'r.json'), 'x'),
      /^BadInput: cannot write \S+: its directory does not exist$/,
    );
    assert.throws(
      () => writePrivateFile(`${dir}/a\nb/r.json`, 'x'),
      (err: Error) => !err.message.includes('\n'),
    );
    assert.throws(() => writePrivateFile('', 'x'), /not a usable file path/);
    assert.throws(() => writePrivateFile('a\0b', 'x'), /not a usable file path/);
  });

  test('a directory the user may not write to: permission denied in one line, nothing created (as an unprivileged user, also when the suite runs as root)', () => {
    const d = fresh();
    chmodSync(dir, 0o755); // mkdtemp's 0700 would hide d itself from another user
    chmodSync(d, 0o555);
    try {
      const answer = writeAsUnprivileged(join(d, 'r.json'), 'x');
      assert.equal(answer.error?.name, 'BadInput', JSON.stringify(answer));
      assert.match(answer.error.message, /permission denied/);
      assert.ok(!answer.error.message.includes('\n'), 'one line');
    } finally {
      chmodSync(d, 0o700);
    }
    assert.deepEqual(readdirSync(d), []);
  });

  test('checkPrivateFileTarget refuses the same things up front and writes nothing at the path', () => {
    const d = fresh();
    const p = join(d, 'r.json');
    checkPrivateFileTarget(p);
    assert.deepEqual(readdirSync(d), [], 'no file created by the check');
    symlinkSync('/etc/hostname', p);
    assert.throws(() => checkPrivateFileTarget(p), /symbolic link/);
  });
});

describe('openPrivateFileStream', () => {
  test('chunks appear only on commit, whole, 0600; the old file stays readable until then', async () => {
    const d = fresh();
    const p = join(d, 'report.json');
    writeFileSync(p, 'previous report');
    const s = openPrivateFileStream(p);
    const line = `${'x'.repeat(1000)}\n`;
    for (let i = 0; i < 1000; i++) await s.write(line); // past the internal buffer, several flushes
    assert.equal(readFileSync(p, 'utf8'), 'previous report', 'readers see the old file until commit');
    assert.equal(readdirSync(d).length, 2, 'one temp file beside it');
    await s.commit();
    assert.equal(readFileSync(p, 'utf8'), line.repeat(1000));
    assert.equal(mode(p), '600');
    assert.deepEqual(readdirSync(d), ['report.json']);
    await assert.rejects(s.write('late'), /already committed/);
  });

  test('abort (a failed run) leaves no temp file and the old file as it was', async () => {
    const d = fresh();
    const p = join(d, 'report.json');
    writeFileSync(p, 'previous report');
    const s = openPrivateFileStream(p);
    await s.write('partial');
    await s.abort();
    await s.abort();
    assert.deepEqual(readdirSync(d), ['report.json']);
    assert.equal(readFileSync(p, 'utf8'), 'previous report');
  });

  test('a symlink planted at open is refused; one planted before commit is refused too, and the temp file removed', async () => {
    const d = fresh();
    const victim = join(d, 'victim');
    writeFileSync(victim, 'keep');
    const p = join(d, 'report.json');
    symlinkSync(victim, p);
    assert.throws(() => openPrivateFileStream(p), /symbolic link/);
    rmSync(p);
    const s = openPrivateFileStream(p);
    await s.write('data');
    symlinkSync(victim, p); // planted while the run was writing
    await assert.rejects(s.commit(), /refusing to write .*symbolic link/);
    assert.equal(readFileSync(victim, 'utf8'), 'keep');
    assert.deepEqual(readdirSync(d).sort(), ['report.json', 'victim']);
  });

  test('a process that exits without commit or abort leaves no temp file', () => {
    const d = fresh();
    const p = join(d, 'report.json');
    const script = `const { openPrivateFileStream } = require(${JSON.stringify(require.resolve('../src/output/private-file'))});
      const s = openPrivateFileStream(${JSON.stringify(p)}); s.write('x').then(() => process.exit(3));`;
    assert.throws(
      () => execFileSync(process.execPath, ['-e', script], { stdio: 'pipe' }),
      (err: { status: number }) => err.status === 3,
    );
    assert.deepEqual(readdirSync(d), []);
  });
});

describe('audit report_path', () => {
  const fx = new Fixtures();
  after(() => fx.close());
  const audit = (reportPath: string) =>
    execute({ action: 'audit', config_file: fx.env.confPath, hosts: [`nbt-private-${randomUUID().slice(0, 6)}`], report_path: reportPath });

  test('a symlink planted at report_path pointing at another file: refused before the audit, the file untouched', async () => {
    const d = fresh();
    const victim = join(d, 'authorized_keys');
    writeFileSync(victim, 'ssh-ed25519 AAAA operator\n');
    chmodSync(victim, 0o644);
    const report = join(d, 'audit.json');
    symlinkSync(victim, report);
    const result = answer(await audit(report));
    assert.equal(result.failed, true);
    assert.equal(
      result.msg,
      `report_path: refusing to write ${report}: it is a symbolic link (nova-bdm only replaces a regular file there; remove it or choose another path)`,
    );
    assert.equal(readFileSync(victim, 'utf8'), 'ssh-ed25519 AAAA operator\n');
    assert.equal(mode(victim), '644');
    assert.deepEqual(readdirSync(d).sort(), ['audit.json', 'authorized_keys']);
  });

  test('an existing report is replaced atomically with a 0600 one; a directory at report_path is refused', async () => {
    const d = fresh();
    const report = join(d, 'audit.json');
    writeFileSync(report, 'old');
    chmodSync(report, 0o664);
    const result = answer(await audit(report));
    assert.equal(result.failed, undefined, String(result.msg));
    assert.equal(result.report_path, report);
    assert.equal(mode(report), '600');
    assert.equal(JSON.parse(readFileSync(report, 'utf8')).totals.scanned, 0);
    assert.deepEqual(readdirSync(d), ['audit.json']);
    const r2 = answer(await audit(d));
    assert.equal(r2.failed, true);
    assert.match(String(r2.msg), /^report_path: refusing to write \S+: it is a directory/);
    const r3 = answer(await audit(join(d, 'no', 'such', 'dir.json')));
    assert.match(String(r3.msg), /^report_path: cannot write \S+: its directory does not exist$/);
    assert.deepEqual(readdirSync(d), ['audit.json']);
  });
});
