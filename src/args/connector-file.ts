import { readFileSync } from 'node:fs';
import { describeSchemaErrors } from './validate';
import { validateConnector } from './schema-validator';
import type { Connector } from './connector-schema';
import { ConnectorMissing, ConnectorUnreadable } from '../errors';

/** The connector from the `connector` argument or a JSON file, like nova-manage's connector_path. */
export function loadConnector(inline: Record<string, unknown> | undefined, path: string | undefined): Connector {
  let value: unknown = inline;
  const source = path === undefined ? 'connector' : `connector file ${path}`;
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ConnectorMissing(`Connector file not found at ${path}`);
      throw new ConnectorUnreadable(`Failed to open ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
    try {
      value = JSON.parse(text);
    } catch {
      throw new ConnectorUnreadable(`Failed to open ${path}. Does it contain valid connector_info data? (not JSON)`);
    }
  }
  if (!validateConnector(value)) {
    const missing = (validateConnector.errors ?? []).filter((e) => e.keyword === 'required').map((e) => String(e.params.missingProperty));
    const detail = missing.length > 0 ? `missing ${missing.join(', ')}` : describeSchemaErrors(validateConnector.errors ?? []);
    throw new ConnectorUnreadable(`${source} is not a valid host connector (${detail}); create it on the compute with get_connector`);
  }
  return value as Connector;
}
