/** Alert intake and correlation into groups. */
import { ApiError } from '../../domain/errors.js';
import { validateConfig } from '../../domain/supervisor.js';
import { iso } from '../../domain/time.js';
import { appendEvent } from '../../store/events.js';
import { getAgent } from '../../store/agents.js';
import { bumpGroup, insertAlert, insertGroup, openGroup } from '../../store/alerts.js';
import { getSupervisor } from '../../store/supervisors.js';
import { actorLabel, type Actor, type ServiceContext } from './context.js';

export const SEVERITIES = ['info', 'warning', 'error', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
const rank = (s: string) => SEVERITIES.indexOf(s as Severity);

export interface AlertInput { source: string; severity: Severity; kind: string; agent_id?: string; supervisor_id?: string; message?: string }

/**
 * Records an alert and folds it into the open group for (agent, kind) within the supervisor's
 * correlation window; a new group is evaluated once by the supervisor's monitor loop.
 */
export async function raiseAlert(ctx: ServiceContext, input: AlertInput, actor: Actor | null) {
  const now = ctx.clock.now();
  const alertId = ctx.newId();
  const result = await ctx.store.tx(async (trx) => {
    let supervisorId = input.supervisor_id ?? null;
    if (input.agent_id) {
      const agent = await getAgent(trx, input.agent_id);
      if (!agent) throw new ApiError(400, 'validation_failed', `agent_id: agent ${input.agent_id} not found`, { problems: [{ path: 'agent_id', message: 'not found' }] });
      supervisorId ??= agent.supervisor_id;
    }
    if (!supervisorId) throw new ApiError(400, 'validation_failed', 'supervisor_id: required when the agent is in no team (or no agent is named)', { problems: [{ path: 'supervisor_id', message: 'required' }] });
    const sup = await getSupervisor(trx, supervisorId);
    if (!sup) throw new ApiError(400, 'validation_failed', `supervisor_id: supervisor ${supervisorId} not found`, { problems: [{ path: 'supervisor_id', message: 'not found' }] });
    const config = validateConfig(sup.config);
    const windowMs = (config.ok ? config.value.alert_correlation_window_seconds : 300) * 1000;
    const key = `${input.agent_id ?? '-'}:${input.kind}`;
    // Concurrent alerts for one key must not each find no open group (or bump from a stale severity).
    await ctx.store.caps.lockKey(trx, `alert_group:${sup.id}:${key}`);
    const open = await openGroup(trx, sup.id, key, iso(now));
    let groupId: string;
    let created = false;
    if (open) {
      groupId = open.id;
      await bumpGroup(trx, open.id, rank(input.severity) > rank(open.severity) ? input.severity : open.severity, now);
    } else {
      groupId = ctx.newId();
      created = true;
      await insertGroup(trx, { id: groupId, supervisor_id: sup.id, correlation_key: key, kind: input.kind, agent_id: input.agent_id ?? null, severity: input.severity, alert_count: 1, first_at: iso(now), last_at: iso(now), window_ends_at: iso(now + windowMs) });
    }
    await insertAlert(trx, { id: alertId, supervisor_id: sup.id, group_id: groupId, source: input.source, severity: input.severity, kind: input.kind, agent_id: input.agent_id ?? null, message: input.message ?? null, at: now });
    await appendEvent(trx, { supervisor_id: sup.id, entity_type: 'alert', entity_id: alertId, type: created ? 'alert.group_opened' : 'alert.correlated', actor: actorLabel(actor), payload: { group_id: groupId, kind: input.kind, severity: input.severity, agent_id: input.agent_id ?? null }, at: now });
    return { id: alertId, group_id: groupId, supervisor_id: sup.id, new_group: created };
  });
  if (result.new_group) ctx.runtime.hosted.get(result.supervisor_id)?.poke();
  return result;
}
