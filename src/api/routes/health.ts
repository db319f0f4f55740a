/** Orchestrator endpoints: liveness, readiness, detailed health and Prometheus metrics. */
import type { FastifyInstance } from 'fastify';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { AppDeps } from '../app.js';
import { countSupervisorsByStatus } from '../../store/supervisors.js';
import { countInterventionsByStatus } from '../../store/interventions.js';
import { countAgentsByStatus } from '../../store/agents.js';

/** Mutable process state the entry point flips (draining) and the health routes read. */
export interface HealthState {
  draining: boolean;
  startedAt: number;
}

const STORE_TIMEOUT_MS = 1_000;
/** Event-loop lag above this fails liveness: the process is wedged and should be restarted. */
const LIVENESS_LAG_MS = 5_000;
const WARN_LAG_MS = 200;

async function timedPing(deps: AppDeps): Promise<{ ok: boolean; ms: number | null; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const ms = await Promise.race([deps.store.ping(), new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no answer within ${STORE_TIMEOUT_MS} ms`)), STORE_TIMEOUT_MS)))]);
    deps.metrics.storeSeconds.observe(ms / 1000);
    return { ok: true, ms: Math.round(ms * 1000) / 1000 };
  } catch (err) {
    return { ok: false, ms: null, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

export const healthRoutes = (deps: AppDeps) => async (app: FastifyInstance) => {
  const lag = monitorEventLoopDelay({ resolution: 20 });
  lag.enable();
  // A heartbeat timer: if the loop is blocked, this timestamp goes old and /livez fails.
  let lastTick = Date.now();
  const ticker = setInterval(() => (lastTick = Date.now()), 500);
  ticker.unref();
  app.addHook('onClose', async () => {
    clearInterval(ticker);
    lag.disable();
  });

  app.get('/livez', async (_req, reply) => {
    const stalled = Date.now() - lastTick;
    if (stalled > LIVENESS_LAG_MS) return reply.status(503).send({ status: 'fail', event_loop_stalled_ms: stalled });
    return { status: 'ok', phase: deps.runtime.phase };
  });

  app.get('/readyz', async (_req, reply) => {
    if (deps.health.draining) return reply.status(503).send({ status: 'draining', failing: ['draining'] });
    if (!deps.runtime.ready) return reply.status(503).send({ status: 'not_ready', failing: ['recovery'], phase: deps.runtime.phase });
    const db = await timedPing(deps);
    if (!db.ok) return reply.status(503).send({ status: 'not_ready', failing: ['database'], error: db.error });
    return { status: 'ready' };
  });

  app.get('/healthz', async (req, reply) => {
    const now = new Date().toISOString();
    const db = await timedPing(deps);
    const lagP99 = lag.percentile(99) / 1e6;
    const hosted = [...deps.runtime.hosted.values()];
    const unresponsive = hosted.filter((a) => a.sup.status === 'UNRESPONSIVE').map((a) => a.id);
    const checks: Record<string, unknown[]> = {
      'database:responseTime': [{ componentType: 'datastore', observedValue: db.ms, observedUnit: 'ms', status: db.ok ? 'pass' : 'fail', time: now, ...(db.error ? { output: db.error } : {}), ...(deps.store.lastError ? { lastError: deps.store.lastError } : {}) }],
      'eventLoop:lag': [{ componentType: 'system', observedValue: Math.round(lagP99 * 100) / 100, observedUnit: 'ms (p99)', status: lagP99 > WARN_LAG_MS ? 'warn' : 'pass', time: now }],
      'supervisors:unresponsive': [{ componentType: 'component', observedValue: unresponsive.length, status: unresponsive.length ? 'warn' : 'pass', time: now, ...(unresponsive.length ? { affectedEndpoints: unresponsive.map((id) => `/api/v1/supervisors/${id}/health`) } : {}) }],
      recovery: [{ componentType: 'component', observedValue: deps.runtime.phase, status: deps.runtime.ready ? 'pass' : 'fail', time: now, ...(deps.runtime.recovery ? { observedUnit: 'phase', output: `recovered in ${deps.runtime.recovery.duration_ms} ms` } : {}) }],
      draining: [{ componentType: 'component', observedValue: deps.health.draining, status: deps.health.draining ? 'fail' : 'pass', time: now }],
    };
    const statuses = Object.values(checks).map((c) => (c[0] as { status: string }).status);
    const status = statuses.includes('fail') ? 'fail' : statuses.includes('warn') ? 'warn' : 'pass';
    const body: Record<string, unknown> = { status, serviceId: deps.runtime.instanceId, checks };
    if ((req.query as Record<string, unknown>)?.verbose !== undefined) {
      body.output = undefined;
      body.details = {
        phase: deps.runtime.phase,
        recovery: deps.runtime.recovery,
        supervisors_hosted: hosted.map((a) => ({ id: a.id, name: a.sup.name, status: a.sup.status, last_heartbeat_at: a.sup.last_heartbeat_at })),
        executor_in_flight: deps.runtime.executor.inFlightCount,
        uptime_s: Math.round((Date.now() - deps.health.startedAt) / 1000),
      };
    }
    return reply.status(status === 'fail' ? 503 : 200).type('application/health+json').send(JSON.stringify(body));
  });

  app.get('/metrics', async (_req, reply) => {
    try {
      const [sups, ints, agents] = await Promise.all([
        deps.store.read((db) => countSupervisorsByStatus(db)),
        deps.store.read((db) => countInterventionsByStatus(db)),
        deps.store.read((db) => countAgentsByStatus(db)),
      ]);
      deps.metrics.supervisorsByStatus.reset();
      for (const [k, v] of Object.entries(sups)) deps.metrics.supervisorsByStatus.set({ status: k }, v);
      deps.metrics.interventionsByStatus.reset();
      for (const [k, v] of Object.entries(ints)) deps.metrics.interventionsByStatus.set({ status: k }, v);
      deps.metrics.agentsByStatus.reset();
      for (const [k, v] of Object.entries(agents)) deps.metrics.agentsByStatus.set({ status: k }, v);
    } catch {
      // Store down: serve process metrics anyway; the gauges keep their last values.
    }
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
};
