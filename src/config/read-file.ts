import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { fileKindOf } from '../file-kind';

// Files the user names (nova.conf, connector files, the args file) are read whole, so a FIFO
// would block the process for ever and a 1 GB file would exhaust memory. Opened non-blocking,
// checked with fstat (the file actually opened, through any symlink), size-capped.

export class FileNotReadable extends Error {
  constructor(
    /** An errno code (ENOENT, EACCES...) or ENOTREG / EFBIG for our own refusals. */
    readonly code: string,
    /** In words, for a one-line message: "it is a FIFO", "permission denied". */
    readonly reason: string,
  ) {
    super(reason);
  }
}

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the path is too long',
  EISDIR: 'it is a directory',
  EIO: 'input/output error',
};

export function readRegularTextFile(path: string, maxBytes: number): string {
  let fd: number;
  try {
    if (path.includes('\0')) throw Object.assign(new Error('NUL in path'), { code: 'ENOENT' });
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw asNotReadable(err);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new FileNotReadable('ENOTREG', `it is ${fileKindOf(st)}, not a regular file`);
    }
    if (st.size > maxBytes) throw new FileNotReadable('EFBIG', `it is ${st.size} bytes, more than the ${maxBytes} this file may have`);
    return readFileSync(fd, 'utf8');
  } catch (err) {
    throw asNotReadable(err);
  } finally {
    closeSync(fd);
  }
}

function asNotReadable(err: unknown): FileNotReadable {
  if (err instanceof FileNotReadable) return err;
  const code = String((err as NodeJS.ErrnoException)?.code ?? 'EIO');
  return new FileNotReadable(code, REASONS[code] ?? code);
}
