/** /alerts, /events (the journal) and /tokens. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { AppDeps } from '../app.js';
import { Name, Uuid } from '../schemas.js';
import { ApiError } from '../../domain/errors.js';
import { listEvents } from '../../store/events.js';
import { raiseAlert, SEVERITIES } from '../../runtime/services/alerts.js';
import { ROLES, type Role } from '../../runtime/services/tokens.js';

const AlertBody = Type.Object(
  {
    source: Type.String({ minLength: 1, maxLength: 255 }),
    severity: Type.Union(SEVERITIES.map((s) => Type.Literal(s))),
    kind: Type.String({ minLength: 1, maxLength: 255 }),
    agent_id: Type.Optional(Uuid),
    supervisor_id: Type.Optional(Uuid),
    message: Type.Optional(Type.String({ maxLength: 4096 })),
  },
  { additionalProperties: false },
);
const EventsQuery = Type.Object(
  {
    supervisor_id: Type.Optional(Uuid),
    after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    actor: Type.Optional(Type.String({ maxLength: 300 })),
    entity_type: Type.Optional(Type.String({ maxLength: 50 })),
    since: Type.Optional(Type.String({ format: 'date-time' })),
    until: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
const TokenBody = Type.Object({ role: Type.Union(ROLES.map((r) => Type.Literal(r))), name: Name, agent_id: Type.Optional(Uuid) }, { additionalProperties: false });

export const miscRoutes = (deps: AppDeps) => async (app: FastifyInstance) => {
  const { ctx } = deps;

  app.post<{ Body: Static<typeof AlertBody> }>('/alerts', { schema: { body: AlertBody } }, async (req, reply) => {
    if (req.actor?.role === 'agent' && req.body.agent_id !== req.actor.agent_id) throw new ApiError(403, 'forbidden', 'an agent token may only raise alerts about its own agent');
    reply.status(201);
    return raiseAlert(ctx, req.body, req.actor);
  });

  app.get<{ Querystring: Static<typeof EventsQuery> }>('/events', { schema: { querystring: EventsQuery } }, async (req) => {
    const limit = req.query.limit ? Number(req.query.limit) : 100;
    if (limit < 1 || limit > 1000) throw new ApiError(400, 'validation_failed', 'limit: between 1 and 1000', { problems: [{ path: 'querystring.limit', message: 'between 1 and 1000' }] });
    const items = await deps.store.read((db) =>
      listEvents(db, { supervisor_id: req.query.supervisor_id, after: (req.query.after ?? req.query.cursor) ? Number(req.query.after ?? req.query.cursor) : undefined, actor: req.query.actor, entity_type: req.query.entity_type, since: req.query.since, until: req.query.until, limit }),
    );
    const last = items[items.length - 1];
    return { items, next_cursor: items.length === limit && last ? String(last.seq) : null };
  });

  // The audit trail: every authenticated mutation with who did it, filterable by actor, resource and time.
  const AuditQuery = Type.Object(
    {
      actor: Type.Optional(Type.String({ maxLength: 300 })),
      resource: Type.Optional(Type.String({ maxLength: 50 })),
      resource_id: Type.Optional(Uuid),
      since: Type.Optional(Type.String({ format: 'date-time' })),
      until: Type.Optional(Type.String({ format: 'date-time' })),
      after: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
      limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    },
    { additionalProperties: false },
  );
  app.get<{ Querystring: Static<typeof AuditQuery> }>('/audit', { schema: { querystring: AuditQuery } }, async (req) => {
    const limit = req.query.limit ? Number(req.query.limit) : 100;
    if (limit < 1 || limit > 1000) throw new ApiError(400, 'validation_failed', 'limit: between 1 and 1000', { problems: [{ path: 'querystring.limit', message: 'between 1 and 1000' }] });
    const items = await deps.store.read((db) =>
      listEvents(db, { withActor: true, actor: req.query.actor, entity_type: req.query.resource, entity_id: req.query.resource_id, since: req.query.since, until: req.query.until, after: (req.query.after ?? req.query.cursor) ? Number(req.query.after ?? req.query.cursor) : undefined, limit }),
    );
    const last = items[items.length - 1];
    return { items, next_cursor: items.length === limit && last ? String(last.seq) : null };
  });

  app.get('/tokens', async () => ({ items: await deps.tokens.list(), next_cursor: null }));
  app.post<{ Body: Static<typeof TokenBody> }>('/tokens', { schema: { body: TokenBody } }, async (req, reply) => {
    reply.status(201);
    return deps.tokens.create({ role: req.body.role as Role, name: req.body.name, agent_id: req.body.agent_id ?? null }, req.actor);
  });
  app.delete<{ Params: { id: string } }>('/tokens/:id', { schema: { params: Type.Object({ id: Uuid }, { additionalProperties: false }) } }, async (req, reply) => {
    await deps.tokens.revoke(req.params.id, req.actor);
    return reply.status(204).send();
  });
};
