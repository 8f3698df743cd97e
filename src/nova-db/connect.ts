import { readFileSync } from 'node:fs';
import { Kysely, MysqlDialect, sql } from 'kysely';
import { createPool, type PoolOptions } from 'mysql2';
import type { DbTarget } from '../config/sqlalchemy-url';
import { describeDbTarget } from '../config/sqlalchemy-url';
import { BadInput, DatabaseUnavailable } from '../errors';

/** One Nova database (API or a cell), named for messages, with its own small pool. */
export class NovaDatabase<T> {
  readonly kysely: Kysely<T>;
  private closed = false;

  constructor(
    /** "API database", "cell1 database": used in every error about it. */
    readonly label: string,
    readonly target: DbTarget,
    connectTimeoutSeconds: number,
    connectionLimit = 2,
  ) {
    const options: PoolOptions = {
      host: target.host,
      port: target.port,
      socketPath: target.socketPath,
      user: target.user,
      password: target.password,
      database: target.database,
      // pymysql "utf8" is utf8mb3; Nova's tables are utf8mb3 too.
      charset: target.charset?.toLowerCase() === 'utf8mb4' ? 'UTF8MB4_GENERAL_CI' : 'UTF8_GENERAL_CI',
      connectTimeout: Math.round((target.connectTimeoutSeconds ?? connectTimeoutSeconds) * 1000),
      connectionLimit,
      // Nova stores naive UTC: never let the driver shift times to local time.
      timezone: 'Z',
      dateStrings: true,
      supportBigNumbers: true,
      ssl: target.tls ? tlsOptions(target.tls, label) : undefined,
    };
    this.kysely = new Kysely<T>({
      dialect: new MysqlDialect({
        pool: createPool(options),
        // What oslo.db does on every new connection.
        onCreateConnection: async (conn) => {
          await conn.executeQuery(sql`SET SESSION sql_mode = 'TRADITIONAL', time_zone = '+00:00'`.compile(this.kysely));
        },
      }),
    });
  }

  /** Runs queries, turning driver failures into one clear line that names this database. */
  async run<R>(work: (db: Kysely<T>) => Promise<R>): Promise<R> {
    try {
      return await work(this.kysely);
    } catch (err) {
      throw this.explain(err);
    }
  }

  explain(err: unknown): Error {
    if (!(err instanceof Error)) return new DatabaseUnavailable(`${this.label} failed: ${String(err)}`);
    const code = (err as NodeJS.ErrnoException).code;
    const where = describeDbTarget(this.target);
    const reason = CONNECT_ERRORS[code ?? ''];
    if (reason) return new DatabaseUnavailable(`cannot connect to the ${this.label} ${where}: ${reason(err)}`);
    if (err.name === 'BadInput') return err;
    return new DatabaseUnavailable(`${this.label} ${where}: query failed: ${err.message}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.kysely.destroy().catch(() => undefined);
  }
}

const CONNECT_ERRORS: Record<string, (err: Error) => string> = {
  ECONNREFUSED: () => 'connection refused (is the database server running?)',
  ETIMEDOUT: () => 'timed out',
  ENOTFOUND: () => 'host name not found',
  EHOSTUNREACH: () => 'host unreachable',
  ENOENT: () => 'socket not found',
  // MySQL's own words, whole: "Access denied for user 'u'@'h' (using password: YES)".
  ER_ACCESS_DENIED_ERROR: (e) => e.message,
  ER_DBACCESS_DENIED_ERROR: (e) => e.message,
  ER_BAD_DB_ERROR: (e) => e.message,
  PROTOCOL_CONNECTION_LOST: () => 'connection lost',
  HANDSHAKE_SSL_ERROR: (e) => `TLS handshake failed: ${e.message}`,
  ER_NO_SUCH_TABLE: (e) => `${e.message} (is this a Nova database?)`,
};

function tlsOptions(tls: NonNullable<DbTarget['tls']>, label: string): PoolOptions['ssl'] {
  const read = (path: string | undefined): string | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new BadInput(`cannot read TLS file ${path} for the ${label}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  return { ca: read(tls.ca), cert: read(tls.cert), key: read(tls.key), rejectUnauthorized: tls.verify };
}
