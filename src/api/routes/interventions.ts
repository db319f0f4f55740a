/** /interventions: manual creation and the approval workflow. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { AppDeps } from '../app.js';
import { IdParams, Uuid } from '../schemas.js';
import { INTERVENTION_TYPES, TARGET_TYPES } from '../../domain/intervention.js';
import { approveIntervention, createIntervention, getInterventionOr404, rejectIntervention } from '../../runtime/services/interventions.js';
import { ApiError } from '../../domain/errors.js';

const CreateBody = Type.Object(
  {
    supervisor_id: Uuid,
    intervention_type: Type.Union(INTERVENTION_TYPES.map((t) => Type.Literal(t))),
    target_type: Type.Union(TARGET_TYPES.map((t) => Type.Literal(t))),
    target_id: Uuid,
    reason: Type.String({ minLength: 1, maxLength: 4096 }),
    action_details: Type.Optional(Type.Object({}, { additionalProperties: true, maxProperties: 100 })),
    approval_required: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const DecisionBody = Type.Union([Type.Null(), Type.Object({ comment: Type.Optional(Type.String({ maxLength: 4096 })), reason: Type.Optional(Type.String({ maxLength: 4096 })) }, { additionalProperties: false })]);

export const interventionRoutes = (deps: AppDeps) => async (app: FastifyInstance) => {
  const { ctx } = deps;
  app.post<{ Body: Static<typeof CreateBody> }>('/interventions', { schema: { body: CreateBody } }, async (req, reply) => {
    if (Buffer.byteLength(JSON.stringify(req.body.action_details ?? {}), 'utf8') > 16 * 1024) throw new ApiError(400, 'validation_failed', 'action_details: larger than 16 KiB', { problems: [{ path: 'body.action_details', message: 'too large' }] });
    reply.status(201);
    return createIntervention(ctx, req.body, req.actor);
  });
  app.get<{ Params: { id: string } }>('/interventions/:id', { schema: { params: IdParams } }, async (req) => getInterventionOr404(ctx, req.params.id));
  app.put<{ Params: { id: string }; Body: Static<typeof DecisionBody> }>('/interventions/:id/approve', { schema: { params: IdParams, body: DecisionBody } }, async (req) =>
    approveIntervention(ctx, req.params.id, req.actor, req.body?.comment),
  );
  app.put<{ Params: { id: string }; Body: Static<typeof DecisionBody> }>('/interventions/:id/reject', { schema: { params: IdParams, body: DecisionBody } }, async (req) =>
    rejectIntervention(ctx, req.params.id, req.actor, req.body?.reason ?? req.body?.comment),
  );
};
