/** Policies, their versions, assignments and the evaluation audit. */
import type { Db } from './store.js';
import { json, parseJson } from './store.js';
import type { PoliciesTable } from './schema.js';
import type { PolicyDefinition } from '../domain/policy.js';
import { iso } from '../domain/time.js';

export interface Policy {
  id: string;
  name: string;
  policy_type: string;
  description: string | null;
  active_version: number;
  latest_version: number;
  is_active: boolean;
  effectiveness: number;
  times_triggered: number;
  successes: number;
  failures: number;
  created_at: string;
  updated_at: string;
}

/** `created_by_id` is the author's token id, the identity the four-eyes rule compares. */
export interface PolicyVersion { policy_id: string; version: number; definition: PolicyDefinition; created_by: string | null; created_by_id: string | null; created_at: string }

export const toPolicy = (r: PoliciesTable): Policy => ({
  ...r,
  active_version: Number(r.active_version),
  latest_version: Number(r.latest_version),
  is_active: Boolean(r.is_active),
  effectiveness: Number(r.effectiveness),
  times_triggered: Number(r.times_triggered),
  successes: Number(r.successes),
  failures: Number(r.failures),
});

export async function getPolicy(db: Db, id: string): Promise<Policy | undefined> {
  const r = await db.selectFrom('policies').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toPolicy(r) : undefined;
}

export async function listPolicies(db: Db, opts: { limit: number; after?: string }): Promise<Policy[]> {
  let q = db.selectFrom('policies').selectAll().orderBy('id').limit(opts.limit);
  if (opts.after) q = q.where('id', '>', opts.after);
  return (await q.execute()).map(toPolicy);
}

export async function insertPolicy(
  db: Db,
  p: { id: string; name: string; policy_type: string; description: string | null; definition: PolicyDefinition; created_by: string | null; created_by_id: string | null; active: boolean; at: number },
): Promise<void> {
  // Not active: version 1 waits for activation, and active_version 0 names no version, so
  // assignedPolicies (which joins on it) runs nothing for this policy meanwhile.
  await db
    .insertInto('policies')
    .values({
      id: p.id,
      name: p.name,
      policy_type: p.policy_type,
      description: p.description,
      active_version: p.active ? 1 : 0,
      latest_version: 1,
      is_active: p.active ? 1 : 0,
      effectiveness: 0.5,
      times_triggered: 0,
      successes: 0,
      failures: 0,
      created_at: iso(p.at),
      updated_at: iso(p.at),
    })
    .execute();
  await insertVersion(db, { policy_id: p.id, version: 1, definition: p.definition, created_by: p.created_by, created_by_id: p.created_by_id, at: p.at });
}

export async function insertVersion(db: Db, v: { policy_id: string; version: number; definition: PolicyDefinition; created_by: string | null; created_by_id: string | null; at: number }): Promise<void> {
  await db
    .insertInto('policy_versions')
    .values({ policy_id: v.policy_id, version: v.version, definition: json(v.definition), created_by: v.created_by, created_by_id: v.created_by_id, created_at: iso(v.at) })
    .execute();
}

export async function getVersion(db: Db, policyId: string, version: number): Promise<PolicyVersion | undefined> {
  const r = await db.selectFrom('policy_versions').selectAll().where('policy_id', '=', policyId).where('version', '=', version).executeTakeFirst();
  return r ? { ...r, version: Number(r.version), definition: parseJson(r.definition, {} as PolicyDefinition) } : undefined;
}

export async function listVersions(db: Db, policyId: string): Promise<PolicyVersion[]> {
  const rows = await db.selectFrom('policy_versions').selectAll().where('policy_id', '=', policyId).orderBy('version').execute();
  return rows.map((r) => ({ ...r, version: Number(r.version), definition: parseJson(r.definition, {} as PolicyDefinition) }));
}

export async function updatePolicy(db: Db, id: string, patch: Partial<Omit<PoliciesTable, 'id' | 'created_at'>>, at: number, expectLatest?: number): Promise<boolean> {
  let q = db.updateTable('policies').set({ ...patch, updated_at: iso(at) }).where('id', '=', id);
  if (expectLatest !== undefined) q = q.where('latest_version', '=', expectLatest);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

export async function recordOutcome(db: Db, id: string, success: boolean, effectiveness: number, at: number): Promise<void> {
  await db
    .updateTable('policies')
    .set((eb) => ({
      effectiveness,
      successes: success ? eb('successes', '+', 1) : eb('successes', '+', 0),
      failures: success ? eb('failures', '+', 0) : eb('failures', '+', 1),
      updated_at: iso(at),
    }))
    .where('id', '=', id)
    .execute();
}

export async function bumpTriggered(db: Db, counts: Map<string, number>): Promise<void> {
  for (const [id, n] of counts) await db.updateTable('policies').set((eb) => ({ times_triggered: eb('times_triggered', '+', n) })).where('id', '=', id).execute();
}

export interface AssignedPolicy { policy_id: string; name: string; priority: number; version: number; definition: PolicyDefinition; effectiveness: number }

/** Active policies assigned to a supervisor at their active version, highest priority first. */
export async function assignedPolicies(db: Db, supervisorId: string): Promise<AssignedPolicy[]> {
  const rows = await db
    .selectFrom('policy_assignments as a')
    .innerJoin('policies as p', 'p.id', 'a.policy_id')
    .innerJoin('policy_versions as v', (j) => j.onRef('v.policy_id', '=', 'p.id').onRef('v.version', '=', 'p.active_version'))
    .select(['a.policy_id', 'p.name', 'a.priority', 'v.version', 'v.definition', 'p.effectiveness'])
    .where('a.supervisor_id', '=', supervisorId)
    .where('p.is_active', '=', 1)
    .orderBy('a.priority', 'desc')
    .orderBy('a.policy_id')
    .execute();
  return rows.map((r) => ({ ...r, priority: Number(r.priority), version: Number(r.version), effectiveness: Number(r.effectiveness), definition: parseJson(r.definition, {} as PolicyDefinition) }));
}

export async function listAssignments(db: Db, supervisorId: string) {
  const rows = await db
    .selectFrom('policy_assignments as a')
    .innerJoin('policies as p', 'p.id', 'a.policy_id')
    .select(['a.policy_id', 'p.name', 'a.priority', 'p.active_version', 'p.is_active', 'a.created_at'])
    .where('a.supervisor_id', '=', supervisorId)
    .orderBy('a.priority', 'desc')
    .orderBy('a.policy_id')
    .execute();
  return rows.map((r) => ({ ...r, priority: Number(r.priority), active_version: Number(r.active_version), is_active: Boolean(r.is_active) }));
}

export async function upsertAssignment(db: Db, a: { supervisor_id: string; policy_id: string; priority: number; at: number }): Promise<void> {
  await db
    .insertInto('policy_assignments')
    .values({ supervisor_id: a.supervisor_id, policy_id: a.policy_id, priority: a.priority, created_at: iso(a.at) })
    .onConflict((oc) => oc.columns(['supervisor_id', 'policy_id']).doUpdateSet({ priority: a.priority }))
    .execute();
}

export async function deleteAssignment(db: Db, supervisorId: string, policyId: string): Promise<boolean> {
  const r = await db.deleteFrom('policy_assignments').where('supervisor_id', '=', supervisorId).where('policy_id', '=', policyId).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** One agent (or alert group) evaluated against every policy of its supervisor. */
export interface EvaluationRecord {
  supervisor_id: string;
  agent_id: string | null;
  trigger: string;
  results: { policy_id: string; version: number; matched: boolean; duration_us: number }[];
  /** Decision paths of the policies that matched, by policy id. */
  decision_paths: Record<string, unknown>;
  context: unknown;
  duration_us: number;
  at: number;
}

export async function insertEvaluations(db: Db, records: EvaluationRecord[]): Promise<void> {
  const rows = records.map((r) => ({
    supervisor_id: r.supervisor_id,
    agent_id: r.agent_id,
    trigger: r.trigger,
    evaluated: r.results.length,
    matched: r.results.reduce((n, x) => n + (x.matched ? 1 : 0), 0),
    results: json(r.results),
    decision_paths: json(r.decision_paths),
    context: json(r.context),
    duration_us: Math.round(r.duration_us),
    at: iso(r.at),
  }));
  for (let i = 0; i < rows.length; i += 100) await db.insertInto('policy_evaluations').values(rows.slice(i, i + 100)).execute();
}

export interface StoredEvaluation {
  id: number;
  supervisor_id: string;
  agent_id: string | null;
  trigger: string;
  evaluated: number;
  matched: number;
  results: { policy_id: string; version: number; matched: boolean; duration_us: number }[];
  decision_paths: Record<string, unknown>;
  context: Record<string, unknown>;
  duration_us: number;
  at: string;
}

export async function listEvaluations(db: Db, opts: { supervisor_id?: string; agent_id?: string; policy_id?: string; trigger?: string; limit: number; before?: number }): Promise<StoredEvaluation[]> {
  let q = db.selectFrom('policy_evaluations').selectAll().orderBy('id', 'desc').limit(opts.limit);
  if (opts.supervisor_id) q = q.where('supervisor_id', '=', opts.supervisor_id);
  if (opts.agent_id) q = q.where('agent_id', '=', opts.agent_id);
  if (opts.trigger) q = q.where('trigger', '=', opts.trigger);
  // Ids are UUIDs (validated by the API), so they cannot carry LIKE wildcards.
  if (opts.policy_id) q = q.where('results', 'like', `%"policy_id":"${opts.policy_id}"%`);
  if (opts.before !== undefined) q = q.where('id', '<', opts.before);
  const rows = await q.execute();
  return rows.map((r) => ({
    ...r,
    id: Number(r.id),
    evaluated: Number(r.evaluated),
    matched: Number(r.matched),
    duration_us: Number(r.duration_us),
    results: parseJson(r.results, []),
    decision_paths: parseJson(r.decision_paths, {}),
    context: parseJson(r.context, {}),
  }));
}

/** Deletes up to `limit` evaluation records older than `beforeIso`; returns how many. */
export async function pruneEvaluations(db: Db, beforeIso: string, limit: number): Promise<number> {
  const res = await db
    .deleteFrom('policy_evaluations')
    .where('id', 'in', (eb) => eb.selectFrom('policy_evaluations').select('id').where('at', '<', beforeIso).orderBy('id').limit(limit))
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}

export async function policyIdByName(db: Db, name: string): Promise<string | undefined> {
  return (await db.selectFrom('policies').select('id').where('name', '=', name).executeTakeFirst())?.id;
}
