import { readFileSync, statSync } from 'node:fs';
import { Kysely, MysqlDialect, sql, type CompiledQuery } from 'kysely';
import * as mysql2 from 'mysql2';
import { createPool, type Pool, type PoolConnection, type PoolOptions } from 'mysql2';
import type { DbTarget } from '../config/sqlalchemy-url';
import { describeDbTarget } from '../config/sqlalchemy-url';
import { BadInput, DatabaseConnectionLost, DatabaseUnavailable } from '../errors';

/**
 * mysql2 decodes utf8mb3 (pymysql's and Nova's "utf8") as CESU-8, in JavaScript (iconv-lite).
 * utf8mb3 holds only 1- to 3-byte sequences, where CESU-8 and UTF-8 are the same bytes, so Node's
 * native UTF-8 decoder gives the same strings: measured on the audit of 100k BDMs, the CESU-8
 * decoder was 1.4 s of its 5.9 s CPU profile. The same table encodes the SQL sent on a utf8mb3
 * connection (lib/packets/query.js): as UTF-8, as pymysql sends it, so the server refuses a 4-byte
 * character instead of storing it as a CESU-8 surrogate pair.
 *
 * This writes into mysql2's exported CharsetToEncoding table (typed string[] in its typings), which
 * its options cannot reach: mysql2 picks a column's decoder from that table by the charset number of
 * the column definition (lib/packets/column_definition.js) and has no option for it. Its one per-field
 * hook, `typeCast`, is not told the field's charset (the wrapper it gets has type, length, db, table,
 * name), so it cannot tell a utf8mb3 column from a binary or latin1 one, and it costs a closure per
 * field and row. `charset: 'UTF8MB4_GENERAL_CI'` would decode natively but sets the session character
 * sets and collation to utf8mb4, not the utf8mb3 that oslo.db's "utf8" sets, so the server would
 * convert differently from Nova. Kysely's MysqlDialect only hands mysql2 the pool.
 */
function decodeUtf8mb3Natively(): void {
  const table = mysql2.CharsetToEncoding;
  if (!Array.isArray(table)) return;
  for (let i = 0; i < table.length; i++) if (table[i] === 'cesu8') table[i] = 'utf8';
}
decodeUtf8mb3Natively();

/** One Nova database (API or a cell), named for messages, with its own small pool. */
/** What oslo.db does on every new connection. */
const SESSION_SQL = "SET SESSION sql_mode = 'TRADITIONAL', time_zone = '+00:00'";

export class NovaDatabase<T> {
  readonly kysely: Kysely<T>;
  private readonly pool: Pool;
  /** Raw connections streamRowBatches has set up (Kysely keeps its own record for its own use). */
  private readonly sessionReady = new WeakSet<PoolConnection>();
  private closed = false;
  /** A connection was made: a failure after that is a connection lost, not one refused. */
  private everConnected = false;

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
    this.pool = createPool(options);
    this.pool.on('connection', (conn) => {
      this.everConnected = true;
      // A pool connection emits every failure as 'error', also those its query's callback gets
      // (lib/base/connection.js), and the pool listens only once: a later one would be thrown.
      conn.on('error', () => undefined);
    });
    this.kysely = new Kysely<T>({
      dialect: new MysqlDialect({
        pool: this.pool,
        onCreateConnection: async (conn) => {
          await conn.executeQuery(sql.raw(SESSION_SQL).compile(this.kysely));
        },
      }),
    });
  }

  /**
   * The rows of a (Kysely-built) query in batches, on one pooled connection, with back pressure:
   * the connection is paused while more than two batches wait for the consumer. mysql2 hands
   * over each row synchronously; Kysely's stream() would cost a promise and an async-iterator
   * step per row, which is a sixth of the CPU of a fleet audit over a million rows.
   * Leaving the loop early destroys the connection (MySQL cannot stop a result half-way).
   */
  async *streamRowBatches<R>(query: CompiledQuery, batchSize = 1000): AsyncGenerator<R[]> {
    const conn = await new Promise<PoolConnection>((resolve, reject) =>
      this.pool.getConnection((err, c) => (err ? reject(err) : resolve(c))),
    );
    let finished = false;
    let lost: ((err: Error) => void) | undefined;
    try {
      if (!this.sessionReady.has(conn)) {
        await new Promise<void>((resolve, reject) => conn.query(SESSION_SQL, (err) => (err ? reject(err) : resolve())));
        this.sessionReady.add(conn);
      }
      const ready: R[][] = [];
      let batch: R[] = [];
      let failure: Error | undefined;
      let done = false;
      let paused = false;
      let wake: (() => void) | undefined;
      const signal = () => {
        wake?.();
        wake = undefined;
      };
      // mysql2 reports a connection lost in the middle of a query without a callback to the
      // connection only, never to the query: without this the loop would wait forever.
      lost = (err: Error) => {
        failure = err;
        signal();
      };
      conn.on('error', lost);
      const handOver = () => {
        if (batch.length === 0) return;
        ready.push(batch);
        batch = [];
        if (ready.length >= 2 && !paused) {
          paused = true;
          conn.pause();
        }
        signal();
      };
      conn
        .query({ sql: query.sql, values: query.parameters as unknown[] })
        .on('result', (row) => {
          // mysql2 emits the rows of one socket read synchronously: a batch is handed over once
          // that read is parsed, never kept waiting for the next read. With several cells read at
          // once, rows kept waiting would live on while the other cells' rows are processed, and
          // V8 would promote them to the old generation (garbage that piles up until a full GC).
          if (batch.length === 0) queueMicrotask(handOver);
          batch.push(row as R);
          if (batch.length >= batchSize) handOver();
        })
        .on('error', (err) => {
          failure = err;
          signal();
        })
        .on('end', () => {
          handOver();
          done = true;
          signal();
        });
      for (;;) {
        const next = ready.shift();
        if (next) {
          if (paused && ready.length < 2) {
            paused = false;
            conn.resume();
          }
          yield next;
          continue;
        }
        if (failure) throw failure;
        if (done) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      finished = true;
    } finally {
      if (lost) conn.off('error', lost);
      if (finished) conn.release();
      else conn.destroy();
    }
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
    if (this.everConnected && (LOST_CODES.has(code ?? '') || /connection lost|closed state/i.test(err.message))) {
      return new DatabaseConnectionLost(`the connection to the ${this.label} ${where} was lost (${code ?? err.message})`);
    }
    const reason = CONNECT_ERRORS[code ?? ''];
    if (reason) return new DatabaseUnavailable(`cannot connect to the ${this.label} ${where}: ${reason(err)}`);
    if (err.name === 'BadInput') return err;
    return new DatabaseUnavailable(`${this.label} ${where}: query failed: ${err.message}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.kysely.destroy().catch(() => undefined);
    // Kysely ends the pool only when it ran a query itself; streamRowBatches may have used it alone.
    await new Promise<void>((resolve) => this.pool.end(() => resolve()));
  }
}

/** A connection that was up and broke (mysql2's and the socket's codes). */
const LOST_CODES = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'EPIPE', 'ERR_STREAM_DESTROYED']);

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
      // stat first: a FIFO named here would block the read for ever
      if (!statSync(path).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new BadInput(`cannot read TLS file ${path} for the ${label}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  return { ca: read(tls.ca), cert: read(tls.cert), key: read(tls.key), rejectUnauthorized: tls.verify };
}
