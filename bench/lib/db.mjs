/** Scratch databases for one suite: a temp SQLite file or a fresh PostgreSQL database. */
import { mkdtempSync, rmSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export const PG_ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let counter = 0;

/** A fresh, empty SQLite path in its own temp directory, removed when the scope closes. */
export function tempSqlite(scope, label) {
  const dir = mkdtempSync(join(tmpdir(), `overseer-bench-${label}-`));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'bench.db');
  return { dir, path, url: `sqlite:${path}` };
}

/** Copies a SQLite database (with its WAL, if any) so each run starts from the same seeded state. */
export function copySqlite(from, to) {
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(from + suffix)) copyFileSync(from + suffix, to + suffix);
    else rmSync(to + suffix, { force: true });
  }
}

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin(fn) {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Whether the PostgreSQL server used for benchmarks answers. */
export async function postgresAvailable() {
  try {
    await admin((c) => c.query('select 1'));
    return true;
  } catch {
    return false;
  }
}

/** Creates a fresh database (optionally a copy of `template`), dropped when the scope closes. */
export async function tempPostgres(scope, label, { template } = {}) {
  const name = `overseer_bench_${label}_${process.pid}_${Date.now().toString(36)}_${counter++}`.replace(/[^a-z0-9_]/g, '_');
  await admin((c) => c.query(`create database ${name}${template ? ` template ${template}` : ''}`));
  scope.defer(() => dropPostgres(name));
  return { name, url: withDatabase(PG_ADMIN_URL, name) };
}

export async function dropPostgres(name) {
  await admin((c) => c.query(`drop database if exists ${name} with (force)`));
}

/** A pg client on `url` for direct reads (counting rows, polling columns). */
export async function pgClient(scope, url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await client.connect();
  scope.defer(() => client.end());
  return client;
}

/**
 * Read access to a database the server is using, for counting and matching rows after a run:
 * `query(sql, params)` with `?` placeholders on both dialects.
 */
export async function openReader(scope, target) {
  const kind = target.kind ?? (target.url.startsWith('sqlite:') ? 'sqlite' : 'postgres');
  if (kind === 'sqlite') {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(target.path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    scope.defer(() => db.close());
    return { query: async (sql, params = []) => db.prepare(sql).all(...params) };
  }
  const client = await pgClient(scope, target.url);
  return {
    query: async (sql, params = []) => {
      let n = 0;
      const text = sql.replace(/\?/g, () => `$${++n}`);
      return (await client.query(text, params)).rows;
    },
  };
}

/** A fresh database of `kind` ('sqlite' | 'postgres'): { kind, url, path?, name? }. */
export async function freshDatabase(scope, kind, label) {
  if (kind === 'sqlite') return { kind, ...tempSqlite(scope, label) };
  return { kind, ...(await tempPostgres(scope, label.replace(/-/g, '_'))) };
}
