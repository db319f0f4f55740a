/** /supervisors: CRUD, commands, health, hierarchy, and per-supervisor listings. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { AppDeps } from '../app.js';
import { Description, IdParams, Name, Uuid, withList } from '../schemas.js';
import { page, pageParams } from '../pagination.js';
import { SUPERVISOR_STATUSES, type SupervisorCommand } from '../../domain/supervisor.js';
import { INTERVENTION_STATUSES } from '../../domain/intervention.js';
import { listSupervisors } from '../../store/supervisors.js';
import { listTeams } from '../../store/agents.js';
import { listInterventions } from '../../store/interventions.js';
import { alertsOfGroups, listGroups } from '../../store/alerts.js';
import { listAssignments } from '../../store/policies.js';
import {
  commandSupervisor,
  createSupervisor,
  deleteSupervisorById,
  getSupervisorOr404,
  hierarchy,
  supervisorHealth,
  updateSupervisorFields,
} from '../../runtime/services/supervisors.js';
import { createTeam } from '../../runtime/services/agents.js';
import { assignPolicy, evaluationsView, unassignPolicy } from '../../runtime/services/policies.js';

const Config = Type.Object({}, { additionalProperties: true, maxProperties: 32 });
const CreateBody = Type.Object({ name: Name, description: Type.Optional(Type.Union([Description, Type.Null()])), config: Type.Optional(Config), parent_id: Type.Optional(Type.Union([Uuid, Type.Null()])) }, { additionalProperties: false });
const UpdateBody = Type.Object({ name: Type.Optional(Name), description: Type.Optional(Type.Union([Description, Type.Null()])), config: Type.Optional(Config), parent_id: Type.Optional(Type.Union([Uuid, Type.Null()])) }, { additionalProperties: false, minProperties: 1 });
const TeamBody = Type.Object({ name: Name, objective: Type.Optional(Type.Union([Description, Type.Null()])), agent_ids: Type.Optional(Type.Array(Uuid, { maxItems: 1000 })) }, { additionalProperties: false });
const AssignBody = Type.Object({ policy_id: Uuid, priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000 })) }, { additionalProperties: false });

export const supervisorRoutes = (deps: AppDeps) => async (app: FastifyInstance) => {
  const { ctx } = deps;

  app.post<{ Body: Static<typeof CreateBody> }>('/supervisors', { schema: { body: CreateBody } }, async (req, reply) => {
    reply.status(201);
    return createSupervisor(ctx, req.body, req.actor);
  });

  app.get<{ Querystring: { limit?: string; cursor?: string; status?: string; parent_id?: string } }>(
    '/supervisors',
    { schema: { querystring: withList({ status: Type.Optional(Type.Union(SUPERVISOR_STATUSES.map((s) => Type.Literal(s)))), parent_id: Type.Optional(Uuid) }) } },
    async (req) => {
      const p = pageParams(req.query);
      const items = await deps.store.read((db) => listSupervisors(db, { ...p, status: req.query.status, parent_id: req.query.parent_id }));
      return page(items, p.limit, (s) => s.id);
    },
  );

  app.get<{ Params: { id: string } }>('/supervisors/:id', { schema: { params: IdParams } }, async (req) => getSupervisorOr404(ctx, req.params.id));

  app.put<{ Params: { id: string }; Body: Static<typeof UpdateBody> }>('/supervisors/:id', { schema: { params: IdParams, body: UpdateBody } }, async (req) =>
    updateSupervisorFields(ctx, req.params.id, req.body, req.actor),
  );

  app.delete<{ Params: { id: string } }>('/supervisors/:id', { schema: { params: IdParams } }, async (req, reply) => {
    await deleteSupervisorById(ctx, req.params.id, req.actor);
    return reply.status(204).send();
  });

  for (const command of ['start', 'pause', 'resume', 'stop'] as SupervisorCommand[]) {
    app.post<{ Params: { id: string } }>(`/supervisors/:id/${command}`, { schema: { params: IdParams } }, async (req) => commandSupervisor(ctx, req.params.id, command, req.actor));
  }

  app.get<{ Params: { id: string } }>('/supervisors/:id/health', { schema: { params: IdParams } }, async (req) => supervisorHealth(ctx, req.params.id));
  app.get<{ Params: { id: string } }>('/supervisors/:id/hierarchy', { schema: { params: IdParams } }, async (req) => hierarchy(ctx, req.params.id));

  app.get<{ Params: { id: string }; Querystring: { limit?: string; cursor?: string } }>('/supervisors/:id/teams', { schema: { params: IdParams, querystring: withList({}) } }, async (req) => {
    await getSupervisorOr404(ctx, req.params.id);
    const p = pageParams(req.query);
    return page(await deps.store.read((db) => listTeams(db, req.params.id, p)), p.limit, (t) => t.id);
  });
  app.post<{ Params: { id: string }; Body: Static<typeof TeamBody> }>('/supervisors/:id/teams', { schema: { params: IdParams, body: TeamBody } }, async (req, reply) => {
    reply.status(201);
    return createTeam(ctx, req.params.id, req.body, req.actor);
  });

  app.get<{ Params: { id: string } }>('/supervisors/:id/policies', { schema: { params: IdParams } }, async (req) => {
    await getSupervisorOr404(ctx, req.params.id);
    return { items: await deps.store.read((db) => listAssignments(db, req.params.id)), next_cursor: null };
  });
  app.post<{ Params: { id: string }; Body: Static<typeof AssignBody> }>('/supervisors/:id/policies', { schema: { params: IdParams, body: AssignBody } }, async (req, reply) => {
    await assignPolicy(ctx, req.params.id, req.body, req.actor);
    reply.status(201);
    return { items: await deps.store.read((db) => listAssignments(db, req.params.id)), next_cursor: null };
  });
  app.delete<{ Params: { id: string; policyId: string } }>('/supervisors/:id/policies/:policyId', { schema: { params: Type.Object({ id: Uuid, policyId: Uuid }, { additionalProperties: false }) } }, async (req, reply) => {
    await unassignPolicy(ctx, req.params.id, req.params.policyId, req.actor);
    return reply.status(204).send();
  });

  app.get<{ Params: { id: string }; Querystring: { limit?: string; cursor?: string; status?: string } }>(
    '/supervisors/:id/interventions',
    { schema: { params: IdParams, querystring: withList({ status: Type.Optional(Type.Union(INTERVENTION_STATUSES.map((s) => Type.Literal(s)))) }) } },
    async (req) => {
      await getSupervisorOr404(ctx, req.params.id);
      const p = pageParams(req.query);
      return page(await deps.store.read((db) => listInterventions(db, { supervisor_id: req.params.id, status: req.query.status, ...p })), p.limit, (i) => i.id);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { limit?: string; cursor?: string } }>('/supervisors/:id/alerts', { schema: { params: IdParams, querystring: withList({}) } }, async (req) => {
    await getSupervisorOr404(ctx, req.params.id);
    const p = pageParams(req.query);
    const groups = await deps.store.read((db) => listGroups(db, req.params.id, p));
    const alerts = await deps.store.read((db) => alertsOfGroups(db, groups.map((g) => g.id)));
    const items = groups.map((g) => ({ ...g, alerts: alerts.filter((a) => a.group_id === g.id) }));
    return page(items, p.limit, (g) => g.id);
  });

  app.get<{ Params: { id: string }; Querystring: { limit?: string; cursor?: string; agent_id?: string; policy_id?: string; trigger?: string } }>(
    '/supervisors/:id/evaluations',
    { schema: { params: IdParams, querystring: withList({ agent_id: Type.Optional(Uuid), policy_id: Type.Optional(Uuid), trigger: Type.Optional(Type.Union(['heartbeat', 'agent_stale', 'alert_group', 'sweep'].map((t) => Type.Literal(t)))) }) } },
    async (req) => {
      await getSupervisorOr404(ctx, req.params.id);
      const p = pageParams(req.query);
      const before = p.after !== undefined ? Number(p.after) : undefined;
      const items = await evaluationsView(ctx, { supervisor_id: req.params.id, agent_id: req.query.agent_id, policy_id: req.query.policy_id, trigger: req.query.trigger, limit: p.limit, before: Number.isFinite(before) ? before : undefined });
      return page(items, p.limit, (e) => e.id);
    },
  );
};
