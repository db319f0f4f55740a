/** /agents and /teams. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { AppDeps } from '../app.js';
import { IdParams, MAX_METRICS, METADATA_LIMIT, Name, Uuid, withList } from '../schemas.js';
import { page, pageParams } from '../pagination.js';
import { ApiError } from '../../domain/errors.js';
import { AGENT_STATUSES, TEAM_ROLES } from '../../domain/agent.js';
import { listAgents } from '../../store/agents.js';
import { addTeamMember, getAgentOr404, heartbeat, registerAgent, releaseAgent, removeAgent, removeTeamMember, teamView } from '../../runtime/services/agents.js';

const Metadata = Type.Object({}, { additionalProperties: true, maxProperties: 200 });
const CreateAgent = Type.Object({ name: Name, control_url: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 2048 }), Type.Null()])), metadata: Type.Optional(Metadata) }, { additionalProperties: false });
const MetricValue = Type.Union([Type.Number(), Type.String({ maxLength: 256 })]);
// A Record with a key pattern compiles to patternProperties only: without additionalProperties:false
// a key outside the pattern would slip through with any value at all (nested objects, null, ...).
const HeartbeatBody = Type.Union([Type.Null(), Type.Object({ metrics: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,127}$' }), MetricValue, { maxProperties: MAX_METRICS, additionalProperties: false })) }, { additionalProperties: false })]);
const MemberBody = Type.Object({ agent_id: Uuid, role: Type.Optional(Type.Union(TEAM_ROLES.map((r) => Type.Literal(r)))) }, { additionalProperties: false });

/** http(s) only, and when OVERSEER_CONTROL_URL_ALLOW is set, only those hosts. */
export function checkControlUrl(raw: string, allow: string[] | null): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ApiError(400, 'validation_failed', 'control_url: not a valid URL', { problems: [{ path: 'body.control_url', message: 'not a valid URL' }] });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ApiError(400, 'validation_failed', 'control_url: only http and https are allowed', { problems: [{ path: 'body.control_url', message: 'scheme must be http or https' }] });
  if (url.username || url.password) throw new ApiError(400, 'validation_failed', 'control_url: credentials in the URL are not allowed', { problems: [{ path: 'body.control_url', message: 'no credentials' }] });
  if (allow && !allow.includes(url.hostname.toLowerCase()) && !allow.includes(url.host.toLowerCase())) {
    throw new ApiError(400, 'validation_failed', `control_url: host ${url.hostname} is not in OVERSEER_CONTROL_URL_ALLOW`, { problems: [{ path: 'body.control_url', message: 'host not allowed' }] });
  }
  return url.toString();
}

export const teamAndAgentRoutes = (deps: AppDeps) => async (app: FastifyInstance) => {
  const { ctx } = deps;

  app.post<{ Body: Static<typeof CreateAgent> }>('/agents', { schema: { body: CreateAgent } }, async (req, reply) => {
    const metadata = req.body.metadata ?? {};
    if (Buffer.byteLength(JSON.stringify(metadata), 'utf8') > METADATA_LIMIT) throw new ApiError(400, 'validation_failed', `metadata: serialized size exceeds ${METADATA_LIMIT} bytes`, { problems: [{ path: 'body.metadata', message: `larger than ${METADATA_LIMIT} bytes` }] });
    const control_url = req.body.control_url ? checkControlUrl(req.body.control_url, deps.controlUrlAllow) : null;
    reply.status(201);
    return registerAgent(ctx, { name: req.body.name, control_url, metadata }, req.actor);
  });

  app.get<{ Querystring: { limit?: string; cursor?: string; status?: string; team_id?: string; supervisor_id?: string } }>(
    '/agents',
    { schema: { querystring: withList({ status: Type.Optional(Type.Union(AGENT_STATUSES.map((s) => Type.Literal(s)))), team_id: Type.Optional(Uuid), supervisor_id: Type.Optional(Uuid) }) } },
    async (req) => {
      const p = pageParams(req.query);
      const items = await deps.store.read((db) => listAgents(db, { ...p, status: req.query.status, team_id: req.query.team_id, supervisor_id: req.query.supervisor_id }));
      return page(items, p.limit, (a) => a.id);
    },
  );

  app.get<{ Params: { id: string } }>('/agents/:id', { schema: { params: IdParams } }, async (req) => getAgentOr404(ctx, req.params.id));

  app.delete<{ Params: { id: string } }>('/agents/:id', { schema: { params: IdParams } }, async (req, reply) => {
    await removeAgent(ctx, req.params.id, req.actor);
    return reply.status(204).send();
  });

  app.post<{ Params: { id: string }; Body: Static<typeof HeartbeatBody> }>('/agents/:id/heartbeat', { schema: { params: IdParams, body: HeartbeatBody } }, async (req) => {
    if (req.actor?.role === 'agent' && req.actor.agent_id !== req.params.id) throw new ApiError(403, 'forbidden', 'an agent token may only send its own agent\'s heartbeats');
    const metrics = (req.body && 'metrics' in req.body ? req.body.metrics : undefined) ?? {};
    for (const [k, v] of Object.entries(metrics)) {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new ApiError(400, 'validation_failed', `metrics.${k}: must be a finite number`, { problems: [{ path: `body.metrics.${k}`, message: 'not finite' }] });
    }
    return heartbeat(ctx, req.params.id, metrics);
  });

  app.post<{ Params: { id: string } }>('/agents/:id/release', { schema: { params: IdParams } }, async (req) => releaseAgent(ctx, req.params.id, req.actor));

  app.get<{ Params: { id: string } }>('/teams/:id', { schema: { params: IdParams } }, async (req) => teamView(ctx, req.params.id));

  app.post<{ Params: { id: string }; Body: Static<typeof MemberBody> }>('/teams/:id/members', { schema: { params: IdParams, body: MemberBody } }, async (req, reply) => {
    reply.status(201);
    return addTeamMember(ctx, req.params.id, req.body, req.actor);
  });

  app.delete<{ Params: { id: string; agentId: string } }>('/teams/:id/members/:agentId', { schema: { params: Type.Object({ id: Uuid, agentId: Uuid }, { additionalProperties: false }) } }, async (req) =>
    removeTeamMember(ctx, req.params.id, req.params.agentId, req.actor),
  );
};
