/** Composition root for `overseer serve`: config -> store -> runtime -> api, and shutdown. */
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';
import { systemClock, uuidv7, type Clock } from './domain/time.js';
import { Store } from './store/store.js';
import { Runtime } from './runtime/runtime.js';
import { Metrics } from './runtime/metrics.js';
import type { Logger } from './runtime/logger.js';
import { TokenService } from './runtime/services/tokens.js';
import { buildApp } from './api/app.js';
import type { HealthState } from './api/routes/health.js';

export const VERSION = '0.1.0';

export interface Server {
  app: FastifyInstance;
  runtime: Runtime;
  store: Store;
  health: HealthState;
  /** Graceful stop: readiness 503 at once, drain until the grace is spent, save, close. */
  shutdown(graceMs: number): Promise<void>;
}

export interface StartOptions {
  config: Config;
  logger: Logger;
  clock?: Clock;
  /** Printed once when a first admin token is minted (stdout by default). */
  announceToken?: (token: string) => void;
}

/** Opens the store (retrying while it is unreachable), listens, then recovers. */
export async function startServer(opts: StartOptions): Promise<Server> {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  logger.debug({ since_process_start_ms: Math.round(performance.now()) }, 'modules loaded; opening the store');
  const store = await openWithRetry(config.databaseUrl, logger);
  logger.debug({ since_process_start_ms: Math.round(performance.now()) }, 'store open');
  const metrics = new Metrics();
  const runtime = new Runtime({ store, clock, newId: () => uuidv7(clock.now()), logger, metrics, version: VERSION, evaluationRetentionHours: config.evaluationRetentionHours });
  const ctx = { store, clock, newId: () => uuidv7(clock.now()), runtime, settings: { fourEyes: config.fourEyes } };
  const tokens = new TokenService({ store, clock, newId: ctx.newId }, config.adminToken);
  const minted = await tokens.bootstrap();
  if (minted) (opts.announceToken ?? ((t) => process.stdout.write(`\nNo admin token configured: created one. It is shown only this once:\n\n  OVERSEER_TOKEN=${t}\n\n`)))(minted);
  const health: HealthState = { draining: false, startedAt: Date.now() };
  const app = await buildApp({ ctx, store, runtime, tokens, metrics, logger, health, controlUrlAllow: config.controlUrlAllow, rateLimits: { agent: config.agentRateLimit, other: config.ingestRateLimit } });
  logger.debug({ since_process_start_ms: Math.round(performance.now()) }, 'app built');
  // Listen first so probes see 503 during recovery rather than connection refused.
  await app.listen({ host: config.host, port: config.port });
  logger.info({ address: app.server.address(), database: store.describe, four_eyes: config.fourEyes, since_process_start_ms: Math.round(performance.now()) }, 'listening; recovering');
  await runtime.start();

  let stopping: Promise<void> | null = null;
  const shutdown = (graceMs: number) => {
    stopping ??= (async () => {
      health.draining = true;
      const deadline = clock.now() + graceMs;
      logger.info({ grace_ms: graceMs }, 'shutting down: draining');
      // Bounded: a database that stopped answering must not hold the process past the grace.
      let timer: NodeJS.Timeout | undefined;
      const overdue = new Promise<null>((resolve) => {
        timer = setTimeout(() => {
          logger.error({ grace_ms: graceMs }, 'shutdown did not finish within the grace; exiting anyway (recovery will finish the job at next start)');
          resolve(null);
        }, graceMs + 2_000);
      });
      const drained = await Promise.race([
        runtime.shutdown(deadline).catch((err) => {
          logger.error({ err }, 'saving state on shutdown failed; recovery will finish the job at next start');
          return null;
        }),
        overdue,
      ]);
      clearTimeout(timer);
      await app.close();
      await store.close();
      logger.info({ drained }, 'shutdown complete');
    })();
    return stopping;
  };
  return { app, runtime, store, health, shutdown };
}

async function openWithRetry(url: string, logger: Logger): Promise<Store> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await Store.open({ url });
    } catch (err) {
      const transient = /ECONNREFUSED|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|timeout|SQLITE_BUSY|57P03|connection/i.test(String((err as Error)?.message) + String((err as { code?: string })?.code));
      if (!transient || Date.now() - started > 30_000) throw err;
      logger.warn({ err, attempt }, 'database not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
  }
}
