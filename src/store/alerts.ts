/** Alerts and their correlation groups. */
import type { Db } from './store.js';
import type { AlertGroupsTable } from './schema.js';
import { iso } from '../domain/time.js';

export interface AlertGroup {
  id: string;
  supervisor_id: string;
  correlation_key: string;
  kind: string;
  agent_id: string | null;
  severity: string;
  alert_count: number;
  first_at: string;
  last_at: string;
  window_ends_at: string;
  evaluated: boolean;
}

export const toGroup = (r: AlertGroupsTable): AlertGroup => ({ ...r, alert_count: Number(r.alert_count), evaluated: Boolean(r.evaluated) });

/** The open group for a correlation key, if its window has not ended. */
export async function openGroup(db: Db, supervisorId: string, key: string, nowIso: string): Promise<AlertGroup | undefined> {
  const r = await db
    .selectFrom('alert_groups')
    .selectAll()
    .where('supervisor_id', '=', supervisorId)
    .where('correlation_key', '=', key)
    .where('window_ends_at', '>', nowIso)
    .orderBy('first_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return r ? toGroup(r) : undefined;
}

export async function insertGroup(db: Db, g: Omit<AlertGroup, 'evaluated'>): Promise<void> {
  await db.insertInto('alert_groups').values({ ...g, evaluated: 0 }).execute();
}

export async function bumpGroup(db: Db, id: string, severity: string, at: number): Promise<void> {
  await db.updateTable('alert_groups').set((eb) => ({ severity, alert_count: eb('alert_count', '+', 1), last_at: iso(at) })).where('id', '=', id).execute();
}

export async function insertAlert(
  db: Db,
  a: { id: string; supervisor_id: string; group_id: string; source: string; severity: string; kind: string; agent_id: string | null; message: string | null; at: number },
): Promise<void> {
  await db.insertInto('alerts').values({ ...a, at: iso(a.at) }).execute();
}

export async function unevaluatedGroups(db: Db, supervisorId: string, limit = 100): Promise<AlertGroup[]> {
  const rows = await db.selectFrom('alert_groups').selectAll().where('supervisor_id', '=', supervisorId).where('evaluated', '=', 0).orderBy('first_at').limit(limit).execute();
  return rows.map(toGroup);
}

export async function markGroupEvaluated(db: Db, id: string): Promise<void> {
  await db.updateTable('alert_groups').set({ evaluated: 1 }).where('id', '=', id).execute();
}

export async function listGroups(db: Db, supervisorId: string, opts: { limit: number; after?: string }): Promise<AlertGroup[]> {
  let q = db.selectFrom('alert_groups').selectAll().where('supervisor_id', '=', supervisorId).orderBy('id').limit(opts.limit);
  if (opts.after) q = q.where('id', '>', opts.after);
  return (await q.execute()).map(toGroup);
}

export async function alertsOfGroups(db: Db, groupIds: string[]) {
  if (!groupIds.length) return [];
  return db.selectFrom('alerts').selectAll().where('group_id', 'in', groupIds).orderBy('at').execute();
}

/** Removes a supervisor's alerts and groups (before the supervisor itself is deleted). */
export async function deleteAlertsOf(db: Db, supervisorId: string): Promise<void> {
  await db.deleteFrom('alerts').where('supervisor_id', '=', supervisorId).execute();
  await db.deleteFrom('alert_groups').where('supervisor_id', '=', supervisorId).execute();
}
