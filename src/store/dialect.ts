/** The one place that knows how SQLite and PostgreSQL differ. */
import type SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type ColumnDefinitionBuilder } from 'kysely';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Database } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

export interface DialectCaps {
  name: DialectName;
  /** Column builder for an auto-incrementing integer primary key. */
  serialType: 'integer' | 'bigserial';
  serialColumn(col: ColumnDefinitionBuilder): ColumnDefinitionBuilder;
  /** Whether an error means "the store is unavailable, try again later" rather than a bug. */
  isTransient(err: unknown): boolean;
  /** Whether an error is a unique-constraint violation. */
  isUniqueViolation(err: unknown): boolean;
  isForeignKeyViolation(err: unknown): boolean;
  /**
   * Holds a lock on `key` until the transaction ends, for read-then-insert sequences that no
   * unique index can guard (for example "find the open alert group, else open one").
   */
  lockKey(trx: Kysely<Database>, key: string): Promise<void>;
  /** Whether SELECT ... FOR UPDATE exists (PostgreSQL); SQLite's single writer needs none. */
  rowLocks: boolean;
  /** Write transactions worth running at once: SQLite has one writer, PostgreSQL many. */
  writeConcurrency: number;
}

export interface OpenedDatabase {
  db: Kysely<Database>;
  caps: DialectCaps;
  describe: string;
}

const SQLITE_TRANSIENT = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_RECOVERY', 'SQLITE_IOERR', 'SQLITE_CANTOPEN', 'SQLITE_FULL']);
// Connection failures, admin shutdown, serialization failures, deadlocks, too many connections.
const PG_TRANSIENT_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004', '40001', '40P01', '53300', '53400']);
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function isPgTransient(err: unknown): boolean {
  const code = errCode(err);
  if (code && (PG_TRANSIENT_CODES.has(code) || NET_CODES.has(code))) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|not queryable/i.test(message);
}

const sqliteCaps: DialectCaps = {
  name: 'sqlite',
  serialType: 'integer',
  serialColumn: (c) => c.primaryKey().autoIncrement(),
  isTransient: (err) => {
    const code = errCode(err);
    return code !== undefined && [...SQLITE_TRANSIENT].some((c) => code.startsWith(c));
  },
  isUniqueViolation: (err) => {
    const code = errCode(err);
    return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
  },
  isForeignKeyViolation: (err) => errCode(err) === 'SQLITE_CONSTRAINT_FOREIGNKEY',
  // One connection runs one transaction at a time: SQLite transactions are already serial.
  lockKey: async () => {},
  rowLocks: false,
  writeConcurrency: 1,
};

const postgresCaps: DialectCaps = {
  name: 'postgres',
  serialType: 'bigserial',
  serialColumn: (c) => c.primaryKey(),
  isTransient: isPgTransient,
  isUniqueViolation: (err) => errCode(err) === '23505',
  isForeignKeyViolation: (err) => errCode(err) === '23503',
  rowLocks: true,
  writeConcurrency: 4,
  lockKey: async (trx, key) => {
    await sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(trx);
  },
};

/**
 * Kysely's SQLite driver prepares every statement anew; preparing costs more than running a small
 * query. Statements are cached by SQL text (bounded). Safe because better-sqlite3 is synchronous
 * and nothing here streams rows through `iterate()`.
 */
function withStatementCache(db: SqliteDatabase.Database, max = 1000) {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => db.close(),
    prepare(text: string) {
      let stmt = cache.get(text);
      if (!stmt) {
        stmt = db.prepare(text);
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
        cache.set(text, stmt);
      }
      return stmt;
    },
  };
}

/** Parses `sqlite:<path>` / `postgres://...` into a Kysely instance with its capabilities. */
/**
 * Drivers are loaded on demand: a process on SQLite never evaluates `pg` and the other way
 * round, which keeps start-up (and so recovery after a crash) short.
 */
export async function openDatabase(url: string, opts: { poolSize?: number } = {}): Promise<OpenedDatabase> {
  if (url.startsWith('sqlite:')) {
    const raw = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    const path = raw === ':memory:' ? raw : resolve(raw || './data/overseer.db');
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const { default: Sqlite } = await import('better-sqlite3');
    const sqlite = new Sqlite(path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    // Short: better-sqlite3 blocks the event loop while it waits; longer waits are async retries.
    sqlite.pragma('busy_timeout = 100');
    sqlite.pragma('foreign_keys = ON');
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
    return { db, caps: sqliteCaps, describe: `sqlite:${path}` };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { default: pg } = await import('pg');
    // int8 (bigserial, count(*)) as JS numbers: our sequences stay far below 2^53.
    pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: 3000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    // pg-pool listens for 'error' only while a client is idle; a checked-out client whose connection
    // dies emits an unhandled 'error' that would kill the process. Its query fails on its own (a
    // transient error, retried), and the pool drops the broken client when it is released.
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const safe = url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
    return { db, caps: postgresCaps, describe: safe };
  }
  throw new Error(`DATABASE_URL must start with sqlite: or postgres:// (got "${url.slice(0, 40)}")`);
}

/** Cheap liveness query used by readiness checks. */
/**
 * Readiness probe. On SQLite a plain read succeeds even while another process holds the write
 * lock (WAL), so the probe takes and drops the write lock: readiness then fails exactly when
 * writes would.
 */
export async function ping(db: Kysely<Database>, caps: DialectCaps): Promise<void> {
  if (caps.name === 'postgres') {
    await sql`select 1`.execute(db);
    return;
  }
  await db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    await sql`rollback`.execute(conn);
  });
}
