import type { ModuleArgs } from '../args/schema';

// What the role's get_connector tasks on the compute hosts gave, read from their registered
// results as Ansible returns them: the connector of each host where one came back (the module's,
// or the JSON text nova-manage printed: checked against the connector schema before any use, like
// every connector), and for each host where none did, one line that names every source tried and
// why it gave nothing. The role keeps no rule of its own about them.

export type ConnectorAttempt = NonNullable<ModuleArgs['connector_attempts']>[number];

export interface ConnectorAttempts {
  /** Nova host -> the connector (an object from the module, the JSON text from a command). */
  connectors: Record<string, Record<string, unknown> | string>;
  /** Nova host -> why no source gave its connector, the sources in the order they were tried. */
  errors: Record<string, string>;
}

export function readConnectorAttempts(attempts: ConnectorAttempt[]): ConnectorAttempts {
  const connectors: ConnectorAttempts['connectors'] = {};
  const why = new Map<string, string[]>();
  for (const attempt of attempts) {
    const host = attempt.item;
    if (connectors[host] !== undefined) continue;
    const connector = connectorOf(attempt);
    if (connector !== undefined) {
      connectors[host] = connector;
      why.delete(host);
    } else {
      why.set(host, [...(why.get(host) ?? []), whyNone(attempt)]);
    }
  }
  return { connectors, errors: Object.fromEntries([...why].map(([host, reasons]) => [host, reasons.join('; then ')])) };
}

/** The summary line of a host whose connector could not be read. */
export function connectorErrorLine(host: string, why: string): string {
  return `get_connector failed on ${host}: ${why}`;
}

function connectorOf(attempt: ConnectorAttempt): Record<string, unknown> | string | undefined {
  if (attempt.source === 'module') return attempt.connector;
  return attempt.rc === 0 ? (attempt.stdout ?? '') : undefined;
}

const oneLine = (text: string) => text.trim().replace(/\n/g, ' ');
const lastSaid = (lines: string[] | undefined) => (lines ?? []).filter((l) => l !== '').at(-1);

/** Ansible's msg of a failed or unreachable task: text, or whatever a module returned there. */
function msgOf(attempt: ConnectorAttempt): string | undefined {
  const msg = (attempt as { msg?: unknown }).msg;
  return msg === undefined || typeof msg === 'string' ? msg : JSON.stringify(msg);
}

function whyNone(attempt: ConnectorAttempt): string {
  if (attempt.source === 'module') {
    // A module that could not start (no node there) says why on its stderr only.
    const stderr = attempt.module_stderr?.trim().split('\n').at(-1) ?? '';
    return `module: ${oneLine(msgOf(attempt) ?? 'no connector returned')}${stderr ? ` (${stderr})` : ''}`;
  }
  // The last line that says something: nova-manage prints its errors to stdout, docker to stderr.
  const said = lastSaid(attempt.stdout_lines) ?? lastSaid(attempt.stderr_lines) ?? msgOf(attempt) ?? 'it did not run';
  const shown = typeof attempt.cmd === 'string' ? attempt.cmd : (attempt.cmd ?? []).join(' ');
  const ran = shown ? `\`${shown}\` failed` : 'did not run';
  return `${attempt.source}: ${ran}${attempt.rc !== undefined ? ` (rc ${attempt.rc})` : ''}: ${oneLine(said)}`;
}
