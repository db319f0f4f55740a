/** Agents, teams and memberships. */
import { sql } from 'kysely';
import type { Db } from './store.js';
import type { DialectCaps } from './dialect.js';
import { json, parseJson } from './store.js';
import type { AgentsTable, TeamsTable } from './schema.js';
import type { AgentStatus, TeamRole } from '../domain/agent.js';
import { iso } from '../domain/time.js';

export interface Agent {
  id: string;
  name: string;
  status: AgentStatus;
  team_id: string | null;
  supervisor_id: string | null;
  control_url: string | null;
  metadata: Record<string, unknown>;
  last_heartbeat_at: string | null;
  last_metrics: Record<string, number | string> | null;
  heartbeat_count: number;
  evaluated_count: number;
  status_changed_at: string;
  created_at: string;
  updated_at: string;
}

export function toAgent(row: AgentsTable): Agent {
  return {
    id: row.id,
    name: row.name,
    status: row.status as AgentStatus,
    team_id: row.team_id,
    supervisor_id: row.supervisor_id,
    control_url: row.control_url,
    metadata: parseJson(row.metadata, {}),
    last_heartbeat_at: row.last_heartbeat_at,
    last_metrics: parseJson(row.last_metrics, null),
    heartbeat_count: Number(row.heartbeat_count),
    evaluated_count: Number(row.evaluated_count),
    status_changed_at: row.status_changed_at,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

export async function getAgent(db: Db, id: string): Promise<Agent | undefined> {
  const row = await db.selectFrom('agents').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toAgent(row) : undefined;
}

export async function getAgents(db: Db, ids: string[]): Promise<Agent[]> {
  if (!ids.length) return [];
  const out: Agent[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await db.selectFrom('agents').selectAll().where('id', 'in', ids.slice(i, i + 500)).execute();
    out.push(...rows.map(toAgent));
  }
  return out;
}

export async function insertAgent(db: Db, a: { id: string; name: string; control_url: string | null; metadata: Record<string, unknown>; at: number }): Promise<void> {
  await db
    .insertInto('agents')
    .values({
      id: a.id,
      name: a.name,
      status: 'REGISTERED',
      control_url: a.control_url,
      metadata: json(a.metadata),
      team_id: null,
      supervisor_id: null,
      heartbeat_count: 0,
      evaluated_count: 0,
      status_changed_at: iso(a.at),
      created_at: iso(a.at),
      updated_at: iso(a.at),
    })
    .execute();
}

export async function listAgents(db: Db, opts: { limit: number; after?: string; status?: string; team_id?: string; supervisor_id?: string }): Promise<Agent[]> {
  let q = db.selectFrom('agents').selectAll().orderBy('id').limit(opts.limit);
  if (opts.after) q = q.where('id', '>', opts.after);
  if (opts.status) q = q.where('status', '=', opts.status);
  if (opts.team_id) q = q.where('team_id', '=', opts.team_id);
  if (opts.supervisor_id) q = q.where('supervisor_id', '=', opts.supervisor_id);
  return (await q.execute()).map(toAgent);
}

export async function agentsOfSupervisor(db: Db, supervisorId: string): Promise<Agent[]> {
  return (await db.selectFrom('agents').selectAll().where('supervisor_id', '=', supervisorId).orderBy('id').execute()).map(toAgent);
}

/** Compare-and-set of an agent's status. Returns whether it changed. */
export async function setAgentStatus(db: Db, id: string, status: AgentStatus, at: number, expect?: readonly AgentStatus[]): Promise<boolean> {
  let q = db.updateTable('agents').set({ status, status_changed_at: iso(at), updated_at: iso(at) }).where('id', '=', id);
  if (expect) q = q.where('status', 'in', [...expect]);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

export async function deleteAgent(db: Db, id: string): Promise<void> {
  await db.deleteFrom('agents').where('id', '=', id).execute();
}

/** Moves the durable evaluation cursor forward; never backwards. */
export async function markEvaluated(db: Db, id: string, count: number): Promise<void> {
  await db.updateTable('agents').set({ evaluated_count: count }).where('id', '=', id).where('evaluated_count', '<', count).execute();
}

export async function countAgentsByStatus(db: Db, supervisorId?: string): Promise<Record<string, number>> {
  let q = db.selectFrom('agents').select(['status']).select((eb) => eb.fn.countAll<number>().as('n')).groupBy('status');
  if (supervisorId) q = q.where('supervisor_id', '=', supervisorId);
  const rows = await q.execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

// ---- teams ----

export interface Team {
  id: string;
  supervisor_id: string;
  name: string;
  objective: string | null;
  created_at: string;
  updated_at: string;
}

export interface TeamMember { agent_id: string; role: TeamRole; joined_at: string; left_at: string | null; agent_name?: string; agent_status?: string }

export const toTeam = (row: TeamsTable): Team => ({ ...row });

export async function getTeam(db: Db, id: string): Promise<Team | undefined> {
  const row = await db.selectFrom('teams').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toTeam(row) : undefined;
}

export async function insertTeam(db: Db, t: { id: string; supervisor_id: string; name: string; objective: string | null; at: number }): Promise<void> {
  await db.insertInto('teams').values({ id: t.id, supervisor_id: t.supervisor_id, name: t.name, objective: t.objective, created_at: iso(t.at), updated_at: iso(t.at) }).execute();
}

export async function listTeams(db: Db, supervisorId: string, opts: { limit: number; after?: string }): Promise<Team[]> {
  let q = db.selectFrom('teams').selectAll().where('supervisor_id', '=', supervisorId).orderBy('id').limit(opts.limit);
  if (opts.after) q = q.where('id', '>', opts.after);
  return (await q.execute()).map(toTeam);
}

export async function teamMembers(db: Db, teamId: string, includeFormer = false): Promise<TeamMember[]> {
  let q = db
    .selectFrom('team_members as m')
    .innerJoin('agents as a', 'a.id', 'm.agent_id')
    .select(['m.agent_id', 'm.role', 'm.joined_at', 'm.left_at', 'a.name as agent_name', 'a.status as agent_status'])
    .where('m.team_id', '=', teamId)
    .orderBy('m.joined_at')
    .orderBy('m.agent_id');
  if (!includeFormer) q = q.where('m.left_at', 'is', null);
  const rows = await q.execute();
  return rows.map((r) => ({ ...r, role: r.role as TeamRole }));
}

export async function countMembers(db: Db, teamId: string): Promise<number> {
  const r = await db.selectFrom('team_members').select((eb) => eb.fn.countAll<number>().as('n')).where('team_id', '=', teamId).where('left_at', 'is', null).executeTakeFirst();
  return Number(r?.n ?? 0);
}

/** Adds an active membership and points the agent at the team's supervisor. */
export async function addMember(db: Db, m: { id: string; team_id: string; supervisor_id: string; agent_id: string; role: TeamRole; at: number }): Promise<void> {
  await db.insertInto('team_members').values({ id: m.id, team_id: m.team_id, agent_id: m.agent_id, role: m.role, joined_at: iso(m.at), left_at: null }).execute();
  await db.updateTable('agents').set({ team_id: m.team_id, supervisor_id: m.supervisor_id, updated_at: iso(m.at) }).where('id', '=', m.agent_id).execute();
}

/** Ends an active membership (kept with `left_at`) and detaches the agent. Returns false if none. */
export async function removeMember(db: Db, teamId: string, agentId: string, at: number): Promise<boolean> {
  const res = await db.updateTable('team_members').set({ left_at: iso(at) }).where('team_id', '=', teamId).where('agent_id', '=', agentId).where('left_at', 'is', null).executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) return false;
  await db.updateTable('agents').set({ team_id: null, supervisor_id: null, updated_at: iso(at) }).where('id', '=', agentId).execute();
  return true;
}

export async function activeTeamOf(db: Db, agentId: string): Promise<string | null> {
  const r = await db.selectFrom('team_members').select('team_id').where('agent_id', '=', agentId).where('left_at', 'is', null).executeTakeFirst();
  return r?.team_id ?? null;
}

/** Reads (and on PostgreSQL row-locks) the agents a heartbeat batch is about to update. */
export async function lockAgentsForHeartbeat(db: Db, caps: DialectCaps, ids: string[]): Promise<AgentsTable[]> {
  const out: AgentsTable[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const q = db.selectFrom('agents').selectAll().where('id', 'in', ids.slice(i, i + 500)).orderBy('id');
    out.push(...(await (caps.rowLocks ? q.forUpdate() : q).execute()));
  }
  return out;
}

/**
 * One statement per batch of heartbeats (UPDATE ... FROM VALUES works on SQLite >= 3.33 and
 * PostgreSQL alike). Status is decided in SQL from the row as it is, so a quarantine committed
 * by another transaction is never overwritten by a heartbeat.
 */
export async function applyHeartbeats(db: Db, updates: { id: string; count: number; metrics: Record<string, number | string> }[], nowIso: string): Promise<void> {
  for (let i = 0; i < updates.length; i += 250) {
    const chunk = updates.slice(i, i + 250);
    const values = sql.join(chunk.map((u) => sql`(${u.id}, ${json(u.metrics)}, ${u.count})`));
    await sql`
      update agents set
        last_heartbeat_at = ${nowIso},
        last_metrics = v.column2,
        heartbeat_count = agents.heartbeat_count + cast(v.column3 as integer),
        status = case when agents.status in ('QUARANTINED', 'TERMINATED') then agents.status else 'HEALTHY' end,
        status_changed_at = case when agents.status in ('QUARANTINED', 'TERMINATED', 'HEALTHY') then agents.status_changed_at else ${nowIso} end,
        updated_at = ${nowIso}
      from (values ${values}) as v
      where agents.id = v.column1`.execute(db);
  }
}

/** A supervisor's teams with their active member counts (for policy contexts). */
export async function teamsWithCounts(db: Db, supervisorId: string): Promise<(Team & { member_count: number })[]> {
  const rows = await db
    .selectFrom('teams as t')
    .leftJoin('team_members as m', (j) => j.onRef('m.team_id', '=', 't.id').on('m.left_at', 'is', null))
    .select(['t.id', 't.supervisor_id', 't.name', 't.objective', 't.created_at', 't.updated_at'])
    .select((eb) => eb.fn.count<number>('m.id').as('member_count'))
    .where('t.supervisor_id', '=', supervisorId)
    .groupBy(['t.id', 't.supervisor_id', 't.name', 't.objective', 't.created_at', 't.updated_at'])
    .execute();
  return rows.map((t) => ({ ...t, member_count: Number(t.member_count) }));
}

/** Agents of a supervisor whose heartbeats are past the evaluation cursor, or all it evaluates. */
export async function agentsForEvaluation(db: Db, supervisorId: string, which: 'pending' | 'evaluated', evaluatedStatuses: readonly string[]): Promise<Agent[]> {
  let q = db.selectFrom('agents').selectAll().where('supervisor_id', '=', supervisorId);
  q = which === 'pending' ? q.whereRef('heartbeat_count', '>', 'evaluated_count') : q.where('status', 'in', [...evaluatedStatuses]);
  return (await q.orderBy('id').execute()).map(toAgent);
}

/** Moves the cursor of agents just evaluated inside the heartbeat's own transaction. */
export async function markHeartbeatsEvaluated(db: Db, ids: string[]): Promise<void> {
  if (!ids.length) return;
  await db.updateTable('agents').set((eb) => ({ evaluated_count: eb.ref('heartbeat_count') })).where('id', 'in', ids).execute();
}

/**
 * Agents that may have gone stale: in one of `statuses`, silent since before `cutoffIso`
 * (never-heard-from agents count from registration). `supervisorId` null: agents in no team.
 */
export async function staleCandidates(db: Db, supervisorId: string | null, statuses: readonly string[], cutoffIso: string): Promise<Agent[]> {
  let q = db.selectFrom('agents').selectAll().where('status', 'in', [...statuses]).where((eb) => eb(eb.fn.coalesce('last_heartbeat_at', 'created_at'), '<', cutoffIso));
  q = supervisorId === null ? q.where('supervisor_id', 'is', null) : q.where('supervisor_id', '=', supervisorId);
  return (await q.execute()).map(toAgent);
}

/** Compare-and-set to STALE: a heartbeat (or status change) that landed meanwhile wins. */
export async function markStaleIfUnchanged(db: Db, a: Pick<Agent, 'id' | 'status' | 'last_heartbeat_at'>, at: number): Promise<boolean> {
  let q = db.updateTable('agents').set({ status: 'STALE', status_changed_at: iso(at), updated_at: iso(at) }).where('id', '=', a.id).where('status', '=', a.status);
  q = a.last_heartbeat_at ? q.where('last_heartbeat_at', '=', a.last_heartbeat_at) : q.where('last_heartbeat_at', 'is', null);
  return Number((await q.executeTakeFirst()).numUpdatedRows) > 0;
}

/** After a release: telemetry from before the quarantine is not evaluated again. */
export async function resetTelemetry(db: Db, id: string, heartbeatCount: number, at: number): Promise<void> {
  await db.updateTable('agents').set({ evaluated_count: heartbeatCount, last_heartbeat_at: iso(at), last_metrics: null }).where('id', '=', id).execute();
}

/** Detaches every agent from a supervisor that is being deleted. */
export async function detachAgentsOf(db: Db, supervisorId: string, at: number): Promise<void> {
  await db.updateTable('agents').set({ team_id: null, supervisor_id: null, updated_at: iso(at) }).where('supervisor_id', '=', supervisorId).execute();
}

export async function teamNameTaken(db: Db, supervisorId: string, name: string): Promise<boolean> {
  return (await db.selectFrom('teams').select('id').where('supervisor_id', '=', supervisorId).where('name', '=', name).executeTakeFirst()) !== undefined;
}
