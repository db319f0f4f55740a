/** Policies: versions, activation, assignment and side-effect-free simulation. */
import { ApiError } from '../../domain/errors.js';
import { compileCondition, planActions, validatePolicyDefinition, type EventType, type PolicyContext, type PolicyDefinition } from '../../domain/policy.js';
import { appendEvent } from '../../store/events.js';
import { getAgent, getTeam, countMembers } from '../../store/agents.js';
import { listEvaluations, policyIdByName, getPolicy, getVersion, insertPolicy, insertVersion, listVersions, updatePolicy, upsertAssignment, deleteAssignment, type Policy, type PolicyVersion } from '../../store/policies.js';
import type { Db } from '../../store/store.js';
import { getSupervisor } from '../../store/supervisors.js';
import { buildContext, compiledFor } from '../evaluator.js';
import { actorLabel, requireFourEyes, type Actor, type ServiceContext } from './context.js';

export const POLICY_TYPES = ['INTERVENTION', 'COORDINATION', 'ESCALATION', 'LEARNING'] as const;

export interface PolicyView extends Policy {
  /** The version `definition` belongs to: the active one, or the newest while none is active yet. */
  version: number;
  definition: PolicyDefinition | null;
  /**
   * The newest version when it is not the active one: written and waiting for activation
   * (four-eyes), or the version a rollback stepped back from. Null when the newest runs.
   */
  pending_version: number | null;
}

function checkDefinition(def: unknown): PolicyDefinition {
  const r = validatePolicyDefinition(def, 'definition');
  if (!r.ok) throw ApiError.invalid(r.problems);
  return r.value;
}

/** A policy with the definition it runs (or, while no version is active, the one waiting). */
export async function viewOf(db: Db, p: Policy): Promise<PolicyView> {
  const shown = p.active_version || p.latest_version;
  const v = await getVersion(db, p.id, shown);
  return { ...p, version: shown, definition: v?.definition ?? null, pending_version: p.latest_version > p.active_version ? p.latest_version : null };
}

export async function policyView(ctx: ServiceContext, id: string): Promise<PolicyView> {
  return ctx.store.read(async (db) => {
    const p = await getPolicy(db, id);
    if (!p) throw ApiError.notFound('policy', id);
    return viewOf(db, p);
  });
}

/**
 * POST: the policy with version 1. With four-eyes on, no version is active yet (active_version 0)
 * until another admin activates version 1; with it off, version 1 is active at once.
 */
export async function createPolicy(ctx: ServiceContext, input: { name: string; policy_type: string; description?: string | null; definition: unknown }, actor: Actor | null): Promise<PolicyView> {
  const definition = checkDefinition(input.definition);
  const id = ctx.newId();
  const now = ctx.clock.now();
  const active = !ctx.settings.fourEyes;
  await ctx.store.tx(async (trx) => {
    const dup = await policyIdByName(trx, input.name);
    if (dup) throw ApiError.conflict(`a policy named "${input.name}" already exists (${dup}); PUT /policies/${dup} adds a version`, { policy_id: dup });
    await insertPolicy(trx, { id, name: input.name, policy_type: input.policy_type, description: input.description ?? null, definition, created_by: actorLabel(actor), created_by_id: actor?.id ?? null, active, at: now });
    await appendEvent(trx, { entity_type: 'policy', entity_id: id, type: 'policy.created', actor: actorLabel(actor), payload: { name: input.name, version: 1, active, definition }, at: now });
  });
  return policyView(ctx, id);
}

/**
 * PUT: a new version n+1; older versions stay listable and re-activatable. With four-eyes on it
 * waits for activation by another admin while the current active version keeps running; with it
 * off it is active at once.
 */
export async function updatePolicyVersion(ctx: ServiceContext, id: string, input: { definition: unknown; description?: string | null; policy_type?: string }, actor: Actor | null): Promise<PolicyView> {
  const definition = checkDefinition(input.definition);
  const now = ctx.clock.now();
  const active = !ctx.settings.fourEyes;
  await ctx.store.tx(async (trx) => {
    const p = await getPolicy(trx, id);
    if (!p) throw ApiError.notFound('policy', id);
    const version = p.latest_version + 1;
    await insertVersion(trx, { policy_id: id, version, definition, created_by: actorLabel(actor), created_by_id: actor?.id ?? null, at: now });
    const ok = await updatePolicy(trx, id, { latest_version: version, ...(active ? { active_version: version } : {}), ...(input.description !== undefined ? { description: input.description } : {}), ...(input.policy_type ? { policy_type: input.policy_type } : {}) }, now, p.latest_version);
    if (!ok) throw ApiError.conflict(`policy ${id} changed concurrently; retry`);
    await appendEvent(trx, { entity_type: 'policy', entity_id: id, type: 'policy.version_created', actor: actorLabel(actor), payload: { version, active, previous_active: p.active_version, definition }, at: now });
  });
  if (active) ctx.runtime.policiesChanged();
  return policyView(ctx, id);
}

/**
 * Makes `version` (default: the newest) the active one: activating what PUT left pending, or a
 * rollback to an older version. With four-eyes on, whoever wrote that version cannot activate it.
 * `is_active: false` switches the policy off (keeping its active version unless one is named);
 * stopping a policy needs no second person.
 */
export async function activatePolicy(ctx: ServiceContext, id: string, input: { version?: number; is_active?: boolean }, actor: Actor | null): Promise<PolicyView> {
  const now = ctx.clock.now();
  const switchOff = input.is_active === false;
  await ctx.store.tx(async (trx) => {
    const p = await getPolicy(trx, id);
    if (!p) throw ApiError.notFound('policy', id);
    const version = input.version ?? (switchOff ? p.active_version : p.latest_version);
    const v = await getVersion(trx, id, version);
    // Version 0 is "none active yet": a policy that never ran may still be switched off.
    if (!v && !(switchOff && version === 0)) throw ApiError.notFound(`policy ${id} version`, String(version));
    if (!switchOff) requireFourEyes(ctx, actor, [{ id: v?.created_by_id, did: `wrote version ${version} of this policy` }]);
    await updatePolicy(trx, id, { active_version: version, is_active: switchOff ? 0 : 1 }, now);
    await appendEvent(trx, { entity_type: 'policy', entity_id: id, type: 'policy.activated', actor: actorLabel(actor), payload: { version, previous_active: p.active_version, is_active: !switchOff, author: v?.created_by ?? null }, at: now });
  });
  ctx.runtime.policiesChanged();
  return policyView(ctx, id);
}

export async function versionsOf(ctx: ServiceContext, id: string): Promise<PolicyVersion[]> {
  if (!(await ctx.store.read((db) => getPolicy(db, id)))) throw ApiError.notFound('policy', id);
  return ctx.store.read((db) => listVersions(db, id));
}

export async function assignPolicy(ctx: ServiceContext, supervisorId: string, input: { policy_id: string; priority?: number }, actor: Actor | null): Promise<void> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    if (!(await getSupervisor(trx, supervisorId))) throw ApiError.notFound('supervisor', supervisorId);
    if (!(await getPolicy(trx, input.policy_id))) throw new ApiError(400, 'validation_failed', `policy_id: policy ${input.policy_id} not found`, { problems: [{ path: 'policy_id', message: 'not found' }] });
    await upsertAssignment(trx, { supervisor_id: supervisorId, policy_id: input.policy_id, priority: input.priority ?? 100, at: now });
    await appendEvent(trx, { supervisor_id: supervisorId, entity_type: 'policy', entity_id: input.policy_id, type: 'policy.assigned', actor: actorLabel(actor), payload: { priority: input.priority ?? 100 }, at: now });
  });
  ctx.runtime.policiesChanged(supervisorId);
}

export async function unassignPolicy(ctx: ServiceContext, supervisorId: string, policyId: string, actor: Actor | null): Promise<void> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    if (!(await deleteAssignment(trx, supervisorId, policyId))) throw ApiError.notFound(`assignment of policy ${policyId} to supervisor`, supervisorId);
    await appendEvent(trx, { supervisor_id: supervisorId, entity_type: 'policy', entity_id: policyId, type: 'policy.unassigned', actor: actorLabel(actor), payload: {}, at: now });
  });
  ctx.runtime.policiesChanged(supervisorId);
}

export interface SimulateInput { context?: Record<string, unknown>; agent_id?: string; supervisor_id?: string; event_type?: EventType; version?: number }

/** Evaluates a policy against a given context or a live agent; writes nothing. */
export async function simulate(ctx: ServiceContext, id: string, input: SimulateInput) {
  const p = await ctx.store.read((db) => getPolicy(db, id));
  if (!p) throw ApiError.notFound('policy', id);
  // Default: what the policy runs, or the version waiting for activation while none runs.
  const version = input.version ?? (p.active_version || p.latest_version);
  const v = await ctx.store.read((db) => getVersion(db, id, version));
  if (!v) throw ApiError.notFound(`policy ${id} version`, String(version));
  let context: PolicyContext;
  if (input.agent_id) {
    const agent = await ctx.store.read((db) => getAgent(db, input.agent_id as string));
    if (!agent) throw ApiError.notFound('agent', input.agent_id);
    const supId = input.supervisor_id ?? agent.supervisor_id;
    const sup = supId ? await ctx.store.read((db) => getSupervisor(db, supId)) : undefined;
    if (!sup) throw new ApiError(400, 'validation_failed', 'supervisor_id: the agent is in no team; name a supervisor to simulate under', { problems: [{ path: 'supervisor_id', message: 'required for an agent outside every team' }] });
    const team = agent.team_id ? await ctx.store.read((db) => getTeam(db, agent.team_id as string)) : undefined;
    const members = team ? await ctx.store.read((db) => countMembers(db, team.id)) : 0;
    context = buildContext(sup, agent, team ? { ...team, member_count: members } : null, input.event_type ?? 'sweep', undefined, ctx.clock.now());
  } else if (input.context) {
    const c = input.context as Partial<PolicyContext>;
    context = {
      ...c,
      supervisor: c.supervisor ?? { id: 'simulated', name: 'simulated', status: 'ACTIVE', hierarchy_level: 0, parent_id: null },
      event: { type: input.event_type ?? 'sweep', ...(c.event ?? {}) },
    } as PolicyContext;
  } else {
    throw new ApiError(400, 'validation_failed', 'give either context or agent_id', { problems: [{ path: '', message: 'context or agent_id is required' }] });
  }
  const t0 = performance.now();
  const decision = compileCondition(v.definition.condition)(context);
  const duration_us = Math.round((performance.now() - t0) * 1000);
  const interventions = decision.matched ? planActions(v.definition, context, { id: p.id, name: p.name, version: v.version }) : [];
  return { policy_id: p.id, version: v.version, matched: decision.matched, decision_path: decision.path, would_create: interventions, context, duration_us };
}

/**
 * Evaluation records with a decision path for every policy: recorded for matches, replayed for
 * the rest from the stored context and the policy version (evaluation is pure and deterministic).
 */
export async function evaluationsView(ctx: ServiceContext, opts: Parameters<typeof listEvaluations>[1]) {
  const rows = await ctx.store.read((db) => listEvaluations(db, opts));
  const versions = new Map<string, PolicyVersion | undefined>();
  const out = [];
  for (const row of rows) {
    const results = [];
    for (const r of row.results) {
      let decision_path = row.decision_paths[r.policy_id];
      let source: 'recorded' | 'replayed' | 'unavailable' = 'recorded';
      if (decision_path === undefined) {
        const key = `${r.policy_id}@${r.version}`;
        if (!versions.has(key)) versions.set(key, await ctx.store.read((db) => getVersion(db, r.policy_id, r.version)));
        const v = versions.get(key);
        if (v) {
          decision_path = compiledFor({ policy_id: r.policy_id, version: r.version, definition: v.definition })(row.context as unknown as PolicyContext).path;
          source = 'replayed';
        } else source = 'unavailable';
      }
      results.push({ ...r, decision_path: decision_path ?? null, decision_path_source: source });
    }
    out.push({ ...row, results, decision_paths: undefined });
  }
  return out;
}
