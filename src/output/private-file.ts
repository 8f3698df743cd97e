import {
  closeSync,
  constants,
  fchmodSync,
  fsync,
  fsyncSync,
  lstatSync,
  openSync,
  renameSync,
  unlinkSync,
  write,
  writeSync,
  type Stats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { BadInput } from '../errors';
import { fileKindOf } from '../file-kind';

// Files we write for the user (report_path) hold a fleet's worth of data and, run as root by
// Ansible, could be pointed at any file on the host. So: never write through what is already at
// the path. The data goes to a fresh temp file in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW,
// mode 0600), is fsynced, and is renamed over the target: readers see the old file or the whole
// new one, and a symlink, FIFO or directory planted at the path is refused, never followed and
// never chmod'ed.

const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);
const BUFFER_BYTES = 256 * 1024;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export interface PrivateFileStream {
  write(chunk: string): Promise<void>;
  /** fsync and rename over the target: the file appears whole or not at all. */
  commit(): Promise<void>;
  /** Remove the temp file; the target is left as it was. Safe to call more than once. */
  abort(): Promise<void>;
}

/** Write `data` to `path` atomically, mode 0600, refusing anything but a regular file there. */
export function writePrivateFile(path: string, data: string): void {
  writeReplacing(path, data, 0o600);
}

/**
 * The same, mode 0644: for a file other programs must read and that holds nothing private (the
 * audit's metrics_path, read by node_exporter's textfile collector, often as another user).
 */
export function writePublicFile(path: string, data: string): void {
  writeReplacing(path, data, 0o644);
}

function writeReplacing(path: string, data: string, mode: number): void {
  const temp = createTemp(path, mode);
  try {
    writeAll(temp.fd, Buffer.from(data, 'utf8'));
    fsyncSync(temp.fd);
    closeSync(temp.fd);
    temp.fd = -1;
    replaceTarget(temp.path, path);
  } catch (err) {
    discard(temp);
    throw asBadInput(err, path);
  }
}

/** The streaming form: the same checks up front, chunks buffered, rename on commit. */
export function openPrivateFileStream(path: string): PrivateFileStream {
  const temp = createTemp(path);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let state: 'open' | 'committed' | 'aborted' = 'open';
  const flush = async () => {
    if (pendingBytes === 0) return;
    let buf = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    while (buf.length > 0) {
      const { bytesWritten } = await writeAsync(temp.fd, buf, 0, buf.length, null);
      buf = buf.subarray(bytesWritten);
    }
  };
  const fail = (err: unknown): never => {
    discard(temp);
    state = 'aborted';
    throw asBadInput(err, path);
  };
  return {
    async write(chunk) {
      if (state !== 'open') throw new Error(`private file ${path} is already ${state}`);
      const buf = Buffer.from(chunk, 'utf8');
      pending.push(buf);
      pendingBytes += buf.length;
      if (pendingBytes >= BUFFER_BYTES) await flush().catch(fail);
    },
    async commit() {
      if (state !== 'open') throw new Error(`private file ${path} is already ${state}`);
      try {
        await flush();
        await fsyncAsync(temp.fd);
        closeSync(temp.fd);
        temp.fd = -1;
        replaceTarget(temp.path, path);
        forget(temp.path);
        state = 'committed';
      } catch (err) {
        fail(err);
      }
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      discard(temp);
    },
  };
}

/**
 * Refuse early (before a long run) what writePrivateFile would refuse at the end: something other
 * than a regular file at `path`, or a directory we cannot create the temp file in. Creates and
 * removes one temp file; writes nothing at `path`.
 */
export function checkPrivateFileTarget(path: string): void {
  discard(createTemp(path));
}

interface TempFile {
  path: string;
  fd: number;
}

// Temp files not yet renamed or removed: an uncaught error or process.exit() must not leave one.
const pendingTemps = new Set<string>();
let exitHookInstalled = false;

function createTemp(target: string, mode = 0o600): TempFile {
  if (typeof target !== 'string' || target === '' || target.includes('\0'))
    throw new BadInput(`cannot write ${shown(target)}: not a usable file path`);
  refuseNonRegular(target);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const p of pendingTemps) tryUnlink(p);
    });
  }
  // Same directory, so the rename is atomic; the name is short enough for any NAME_MAX.
  const path = join(dirname(target), `.${basename(target).slice(0, 64)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(path, CREATE_FLAGS, 0o600); // widened by fchmod only once it is ours
  } catch (err) {
    throw asBadInput(err, target);
  }
  pendingTemps.add(path);
  try {
    fchmodSync(fd, mode); // our own new file: a umask cannot have widened it, but can narrow it (0400, 0640)
  } catch (err) {
    discard({ path, fd });
    throw asBadInput(err, target);
  }
  return { path, fd };
}

function refuseNonRegular(target: string): void {
  let st: Stats;
  try {
    st = lstatSync(target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return; // nothing there yet: fine
    throw asBadInput(err, target);
  }
  if (st.isFile()) return;
  throw new BadInput(
    `refusing to write ${shown(target)}: it is ${fileKindOf(st)} (nova-bdm only replaces a regular file there; remove it or choose another path)`,
  );
}

function replaceTarget(tempPath: string, target: string): void {
  // Checked again right before the rename: rename itself never follows a link, but a directory or
  // link planted meanwhile is still refused rather than replaced.
  refuseNonRegular(target);
  renameSync(tempPath, target);
  pendingTemps.delete(tempPath);
  try {
    const dir = openSync(dirname(target), constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(dir); // the rename itself survives a crash
    } finally {
      closeSync(dir);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the data itself is already synced.
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let offset = 0;
  while (offset < buf.length) offset += writeSync(fd, buf, offset, buf.length - offset);
}

function discard(temp: TempFile): void {
  if (temp.fd >= 0) {
    try {
      closeSync(temp.fd);
    } catch {
      // already closed
    }
    temp.fd = -1;
  }
  tryUnlink(temp.path);
  forget(temp.path);
}

function forget(path: string): void {
  pendingTemps.delete(path);
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

const REASONS: Record<string, string> = {
  ENOENT: 'its directory does not exist',
  ENOTDIR: 'a part of its directory path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many symbolic links in its directory path',
  EISDIR: 'it is a directory',
  EEXIST: 'a temp file of that name appeared meanwhile',
};

function asBadInput(err: unknown, target: string): Error {
  if (err instanceof BadInput) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const reason = (code && REASONS[code]) ?? code ?? String((err as Error)?.message ?? err).split('\n')[0];
  return new BadInput(`cannot write ${shown(target)}: ${reason}`);
}

/** Paths are user input: keep the message on one line whatever they hold. */
function shown(path: unknown): string {
  const s = String(path);
  return /[\u0000-\u001f\u007f\u2028\u2029]/.test(s) ? JSON.stringify(s) : s;
}
