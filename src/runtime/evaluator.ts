/**
 * Policy evaluation for one supervisor, in two steps: `planEvaluation` runs the compiled
 * conditions (pure CPU, no I/O) and `commitEvaluation` writes the evaluation records, the
 * interventions they cause and the supervisor's last evaluation inside the caller's transaction,
 * so an evaluation is committed before anything it caused is dispatched.
 */
import { compileCondition, planActions, type CompiledCondition, type EventType, type PlannedAction, type PolicyContext } from '../domain/policy.js';
import { dedupeKey, type InterventionType } from '../domain/intervention.js';
import { approvalRule, rollbackPlan } from '../domain/safety.js';
import type { SupervisorConfig } from '../domain/supervisor.js';
import { iso, type IdSource } from '../domain/time.js';
import type { Tx } from '../store/store.js';
import type { DialectCaps } from '../store/dialect.js';
import type { Agent, Team } from '../store/agents.js';
import type { Supervisor } from '../store/supervisors.js';
import { bumpTriggered, insertEvaluations, type AssignedPolicy, type EvaluationRecord } from '../store/policies.js';
import { inCooldown, insertIntervention } from '../store/interventions.js';
import { appendEvents, type NewEvent } from '../store/events.js';
import { updateSupervisor } from '../store/supervisors.js';

export interface CompiledPolicy extends AssignedPolicy { compiled: CompiledCondition }

export interface EvaluationItem {
  agent: Agent | null;
  trigger: EventType;
  event?: Record<string, unknown>;
}

export type TeamInfo = Team & { member_count: number };

const compiledCache = new Map<string, CompiledCondition>();

/** Compiles once per (policy, version). */
export function compiledFor(p: { policy_id: string; version: number; definition: AssignedPolicy['definition'] }): CompiledCondition {
  const key = `${p.policy_id}@${p.version}`;
  let c = compiledCache.get(key);
  if (!c) {
    c = compileCondition(p.definition.condition);
    if (compiledCache.size > 10_000) compiledCache.clear();
    compiledCache.set(key, c);
  }
  return c;
}

export function compilePolicies(rows: AssignedPolicy[]): CompiledPolicy[] {
  return rows.map((p) => ({ ...p, compiled: compiledFor(p) }));
}

/** Effective seconds since heartbeat: supervisor downtime never counts (DESIGN principle 4). */
export function secondsSinceHeartbeat(agent: Agent, resumedAtIso: string | null, now: number): number | null {
  const since = Math.max(Date.parse(agent.last_heartbeat_at ?? agent.created_at), resumedAtIso ? Date.parse(resumedAtIso) : 0);
  return Math.max(0, Math.round((now - since) / 1000));
}

export function buildContext(sup: Supervisor, agent: Agent | null, team: TeamInfo | null, trigger: EventType, event: Record<string, unknown> | undefined, now: number): PolicyContext {
  return {
    agent: agent
      ? {
          id: agent.id,
          name: agent.name,
          status: agent.status,
          team_id: agent.team_id,
          seconds_since_heartbeat: secondsSinceHeartbeat(agent, sup.resumed_at, now),
          metrics: agent.last_metrics ?? {},
        }
      : undefined,
    team: team ? { id: team.id, name: team.name, objective: team.objective, member_count: team.member_count } : null,
    supervisor: { id: sup.id, name: sup.name, status: sup.status, hierarchy_level: sup.hierarchy_level, parent_id: sup.parent_id },
    event: { ...(event ?? {}), type: trigger },
  };
}

export interface EvaluationPlan {
  records: EvaluationRecord[];
  actions: { policy: CompiledPolicy; action: PlannedAction; teamSize: number }[];
  evaluated: number;
  matched: number;
  trigger: string;
  at: number;
  durationMs: number;
}

/** Runs every policy against every item. Pure CPU: no I/O, deterministic for a given `now`. */
export function planEvaluation(sup: Supervisor, policies: CompiledPolicy[], teams: Map<string, TeamInfo>, items: EvaluationItem[], now: number): EvaluationPlan {
  const t0 = performance.now();
  const records: EvaluationRecord[] = [];
  const actions: EvaluationPlan['actions'] = [];
  let evaluated = 0;
  let matched = 0;
  const triggers = new Set<string>();
  for (const item of items) {
    triggers.add(item.trigger);
    const team = item.agent?.team_id ? teams.get(item.agent.team_id) ?? null : null;
    const ctx = buildContext(sup, item.agent, team, item.trigger, item.event, now);
    const results: EvaluationRecord['results'] = [];
    const paths: Record<string, unknown> = {};
    const itemStart = performance.now();
    for (const policy of policies) {
      const p0 = performance.now();
      const decision = policy.compiled(ctx);
      results.push({ policy_id: policy.policy_id, version: policy.version, matched: decision.matched, duration_us: Math.round((performance.now() - p0) * 1000) });
      evaluated++;
      if (!decision.matched) continue;
      matched++;
      paths[policy.policy_id] = decision.path;
      for (const action of planActions(policy.definition, ctx, { id: policy.policy_id, name: policy.name, version: policy.version })) {
        // A target that rendered only partly (a missing template reference) is never acted on.
        if (!action.target_id || action.problems.some((p) => p.includes('target'))) continue;
        const teamSize = action.target_type === 'TEAM' ? teams.get(action.target_id)?.member_count ?? 0 : 1;
        actions.push({ policy, action, teamSize });
      }
    }
    if (results.length) {
      records.push({ supervisor_id: sup.id, agent_id: item.agent?.id ?? null, trigger: item.trigger, results, decision_paths: paths, context: ctx, duration_us: (performance.now() - itemStart) * 1000, at: now });
    }
  }
  return { records, actions, evaluated, matched, trigger: [...triggers].join(','), at: now, durationMs: performance.now() - t0 };
}

/**
 * Writes a plan inside `trx`: evaluation records, interventions (skipping targets still in
 * their cool-down, whose state is read from committed rows), counters and the supervisor's last
 * evaluation. Returns the ids created and how many are approved (ready for the executor).
 */
export async function commitEvaluation(trx: Tx, caps: DialectCaps, newId: IdSource, sup: Supervisor, config: SupervisorConfig, plan: EvaluationPlan): Promise<{ created: string[]; approved: number }> {
  const created: string[] = [];
  let approved = 0;
  if (plan.records.length) await insertEvaluations(trx, plan.records);
  const events: NewEvent[] = [];
  const triggered = new Map<string, number>();
  const now = plan.at;
  const cooldownStart = iso(now - config.intervention_cooldown_seconds * 1000);
  const seen = new Set<string>();
  for (const { policy, action, teamSize } of plan.actions) {
    const key = dedupeKey(policy.policy_id, action.target_type, action.target_id as string);
    if (seen.has(key)) continue;
    // Concurrent transactions (PostgreSQL) must not both find the cool-down free.
    await caps.lockKey(trx, `cooldown:${key}`);
    if (await inCooldown(trx, key, cooldownStart)) continue;
    seen.add(key);
    const id = newId();
    const type = action.intervention_type as InterventionType;
    const rule = approvalRule(type, teamSize, action.approval_required);
    const rollback = rollbackPlan(type, action.target_id as string);
    await insertIntervention(trx, {
      id,
      supervisor_id: sup.id,
      policy_id: policy.policy_id,
      policy_version: policy.version,
      intervention_type: type,
      target_type: action.target_type,
      target_id: action.target_id as string,
      reason: action.reason,
      action_details: { ...action.action_details, ...(rollback ? { rollback_plan: rollback } : {}), ...(rule.required && !action.approval_required ? { approval_reason: rule.reason } : {}) },
      approval_required: rule.required,
      requested_by: `policy:${policy.policy_id}`,
      dedupe_key: key,
      status: rule.required ? 'PENDING' : 'APPROVED',
      next_attempt_at: rule.required ? null : now,
      deadline_at: rule.required ? null : now + config.intervention_timeout_seconds * 1000,
      at: now,
    });
    created.push(id);
    if (!rule.required) approved++;
    triggered.set(policy.policy_id, (triggered.get(policy.policy_id) ?? 0) + 1);
    events.push({
      supervisor_id: sup.id,
      entity_type: 'intervention',
      entity_id: id,
      type: 'intervention.created',
      actor: `policy:${policy.policy_id}`,
      payload: { intervention_type: type, target_type: action.target_type, target_id: action.target_id, status: rule.required ? 'PENDING' : 'APPROVED', policy_version: policy.version },
      at: now,
    });
  }
  await bumpTriggered(trx, triggered);
  await appendEvents(trx, events);
  // A pass that evaluated nothing (only moved cursors) must not hide the last real evaluation.
  if (plan.evaluated) {
    await updateSupervisor(
      trx,
      sup.id,
      { last_policy_evaluation: JSON.stringify({ at: iso(now), duration_ms: Math.round(plan.durationMs * 1000) / 1000, evaluated: plan.evaluated, matched: plan.matched, trigger: plan.trigger }) },
      now,
    );
  }
  return { created, approved };
}
