// Builds the real Nova 26 schema with the real nova-manage into throw-away databases, once per
// test run: an API DB, cell0, cell1 (stored as a template URL) and cell2 (a literal URL).
// Installs Debian's python3-nova first if it is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { ENV_FILE, NOVA_MANAGE, STATE_DIR, type NovaTestEnv } from './nova-env';

const PREFIX = process.env.NOVA_BDM_TEST_DB_PREFIX ?? 'nbt_';
const DB_USER = `${PREFIX}user`;
// Needs percent-encoding in a URL: proves the SQLAlchemy URL decoding end to end.
const DB_PASSWORD = 'p@ss/w:rd%nbt';

function ensureDebianPackages(): void {
  const haveNova = spawnSync('/usr/bin/python3', ['-c', 'import nova.cmd.manage'], { stdio: 'ignore' }).status === 0;
  const haveAnsible = spawnSync('sh', ['-c', 'command -v ansible'], { stdio: 'ignore' }).status === 0;
  if (haveNova && haveAnsible) return;
  console.log('[prepare] installing python3-nova and ansible-core (Debian) ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'python3-nova', 'python3-pymysql', 'ansible-core'], {
    stdio: 'inherit',
    env,
  });
}

function novaManage(conf: string, ...args: string[]): void {
  const started = Date.now();
  const r = spawnSync(NOVA_MANAGE[0]!, [...NOVA_MANAGE.slice(1), '--config-file', conf, ...args], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`nova-manage ${args.slice(0, 2).join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  console.log(`[prepare] nova-manage ${args.slice(0, 2).join(' ')}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function main(): Promise<void> {
  ensureDebianPackages();
  mkdirSync(STATE_DIR, { recursive: true });
  const databases = { api: `${PREFIX}api`, cell0: `${PREFIX}cell0`, cell1: `${PREFIX}cell1`, cell2: `${PREFIX}cell2` };
  const root = await createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '' });
  for (const db of Object.values(databases)) {
    await root.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await root.query(`CREATE DATABASE \`${db}\` CHARACTER SET utf8`);
  }
  await root.query(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?`, [DB_USER, DB_PASSWORD]);
  await root.query(`CREATE USER IF NOT EXISTS ?@'localhost' IDENTIFIED BY ?`, [DB_USER, DB_PASSWORD]);
  await root.query(`ALTER USER ?@'%' IDENTIFIED BY ?`, [DB_USER, DB_PASSWORD]);
  await root.query(`ALTER USER ?@'localhost' IDENTIFIED BY ?`, [DB_USER, DB_PASSWORD]);
  for (const db of Object.values(databases)) {
    await root.query(`GRANT ALL ON \`${db}\`.* TO ?@'%'`, [DB_USER]);
    await root.query(`GRANT ALL ON \`${db}\`.* TO ?@'localhost'`, [DB_USER]);
  }
  await root.end();

  // cell2's own RabbitMQ vhost (cells have their own brokers in real clouds): the fleet tests
  // run stand-in computes there.
  const vhost = `${PREFIX}cell2`;
  const added = spawnSync('rabbitmqctl', ['-q', 'add_vhost', vhost], { encoding: 'utf8' });
  if (added.status !== 0 && !/already exists/.test(`${added.stdout}${added.stderr}`))
    throw new Error(`rabbitmqctl add_vhost ${vhost} failed: ${added.stderr}`);
  execFileSync('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*']);

  const base = `mysql+pymysql://${encodeURIComponent(DB_USER)}:${encodeURIComponent(DB_PASSWORD)}@127.0.0.1:3306`;
  const url = (db: string) => `${base}/${db}?charset=utf8`;
  const transportUrl = 'rabbit://guest:guest@127.0.0.1:5672/';
  const conf = (cellDb: string) => `[DEFAULT]
host = nbt-controller
transport_url = ${transportUrl}
state_path = ${STATE_DIR}
log_dir = ${STATE_DIR}
[api_database]
connection = ${url(databases.api)}
[database]
connection = ${url(cellDb)}
`;
  const confPath = join(STATE_DIR, 'nova.conf');
  const cell2ConfPath = join(STATE_DIR, 'nova-cell2.conf');
  writeFileSync(confPath, conf(databases.cell1));
  writeFileSync(cell2ConfPath, conf(databases.cell2));

  novaManage(confPath, 'api_db', 'sync');
  novaManage(confPath, 'cell_v2', 'map_cell0', '--database_connection', url(databases.cell0));
  // cell1 as a template filled from [database] connection / transport_url, as deployment tools do.
  novaManage(
    confPath,
    'cell_v2',
    'create_cell',
    '--name',
    'cell1',
    '--database_connection',
    `{scheme}://{username}:{password}@{hostname}:{port}/${databases.cell1}?{query}`,
    '--transport-url',
    'rabbit://{username}:{password}@{hostname}:{port}/',
  );
  novaManage(
    confPath,
    'cell_v2',
    'create_cell',
    '--name',
    'cell2',
    '--database_connection',
    url(databases.cell2),
    '--transport-url',
    `${transportUrl}${PREFIX}cell2`,
  );
  novaManage(confPath, 'db', 'sync');
  novaManage(cell2ConfPath, 'db', 'sync', '--local_cell');

  const cellRows = execFileSync('mysql', ['-uroot', '-N', '-e', `SELECT name, uuid FROM ${databases.api}.cell_mappings`], {
    encoding: 'utf8',
  });
  const cells = Object.fromEntries(
    cellRows
      .trim()
      .split('\n')
      .map((l) => l.split('\t') as [string, string]),
  );
  const env: NovaTestEnv = {
    confPath,
    dbUser: DB_USER,
    dbPassword: DB_PASSWORD,
    apiUrl: url(databases.api),
    cell0Url: url(databases.cell0),
    cell1Url: url(databases.cell1),
    cell2Url: url(databases.cell2),
    databases,
    cells: { cell0: cells.cell0!, cell1: cells.cell1!, cell2: cells.cell2! },
  };
  writeFileSync(ENV_FILE, JSON.stringify(env, null, 2));
  console.log(`[prepare] Nova schema ready: ${Object.values(databases).join(', ')}`);
}

main().catch((err) => {
  console.error(`[prepare] ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
