import { secretForms } from '../../support/secret-scan';

// What every answer to a hostile input must be: one JSON object (or a one-line CLI error), no
// stack trace (the `exception` field at -vvv aside, as Ansible does), no secret in any form.

const STACK = /\n\s+at \S|\bat (?:async )?\S+ \((?:\/|node:)[^)]*:\d+:\d+\)|(?:\/|node:)[\w./-]+\.(?:[cm]?js|ts):\d+:\d+/;
/** A msg is for a human: one line, and not a megabyte of echoed input. */
export const MAX_MSG = 16 * 1024;

export function findSecret(text: string, secrets: readonly string[]): string | undefined {
  for (const s of secrets) for (const form of secretForms(s)) if (text.includes(form)) return s;
  return undefined;
}

export function findStackTrace(text: string): string | undefined {
  const m = STACK.exec(text);
  return m ? text.slice(Math.max(0, m.index - 80), m.index + 80) : undefined;
}

/** The problem with a module result, or undefined when it is a proper answer. */
export function moduleResultProblem(result: unknown, verbosity: number, secrets: readonly string[]): string | undefined {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return 'the result is not an object';
  const r = result as Record<string, unknown>;
  let text: string;
  try {
    text = JSON.stringify(r);
  } catch (err) {
    return `the result is not serialisable: ${(err as Error).message}`;
  }
  if (typeof r.changed !== 'boolean') return 'changed is not a boolean';
  if (r.failed !== undefined && r.failed !== true) return `failed is ${JSON.stringify(r.failed)}`;
  if (r.failed === true && (typeof r.msg !== 'string' || r.msg === '')) return 'a failure without msg';
  if (r.msg !== undefined && typeof r.msg !== 'string') return 'msg is not a string';
  if (typeof r.msg === 'string') {
    if (/[\r\n\u2028\u2029]/.test(r.msg)) return `msg has more than one line: ${JSON.stringify(r.msg.slice(0, 300))}`;
    if (r.msg.length > MAX_MSG) return `msg is ${r.msg.length} characters long: ${JSON.stringify(r.msg.slice(0, 200))}...`;
  }
  if (r.exception !== undefined && verbosity < 3) return `exception at verbosity ${verbosity}`;
  const { exception, ...rest } = r;
  const trace = findStackTrace(JSON.stringify(rest).replace(/\\n/g, '\n'));
  if (trace) return `a stack trace outside exception: ${JSON.stringify(trace)}`;
  const secret = findSecret(text, secrets);
  if (secret) return `the answer contains the secret ${secret}`;
  void exception;
  return undefined;
}

/** A process's answer in Ansible mode: exactly one line of JSON on stdout. */
export function ansibleOutputProblem(
  stdout: string,
  stderr: string,
  code: number | null,
  verbosity: number,
  secrets: readonly string[],
): string | undefined {
  if (code !== 0 && code !== 1) return `exit code ${code} (stderr ${JSON.stringify(stderr.slice(0, 300))})`;
  const lines = stdout.split('\n');
  if (lines.length !== 2 || lines[1] !== '') return `stdout is not one line: ${JSON.stringify(stdout.slice(0, 300))}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(lines[0]!);
  } catch {
    return `stdout is not JSON: ${JSON.stringify(stdout.slice(0, 300))}`;
  }
  const secret = findSecret(stdout + stderr, secrets);
  if (secret) return `the output contains the secret ${secret}`;
  if (findStackTrace(stderr)) return `stack trace on stderr: ${JSON.stringify(stderr.slice(0, 300))}`;
  const r = parsed as Record<string, unknown>;
  if ((code === 1) !== (r?.failed === true)) return `exit code ${code} but failed is ${String(r?.failed)}`;
  return moduleResultProblem(parsed, verbosity, secrets);
}

/** The human CLI: on failure the first stderr line is the message, no trace; secrets never. */
export function cliOutputProblem(stdout: string, stderr: string, code: number | null, secrets: readonly string[]): string | undefined {
  if (code === null || ![0, 1, 2, 3, 4, 5, 6, 7, 64].includes(code))
    return `exit code ${code} (stderr ${JSON.stringify(stderr.slice(0, 300))})`;
  const secret = findSecret(stdout + stderr, secrets);
  if (secret) return `the output contains the secret ${secret}`;
  const trace = findStackTrace(stdout + stderr);
  if (trace) return `a stack trace: ${JSON.stringify(trace)}`;
  if (code !== 0 && code !== 4) {
    const first = stderr.split('\n')[0] ?? '';
    if (first === '' && stdout === '') return 'a failure with no message';
    if (first.length > MAX_MSG) return `the error line is ${first.length} characters long`;
    if (code !== 64 && stderr.split('\n').filter(Boolean).length > 1)
      return `the error is more than one line: ${JSON.stringify(stderr.slice(0, 300))}`;
  }
  return undefined;
}
