/** The store: a Kysely database, its dialect capabilities and transaction discipline. */
import { sql, type Kysely, type Transaction } from 'kysely';
import { openDatabase, ping, type DialectCaps, type OpenedDatabase } from './dialect.js';
import { migrateToLatest } from './migrations.js';
import type { Database } from './schema.js';
import { ApiError } from '../domain/errors.js';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;

/** Raised when the database cannot be reached or is locked; callers answer 503. */
export class StoreUnavailableError extends ApiError {
  constructor(cause: unknown) {
    // The cause (hosts, ports, file paths) goes to the log, not to callers.
    super(503, 'store_unavailable', 'the database is unavailable; nothing was changed, retry later');
    this.cause = cause;
  }
}

export interface StoreOptions {
  url: string;
  poolSize?: number;
  /** Total time a transaction may spend retrying transient failures before giving up. */
  retryBudgetMs?: number;
}

export class Store {
  readonly db: Db;
  readonly caps: DialectCaps;
  readonly describe: string;
  private readonly retryBudgetMs: number;
  /** Observed store health for readiness: last failure and last success. */
  lastError: { at: number; message: string } | null = null;
  lastOkAt = 0;
  private closed = false;

  private constructor(opts: StoreOptions, opened: OpenedDatabase) {
    this.db = opened.db;
    this.caps = opened.caps;
    this.describe = opened.describe;
    this.retryBudgetMs = opts.retryBudgetMs ?? 2000;
  }

  /** Opens the database and brings its schema up to date. */
  static async open(opts: StoreOptions): Promise<Store> {
    const store = new Store(opts, await openDatabase(opts.url, { poolSize: opts.poolSize }));
    try {
      await migrateToLatest(store.db, store.caps);
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /**
   * Runs `fn` in one transaction. Transient failures (SQLITE_BUSY, lost connection, serialization)
   * are retried with jittered backoff inside a bounded budget, then surface as
   * StoreUnavailableError. `fn` must only touch the database: it may run more than once.
   */
  async tx<T>(fn: (trx: Tx) => Promise<T>): Promise<T> {
    return this.withRetry(() => this.db.transaction().execute(fn));
  }

  /** A read outside a transaction, with the same retry and error mapping. */
  async read<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    return this.withRetry(() => fn(this.db));
  }

  private async withRetry<T>(run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await run();
        this.lastOkAt = Date.now();
        if (this.lastError) this.lastError = null;
        return result;
      } catch (err) {
        if (!this.caps.isTransient(err) || this.closed) throw err;
        this.lastError = { at: Date.now(), message: err instanceof Error ? err.message : String(err) };
        const delay = Math.min(400, 10 * 2 ** attempt) * (0.5 + Math.random() / 2);
        if (Date.now() - started + delay > this.retryBudgetMs) throw new StoreUnavailableError(err);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Round-trip time of a trivial query, or throws. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    try {
      await ping(this.db, this.caps);
    } catch (err) {
      this.lastError = { at: Date.now(), message: err instanceof Error ? err.message : String(err) };
      throw err;
    }
    this.lastOkAt = Date.now();
    this.lastError = null;
    return performance.now() - t0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.destroy();
  }
}

export const json = (v: unknown): string => JSON.stringify(v ?? null);
export function parseJson<T>(text: string | null | undefined, fallback: T): T {
  if (text === null || text === undefined) return fallback;
  return JSON.parse(text) as T;
}

/**
 * Runs `fn` inside a savepoint of `trx`. A failure rolls back only what `fn` wrote and is
 * returned, not thrown; transient failures (lost connection, lock) are rethrown so the whole
 * transaction can be retried.
 */
export async function inSavepoint<T>(trx: Tx, isTransient: (err: unknown) => boolean, fn: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  await sql`savepoint overseer_unit`.execute(trx);
  try {
    const value = await fn();
    await sql`release savepoint overseer_unit`.execute(trx);
    return { ok: true, value };
  } catch (error) {
    if (isTransient(error)) throw error;
    await sql`rollback to savepoint overseer_unit`.execute(trx);
    await sql`release savepoint overseer_unit`.execute(trx);
    return { ok: false, error };
  }
}
