import { BadInput } from '../errors';

/** Where and how to reach one MySQL/MariaDB database, from a SQLAlchemy URL. */
export interface DbTarget {
  host?: string;
  port: number;
  socketPath?: string;
  user?: string;
  password?: string;
  database?: string;
  charset?: string;
  tls?: { ca?: string; cert?: string; key?: string; verify: boolean };
  connectTimeoutSeconds?: number;
}

// SQLAlchemy 1.4's URL pattern (sqlalchemy/engine/url.py _parse_rfc1738_args).
const URL_RE =
  /^(?<name>[\w+]+):\/\/(?:(?<username>[^:/]*)(?::(?<password>[^@]*))?@)?(?:(?:\[(?<ipv6host>[^/?]+)\]|(?<ipv4host>[^/:?]+))?(?::(?<port>[^/?]*))?)?(?:\/(?<database>[^?]*))?(?:\?(?<query>.*))?$/s;

const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

/**
 * Parses `mysql+pymysql://user:p%40ss@host:3306/nova?charset=utf8&unix_socket=...&ssl_ca=...`.
 * `what` names the URL in errors ("[database] connection of cell1"); the URL itself never
 * appears in a message because it carries a password.
 */
export function parseSqlalchemyUrl(url: string, what: string): DbTarget {
  const m = URL_RE.exec(url.trim());
  if (!m?.groups) throw new BadInput(`${what} is not a valid SQLAlchemy database URL`);
  const g = m.groups;
  const [dialect, driver] = g.name!.split('+');
  if (dialect !== 'mysql' && dialect !== 'mariadb') {
    throw new BadInput(`${what} uses the "${g.name}" scheme; only MySQL/MariaDB URLs (mysql+pymysql://, mysql://) are supported`);
  }
  void driver; // pymysql, mysqldb, ...: all speak the same protocol
  const target: DbTarget = { port: 3306 };
  if (g.username !== undefined && g.username !== '') target.user = decodeURIComponent(g.username);
  if (g.password !== undefined) target.password = decodeURIComponent(g.password);
  const host = g.ipv6host ?? g.ipv4host;
  if (host) target.host = host;
  if (g.port) {
    if (!/^\d+$/.test(g.port)) throw new BadInput(`${what} has an invalid port`);
    target.port = Number(g.port);
  }
  if (g.database) target.database = g.database;
  const query = new URLSearchParams(g.query ?? '');
  const tls: NonNullable<DbTarget['tls']> = { verify: true };
  let wantTls = false;
  for (const [key, value] of query) {
    switch (key) {
      case 'charset':
        target.charset = value;
        break;
      case 'unix_socket':
        target.socketPath = value;
        break;
      case 'ssl_ca':
      case 'ssl_cert':
      case 'ssl_key':
        tls[key.slice(4) as 'ca' | 'cert' | 'key'] = value;
        wantTls = true;
        break;
      case 'ssl_verify_cert':
      case 'ssl_check_hostname':
        if (FALSE_WORDS.has(value.toLowerCase())) tls.verify = false;
        break;
      case 'ssl':
        wantTls = !FALSE_WORDS.has(value.toLowerCase());
        break;
      case 'connect_timeout':
        if (/^\d+(\.\d+)?$/.test(value)) target.connectTimeoutSeconds = Number(value);
        break;
      default:
        // Other DBAPI options (read_default_file, plugin, ...) have no mysql2 meaning; skip.
        break;
    }
  }
  if (wantTls) target.tls = tls;
  if (!target.host && !target.socketPath) target.host = 'localhost';
  return target;
}

/** "cell1 database nova at 10.0.0.5:3306" — for messages; never includes credentials. */
export function describeDbTarget(t: DbTarget): string {
  const where = t.socketPath ? `socket ${t.socketPath}` : `${t.host}:${t.port}`;
  return `${t.database ?? '(no database)'} at ${where}`;
}
