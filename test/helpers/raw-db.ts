/**
 * Direct database access for failover tests, bypassing the product's store: reads what is really
 * committed (while the server runs or after it died) and corrupts rows on purpose. SQL uses `?`
 * placeholders for both dialects; every column of the schema is text or integer, so results
 * compare the same way on SQLite and PostgreSQL (bigint columns come back as numbers).
 */
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';

export interface RawDb {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  one<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T | undefined>;
  exec(sql: string, params?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

/** The file path behind a `sqlite:` URL. */
export function sqlitePath(url: string): string {
  return url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
}

export async function openRawDb(url: string): Promise<RawDb> {
  if (url.startsWith('sqlite:')) {
    const db = new SqliteDatabase(sqlitePath(url));
    // Short: better-sqlite3 blocks this process while it waits for the server's write lock.
    db.pragma('busy_timeout = 1000');
    return {
      async query<T>(sql: string, params: unknown[] = []) {
        return db.prepare(sql).all(...params) as T[];
      },
      async one<T>(sql: string, params: unknown[] = []) {
        return db.prepare(sql).get(...params) as T | undefined;
      },
      async exec(sql: string, params: unknown[] = []) {
        return db.prepare(sql).run(...params).changes;
      },
      async close() {
        db.close();
      },
    };
  }
  // int8 (events.seq, count(*)) as numbers, as the product's store reads them.
  const types = { getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser };
  const client = new pg.Client({ connectionString: url, types });
  client.on('error', () => {});
  await client.connect();
  const toPg = (sql: string) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  };
  return {
    async query<T>(sql: string, params: unknown[] = []) {
      return (await client.query(toPg(sql), params)).rows as T[];
    },
    async one<T>(sql: string, params: unknown[] = []) {
      return (await client.query(toPg(sql), params)).rows[0] as T | undefined;
    },
    async exec(sql: string, params: unknown[] = []) {
      return (await client.query(toPg(sql), params)).rowCount ?? 0;
    },
    async close() {
      await client.end().catch(() => {});
    },
  };
}

/** Opens, runs `fn`, closes: for short looks at the database between process lifetimes. */
export async function withRawDb<T>(url: string, fn: (db: RawDb) => Promise<T>): Promise<T> {
  const db = await openRawDb(url);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
