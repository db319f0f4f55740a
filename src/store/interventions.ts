/** Interventions: the outbox of side effects. Status changes are compare-and-set. */
import type { Db } from './store.js';
import { json, parseJson } from './store.js';
import type { InterventionsTable } from './schema.js';
import type { InterventionStatus, InterventionType, TargetType } from '../domain/intervention.js';
import { ACTIVE_INTERVENTION_STATUSES } from '../domain/intervention.js';
import { iso } from '../domain/time.js';

export interface Intervention {
  id: string;
  supervisor_id: string;
  policy_id: string | null;
  policy_version: number | null;
  parent_intervention_id: string | null;
  intervention_type: InterventionType;
  target_type: TargetType;
  target_id: string;
  reason: string;
  action_details: Record<string, unknown>;
  status: InterventionStatus;
  approval_required: boolean;
  requested_by: string | null;
  /** Token id of whoever asked for it; null for policy- and runtime-created ones. */
  requested_by_id: string | null;
  approved_by: string | null;
  approved_by_id: string | null;
  approved_at: string | null;
  rejected_by: string | null;
  rejected_reason: string | null;
  attempts: number;
  next_attempt_at: string | null;
  deadline_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  dedupe_key: string | null;
  outcome: unknown;
  error_message: string | null;
  created_at: string;
  updated_at: string;
}

export function toIntervention(row: InterventionsTable): Intervention {
  return {
    ...row,
    intervention_type: row.intervention_type as InterventionType,
    target_type: row.target_type as TargetType,
    status: row.status as InterventionStatus,
    action_details: parseJson(row.action_details, {}),
    approval_required: Boolean(row.approval_required),
    attempts: Number(row.attempts),
    policy_version: row.policy_version === null ? null : Number(row.policy_version),
    outcome: parseJson(row.outcome, null),
  };
}

export interface NewIntervention {
  id: string;
  supervisor_id: string;
  policy_id?: string | null;
  policy_version?: number | null;
  parent_intervention_id?: string | null;
  intervention_type: InterventionType;
  target_type: TargetType;
  target_id: string;
  reason: string;
  action_details: Record<string, unknown>;
  approval_required: boolean;
  requested_by: string | null;
  requested_by_id?: string | null;
  dedupe_key?: string | null;
  /** Approved interventions get their deadline and first attempt time at creation. */
  status: 'PENDING' | 'APPROVED';
  next_attempt_at?: number | null;
  deadline_at?: number | null;
  at: number;
}

export async function insertIntervention(db: Db, i: NewIntervention): Promise<void> {
  await db
    .insertInto('interventions')
    .values({
      id: i.id,
      supervisor_id: i.supervisor_id,
      policy_id: i.policy_id ?? null,
      policy_version: i.policy_version ?? null,
      parent_intervention_id: i.parent_intervention_id ?? null,
      intervention_type: i.intervention_type,
      target_type: i.target_type,
      target_id: i.target_id,
      reason: i.reason,
      action_details: json(i.action_details),
      status: i.status,
      approval_required: i.approval_required ? 1 : 0,
      requested_by: i.requested_by,
      requested_by_id: i.requested_by_id ?? null,
      attempts: 0,
      next_attempt_at: i.next_attempt_at != null ? iso(i.next_attempt_at) : null,
      deadline_at: i.deadline_at != null ? iso(i.deadline_at) : null,
      dedupe_key: i.dedupe_key ?? null,
      created_at: iso(i.at),
      updated_at: iso(i.at),
    })
    .execute();
}

export async function getIntervention(db: Db, id: string): Promise<Intervention | undefined> {
  const row = await db.selectFrom('interventions').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toIntervention(row) : undefined;
}

export async function listInterventions(db: Db, opts: { supervisor_id?: string; status?: string; parent_id?: string; limit: number; after?: string }): Promise<Intervention[]> {
  let q = db.selectFrom('interventions').selectAll().orderBy('id').limit(opts.limit);
  if (opts.supervisor_id) q = q.where('supervisor_id', '=', opts.supervisor_id);
  if (opts.status) q = q.where('status', '=', opts.status);
  if (opts.parent_id) q = q.where('parent_intervention_id', '=', opts.parent_id);
  if (opts.after) q = q.where('id', '>', opts.after);
  return (await q.execute()).map(toIntervention);
}

export type InterventionPatch = Partial<Omit<InterventionsTable, 'id' | 'created_at'>>;

/** Compare-and-set on status: only rows still in one of `from` change. */
export async function transitionIntervention(db: Db, id: string, from: readonly InterventionStatus[], patch: InterventionPatch, at: number): Promise<boolean> {
  const res = await db
    .updateTable('interventions')
    .set({ ...patch, updated_at: iso(at) })
    .where('id', '=', id)
    .where('status', 'in', [...from])
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/**
 * Whether a policy's intervention for this target is still active or inside its cool-down.
 * Reads committed rows, so the cool-down survives restarts.
 */
export async function inCooldown(db: Db, dedupe: string, cooldownStartIso: string): Promise<boolean> {
  const row = await db
    .selectFrom('interventions')
    .select('id')
    .where('dedupe_key', '=', dedupe)
    .where((eb) => eb.or([eb('status', 'in', [...ACTIVE_INTERVENTION_STATUSES]), eb('created_at', '>', cooldownStartIso), eb('completed_at', '>', cooldownStartIso)]))
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** Approved interventions due for an attempt, oldest first, for the given supervisors. */
export async function dueInterventions(db: Db, supervisorIds: string[], nowIso: string, limit: number): Promise<Intervention[]> {
  if (!supervisorIds.length) return [];
  const rows = await db
    .selectFrom('interventions')
    .selectAll()
    .where('status', '=', 'APPROVED')
    .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', nowIso)]))
    .where('supervisor_id', 'in', supervisorIds)
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map(toIntervention);
}

export async function interventionsInStatus(db: Db, status: InterventionStatus, supervisorIds?: string[]): Promise<Intervention[]> {
  let q = db.selectFrom('interventions').selectAll().where('status', '=', status);
  if (supervisorIds) {
    if (!supervisorIds.length) return [];
    q = q.where('supervisor_id', 'in', supervisorIds);
  }
  return (await q.orderBy('id').execute()).map(toIntervention);
}

export async function countExecuting(db: Db): Promise<Map<string, number>> {
  const rows = await db.selectFrom('interventions').select(['supervisor_id']).select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'EXECUTING').groupBy('supervisor_id').execute();
  return new Map(rows.map((r) => [r.supervisor_id, Number(r.n)]));
}

export async function countActive(db: Db, supervisorId: string): Promise<number> {
  const r = await db
    .selectFrom('interventions')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('supervisor_id', '=', supervisorId)
    .where('status', 'in', [...ACTIVE_INTERVENTION_STATUSES])
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}

export async function countInterventionsByStatus(db: Db): Promise<Record<string, number>> {
  const rows = await db.selectFrom('interventions').select(['status']).select((eb) => eb.fn.countAll<number>().as('n')).groupBy('status').execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

export async function childInterventions(db: Db, parentId: string): Promise<Intervention[]> {
  return (await db.selectFrom('interventions').selectAll().where('parent_intervention_id', '=', parentId).orderBy('id').execute()).map(toIntervention);
}

/**
 * Ends what a terminated supervisor can no longer carry out: its PENDING and APPROVED
 * interventions (and, with `includeExecuting`, EXECUTING ones left by a crash) become FAILED.
 * Returns their ids.
 */
export async function failOpenInterventions(db: Db, supervisorId: string, reason: string, at: number, includeExecuting = false): Promise<string[]> {
  const statuses = includeExecuting ? ['PENDING', 'APPROVED', 'EXECUTING'] : ['PENDING', 'APPROVED'];
  const rows = await db.selectFrom('interventions').select('id').where('supervisor_id', '=', supervisorId).where('status', 'in', statuses).execute();
  if (!rows.length) return [];
  await db
    .updateTable('interventions')
    .set({ status: 'FAILED', error_message: reason, completed_at: iso(at), updated_at: iso(at) })
    .where('supervisor_id', '=', supervisorId)
    .where('status', 'in', statuses)
    .execute();
  return rows.map((r) => r.id);
}

/** Supervisors that are TERMINATED but still have EXECUTING interventions (left by a crash). */
export async function terminatedWithExecuting(db: Db): Promise<string[]> {
  const rows = await db
    .selectFrom('interventions as i')
    .innerJoin('supervisors as s', 's.id', 'i.supervisor_id')
    .select('s.id')
    .distinct()
    .where('s.status', '=', 'TERMINATED')
    .where('i.status', '=', 'EXECUTING')
    .execute();
  return rows.map((r) => r.id);
}
