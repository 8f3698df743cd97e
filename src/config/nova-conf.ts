import { parseIni, type IniSections } from './ini';
import { FileNotReadable, readRegularTextFile } from './read-file';
import { BadInput } from '../errors';

/** nova.conf as read from one or more files; later files override earlier ones (oslo.config). */
export class NovaConf {
  constructor(
    private readonly sections: IniSections,
    /** Every file asked for, and whether it was there: used to say where we looked. */
    readonly files: ReadonlyArray<{ path: string; found: boolean }>,
  ) {}

  get(section: string, key: string): string | undefined {
    const value = this.sections.get(section)?.get(key);
    return value === undefined || value === '' ? undefined : value;
  }

  /** "looked in /etc/nova/nova.conf (not found)" for error messages. */
  describeFiles(): string {
    if (this.files.length === 0) return 'no config file given';
    return `looked in ${this.files.map((f) => (f.found ? f.path : `${f.path} (not found)`)).join(', ')}`;
  }
}

/** Far above any real nova.conf (a fully commented one is ~250 KB); a FIFO or a 1 GB file is refused. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export function loadNovaConf(paths: readonly string[]): NovaConf {
  const sections: IniSections = new Map();
  const files: Array<{ path: string; found: boolean }> = [];
  for (const path of paths) {
    let text: string;
    try {
      text = readRegularTextFile(path, MAX_CONFIG_BYTES);
    } catch (err) {
      const { code, reason } = err as FileNotReadable;
      if (code === 'ENOENT') {
        files.push({ path, found: false });
        continue;
      }
      throw new BadInput(`cannot read config file ${path}: ${reason}`);
    }
    parseIni(text, sections);
    files.push({ path, found: true });
  }
  return new NovaConf(sections, files);
}
