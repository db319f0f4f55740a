/** /policies: versions, activation, simulation. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { AppDeps } from '../app.js';
import { Description, IdParams, Name, Uuid, withList } from '../schemas.js';
import { page, pageParams } from '../pagination.js';
import { listPolicies } from '../../store/policies.js';
import { activatePolicy, createPolicy, policyView, POLICY_TYPES, simulate, updatePolicyVersion, versionsOf, viewOf } from '../../runtime/services/policies.js';

const PolicyType = Type.Union(POLICY_TYPES.map((t) => Type.Literal(t)));
// The definition's shape is checked by the policy validator, which names the path of every problem.
const Definition = Type.Unknown();
const CreateBody = Type.Object({ name: Name, policy_type: PolicyType, description: Type.Optional(Type.Union([Description, Type.Null()])), definition: Definition }, { additionalProperties: false, required: ['name', 'policy_type', 'definition'] });
const UpdateBody = Type.Object({ definition: Definition, description: Type.Optional(Type.Union([Description, Type.Null()])), policy_type: Type.Optional(PolicyType) }, { additionalProperties: false, required: ['definition'] });
const ActivateBody = Type.Object({ version: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647 })), is_active: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const SimulateBody = Type.Object(
  {
    context: Type.Optional(Type.Object({}, { additionalProperties: true })),
    agent_id: Type.Optional(Uuid),
    supervisor_id: Type.Optional(Uuid),
    event_type: Type.Optional(Type.Union(['heartbeat', 'agent_stale', 'alert_group', 'sweep'].map((t) => Type.Literal(t)))),
    version: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647 })),
  },
  { additionalProperties: false },
);

export const policyRoutes = (deps: AppDeps) => async (app: FastifyInstance) => {
  const { ctx } = deps;

  app.post<{ Body: Static<typeof CreateBody> }>('/policies', { schema: { body: CreateBody } }, async (req, reply) => {
    reply.status(201);
    return createPolicy(ctx, req.body, req.actor);
  });

  app.get<{ Querystring: { limit?: string; cursor?: string } }>('/policies', { schema: { querystring: withList({}) } }, async (req) => {
    const p = pageParams(req.query);
    const rows = await deps.store.read((db) => listPolicies(db, p));
    const items = await deps.store.read((db) => Promise.all(rows.map((r) => viewOf(db, r))));
    return page(items, p.limit, (x) => x.id);
  });

  app.get<{ Params: { id: string } }>('/policies/:id', { schema: { params: IdParams } }, async (req) => policyView(ctx, req.params.id));
  app.put<{ Params: { id: string }; Body: Static<typeof UpdateBody> }>('/policies/:id', { schema: { params: IdParams, body: UpdateBody } }, async (req) => updatePolicyVersion(ctx, req.params.id, req.body, req.actor));
  app.get<{ Params: { id: string } }>('/policies/:id/versions', { schema: { params: IdParams } }, async (req) => ({ items: await versionsOf(ctx, req.params.id), next_cursor: null }));
  app.post<{ Params: { id: string }; Body: Static<typeof ActivateBody> }>('/policies/:id/activate', { schema: { params: IdParams, body: ActivateBody } }, async (req) => activatePolicy(ctx, req.params.id, req.body, req.actor));
  app.post<{ Params: { id: string }; Body: Static<typeof SimulateBody> }>('/policies/:id/simulate', { schema: { params: IdParams, body: SimulateBody } }, async (req) =>
    simulate(ctx, req.params.id, req.body as Parameters<typeof simulate>[2]),
  );
};
