/** The Fastify application: auth, permissions, error mapping, draining, and the route modules. */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ApiError } from '../domain/errors.js';
import type { Store } from '../store/store.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Metrics } from '../runtime/metrics.js';
import type { Logger } from '../runtime/logger.js';
import type { Actor, ServiceContext } from '../runtime/services/context.js';
import type { TokenService } from '../runtime/services/tokens.js';
import { PERMISSIONS, permissionKey } from './permissions.js';
import { BODY_LIMIT, findHostileJson } from './schemas.js';
import { RateLimiter } from './rate-limit.js';
import { createValidatorCompiler } from './validation.js';
import { healthRoutes, type HealthState } from './routes/health.js';
import { supervisorRoutes } from './routes/supervisors.js';
import { teamAndAgentRoutes } from './routes/agents.js';
import { policyRoutes } from './routes/policies.js';
import { interventionRoutes } from './routes/interventions.js';
import { miscRoutes } from './routes/misc.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | null;
  }
}

export interface AppDeps {
  ctx: ServiceContext;
  store: Store;
  runtime: Runtime;
  tokens: TokenService;
  metrics: Metrics;
  logger: Logger;
  health: HealthState;
  controlUrlAllow: string[] | null;
  /** Requests per second per token on ingest routes: agent tokens, and all other tokens. */
  rateLimits?: { agent: number; other: number };
}

const INGEST_ROUTES = new Set(['POST /api/v1/agents/:id/heartbeat', 'POST /api/v1/alerts']);

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const MAX_PROBLEMS_SHOWN = 50;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    // The router rejects undecodable URLs and over-long path parameters before any hook or the
    // error handler runs; answer those in the API's error shape too, without echoing the URL.
    frameworkErrors: (err, _req, reply) => {
      const status = typeof err.statusCode === 'number' ? err.statusCode : 400;
      const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path parameter is too long' : err.code === 'FST_ERR_BAD_URL' ? 'the request URL is not valid (malformed percent-encoding)' : 'the request could not be routed';
      void (reply as FastifyReply).status(status).send({ error: status >= 500 ? 'internal' : 'bad_request', message, details: { code: err.code ?? null } });
    },
  });

  app.setValidatorCompiler(createValidatorCompiler());
  app.decorateRequest('actor', null);
  const limits = deps.rateLimits ?? { agent: 20, other: 20_000 };
  const agentLimiter = new RateLimiter({ ratePerSecond: limits.agent, burst: limits.agent * 2 });
  const otherLimiter = new RateLimiter({ ratePerSecond: limits.other, burst: limits.other });

  // Every /api/v1 route must have an entry in the permissions table.
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/api/v1')) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) {
      if (m === 'HEAD' || m === 'OPTIONS') continue;
      if (!PERMISSIONS[permissionKey(m, route.url)]) throw new Error(`route ${m} ${route.url} has no entry in the permissions table`);
    }
  });

  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (!req.url.startsWith('/api/')) return;
    const routeUrl = req.routeOptions.url;
    if (!routeUrl) return; // 404 handler answers
    const header = req.headers.authorization;
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!token) throw new ApiError(401, 'unauthorized', 'missing bearer token: send Authorization: Bearer <token>');
    const actor = await deps.tokens.authenticate(token);
    if (!actor) throw new ApiError(401, 'unauthorized', 'invalid or revoked token');
    const allowed = PERMISSIONS[permissionKey(req.method === 'HEAD' ? 'GET' : req.method, routeUrl)];
    if (!allowed?.includes(actor.role)) throw new ApiError(403, 'forbidden', `role ${actor.role} may not ${req.method} ${routeUrl}`, { role: actor.role });
    req.actor = actor;
    if (INGEST_ROUTES.has(permissionKey(req.method, routeUrl))) {
      const waitMs = (actor.role === 'agent' ? agentLimiter : otherLimiter).take(actor.id);
      if (waitMs > 0) {
        const seconds = Math.max(1, Math.ceil(waitMs / 1000));
        throw new ApiError(429, 'rate_limited', `too many requests for this token; retry in ${seconds} s`, { retry_after_seconds: seconds });
      }
    }
    if (MUTATING.has(req.method) && deps.health.draining) throw new ApiError(503, 'shutting_down', 'this Overseer instance is shutting down; retry against another instance or after restart');
    if (MUTATING.has(req.method) && !deps.runtime.ready) throw new ApiError(503, 'not_ready', 'recovery is still running; retry shortly');
  });

  // Before the schemas run: NUL characters and runaway nesting anywhere in the body or query.
  app.addHook('preValidation', async (req: FastifyRequest) => {
    const problem = findHostileJson(req.body, 'body') ?? findHostileJson(req.query, 'querystring');
    if (problem) throw new ApiError(400, 'validation_failed', `${problem.path}: ${problem.message}`, { problems: [problem] });
  });

  app.setErrorHandler((err, req, reply) => {
    const e = err as Error & { statusCode?: number; code?: string; validation?: unknown[]; validationContext?: string };
    if (err instanceof ApiError) {
      if (err.status === 503) reply.header('retry-after', '2');
      if (err.status === 429) reply.header('retry-after', String(err.details.retry_after_seconds ?? 1));
      return reply.status(err.status).send({ error: err.code, message: err.message, details: err.details });
    }
    if (e.validation) {
      const problems = (e.validation as { instancePath?: string; message?: string; params?: Record<string, unknown>; keyword?: string }[]).map((v) => {
        const base = `${e.validationContext ?? 'body'}${(v.instancePath ?? '').replace(/\//g, '.')}`;
        const extra = v.keyword === 'additionalProperties' ? `.${String(v.params?.additionalProperty)}` : v.keyword === 'required' ? `.${String(v.params?.missingProperty)}` : '';
        const message = v.keyword === 'additionalProperties' ? 'unknown field' : v.keyword === 'required' ? 'is required' : v.message ?? 'invalid';
        return { path: `${base}${extra}`, message };
      });
      // allErrors reports every bad item of an array: cap the list so a 1 MiB request cannot earn a many-MiB answer.
      const shown = problems.slice(0, MAX_PROBLEMS_SHOWN);
      return reply.status(400).send({ error: 'validation_failed', message: problems.map((p) => `${p.path}: ${p.message}`).slice(0, 3).join('; '), details: { problems: shown, ...(shown.length < problems.length ? { problems_total: problems.length } : {}) } });
    }
    // Two callers racing to create the same thing: the database's unique constraint decides.
    if (deps.store.caps.isUniqueViolation(err)) return reply.status(409).send({ error: 'conflict', message: 'a concurrent request created the same thing first; re-read and retry', details: {} });
    if (deps.store.caps.isTransient(err)) {
      reply.header('retry-after', '2');
      return reply.status(503).send({ error: 'store_unavailable', message: 'the database is unavailable; nothing was changed', details: {} });
    }
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.status(413).send({ error: 'payload_too_large', message: `request body exceeds ${BODY_LIMIT} bytes`, details: { limit: BODY_LIMIT } });
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.status(415).send({ error: 'unsupported_media_type', message: 'send JSON with content-type: application/json', details: {} });
    if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return reply.status(400).send({ error: 'bad_request', message: 'empty JSON body; send {} or omit the content-type', details: {} });
    if (e instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return reply.status(400).send({ error: 'bad_request', message: `malformed JSON body: ${e.message}`, details: {} });
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.status(e.statusCode).send({ error: 'bad_request', message: e.message, details: { code: e.code ?? null } });
    }
    req.log.error({ err, url: req.url, method: req.method }, 'unhandled error');
    return reply.status(500).send({ error: 'internal', message: 'internal error; see the server log', details: {} });
  });

  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}`, details: {} }));

  await app.register(healthRoutes(deps));
  await app.register(supervisorRoutes(deps), { prefix: '/api/v1' });
  await app.register(teamAndAgentRoutes(deps), { prefix: '/api/v1' });
  await app.register(policyRoutes(deps), { prefix: '/api/v1' });
  await app.register(interventionRoutes(deps), { prefix: '/api/v1' });
  await app.register(miscRoutes(deps), { prefix: '/api/v1' });
  return app;
}
