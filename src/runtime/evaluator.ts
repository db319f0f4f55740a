/**
 * Policy evaluation for one supervisor: builds contexts, runs compiled conditions in priority
 * order, and commits evaluation records, cursor moves and the interventions they cause in one
 * transaction, before anything is dispatched.
 */
import { compileCondition, planActions, type CompiledCondition, type EventType, type PolicyContext } from '../domain/policy.js';
import { dedupeKey, type InterventionType } from '../domain/intervention.js';
import type { SupervisorConfig } from '../domain/supervisor.js';
import { iso, type Clock, type IdSource } from '../domain/time.js';
import type { Store, Tx } from '../store/store.js';
import type { Agent, Team } from '../store/agents.js';
import type { Supervisor } from '../store/supervisors.js';
import { assignedPolicies, bumpTriggered, insertEvaluations, type AssignedPolicy, type EvaluationRecord } from '../store/policies.js';
import { inCooldown, insertIntervention } from '../store/interventions.js';
import { appendEvents, type NewEvent } from '../store/events.js';
import { updateSupervisor } from '../store/supervisors.js';

export interface CompiledPolicy extends AssignedPolicy { compiled: CompiledCondition }

export interface EvaluationItem {
  agent: Agent | null;
  trigger: EventType;
  event?: Record<string, unknown>;
}

export interface EvaluationSummary { evaluated: number; matched: number; created: string[]; approved: number }

const compiledCache = new Map<string, CompiledCondition>();

/** Compiles once per (policy, version). */
export function compiledFor(p: AssignedPolicy): CompiledCondition {
  const key = `${p.policy_id}@${p.version}`;
  let c = compiledCache.get(key);
  if (!c) {
    c = compileCondition(p.definition.condition);
    if (compiledCache.size > 10_000) compiledCache.clear();
    compiledCache.set(key, c);
  }
  return c;
}

export async function loadPolicies(store: Store, supervisorId: string): Promise<CompiledPolicy[]> {
  const rows = await store.read((db) => assignedPolicies(db, supervisorId));
  return rows.map((p) => ({ ...p, compiled: compiledFor(p) }));
}

/** Effective seconds since heartbeat: supervisor downtime never counts (DESIGN principle 4). */
export function secondsSinceHeartbeat(agent: Agent, resumedAtIso: string | null, now: number): number | null {
  const since = Math.max(Date.parse(agent.last_heartbeat_at ?? agent.created_at), resumedAtIso ? Date.parse(resumedAtIso) : 0);
  return Math.max(0, Math.round((now - since) / 1000));
}

export function buildContext(sup: Supervisor, agent: Agent | null, team: (Team & { member_count: number }) | null, trigger: EventType, event: Record<string, unknown> | undefined, now: number): PolicyContext {
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

export interface EvaluateDeps { store: Store; clock: Clock; newId: IdSource }

/**
 * Evaluates `items` against `policies` and commits everything in one transaction. `extra` runs
 * inside the same transaction (cursor moves, stale marks, alert-group flags).
 */
export async function evaluateAndCommit(
  deps: EvaluateDeps,
  sup: Supervisor,
  config: SupervisorConfig,
  policies: CompiledPolicy[],
  teams: Map<string, Team & { member_count: number }>,
  items: EvaluationItem[],
  extra?: (trx: Tx) => Promise<void>,
): Promise<EvaluationSummary> {
  const started = performance.now();
  const now = deps.clock.now();
  const records: EvaluationRecord[] = [];
  const planned: { policy: CompiledPolicy; action: ReturnType<typeof planActions>[number] }[] = [];
  let matched = 0;
  for (const item of items) {
    const team = item.agent?.team_id ? teams.get(item.agent.team_id) ?? null : null;
    const ctx = buildContext(sup, item.agent, team, item.trigger, item.event, now);
    for (const policy of policies) {
      const t0 = performance.now();
      const decision = policy.compiled(ctx);
      const duration_us = (performance.now() - t0) * 1000;
      records.push({
        supervisor_id: sup.id,
        policy_id: policy.policy_id,
        policy_version: policy.version,
        agent_id: item.agent?.id ?? null,
        trigger: item.trigger,
        matched: decision.matched,
        decision_path: decision.path,
        context: { agent: ctx.agent, event: ctx.event },
        duration_us,
        at: now,
      });
      if (!decision.matched) continue;
      matched++;
      for (const action of planActions(policy.definition, ctx, { id: policy.policy_id, name: policy.name, version: policy.version })) {
        // A target that rendered only partly (a missing template reference) is never acted on.
        if (action.target_id && !action.problems.some((p) => p.includes("target"))) planned.push({ policy, action });
      }
    }
  }

  const created: string[] = [];
  let approved = 0;
  const durationMs = performance.now() - started;
  await deps.store.tx(async (trx) => {
    created.length = 0;
    approved = 0;
    if (extra) await extra(trx);
    await insertEvaluations(trx, records);
    const events: NewEvent[] = [];
    const triggered = new Map<string, number>();
    const cooldownStart = iso(now - config.intervention_cooldown_seconds * 1000);
    const seen = new Set<string>();
    for (const { policy, action } of planned) {
      const key = dedupeKey(policy.policy_id, action.target_type, action.target_id as string);
      if (seen.has(key) || (await inCooldown(trx, key, cooldownStart))) continue;
      seen.add(key);
      const id = deps.newId();
      const needsApproval = action.approval_required;
      await insertIntervention(trx, {
        id,
        supervisor_id: sup.id,
        policy_id: policy.policy_id,
        policy_version: policy.version,
        intervention_type: action.intervention_type as InterventionType,
        target_type: action.target_type,
        target_id: action.target_id as string,
        reason: action.reason,
        action_details: action.action_details,
        approval_required: needsApproval,
        requested_by: `policy:${policy.policy_id}`,
        dedupe_key: key,
        status: needsApproval ? 'PENDING' : 'APPROVED',
        next_attempt_at: needsApproval ? null : now,
        deadline_at: needsApproval ? null : now + config.intervention_timeout_seconds * 1000,
        at: now,
      });
      created.push(id);
      if (!needsApproval) approved++;
      triggered.set(policy.policy_id, (triggered.get(policy.policy_id) ?? 0) + 1);
      events.push({
        supervisor_id: sup.id,
        entity_type: 'intervention',
        entity_id: id,
        type: 'intervention.created',
        actor: `policy:${policy.policy_id}`,
        payload: { intervention_type: action.intervention_type, target_type: action.target_type, target_id: action.target_id, status: needsApproval ? 'PENDING' : 'APPROVED', policy_version: policy.version },
        at: now,
      });
    }
    await bumpTriggered(trx, triggered);
    await appendEvents(trx, events);
    // A pass that evaluated nothing (only moved cursors) must not hide the last real evaluation.
    if (!records.length) return;
    const trigger = items.length === 1 ? items[0].trigger : summarizeTriggers(items);
    await updateSupervisor(trx, sup.id, {
      last_policy_evaluation: JSON.stringify({ at: iso(now), duration_ms: round3(durationMs), evaluated: records.length, matched, trigger }),
    }, now);
  });
  return { evaluated: records.length, matched, created, approved };
}

function summarizeTriggers(items: EvaluationItem[]): string {
  const set = new Set(items.map((i) => i.trigger));
  return [...set].join(',');
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
