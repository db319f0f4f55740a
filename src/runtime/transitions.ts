/** Supervisor state transitions: validated by the state machine, committed with a journal event. */
import { canTransition, type SupervisorStatus } from '../domain/supervisor.js';
import { ApiError } from '../domain/errors.js';
import type { Store, Tx } from '../store/store.js';
import { getSupervisor, updateSupervisor, type Supervisor, type SupervisorPatch } from '../store/supervisors.js';
import { appendEvent } from '../store/events.js';
import { failOpenInterventions } from '../store/interventions.js';

export interface TransitionRequest {
  id: string;
  to: SupervisorStatus;
  /** Allowed current statuses; defaults to every status the state machine allows into `to`. */
  from?: readonly SupervisorStatus[];
  patch?: SupervisorPatch;
  event: string;
  actor?: string | null;
  payload?: Record<string, unknown>;
  at: number;
}

/** Applies a transition inside `trx`; throws 404/409 and leaves the row untouched when not allowed. */
export async function transitionIn(trx: Tx, req: TransitionRequest): Promise<Supervisor> {
  const current = await getSupervisor(trx, req.id);
  if (!current) throw ApiError.notFound('supervisor', req.id);
  const allowed = (req.from ?? [current.status]).includes(current.status) && canTransition(current.status, req.to);
  if (!allowed) {
    throw new ApiError(409, 'illegal_transition', `supervisor ${req.id} cannot go from ${current.status} to ${req.to}`, { from: current.status, to: req.to });
  }
  const ok = await updateSupervisor(trx, req.id, { ...req.patch, status: req.to }, req.at, { status: [current.status] });
  if (!ok) throw ApiError.conflict(`supervisor ${req.id} changed concurrently; retry`);
  await appendEvent(trx, {
    supervisor_id: req.id,
    entity_type: 'supervisor',
    entity_id: req.id,
    type: req.event,
    actor: req.actor ?? null,
    payload: { from: current.status, to: req.to, ...(req.payload ?? {}) },
    at: req.at,
  });
  if (req.to === 'TERMINATED') {
    // Nothing will ever run these: end them now instead of leaving them active for good.
    const ended = await failOpenInterventions(trx, req.id, 'supervisor terminated before this intervention ran', req.at);
    if (ended.length) await appendEvent(trx, { supervisor_id: req.id, entity_type: 'supervisor', entity_id: req.id, type: 'interventions.cancelled', actor: req.actor ?? null, payload: { intervention_ids: ended, reason: 'supervisor terminated' }, at: req.at });
  }
  const after = await getSupervisor(trx, req.id);
  return after as Supervisor;
}

export function transition(store: Store, req: TransitionRequest): Promise<Supervisor> {
  return store.tx((trx) => transitionIn(trx, req));
}
