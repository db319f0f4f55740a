/** Agents, teams and memberships. */
import { ApiError } from '../../domain/errors.js';
import type { TeamRole } from '../../domain/agent.js';
import { iso } from '../../domain/time.js';
import { appendEvent, appendEvents, type NewEvent } from '../../store/events.js';
import {
  activeTeamOf,
  addMember,
  deleteAgent,
  getAgent,
  getTeam,
  insertAgent,
  insertTeam,
  removeMember,
  resetTelemetry,
  teamNameTaken,
  setAgentStatus,
  teamMembers,
  type Agent,
  type Team,
  type TeamMember,
} from '../../store/agents.js';
import { getSupervisor } from '../../store/supervisors.js';
import type { Tx } from '../../store/store.js';
import type { HeartbeatAck } from '../heartbeats.js';
import { actorLabel, type Actor, type ServiceContext } from './context.js';

export async function registerAgent(ctx: ServiceContext, input: { name: string; control_url?: string | null; metadata?: Record<string, unknown> }, actor: Actor | null): Promise<Agent> {
  const id = ctx.newId();
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    await insertAgent(trx, { id, name: input.name, control_url: input.control_url ?? null, metadata: input.metadata ?? {}, at: now });
    await appendEvent(trx, { entity_type: 'agent', entity_id: id, type: 'agent.registered', actor: actorLabel(actor), payload: { name: input.name, control_url: input.control_url ?? null }, at: now });
  });
  return (await ctx.store.read((db) => getAgent(db, id))) as Agent;
}

export async function getAgentOr404(ctx: ServiceContext, id: string): Promise<Agent> {
  const a = await ctx.store.read((db) => getAgent(db, id));
  if (!a) throw ApiError.notFound('agent', id);
  return a;
}

export async function removeAgent(ctx: ServiceContext, id: string, actor: Actor | null): Promise<void> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    const a = await getAgent(trx, id);
    if (!a) throw ApiError.notFound('agent', id);
    await deleteAgent(trx, id);
    await appendEvent(trx, { supervisor_id: a.supervisor_id, entity_type: 'agent', entity_id: id, type: 'agent.deleted', actor: actorLabel(actor), payload: { name: a.name, status: a.status, team_id: a.team_id }, at: now });
  });
}

/** Accepts a heartbeat; resolves after it is committed (group commit). */
export async function heartbeat(ctx: ServiceContext, agentId: string, metrics: Record<string, number | string>): Promise<HeartbeatAck> {
  return ctx.runtime.heartbeats.submit({ agent_id: agentId, metrics });
}

/** Out of quarantine: back to HEALTHY; staleness rules apply again from now. */
export async function releaseAgent(ctx: ServiceContext, id: string, actor: Actor | null): Promise<Agent> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    const a = await getAgent(trx, id);
    if (!a) throw ApiError.notFound('agent', id);
    if (a.status !== 'QUARANTINED') throw new ApiError(409, 'illegal_transition', `agent ${id} is ${a.status}, not QUARANTINED`, { status: a.status });
    await setAgentStatus(trx, id, 'HEALTHY', now, ['QUARANTINED']);
    // The cursor moves past old telemetry and the old reading is dropped, so neither the next
    // heartbeat pass nor a sweep undoes the release on the metrics that caused the quarantine.
    await resetTelemetry(trx, id, a.heartbeat_count, now);
    await appendEvent(trx, { supervisor_id: a.supervisor_id, entity_type: 'agent', entity_id: id, type: 'agent.released', actor: actorLabel(actor), payload: { from: 'QUARANTINED', to: 'HEALTHY' }, at: now });
  });
  return getAgentOr404(ctx, id);
}

export interface TeamView extends Team { members: TeamMember[] }

export async function createTeam(ctx: ServiceContext, supervisorId: string, input: { name: string; objective?: string | null; agent_ids?: string[] }, actor: Actor | null): Promise<TeamView> {
  const id = ctx.newId();
  const now = ctx.clock.now();
  const agentIds = [...new Set(input.agent_ids ?? [])];
  await ctx.store.tx(async (trx) => {
    const s = await getSupervisor(trx, supervisorId);
    if (!s) throw ApiError.notFound('supervisor', supervisorId);
    if (s.status === 'TERMINATED') throw ApiError.conflict(`supervisor ${supervisorId} is TERMINATED`);
    if (await teamNameTaken(trx, supervisorId, input.name)) throw ApiError.conflict(`team "${input.name}" already exists under supervisor ${supervisorId}`);
    await insertTeam(trx, { id, supervisor_id: supervisorId, name: input.name, objective: input.objective ?? null, at: now });
    const events: NewEvent[] = [{ supervisor_id: supervisorId, entity_type: 'team', entity_id: id, type: 'team.created', actor: actorLabel(actor), payload: { name: input.name, agent_ids: agentIds }, at: now }];
    for (const agentId of agentIds) events.push(await join(ctx, trx, { team_id: id, supervisor_id: supervisorId, agent_id: agentId, role: 'MEMBER', at: now }, actor));
    await appendEvents(trx, events);
  });
  ctx.runtime.policiesChanged(supervisorId);
  return teamView(ctx, id);
}

async function join(ctx: ServiceContext, trx: Tx, m: { team_id: string; supervisor_id: string; agent_id: string; role: TeamRole; at: number }, actor: Actor | null): Promise<NewEvent> {
  const agent = await getAgent(trx, m.agent_id);
  if (!agent) throw ApiError.notFound('agent', m.agent_id);
  const current = await activeTeamOf(trx, m.agent_id);
  if (current) throw ApiError.conflict(`agent ${m.agent_id} is already an active member of team ${current}`, { agent_id: m.agent_id, team_id: current });
  try {
    await addMember(trx, { id: ctx.newId(), ...m });
  } catch (err) {
    // Two concurrent joins: the partial unique index is the final word.
    if (ctx.store.caps.isUniqueViolation(err)) throw ApiError.conflict(`agent ${m.agent_id} is already an active member of a team`, { agent_id: m.agent_id });
    throw err;
  }
  return { supervisor_id: m.supervisor_id, entity_type: 'team', entity_id: m.team_id, type: 'team.member_added', actor: actorLabel(actor), payload: { agent_id: m.agent_id, role: m.role }, at: m.at };
}

export async function teamView(ctx: ServiceContext, id: string): Promise<TeamView> {
  const team = await ctx.store.read((db) => getTeam(db, id));
  if (!team) throw ApiError.notFound('team', id);
  return { ...team, members: await ctx.store.read((db) => teamMembers(db, id)) };
}

export async function addTeamMember(ctx: ServiceContext, teamId: string, input: { agent_id: string; role?: TeamRole }, actor: Actor | null): Promise<TeamView> {
  const now = ctx.clock.now();
  const supervisorId = await ctx.store.tx(async (trx) => {
    const team = await getTeam(trx, teamId);
    if (!team) throw ApiError.notFound('team', teamId);
    const ev = await join(ctx, trx, { team_id: teamId, supervisor_id: team.supervisor_id, agent_id: input.agent_id, role: input.role ?? 'MEMBER', at: now }, actor);
    await appendEvent(trx, ev);
    return team.supervisor_id;
  });
  ctx.runtime.policiesChanged(supervisorId);
  return teamView(ctx, teamId);
}

export async function removeTeamMember(ctx: ServiceContext, teamId: string, agentId: string, actor: Actor | null): Promise<TeamView> {
  const now = ctx.clock.now();
  const supervisorId = await ctx.store.tx(async (trx) => {
    const team = await getTeam(trx, teamId);
    if (!team) throw ApiError.notFound('team', teamId);
    if (!(await removeMember(trx, teamId, agentId, now))) throw ApiError.notFound(`active member of team ${teamId}:`, agentId);
    await appendEvent(trx, { supervisor_id: team.supervisor_id, entity_type: 'team', entity_id: teamId, type: 'team.member_removed', actor: actorLabel(actor), payload: { agent_id: agentId }, at: now });
    return team.supervisor_id;
  });
  ctx.runtime.policiesChanged(supervisorId);
  return teamView(ctx, teamId);
}
