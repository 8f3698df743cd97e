import { describeSchemaErrors } from './validate';
import { validateConnector } from './schema-validator';
import type { Connector } from '../connector';
import { ConnectorMissing, ConnectorUnreadable } from '../errors';
import { readRegularTextFile, type FileNotReadable } from '../config/read-file';

/** A connector is a few hundred bytes; a FIFO or a huge file is refused, not read. */
const MAX_CONNECTOR_BYTES = 1024 * 1024;

/**
 * The connector from the `connector` argument, from the JSON text `get_connector --json` printed
 * (a compute without Node.js runs nova-manage there; the text is checked here, on the
 * controller), or from a JSON file, like nova-manage's connector_path.
 */
export function loadConnector(inline: Record<string, unknown> | string | undefined, path: string | undefined): Connector {
  let value: unknown = inline;
  const source = path === undefined ? 'connector' : `connector file ${path}`;
  if (typeof inline === 'string') {
    try {
      value = JSON.parse(inline);
    } catch {
      throw new ConnectorUnreadable(
        `the get_connector output is not JSON (${describeText(inline)}); it must be what get_connector --json prints`,
      );
    }
  }
  if (path !== undefined) {
    let text: string;
    try {
      text = readRegularTextFile(path, MAX_CONNECTOR_BYTES);
    } catch (err) {
      const { code, reason } = err as FileNotReadable;
      if (code === 'ENOENT') throw new ConnectorMissing(`Connector file not found at ${path}`);
      throw new ConnectorUnreadable(`Failed to open ${path}: ${reason}`);
    }
    try {
      value = JSON.parse(text);
    } catch (err) {
      // nova-manage since openstack/nova 77851bb365: the parser's error after its question, rc 3.
      throw new ConnectorUnreadable(
        `Failed to open ${path}. Does it contain valid connector_info data? Error: ${parserError(err as Error, text)}`,
      );
    }
  }
  if (!validateConnector(value)) {
    const missing = (validateConnector.errors ?? []).filter((e) => e.keyword === 'required').map((e) => String(e.params.missingProperty));
    const detail = missing.length > 0 ? `missing ${missing.join(', ')}` : describeSchemaErrors(validateConnector.errors ?? []);
    throw new ConnectorUnreadable(`${source} is not a valid host connector (${detail}); create it on the compute with get_connector`);
  }
  return value as Connector;
}

/** What a text that is not JSON holds, short and on one line (it is echoed in msg). */
function describeText(text: string): string {
  const flat = text.trim().replace(/\s+/g, ' ');
  if (flat === '') return 'empty';
  return JSON.stringify(flat.length > 80 ? `${flat.slice(0, 80)}...` : flat);
}

/**
 * JSON.parse's message without the excerpt of the file V8 quotes in some of them (a connector
 * file in the wrong place may hold anything, secrets too), its position as line and column.
 */
function parserError(err: Error, text: string): string {
  const message = err.message.split('\n')[0]!;
  const token = /^Unexpected token '.*?', ".*$/s.exec(message);
  if (token) return 'Unexpected token: not JSON';
  const at = /^(.*) at position (\d+)$/.exec(message);
  if (!at) return message;
  const position = Number(at[2]);
  const before = text.slice(0, position).split('\n');
  return `${at[1]} at line ${before.length} column ${before.at(-1)!.length + 1}`;
}
