/** Manual interventions and the approval workflow. */
import { ApiError } from '../../domain/errors.js';
import type { InterventionType, TargetType } from '../../domain/intervention.js';
import { approvalRule, rollbackPlan } from '../../domain/safety.js';
import { validateConfig } from '../../domain/supervisor.js';
import { iso } from '../../domain/time.js';
import { appendEvent } from '../../store/events.js';
import { countMembers, getAgent, getTeam } from '../../store/agents.js';
import { getIntervention, insertIntervention, transitionIntervention, type Intervention } from '../../store/interventions.js';
import { getVersion } from '../../store/policies.js';
import { getSupervisor } from '../../store/supervisors.js';
import { actorLabel, requireFourEyes, type Actor, type ServiceContext } from './context.js';

export interface CreateInterventionInput {
  supervisor_id: string;
  intervention_type: InterventionType;
  target_type: TargetType;
  target_id: string;
  reason: string;
  action_details?: Record<string, unknown>;
  approval_required?: boolean;
}

export async function getInterventionOr404(ctx: ServiceContext, id: string): Promise<Intervention> {
  const i = await ctx.store.read((db) => getIntervention(db, id));
  if (!i) throw ApiError.notFound('intervention', id);
  return i;
}

export async function createIntervention(ctx: ServiceContext, input: CreateInterventionInput, actor: Actor | null): Promise<Intervention> {
  const id = ctx.newId();
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    const sup = await getSupervisor(trx, input.supervisor_id);
    if (!sup) throw new ApiError(400, 'validation_failed', `supervisor_id: supervisor ${input.supervisor_id} not found`, { problems: [{ path: 'supervisor_id', message: 'not found' }] });
    if (sup.status === 'TERMINATED') throw ApiError.conflict(`supervisor ${sup.id} is TERMINATED`);
    const target = input.target_type === 'AGENT' ? await getAgent(trx, input.target_id) : await getTeam(trx, input.target_id);
    if (!target) throw new ApiError(400, 'validation_failed', `target_id: ${input.target_type.toLowerCase()} ${input.target_id} not found`, { problems: [{ path: 'target_id', message: 'not found' }] });
    if (input.intervention_type === 'TEAM_RESTART' && input.target_type !== 'TEAM') throw new ApiError(400, 'validation_failed', 'target_type: TEAM_RESTART needs target_type TEAM', { problems: [{ path: 'target_type', message: 'must be TEAM for TEAM_RESTART' }] });
    if (['AGENT_RESTART', 'AGENT_QUARANTINE', 'TASK_REASSIGN', 'PRIORITY_OVERRIDE'].includes(input.intervention_type) && input.target_type !== 'AGENT') {
      throw new ApiError(400, 'validation_failed', `target_type: ${input.intervention_type} needs target_type AGENT`, { problems: [{ path: 'target_type', message: 'must be AGENT' }] });
    }
    const config = validateConfig(sup.config);
    const timeoutMs = (config.ok ? config.value.intervention_timeout_seconds : 300) * 1000;
    // The safety rules apply whatever the caller asked for: a destructive type, or more agents
    // affected than the limit (a team counts its active members), waits for a human.
    const affected = input.target_type === 'TEAM' ? await countMembers(trx, input.target_id) : 1;
    const needsApproval = approvalRule(input.intervention_type, affected, input.approval_required === true).required;
    const forced = approvalRule(input.intervention_type, affected, false);
    const rollback = rollbackPlan(input.intervention_type, input.target_id);
    const details = input.action_details ?? {};
    await insertIntervention(trx, {
      id,
      supervisor_id: sup.id,
      intervention_type: input.intervention_type,
      target_type: input.target_type,
      target_id: input.target_id,
      reason: input.reason,
      action_details: { ...details, ...(rollback && details.rollback_plan === undefined ? { rollback_plan: rollback } : {}), ...(forced.required ? { approval_reason: forced.reason } : {}) },
      approval_required: needsApproval,
      requested_by: actorLabel(actor),
      requested_by_id: actor?.id ?? null,
      status: needsApproval ? 'PENDING' : 'APPROVED',
      next_attempt_at: needsApproval ? null : now,
      deadline_at: needsApproval ? null : now + timeoutMs,
      at: now,
    });
    await appendEvent(trx, { supervisor_id: sup.id, entity_type: 'intervention', entity_id: id, type: 'intervention.created', actor: actorLabel(actor), payload: { intervention_type: input.intervention_type, target_type: input.target_type, target_id: input.target_id, status: needsApproval ? 'PENDING' : 'APPROVED', ...(forced.required ? { approval_reason: forced.reason } : {}) }, at: now });
  });
  ctx.runtime.executor.poke();
  return getInterventionOr404(ctx, id);
}

export async function approveIntervention(ctx: ServiceContext, id: string, actor: Actor | null, comment?: string): Promise<Intervention> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    const i = await getIntervention(trx, id);
    if (!i) throw ApiError.notFound('intervention', id);
    if (i.status !== 'PENDING') throw new ApiError(409, 'illegal_transition', `intervention ${id} is ${i.status}, not PENDING`, { status: i.status });
    // Whoever asked for it cannot approve it: the caller who created it, or the author of the
    // policy version that did.
    const version = i.policy_id && i.policy_version !== null ? await getVersion(trx, i.policy_id, i.policy_version) : undefined;
    requireFourEyes(ctx, actor, [
      { id: i.requested_by_id, did: 'requested this intervention' },
      { id: version?.created_by_id, did: `wrote version ${i.policy_version} of policy ${i.policy_id}, which created this intervention` },
    ]);
    const sup = await getSupervisor(trx, i.supervisor_id);
    const config = sup ? validateConfig(sup.config) : null;
    const timeoutMs = (config?.ok ? config.value.intervention_timeout_seconds : 300) * 1000;
    const ok = await transitionIntervention(trx, id, ['PENDING'], { status: 'APPROVED', approved_by: actorLabel(actor), approved_by_id: actor?.id ?? null, approved_at: iso(now), next_attempt_at: iso(now), deadline_at: iso(now + timeoutMs) }, now);
    if (!ok) throw ApiError.conflict(`intervention ${id} changed concurrently`);
    await appendEvent(trx, { supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: id, type: 'intervention.approved', actor: actorLabel(actor), payload: { comment: comment ?? null }, at: now });
  });
  ctx.runtime.executor.poke();
  return getInterventionOr404(ctx, id);
}

export async function rejectIntervention(ctx: ServiceContext, id: string, actor: Actor | null, reason?: string): Promise<Intervention> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    const i = await getIntervention(trx, id);
    if (!i) throw ApiError.notFound('intervention', id);
    if (i.status !== 'PENDING') throw new ApiError(409, 'illegal_transition', `intervention ${id} is ${i.status}, not PENDING`, { status: i.status });
    const ok = await transitionIntervention(trx, id, ['PENDING'], { status: 'REJECTED', rejected_by: actorLabel(actor), rejected_reason: reason ?? null, completed_at: iso(now) }, now);
    if (!ok) throw ApiError.conflict(`intervention ${id} changed concurrently`);
    await appendEvent(trx, { supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: id, type: 'intervention.rejected', actor: actorLabel(actor), payload: { reason: reason ?? null }, at: now });
  });
  return getInterventionOr404(ctx, id);
}
