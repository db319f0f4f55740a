/**
 * In-process Overseer for API and runtime tests: a real store (SQLite file or PostgreSQL
 * database), the real runtime and the real Fastify app, driven through app.inject or HTTP.
 */
import type { FastifyInstance } from 'fastify';
import { Store } from '../../src/store/store.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { Metrics } from '../../src/runtime/metrics.js';
import { silentLogger } from '../../src/runtime/logger.js';
import { TokenService } from '../../src/runtime/services/tokens.js';
import type { ServiceContext } from '../../src/runtime/services/context.js';
import { buildApp } from '../../src/api/app.js';
import type { HealthState } from '../../src/api/routes/health.js';
import { systemClock, uuidv7, type Clock } from '../../src/domain/time.js';
import { createTestDb, type TestDb } from './db.js';

const ROOT_PATHS = new Set(['/livez', '/readyz', '/healthz', '/metrics']);

export const HARNESS_TOKEN = 'harness-admin-token-0123456789';

export interface Harness {
  db: TestDb;
  store: Store;
  runtime: Runtime;
  app: FastifyInstance;
  ctx: ServiceContext;
  tokens: TokenService;
  health: HealthState;
  clock: Clock;
  /** JSON request through app.inject with the admin token (or `token`). */
  req(method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close(): Promise<void>;
}

export interface HarnessOptions {
  dialect: 'sqlite' | 'postgres';
  clock?: Clock;
  /** false: loops do not tick on their own; the test calls tickOnce(). */
  autoStartLoops?: boolean;
  controlUrlAllow?: string[] | null;
  /** Reuse an existing database (restart scenarios). */
  db?: TestDb;
  random?: () => number;
  /** OVERSEER_FOUR_EYES; default true, the production default. */
  fourEyes?: boolean;
}

export async function createHarness(opts: HarnessOptions): Promise<Harness> {
  const db = opts.db ?? (await createTestDb(opts.dialect));
  const clock = opts.clock ?? systemClock;
  const store = await Store.open({ url: db.url });
  const logger = silentLogger();
  const newId = () => uuidv7(clock.now());
  const runtime = new Runtime({ store, clock, newId, logger, metrics: new Metrics(), autoStartLoops: opts.autoStartLoops, random: opts.random });
  const ctx: ServiceContext = { store, clock, newId, runtime, settings: { fourEyes: opts.fourEyes ?? true } };
  const tokens = new TokenService({ store, clock, newId }, HARNESS_TOKEN);
  const health: HealthState = { draining: false, startedAt: Date.now() };
  const app = await buildApp({ ctx, store, runtime, tokens, metrics: new Metrics(), logger, health, controlUrlAllow: opts.controlUrlAllow ?? null });
  await app.ready();
  await runtime.start();
  let closed = false;
  return {
    db,
    store,
    runtime,
    app,
    ctx,
    tokens,
    health,
    clock,
    async req(method, path, body, token = HARNESS_TOKEN) {
      const res = await app.inject({
        method: method as 'GET',
        url: path.startsWith('/api/') || ROOT_PATHS.has(path.split('?')[0]) ? path : `/api/v1${path}`,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      let parsed: unknown = null;
      try {
        parsed = res.body ? JSON.parse(res.body) : null;
      } catch {
        parsed = res.body;
      }
      return { status: res.statusCode, body: parsed };
    },
    async close() {
      if (closed) return;
      closed = true;
      await runtime.shutdown(clock.now() + 1000).catch(() => {});
      await app.close();
      await store.close();
      if (!opts.db) await db.drop();
    },
  };
}
