import { hostname } from 'node:os';
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

  /** An oslo.config BoolOpt: `fallback` when unset; a word oslo would reject is an error, not false. */
  getBool(section: string, key: string, fallback: boolean): boolean {
    const value = this.get(section, key);
    if (value === undefined) return fallback;
    const b = osloBool(value);
    if (b === undefined) throw new BadInput(`[${section}] ${key} = ${value} is not a boolean (${this.describeFiles()})`);
    return b;
  }

  /** An oslo.config IntOpt/FloatOpt: `fallback` when unset; text that is not a number is an error. */
  getNumber(section: string, key: string, fallback: number): number {
    const value = this.get(section, key);
    if (value === undefined) return fallback;
    const n = osloNumber(value);
    if (n === undefined) throw new BadInput(`[${section}] ${key} = ${value} is not a number (${this.describeFiles()})`);
    return n;
  }

  /** "looked in /etc/nova/nova.conf (not found)" for error messages. */
  describeFiles(): string {
    if (this.files.length === 0) return 'no config file given';
    return `looked in ${this.files.map((f) => (f.found ? f.path : `${f.path} (not found)`)).join(', ')}`;
  }
}

/** Far above any real nova.conf (a fully commented one is ~250 KB); a FIFO or a 1 GB file is refused. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
// oslo.config's types.Boolean (oslo_config/types.py): these words in any case, nothing else.
const OSLO_TRUE = new Set(['true', '1', 'on', 'yes', 't', 'y']);
const OSLO_FALSE = new Set(['false', '0', 'off', 'no', 'f', 'n']);

/** oslo.config's boolean of a text value; undefined when oslo would reject it. */
export function osloBool(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (OSLO_TRUE.has(v)) return true;
  if (OSLO_FALSE.has(v)) return false;
  return undefined;
}

/** A decimal number as oslo's Integer/Float types read it; undefined otherwise. */
export function osloNumber(value: string): number | undefined {
  const v = value.trim();
  return /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(v) ? Number(v) : undefined;
}

/** [DEFAULT] host of this process (recorded on instance action events), else the hostname. */
export function localHost(conf: NovaConf): string {
  return conf.get('DEFAULT', 'host') ?? hostname();
}

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
