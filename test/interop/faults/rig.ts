import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as mysql from 'mysql2/promise';
import { keystoneToken, type LabEnv } from '../harness';
import { amqpFramer, FaultProxy, mysqlFramer } from './fault-proxy';

// Routes one copy of our tool through proxies the fault tests own, and leaves the lab's
// services and rows alone:
//   Keystone  <- [cinder] auth_url and [service_user] auth_url of the tool's own nova.conf
//   Cinder    <- [cinder] endpoint_template (the same URL the catalog gives, on the proxy)
//   RabbitMQ  <- cell1's transport_url       } as the tool reads them from its own API
//   cell DB   <- cell1's database_connection } database: views onto the lab's nova_api
// The API database itself is reached directly.

export interface Rig {
  keystone: FaultProxy;
  cinder: FaultProxy;
  amqp: FaultProxy;
  cellDb: FaultProxy;
  /** Module arguments that send the tool through the proxies. */
  toolArgs: Record<string, unknown>;
  /** Clears every hook and count, restores every proxy. */
  reset(): void;
  stop(): Promise<void>;
}

function portOf(url: string, fallback: number): number {
  const port = new URL(url.replace(/^[a-z+]+:\/\//, 'http://')).port;
  return port ? Number(port) : fallback;
}

/** Sets `key = value` in [section] of an INI text (added when missing). */
export function setIni(text: string, section: string, key: string, value: string): string {
  const lines = text.split('\n');
  let start = lines.findIndex((l) => l.trim() === `[${section}]`);
  if (start < 0) {
    lines.push(`[${section}]`);
    start = lines.length - 1;
  }
  let end = lines.findIndex((l, i) => i > start && /^\s*\[/.test(l));
  if (end < 0) end = lines.length;
  const at = lines.findIndex((l, i) => i > start && i < end && new RegExp(`^\\s*${key}\\s*=`).test(l));
  if (at >= 0) lines[at] = `${key} = ${value}`;
  else lines.splice(start + 1, 0, `${key} = ${value}`);
  return lines.join('\n');
}

export async function startRig(lab: LabEnv, options: { httpTimeoutSeconds: number }): Promise<Rig> {
  const keystone = await FaultProxy.start(portOf(lab.keystoneUrl, 80));
  const cinder = await FaultProxy.start(portOf(lab.cinderUrl, 80));
  const amqpProxy = await FaultProxy.start(portOf(lab.transportUrl, 5672));
  const cellDb = await FaultProxy.start(portOf(lab.novaDbUrl, 3306));

  // The tool's API database: a view of every lab nova_api table; cell1's URLs point at the proxies.
  const apiDb = `${lab.databases.nova_api}_faults`;
  const cellDbUrl = lab.novaDbUrl.replace(/@([^/:@]+)(:\d+)?\//, `@$1:${cellDb.port}/`);
  const cellTransport = lab.transportUrl.replace(/@([^/:@]+)(:\d+)?\//, `@$1:${amqpProxy.port}/`);
  const c = await mysql.createConnection({
    host: '127.0.0.1',
    port: 3306,
    user: lab.dbUser,
    password: lab.dbPassword,
    multipleStatements: false,
  });
  try {
    await c.query(`DROP DATABASE IF EXISTS \`${apiDb}\``);
    await c.query(`CREATE DATABASE \`${apiDb}\``);
    const [tables] = await c.query(
      "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
      [lab.databases.nova_api],
    );
    for (const { t } of tables as Array<{ t: string }>) {
      let select = `SELECT * FROM \`${lab.databases.nova_api}\`.\`${t}\``;
      if (t === 'cell_mappings') {
        const [cols] = await c.query(
          'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position',
          [lab.databases.nova_api, t],
        );
        const list = (cols as Array<{ c: string }>).map(({ c: col }) => {
          if (col === 'database_connection')
            return c.format('CASE WHEN database_connection = ? THEN ? ELSE database_connection END AS database_connection', [
              lab.novaDbUrl,
              cellDbUrl,
            ]);
          if (col === 'transport_url')
            return c.format('CASE WHEN transport_url = ? THEN ? ELSE transport_url END AS transport_url', [
              lab.transportUrl,
              cellTransport,
            ]);
          return `\`${col}\``;
        });
        select = `SELECT ${list.join(', ')} FROM \`${lab.databases.nova_api}\`.\`${t}\``;
      }
      await c.query(`CREATE VIEW \`${apiDb}\`.\`${t}\` AS ${select}`);
    }
  } finally {
    await c.end();
  }

  // The tool's nova.conf: the lab's, with Keystone and Cinder on the proxies.
  const service = await keystoneToken('nova', 'service');
  const ksUrl = `http://127.0.0.1:${keystone.port}/v3`;
  let conf = readFileSync(lab.novaConf, 'utf8');
  conf = setIni(conf, 'cinder', 'auth_url', ksUrl);
  conf = setIni(conf, 'cinder', 'endpoint_template', `http://127.0.0.1:${cinder.port}/v3/${service.projectId}`);
  conf = setIni(conf, 'cinder', 'timeout', String(options.httpTimeoutSeconds));
  conf = setIni(conf, 'service_user', 'auth_url', ksUrl);
  const dir = join(lab.dir, 'state', 'faults');
  mkdirSync(dir, { recursive: true });
  const confPath = join(dir, 'nova.conf');
  writeFileSync(confPath, conf);

  const proxies = [keystone, cinder, amqpProxy, cellDb];
  return {
    keystone,
    cinder,
    amqp: amqpProxy,
    cellDb,
    toolArgs: {
      config_file: confPath,
      api_database_connection: lab.novaApiDbUrl.replace(`/${lab.databases.nova_api}?`, `/${apiDb}?`),
      connect_timeout: 5,
    },
    reset() {
      for (const p of proxies) p.reset();
    },
    async stop() {
      await Promise.all(proxies.map((p) => p.stop()));
      const d = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: lab.dbUser, password: lab.dbPassword });
      await d.query(`DROP DATABASE IF EXISTS \`${apiDb}\``).finally(() => d.end());
    },
  };
}

/** The frame-aware options for the AMQP and MySQL proxies. */
export const framers = {
  amqpClient: amqpFramer(true),
  amqpServer: amqpFramer(false),
  mysqlClient: mysqlFramer,
};
