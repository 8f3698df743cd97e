import { BadInput } from '../../errors';
import { openPrivateFileStream, type PrivateFileStream } from '../../output/private-file';

// The audit's report_path, written while the cells are read: each stale BDM goes to the file as
// it is found, so the report of a million-BDM fleet is never one string in memory. The file is
// the result as JSON (2-space indent), keys in the order they become known; it appears (0600,
// renamed into place) only when the audit ends, or not at all.

export class AuditReportFile {
  private staleCount = 0;
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly file: PrivateFileStream) {}

  /** Refuses a bad path before the audit starts. */
  static open(path: string): AuditReportFile {
    try {
      const report = new AuditReportFile(openPrivateFileStream(path));
      report.queue('{\n  "changed": false,\n  "stale": [');
      return report;
    } catch (err) {
      throw new BadInput(`report_path: ${(err as Error).message}`);
    }
  }

  /** Queued in order; see written(). */
  addStale(entry: unknown): void {
    const sep = this.staleCount++ === 0 ? '\n    ' : ',\n    ';
    void this.queue(sep + JSON.stringify(entry, null, 2).replace(/\n/g, '\n    '));
  }

  /** Resolves when everything queued is written (rejects on a write error): awaited once per batch of rows. */
  written(): Promise<void> {
    return this.writing;
  }

  /** Everything but `stale` (already written, whole: so no stale_truncated), then fsync and rename. */
  async commit(rest: object): Promise<void> {
    let tail = this.staleCount > 0 ? '\n  ]' : ']';
    for (const [k, v] of Object.entries(rest)) {
      if (k === 'stale' || k === 'stale_truncated' || k === 'changed' || v === undefined) continue;
      tail += `,\n  ${JSON.stringify(k)}: ${JSON.stringify(v, null, 2).replace(/\n/g, '\n  ')}`;
    }
    await this.queue(`${tail}\n}\n`);
    await this.file.commit();
  }

  async abort(): Promise<void> {
    await this.writing.catch(() => undefined);
    await this.file.abort();
  }

  private queue(chunk: string): Promise<void> {
    this.writing = this.writing.then(() => this.file.write(chunk));
    this.writing.catch(() => undefined); // reported by written(), commit() or abort(), not as unhandled
    return this.writing;
  }
}
