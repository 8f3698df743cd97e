import { parseModuleInput, type AnsibleFlags } from '../args/validate';
import { SECRET_OPTIONS, type ModuleArgs } from '../args/schema';
import { configSecrets, resolveDatabaseSettings, urlPasswords } from '../config/connections';
import { loadNovaConf } from '../config/nova-conf';
import { NovaBdmError, RefreshFailed } from '../errors';
import { TextScrubber } from '../output/scrub-text';
import type { Selection } from '../selection';
import type { RefreshFailureReport } from '../actions/refresh/result';
import { warningsOf, type FailureResult, type Outcome } from './result';

export type { FailureResult, ModuleResult, Outcome, OutcomeKind } from './result';

/**
 * The one core behind every way in (Ansible args file, stdin, CLI): validate, read nova.conf,
 * run the action, and turn any failure into `failed: true` with a one-line, secret-free `msg`.
 */
export async function execute(raw: unknown): Promise<Outcome> {
  const scrubber = new TextScrubber();
  let verbosity = 0;
  try {
    rememberArgumentSecrets(raw, scrubber);
    const { args, selection, ansible } = parseModuleInput(raw);
    rememberArgumentSecrets(args, scrubber); // converted: a cinder_auth given as k=v text is a dict now
    verbosity = ansible.verbosity;
    const conf = loadNovaConf(typeof args.config_file === 'string' ? [args.config_file] : args.config_file);
    for (const s of configSecrets(conf)) scrubber.add(s);
    return scrubWarnings(await runAction(args, selection, conf, ansible, scrubber), scrubber);
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    return { kind: 'failure', result: failure(error, verbosity, scrubber), error };
  }
}

async function runAction(
  args: ModuleArgs,
  selection: Selection,
  conf: ReturnType<typeof loadNovaConf>,
  ansible: AnsibleFlags,
  scrubber: TextScrubber,
): Promise<Exclude<Outcome, { kind: 'failure' }>> {
  if (args.action === 'get_connector') {
    const { getConnector } = await import('../actions/get-connector');
    const { lightosDiscoveryClientFound } = await import('../lightos/discovery-client');
    const result = await getConnector(conf, args.host_root, { lightosDiscoveryClient: lightosDiscoveryClientFound });
    return { kind: 'get_connector', result };
  }
  // Loaded on demand so `--help` and argument errors never pay for the database stack.
  const { NovaTopology } = await import('../nova-db/cells');
  const settings = resolveDatabaseSettings(conf, args);
  const topology = new NovaTopology({
    ...settings,
    connectTimeoutSeconds: args.connect_timeout,
    // A fleet refresh keeps max_parallel instances in flight, each with its own short queries; a
    // few more connections per cell than the default 2 (Nova's databases serve many clients).
    ...(args.action === 'refresh' && selection.kind === 'fleet' ? { cellConnectionLimit: Math.min(args.max_parallel, 4) + 1 } : {}),
  });
  try {
    switch (args.action) {
      case 'show': {
        const { showBdm } = await import('../actions/show');
        if (selection.kind !== 'bdm' && selection.kind !== 'instance') throw new Error(`show got a ${selection.kind} selection`);
        const ref = selection.kind === 'bdm' ? selection.bdm : { instanceUuid: selection.instanceUuid };
        return { kind: 'show', result: await showBdm(topology, ref, { revealSecrets: args.reveal_secrets }) };
      }
      case 'refresh': {
        const { runRefresh } = await import('./refresh');
        if (selection.kind === 'fleet') {
          return { kind: 'fleet_refresh', result: await runRefresh(args, selection, conf, ansible, topology, scrubber) };
        }
        if (selection.kind !== 'bdm') throw new Error(`refresh got a ${selection.kind} selection`);
        return { kind: 'refresh', result: await runRefresh(args, selection, conf, ansible, topology, scrubber) };
      }
      case 'audit': {
        const { runAudit } = await import('./audit');
        if (selection.kind !== 'fleet') throw new Error(`audit got a ${selection.kind} selection`);
        return { kind: 'audit', result: await runAudit(args, selection.filters, conf, topology, scrubber) };
      }
    }
  } finally {
    await topology.close();
  }
}

const MAX_MSG = 2000;

/**
 * Every secret the arguments carry, known before they are even validated: the passwords of the
 * database URLs, the whole value of any other secret option (cinder_auth's password, ...), and
 * values under secret keys anywhere (a keyring in expect or connector).
 */
function rememberArgumentSecrets(raw: unknown, scrubber: TextScrubber): void {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return;
  const args = raw as Record<string, unknown>;
  for (const name of SECRET_OPTIONS) {
    const value = args[name];
    if (typeof value === 'string') {
      const passwords = urlPasswords(value);
      // A URL's password is its secret; a value that is not a URL is secret whole.
      if (passwords.length > 0) passwords.forEach((p) => scrubber.add(p));
      else if (!value.includes('://')) scrubber.add(value);
    }
  }
  // Below the top level, the secret keys of connection_info's kind (a keyring in expect, a
  // password in cinder_auth); option names themselves (reveal_secrets) are not secrets.
  for (const value of Object.values(args)) if (value !== null && typeof value === 'object') scrubber.addSecretsOf(value);
}

function failure(error: Error, verbosity: number, scrubber: TextScrubber): FailureResult {
  const expected = error instanceof NovaBdmError;
  const line = (error.message || error.name).split('\n')[0]!.trim();
  // Messages echo input (a path, a key): a hostile one must not make msg a megabyte long.
  const firstLine = line.length > MAX_MSG ? `${line.slice(0, MAX_MSG)}... (${line.length} characters)` : line;
  const result: FailureResult = {
    changed: false,
    failed: true,
    msg: scrubber.scrub(expected ? firstLine : `unexpected error: ${firstLine}`),
    // A failed refresh says which steps ran, what was undone and what remains.
    ...(error instanceof RefreshFailed ? refreshFailureReport(error, scrubber) : {}),
  };
  const stack =
    error instanceof RefreshFailed && error.causeError?.stack ? `${error.stack}\nCaused by: ${error.causeError.stack}` : error.stack;
  if (verbosity >= 3 && stack) result.exception = scrubber.scrub(stack);
  return result;
}

/** RefreshFailed's details, every string in them scrubbed (they quote errors of the outside systems). */
function refreshFailureReport(error: RefreshFailed, scrubber: TextScrubber): RefreshFailureReport {
  return JSON.parse(scrubber.scrub(JSON.stringify(error.details)));
}

/** Warnings are free text built from data: give them the same scrub as messages. */
function scrubWarnings<O extends Outcome>(outcome: O, scrubber: TextScrubber): O {
  const warnings = warningsOf(outcome.result);
  if (warnings.length === 0) return outcome;
  return { ...outcome, result: { ...outcome.result, warnings: warnings.map((w) => scrubber.scrub(w)) } };
}
