import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Connector } from '../connector';
import { loadConnector } from '../args/connector-file';
import { BadInput, ConnectorMissing, NovaBdmError } from '../errors';

// The connector of each compute host of a fleet refresh: `connectors` (host -> connector, or
// the JSON text `get_connector --json` printed there),
// `connector_dir` (<host>.json files, as get_connector --json writes them), and a single
// `connector` / `connector_path` filed under its own host. Read lazily, once per host, so a
// bad file only fails the BDMs of its host. The files are read here, in the entry glue: the
// actions are handed the lookup and never open a file themselves.

export interface ConnectorSources {
  connectors?: Record<string, Record<string, unknown> | string>;
  connectorDir?: string;
  connector?: Record<string, unknown>;
  connectorPath?: string;
}

export function connectorLookup(sources: ConnectorSources): (host: string) => Connector | NovaBdmError {
  if (sources.connectorDir !== undefined && !(existsSync(sources.connectorDir) && statSync(sources.connectorDir).isDirectory())) {
    throw new BadInput(`connector_dir ${sources.connectorDir} is not a directory`);
  }
  const single =
    sources.connector !== undefined || sources.connectorPath !== undefined
      ? loadConnector(sources.connector, sources.connectorPath)
      : undefined;
  const cache = new Map<string, Connector | NovaBdmError>();
  const lookup = (host: string): Connector | NovaBdmError => {
    const inline = sources.connectors?.[host];
    if (inline !== undefined) return loadConnector(inline, undefined);
    if (sources.connectorDir !== undefined && !host.includes('/') && host !== '.' && host !== '..') {
      const path = join(sources.connectorDir, `${host}.json`);
      if (existsSync(path)) return loadConnector(undefined, path);
    }
    if (single && single.host === host) return single;
    return new ConnectorMissing(`no connector for compute host ${host}`);
  };
  return (host) => {
    let found = cache.get(host);
    if (!found) {
      try {
        found = lookup(host);
      } catch (err) {
        found = err instanceof NovaBdmError ? err : new NovaBdmError(String(err));
        found.message = `the connector for compute host ${host} cannot be used: ${found.message}`;
      }
      cache.set(host, found);
    }
    return found;
  };
}
