import { appendFileSync } from 'node:fs';

// The recording half of the whole-suite secret scan (secret-scan.ts): small and free of heavy
// imports, because secret-scan-hook.ts loads it into every bundle process of the run.

export const SCAN_LOG_ENV = 'NOVA_BDM_SECRET_SCAN_LOG';

/** config: service passwords, never shown. data: CHAP secrets and keyrings, shown only on request. */
export type SecretKind = 'config' | 'data';

export interface OutputRecord {
  source: string;
  /** The input asked for reveal_secrets: the secrets inside connection_info may be shown. */
  revealed?: boolean;
  text?: string;
  /** Secrets a test made up at run time (the fuzz sandbox) for the scan to look for too. */
  secrets?: string[];
  kind?: SecretKind;
  /** Who registered the secrets (`lab`: the interop harness; default: a test). */
  origin?: string;
}

/** Appends one record; a no-op outside `npm test` (no log named). */
export function recordOutput(source: string, output: unknown, options: { revealed?: boolean } = {}): void {
  const log = process.env[SCAN_LOG_ENV];
  if (!log || output === undefined || output === null || output === '') return;
  const text = typeof output === 'string' ? output : output instanceof Uint8Array ? Buffer.from(output).toString('utf8') : safeJson(output);
  append(log, { source, revealed: options.revealed || undefined, text });
}

export function registerSecrets(values: readonly string[], kind: SecretKind, origin?: string): void {
  const log = process.env[SCAN_LOG_ENV];
  if (log && values.length > 0) append(log, { source: 'secrets', secrets: [...values], kind, origin });
}

function append(log: string, record: OutputRecord): void {
  try {
    appendFileSync(log, `${JSON.stringify(record)}\n`);
  } catch {
    // the state dir is gone: nothing to record into
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
