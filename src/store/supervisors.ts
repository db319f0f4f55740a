/** Supervisor rows: reads, creation and the single place where supervisor state is written. */
import type { Db } from './store.js';
import { json, parseJson } from './store.js';
import type { SupervisorsTable } from './schema.js';
import type { SupervisorConfig, SupervisorStatus } from '../domain/supervisor.js';
import { iso } from '../domain/time.js';

export interface Supervisor {
  id: string;
  name: string;
  description: string | null;
  status: SupervisorStatus;
  config: SupervisorConfig;
  parent_id: string | null;
  hierarchy_level: number;
  running: boolean;
  owner_instance_id: string | null;
  restart_count: number;
  restarts_in_window: number;
  restart_window_started_at: string | null;
  last_restart_at: string | null;
  next_restart_at: string | null;
  last_heartbeat_at: string | null;
  resumed_at: string | null;
  last_policy_evaluation: LastPolicyEvaluation | null;
  failure_reason: string | null;
  version: number;
  created_at: string;
  updated_at: string;
}

export interface LastPolicyEvaluation { at: string; duration_ms: number; evaluated: number; matched: number; trigger: string }

export function toSupervisor(row: SupervisorsTable): Supervisor {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    status: row.status as SupervisorStatus,
    config: parseConfig(row.config),
    parent_id: row.parent_id,
    hierarchy_level: Number(row.hierarchy_level),
    running: Boolean(row.running),
    owner_instance_id: row.owner_instance_id,
    restart_count: Number(row.restart_count),
    restarts_in_window: Number(row.restarts_in_window),
    restart_window_started_at: row.restart_window_started_at,
    last_restart_at: row.last_restart_at,
    next_restart_at: row.next_restart_at,
    last_heartbeat_at: row.last_heartbeat_at,
    resumed_at: row.resumed_at,
    last_policy_evaluation: parseJson<LastPolicyEvaluation | null>(row.last_policy_evaluation, null),
    failure_reason: row.failure_reason,
    version: Number(row.version),
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

/** A config that is not valid JSON is kept as its raw text, so the runtime can fail that supervisor alone. */
function parseConfig(text: string): SupervisorConfig {
  try {
    return JSON.parse(text) as SupervisorConfig;
  } catch {
    return text as unknown as SupervisorConfig;
  }
}

export async function getSupervisor(db: Db, id: string): Promise<Supervisor | undefined> {
  const row = await db.selectFrom('supervisors').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toSupervisor(row) : undefined;
}

export async function insertSupervisor(
  db: Db,
  s: { id: string; name: string; description: string | null; config: SupervisorConfig; parent_id: string | null; hierarchy_level: number; at: number },
): Promise<void> {
  await db
    .insertInto('supervisors')
    .values({
      id: s.id,
      name: s.name,
      description: s.description,
      status: 'SPAWNING',
      config: json(s.config),
      parent_id: s.parent_id,
      parent_key: s.parent_id ?? '',
      hierarchy_level: s.hierarchy_level,
      running: 0,
      owner_instance_id: null,
      restart_count: 0,
      restarts_in_window: 0,
      version: 1,
      created_at: iso(s.at),
      updated_at: iso(s.at),
    })
    .execute();
}

export async function listSupervisors(db: Db, opts: { limit: number; after?: string; status?: string; parent_id?: string }): Promise<Supervisor[]> {
  let q = db.selectFrom('supervisors').selectAll().orderBy('id').limit(opts.limit);
  if (opts.after) q = q.where('id', '>', opts.after);
  if (opts.status) q = q.where('status', '=', opts.status);
  if (opts.parent_id) q = q.where('parent_id', '=', opts.parent_id);
  return (await q.execute()).map(toSupervisor);
}

/** Supervisors this process should run: every one not terminated (single-owner for now). */
export async function listRunnableSupervisors(db: Db): Promise<Supervisor[]> {
  const rows = await db.selectFrom('supervisors').selectAll().where('status', '!=', 'TERMINATED').orderBy('hierarchy_level').orderBy('id').execute();
  return rows.map(toSupervisor);
}

export type SupervisorPatch = Partial<Omit<SupervisorsTable, 'id' | 'created_at' | 'version' | 'parent_key'>>;

/**
 * The one write path for supervisor state. `expect` makes it a compare-and-set: the update only
 * happens while the row still has the given status / owner, so concurrent writers cannot clobber
 * each other. Returns whether a row changed.
 */
export async function updateSupervisor(
  db: Db,
  id: string,
  patch: SupervisorPatch,
  at: number,
  expect: { status?: readonly string[]; owner?: string | null; version?: number } = {},
): Promise<boolean> {
  let q = db
    .updateTable('supervisors')
    .set((eb) => ({ ...patch, ...(patch.parent_id !== undefined ? { parent_key: patch.parent_id ?? '' } : {}), updated_at: iso(at), version: eb('version', '+', 1) }))
    .where('id', '=', id);
  if (expect.status) q = q.where('status', 'in', [...expect.status]);
  if (expect.version !== undefined) q = q.where('version', '=', expect.version);
  if (expect.owner !== undefined) q = expect.owner === null ? q.where('owner_instance_id', 'is', null) : q.where('owner_instance_id', '=', expect.owner);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Heartbeat write: cheap, no version bump, owner-fenced. */
export async function beatSupervisor(db: Db, id: string, owner: string, at: number): Promise<boolean> {
  const res = await db
    .updateTable('supervisors')
    .set({ last_heartbeat_at: iso(at) })
    .where('id', '=', id)
    .where('owner_instance_id', '=', owner)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

export async function deleteSupervisor(db: Db, id: string): Promise<void> {
  await db.deleteFrom('supervisors').where('id', '=', id).execute();
}

export async function childrenOf(db: Db, id: string): Promise<Supervisor[]> {
  return (await db.selectFrom('supervisors').selectAll().where('parent_id', '=', id).orderBy('id').execute()).map(toSupervisor);
}

/** Walks up from `id` to the root (inclusive), bounded to stop on corrupt cycles. */
export async function ancestorsOf(db: Db, id: string, limit = 64): Promise<Supervisor[]> {
  const out: Supervisor[] = [];
  let cursor: string | null = id;
  while (cursor && out.length < limit) {
    const s = await getSupervisor(db, cursor);
    if (!s) break;
    out.push(s);
    cursor = s.parent_id;
  }
  return out;
}

/** Depth of the subtree under `id` (0 for a leaf). */
export async function subtreeHeight(db: Db, id: string, limit = 16): Promise<number> {
  let frontier = [id];
  let height = 0;
  while (height < limit) {
    const kids = await db.selectFrom('supervisors').select('id').where('parent_id', 'in', frontier).execute();
    if (!kids.length) return height;
    frontier = kids.map((k) => k.id);
    height++;
  }
  return height;
}

export async function countSupervisorsByStatus(db: Db): Promise<Record<string, number>> {
  const rows = await db.selectFrom('supervisors').select(['status']).select((eb) => eb.fn.countAll<number>().as('n')).groupBy('status').execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** FAILED supervisors of `owner` whose restart backoff is over. */
export async function restartsDue(db: Db, owner: string, nowIso: string): Promise<string[]> {
  const rows = await db.selectFrom('supervisors').select('id').where('status', '=', 'FAILED').where('owner_instance_id', '=', owner).where('next_restart_at', '<=', nowIso).execute();
  return rows.map((r) => r.id);
}

/** Whether another supervisor under the same parent already has this name. */
export async function supervisorNameTaken(db: Db, parentId: string | null, name: string, exceptId?: string): Promise<boolean> {
  let q = db.selectFrom('supervisors').select('id').where('parent_key', '=', parentId ?? '').where('name', '=', name);
  if (exceptId) q = q.where('id', '!=', exceptId);
  return (await q.executeTakeFirst()) !== undefined;
}

/** Supervisors `owner` should be running (not FAILED or TERMINATED) that are not in `hosted`. */
export async function ownedUnhosted(db: Db, owner: string, hosted: string[]): Promise<string[]> {
  let q = db.selectFrom('supervisors').select('id').where('owner_instance_id', '=', owner).where('status', 'not in', ['FAILED', 'TERMINATED']);
  if (hosted.length) q = q.where('id', 'not in', hosted);
  return (await q.execute()).map((r) => r.id);
}
