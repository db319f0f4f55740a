/** Supervisor operations: create, update, delete, commands, hierarchy, health. */
import { ApiError } from '../../domain/errors.js';
import { SUPERVISOR_COMMANDS, missedHeartbeats, restartsLeft, validateConfig, type SupervisorCommand } from '../../domain/supervisor.js';
import { iso } from '../../domain/time.js';
import { appendEvent } from '../../store/events.js';
import {
  ancestorsOf,
  childrenOf,
  deleteSupervisor,
  getSupervisor,
  insertSupervisor,
  subtreeHeight,
  supervisorNameTaken,
  updateSupervisor,
  type Supervisor,
} from '../../store/supervisors.js';
import { countAgentsByStatus, detachAgentsOf } from '../../store/agents.js';
import { deleteAlertsOf } from '../../store/alerts.js';
import { countActive } from '../../store/interventions.js';
import { transitionIn } from '../transitions.js';
import { actorLabel, type Actor, type ServiceContext } from './context.js';

export interface CreateSupervisorInput { name: string; description?: string | null; config?: unknown; parent_id?: string | null }

async function mustGet(ctx: ServiceContext, id: string): Promise<Supervisor> {
  const s = await ctx.store.read((db) => getSupervisor(db, id));
  if (!s) throw ApiError.notFound('supervisor', id);
  return s;
}

export { mustGet as getSupervisorOr404 };

export async function createSupervisor(ctx: ServiceContext, input: CreateSupervisorInput, actor: Actor | null): Promise<Supervisor> {
  const checked = validateConfig(input.config);
  if (!checked.ok) throw ApiError.invalid(checked.problems);
  const id = ctx.newId();
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    let level = 0;
    if (input.parent_id) {
      const parent = await getSupervisor(trx, input.parent_id);
      if (!parent) throw new ApiError(400, 'validation_failed', `parent_id: supervisor ${input.parent_id} not found`, { problems: [{ path: 'parent_id', message: 'not found' }] });
      if (parent.status === 'TERMINATED') throw ApiError.conflict(`parent supervisor ${parent.id} is TERMINATED`);
      level = parent.hierarchy_level + 1;
      const limit = Math.min(checked.value.max_hierarchy_depth, rootLimit(await ancestorsOf(trx, parent.id)));
      if (level + 1 > limit) throw new ApiError(400, 'validation_failed', `hierarchy too deep: a supervisor at depth ${level + 1} exceeds the limit of ${limit}`, { problems: [{ path: 'parent_id', message: `depth ${level + 1} exceeds max_hierarchy_depth ${limit}` }] });
    }
    await assertNameFree(trx, input.parent_id ?? null, input.name);
    await insertSupervisor(trx, { id, name: input.name, description: input.description ?? null, config: checked.value, parent_id: input.parent_id ?? null, hierarchy_level: level, at: now });
    await appendEvent(trx, { supervisor_id: id, entity_type: 'supervisor', entity_id: id, type: 'supervisor.created', actor: actorLabel(actor), payload: { name: input.name, parent_id: input.parent_id ?? null, config: checked.value }, at: now });
  });
  return (await ctx.runtime.supervisorChanged(id)) ?? mustGet(ctx, id);
}

/** The depth limit is the smallest `max_hierarchy_depth` along the chain (depth counts from 1). */
function rootLimit(chain: Supervisor[]): number {
  let limit = 10;
  for (const s of chain) {
    const c = validateConfig(s.config);
    if (c.ok) limit = Math.min(limit, c.value.max_hierarchy_depth);
  }
  return limit;
}

async function assertNameFree(trx: Parameters<typeof getSupervisor>[0], parentId: string | null, name: string, exceptId?: string): Promise<void> {
  if (await supervisorNameTaken(trx, parentId, name, exceptId)) throw ApiError.conflict(`a supervisor named "${name}" already exists under this parent`, { name, parent_id: parentId });
}

export interface UpdateSupervisorInput { name?: string; description?: string | null; config?: unknown; parent_id?: string | null }

export async function updateSupervisorFields(ctx: ServiceContext, id: string, input: UpdateSupervisorInput, actor: Actor | null): Promise<Supervisor> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    // Read-merge-write of the config: concurrent updates of one supervisor take turns (PostgreSQL).
    await ctx.store.caps.lockKey(trx, `supervisor-update:${id}`);
    const s = await getSupervisor(trx, id);
    if (!s) throw ApiError.notFound('supervisor', id);
    if (s.status === 'TERMINATED') throw ApiError.conflict(`supervisor ${id} is TERMINATED and can no longer change`);
    const base = validateConfig(s.config);
    const checked = validateConfig(input.config, base.ok ? base.value : undefined);
    if (!checked.ok) throw ApiError.invalid(checked.problems);
    const patch: Parameters<typeof updateSupervisor>[2] = { config: JSON.stringify(checked.value) };
    let parentId = s.parent_id;
    if (input.parent_id !== undefined && input.parent_id !== s.parent_id) {
      parentId = input.parent_id;
      let level = 0;
      if (parentId) {
        const chain = await ancestorsOf(trx, parentId);
        if (!chain.length) throw new ApiError(400, 'validation_failed', `parent_id: supervisor ${parentId} not found`, { problems: [{ path: 'parent_id', message: 'not found' }] });
        if (chain.some((a) => a.id === id)) throw new ApiError(409, 'conflict', `moving supervisor ${id} under ${parentId} would create a cycle`, { parent_id: parentId });
        level = chain[0].hierarchy_level + 1;
        const height = await subtreeHeight(trx, id);
        const limit = Math.min(checked.value.max_hierarchy_depth, rootLimit(chain));
        if (level + 1 + height > limit) throw new ApiError(400, 'validation_failed', `hierarchy too deep: the move would reach depth ${level + 1 + height}, limit ${limit}`, { problems: [{ path: 'parent_id', message: `depth exceeds ${limit}` }] });
      }
      patch.parent_id = parentId;
      patch.hierarchy_level = level;
      await relevel(trx, id, level, now);
    }
    if (input.name !== undefined || patch.parent_id !== undefined) await assertNameFree(trx, parentId, input.name ?? s.name, id);
    if (input.name !== undefined) patch.name = input.name;
    if (input.description !== undefined) patch.description = input.description;
    await updateSupervisor(trx, id, patch, now);
    await appendEvent(trx, { supervisor_id: id, entity_type: 'supervisor', entity_id: id, type: 'supervisor.updated', actor: actorLabel(actor), payload: { changes: input }, at: now });
  });
  return (await ctx.runtime.supervisorChanged(id)) ?? mustGet(ctx, id);
}

/** Keeps `hierarchy_level` right for a moved subtree. */
async function relevel(trx: Parameters<typeof getSupervisor>[0], id: string, level: number, now: number): Promise<void> {
  for (const c of await childrenOf(trx, id)) {
    await updateSupervisor(trx, c.id, { hierarchy_level: level + 1 }, now);
    await relevel(trx, c.id, level + 1, now);
  }
}

export async function deleteSupervisorById(ctx: ServiceContext, id: string, actor: Actor | null): Promise<void> {
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    const s = await getSupervisor(trx, id);
    if (!s) throw ApiError.notFound('supervisor', id);
    if ((await childrenOf(trx, id)).length) throw ApiError.conflict(`supervisor ${id} has child supervisors; delete or move them first`);
    const active = await countActive(trx, id);
    if (active) throw ApiError.conflict(`supervisor ${id} has ${active} active intervention(s); reject or let them finish first`);
    await detachAgentsOf(trx, id, now);
    await deleteAlertsOf(trx, id);
    await deleteSupervisor(trx, id);
    await appendEvent(trx, { supervisor_id: id, entity_type: 'supervisor', entity_id: id, type: 'supervisor.deleted', actor: actorLabel(actor), payload: { name: s.name, status: s.status }, at: now });
  });
  await ctx.runtime.supervisorChanged(id);
}

export async function commandSupervisor(ctx: ServiceContext, id: string, command: SupervisorCommand, actor: Actor | null): Promise<Supervisor> {
  const rule = SUPERVISOR_COMMANDS[command];
  const now = ctx.clock.now();
  await ctx.store.tx(async (trx) => {
    const s = await getSupervisor(trx, id);
    if (!s) throw ApiError.notFound('supervisor', id);
    if (!(rule.from as readonly string[]).includes(s.status)) {
      throw new ApiError(409, 'illegal_transition', `cannot ${command} a supervisor that is ${s.status}`, { from: s.status, command, allowed_from: rule.from });
    }
    const patch = command === 'start' && s.status === 'FAILED' ? { failure_reason: null, next_restart_at: null, restarts_in_window: 0, restart_window_started_at: null, last_restart_at: iso(now), restart_count: s.restart_count + 1 } : {};
    const running = rule.to === 'TERMINATED' ? { running: 0 } : {};
    await transitionIn(trx, { id, to: rule.to, from: rule.from, event: `supervisor.${command === 'stop' ? 'stopped' : command === 'start' ? 'started' : command === 'pause' ? 'paused' : 'resumed'}`, actor: actorLabel(actor), patch: { ...patch, ...running }, at: now });
  });
  return (await ctx.runtime.supervisorChanged(id)) ?? mustGet(ctx, id);
}

export interface HierarchyNode { id: string; name: string; status: string; hierarchy_level: number; children: HierarchyNode[] }

export async function hierarchy(ctx: ServiceContext, id: string): Promise<{ ancestors: { id: string; name: string; status: string; hierarchy_level: number }[]; tree: HierarchyNode }> {
  const s = await mustGet(ctx, id);
  const ancestors = (await ctx.store.read((db) => ancestorsOf(db, id))).slice(1).map((a) => ({ id: a.id, name: a.name, status: a.status, hierarchy_level: a.hierarchy_level }));
  const build = async (node: Supervisor, depth: number): Promise<HierarchyNode> => {
    const kids = depth < 12 ? await ctx.store.read((db) => childrenOf(db, node.id)) : [];
    return { id: node.id, name: node.name, status: node.status, hierarchy_level: node.hierarchy_level, children: await Promise.all(kids.map((k) => build(k, depth + 1))) };
  };
  return { ancestors, tree: await build(s, 0) };
}

export async function supervisorHealth(ctx: ServiceContext, id: string) {
  const s = await mustGet(ctx, id);
  const now = ctx.clock.now();
  const checked = validateConfig(s.config);
  const config = checked.ok ? checked.value : null;
  const [counts, active] = await Promise.all([ctx.store.read((db) => countAgentsByStatus(db, id)), ctx.store.read((db) => countActive(db, id))]);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const missed = config && s.running ? missedHeartbeats(s.last_heartbeat_at ? Date.parse(s.last_heartbeat_at) : null, s.resumed_at ? Date.parse(s.resumed_at) : null, config.heartbeat_interval_seconds, now) : 0;
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    running: s.running,
    hosted_here: ctx.runtime.hosted.has(id),
    owner_instance_id: s.owner_instance_id,
    last_heartbeat_at: s.last_heartbeat_at,
    missed_heartbeats: missed,
    resumed_at: s.resumed_at,
    restart_count: s.restart_count,
    restarts_left: config ? restartsLeft({ restarts_in_window: s.restarts_in_window, restart_window_started_at: s.restart_window_started_at ? Date.parse(s.restart_window_started_at) : null }, config, now) : 0,
    last_restart_at: s.last_restart_at,
    next_restart_at: s.next_restart_at,
    failure_reason: s.failure_reason,
    active_interventions: active,
    last_policy_evaluation: s.last_policy_evaluation,
    agents: {
      total,
      registered: counts.REGISTERED ?? 0,
      healthy: counts.HEALTHY ?? 0,
      stale: counts.STALE ?? 0,
      quarantined: counts.QUARANTINED ?? 0,
      restarting: counts.RESTARTING ?? 0,
      terminated: counts.TERMINATED ?? 0,
    },
    checked_at: iso(now),
  };
}
