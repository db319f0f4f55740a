/**
 * The intervention executor: drains the outbox. APPROVED -> EXECUTING is committed before the
 * call; the result is committed before memory moves on. Interrupted work goes back to APPROVED
 * and is re-sent under the same idempotency key.
 */
import { backoffMs, type SupervisorConfig } from '../domain/supervisor.js';
import { updateEffectiveness, type InterventionStatus } from '../domain/intervention.js';
import { iso, type Clock, type IdSource } from '../domain/time.js';
import type { Store, Tx } from '../store/store.js';
import { json } from '../store/store.js';
import {
  childInterventions,
  dueInterventions,
  insertIntervention,
  interventionsInStatus,
  transitionIntervention,
  type Intervention,
} from '../store/interventions.js';
import { getAgent, setAgentStatus, teamMembers } from '../store/agents.js';
import { appendEvent, appendEvents } from '../store/events.js';
import { getPolicy, recordOutcome } from '../store/policies.js';
import { getSupervisor } from '../store/supervisors.js';
import { deliverWebhook, type ActuatorResult } from './actuator.js';
import { Loop } from './loop.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface ExecutorHost {
  /** Supervisors whose interventions this process may dispatch now, with their config. */
  dispatchable(): Map<string, SupervisorConfig>;
  /** Config of any supervisor this process hosts (for timeouts and learning rate). */
  configOf(supervisorId: string): SupervisorConfig | undefined;
}

export interface ExecutorDeps {
  store: Store;
  clock: Clock;
  newId: IdSource;
  logger: Logger;
  metrics?: Metrics;
  host: ExecutorHost;
  random?: () => number;
  pollMs?: number;
}

const RETRY_BASE_MS = 500;
const RETRY_CAP_MS = 30_000;

export class InterventionExecutor {
  readonly loop: Loop;
  private readonly inFlight = new Map<string, { supervisorId: string; promise: Promise<void>; abort: AbortController }>();
  private accepting = true;

  constructor(private readonly deps: ExecutorDeps) {
    this.loop = new Loop({ name: 'executor', clock: deps.clock, logger: deps.logger, intervalMs: () => deps.pollMs ?? 250, tick: () => this.tickOnce() });
  }

  start(): void {
    this.accepting = true;
    this.loop.start();
  }

  poke(): void {
    this.loop.poke();
  }

  /** Claims nothing new from now on (shutdown has begun). */
  stopAccepting(): void {
    this.accepting = false;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** One pass: time out what is overdue, finish team restarts, claim and dispatch what is due. */
  async tickOnce(): Promise<void> {
    if (!this.accepting) return;
    const { store, clock, host } = this.deps;
    const now = clock.now();
    const dispatchable = host.dispatchable();
    const supIds = [...dispatchable.keys()];
    if (!supIds.length) return;
    await this.reconcileExecuting(supIds, now);
    const due = await store.read((db) => dueInterventions(db, supIds, iso(now), 200));
    const perSup = new Map<string, number>();
    for (const f of this.inFlight.values()) perSup.set(f.supervisorId, (perSup.get(f.supervisorId) ?? 0) + 1);
    for (const i of due) {
      if (!this.accepting) break;
      if (this.inFlight.has(i.id)) continue;
      const config = dispatchable.get(i.supervisor_id) as SupervisorConfig;
      if (i.deadline_at && Date.parse(i.deadline_at) <= now) {
        await this.finish(i, 'FAILED', { error: `timed out after ${i.attempts} attempt(s)${i.error_message ? `; last error: ${i.error_message}` : ''}` }, ['APPROVED']);
        continue;
      }
      const running = perSup.get(i.supervisor_id) ?? 0;
      if (running >= config.max_concurrent_interventions) continue;
      const claimed = await store.tx(async (trx) => {
        const ok = await transitionIntervention(trx, i.id, ['APPROVED'], { status: 'EXECUTING', attempts: i.attempts + 1, started_at: iso(now) }, now);
        if (ok) await appendEvent(trx, { supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: i.id, type: 'intervention.executing', payload: { attempt: i.attempts + 1 }, at: now });
        return ok;
      });
      if (!claimed) continue;
      perSup.set(i.supervisor_id, running + 1);
      const claimedRow: Intervention = { ...i, status: 'EXECUTING', attempts: i.attempts + 1, started_at: iso(now) };
      const abort = new AbortController();
      const promise = this.execute(claimedRow, config, abort.signal)
        .catch((err) => this.deps.logger.error({ err, intervention_id: i.id }, 'intervention execution failed unexpectedly; left for re-dispatch'))
        .finally(() => {
          this.inFlight.delete(i.id);
          if (this.accepting) this.loop.poke();
        });
      this.inFlight.set(i.id, { supervisorId: i.supervisor_id, promise, abort });
    }
  }

  private async execute(i: Intervention, config: SupervisorConfig, signal: AbortSignal): Promise<void> {
    const { store, clock } = this.deps;
    const now = clock.now();
    const deadline = i.deadline_at ? Date.parse(i.deadline_at) : now + config.intervention_timeout_seconds * 1000;
    let result: ActuatorResult;
    switch (i.intervention_type) {
      case 'ESCALATE':
        result = await this.escalate(i);
        break;
      case 'NOTIFY':
        result = { kind: 'completed', outcome: { notified: true } };
        break;
      case 'TEAM_RESTART':
        await this.startTeamRestart(i, now);
        return;
      default: {
        if (i.target_type !== 'AGENT') {
          result = { kind: 'failed', error: `${i.intervention_type} needs an AGENT target` };
          break;
        }
        const agent = await store.read((db) => getAgent(db, i.target_id));
        if (!agent) result = { kind: 'failed', error: `agent ${i.target_id} not found` };
        else if (!agent.control_url) {
          result = i.intervention_type === 'AGENT_QUARANTINE'
            ? { kind: 'completed', outcome: { applied: 'status_only', note: 'agent has no control_url; quarantined in Overseer only' } }
            : { kind: 'failed', error: 'agent has no control_url' };
        } else {
          const t0 = performance.now();
          result = await deliverWebhook(agent.control_url, i, agent.id, deadline - now, signal);
          this.deps.metrics?.webhookLatency.observe({ result: result.kind }, (performance.now() - t0) / 1000);
        }
      }
    }
    if (signal.aborted && result.kind === 'retry') {
      await this.release(i, 'interrupted by shutdown');
      return;
    }
    if (result.kind === 'completed') await this.finish(i, 'COMPLETED', { outcome: result.outcome }, ['EXECUTING']);
    else if (result.kind === 'failed') await this.finish(i, 'FAILED', { error: result.error }, ['EXECUTING']);
    else {
      const at = clock.now();
      const next = at + backoffMs(i.attempts, RETRY_BASE_MS, RETRY_CAP_MS, this.deps.random);
      if (next >= deadline) {
        await this.finish(i, 'FAILED', { error: `timed out after ${i.attempts} attempt(s); last error: ${result.error}` }, ['EXECUTING']);
      } else {
        await store.tx(async (trx) => {
          const ok = await transitionIntervention(trx, i.id, ['EXECUTING'], { status: 'APPROVED', next_attempt_at: iso(next), error_message: result.error }, at);
          if (ok) await appendEvent(trx, { supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: i.id, type: 'intervention.retry_scheduled', payload: { attempt: i.attempts, next_attempt_at: iso(next), error: result.error }, at });
        });
      }
    }
  }

  /** Puts an interrupted attempt back to APPROVED without counting it as a failure. */
  private async release(i: Intervention, why: string): Promise<void> {
    const at = this.deps.clock.now();
    await this.deps.store.tx(async (trx) => {
      const ok = await transitionIntervention(trx, i.id, ['EXECUTING'], { status: 'APPROVED', next_attempt_at: iso(at), error_message: why }, at);
      if (ok) await appendEvent(trx, { supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: i.id, type: 'intervention.released', payload: { reason: why }, at });
    });
  }

  private async escalate(i: Intervention): Promise<ActuatorResult> {
    const sup = await this.deps.store.read((db) => getSupervisor(db, i.supervisor_id));
    if (!sup) return { kind: 'failed', error: 'supervisor no longer exists' };
    if (!sup.parent_id) return { kind: 'completed', outcome: { escalated_to: null, note: 'root supervisor: recorded in its own journal' } };
    const at = this.deps.clock.now();
    await this.deps.store.tx((trx) =>
      appendEvent(trx, { supervisor_id: sup.parent_id, entity_type: 'intervention', entity_id: i.id, type: 'escalation.received', payload: { from_supervisor_id: sup.id, reason: i.reason, target_type: i.target_type, target_id: i.target_id, details: i.action_details }, at }),
    );
    return { kind: 'completed', outcome: { escalated_to: sup.parent_id } };
  }

  /** Fans a team restart out into per-agent restarts, `stagger_seconds` apart, in one transaction. */
  private async startTeamRestart(i: Intervention, now: number): Promise<void> {
    const stagger = Number(i.action_details.stagger_seconds ?? 0) * 1000;
    await this.deps.store.tx(async (trx) => {
      if ((await childInterventions(trx, i.id)).length) return; // already fanned out before a crash
      const members = await teamMembers(trx, i.target_id);
      if (!members.length) {
        await this.finishIn(trx, i, 'FAILED', { error: 'team has no active members' }, ['EXECUTING'], now);
        return;
      }
      const deadline = i.deadline_at ? Date.parse(i.deadline_at) : null;
      const events = [];
      for (const [n, m] of members.entries()) {
        const id = this.deps.newId();
        const due = now + n * stagger;
        await insertIntervention(trx, {
          id,
          supervisor_id: i.supervisor_id,
          policy_id: null,
          parent_intervention_id: i.id,
          intervention_type: 'AGENT_RESTART',
          target_type: 'AGENT',
          target_id: m.agent_id,
          reason: `${i.reason} (team restart ${n + 1}/${members.length})`,
          action_details: { ...i.action_details, team_id: i.target_id, parent_intervention_id: i.id },
          approval_required: false,
          requested_by: `intervention:${i.id}`,
          status: 'APPROVED',
          next_attempt_at: due,
          deadline_at: deadline === null ? null : Math.max(deadline, due + 60_000),
          at: now,
        });
        events.push({ supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: id, type: 'intervention.created', actor: `intervention:${i.id}`, payload: { intervention_type: 'AGENT_RESTART', target_id: m.agent_id, due_at: iso(due) }, at: now });
      }
      await appendEvents(trx, events);
    });
  }

  /** A team restart finishes when every child has; FAILED if any child failed. */
  /**
   * Level-triggered look at every EXECUTING row of these supervisors that no delivery of this
   * process is working on: a delivery whose final write was lost (store outage, or a commit
   * whose acknowledgement was lost) goes back to APPROVED under the same key, or FAILED past its
   * deadline; a team restart that crashed before fanning out fans out now; one whose children
   * are all final finishes.
   */
  private async reconcileExecuting(supIds: string[], now: number): Promise<void> {
    const executing = await this.deps.store.read((db) => interventionsInStatus(db, 'EXECUTING', supIds));
    for (const p of executing) {
      if (this.inFlight.has(p.id)) continue;
      if (p.intervention_type !== 'TEAM_RESTART') {
        if (p.deadline_at && Date.parse(p.deadline_at) <= now) await this.finish(p, 'FAILED', { error: `timed out after ${p.attempts} attempt(s); its last delivery was interrupted` }, ['EXECUTING']);
        else await this.release(p, 'interrupted: its delivery ended without a recorded result; re-dispatching');
        continue;
      }
      const kids = await this.deps.store.read((db) => childInterventions(db, p.id));
      if (!kids.length) {
        await this.startTeamRestart(p, now);
        continue;
      }
      if (kids.some((k) => !['COMPLETED', 'FAILED', 'REJECTED'].includes(k.status))) continue;
      const failed = kids.filter((k) => k.status !== 'COMPLETED');
      const outcome = { restarted: kids.filter((k) => k.status === 'COMPLETED').map((k) => k.target_id), failed: failed.map((k) => k.target_id) };
      if (failed.length) await this.finish(p, 'FAILED', { error: `${failed.length} of ${kids.length} agent restarts failed`, outcome }, ['EXECUTING']);
      else await this.finish(p, 'COMPLETED', { outcome }, ['EXECUTING']);
    }
  }

  private async finish(i: Intervention, status: 'COMPLETED' | 'FAILED', r: { outcome?: unknown; error?: string }, from: InterventionStatus[]): Promise<void> {
    const at = this.deps.clock.now();
    await this.deps.store.tx((trx) => this.finishIn(trx, i, status, r, from, at));
    this.deps.metrics?.interventionsFinished.inc({ type: i.intervention_type, status });
  }

  /** Final state, agent status effect, policy effectiveness and journal: one transaction. */
  private async finishIn(trx: Tx, i: Intervention, status: 'COMPLETED' | 'FAILED', r: { outcome?: unknown; error?: string }, from: InterventionStatus[], at: number): Promise<void> {
    const ok = await transitionIntervention(trx, i.id, from, { status, completed_at: iso(at), outcome: r.outcome === undefined ? null : json(r.outcome), error_message: r.error ?? null }, at);
    if (!ok) return;
    const events: Parameters<typeof appendEvents>[1] = [
      { supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: i.id, type: status === 'COMPLETED' ? 'intervention.completed' : 'intervention.failed', payload: { attempts: i.attempts, error: r.error ?? null }, at },
    ];
    if (status === 'COMPLETED' && i.target_type === 'AGENT') {
      const to = i.intervention_type === 'AGENT_QUARANTINE' ? 'QUARANTINED' : i.intervention_type === 'AGENT_RESTART' ? 'RESTARTING' : null;
      // A quarantined agent is not pulled out of quarantine by a late restart.
      if (to && (await setAgentStatus(trx, i.target_id, to, at, ['REGISTERED', 'HEALTHY', 'STALE', 'RESTARTING']))) {
        events.push({ supervisor_id: i.supervisor_id, entity_type: 'agent', entity_id: i.target_id, type: 'agent.status_changed', payload: { to, by_intervention: i.id }, at });
      }
    }
    if (i.policy_id) {
      const policy = await getPolicy(trx, i.policy_id);
      if (policy) {
        const lr = this.deps.host.configOf(i.supervisor_id)?.policy_learning_rate ?? 0.1;
        await recordOutcome(trx, policy.id, status === 'COMPLETED', updateEffectiveness(policy.effectiveness, status === 'COMPLETED', lr), at);
      }
    }
    await appendEvents(trx, events);
  }

  /**
   * Stops taking work and gives in-flight deliveries until `deadline` (clock ms) to finish;
   * the rest are aborted and released to APPROVED for re-dispatch under the same key.
   */
  async drain(deadline: number): Promise<{ finished: number; released: number }> {
    this.accepting = false;
    await this.loop.stop();
    const pending = [...this.inFlight.values()];
    const remaining = Math.max(0, deadline - this.deps.clock.now());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(pending.map((p) => p.promise)), new Promise((r) => (timer = setTimeout(r, remaining)))]);
    clearTimeout(timer);
    const left = [...this.inFlight.values()];
    for (const f of left) f.abort.abort(new Error('shutting down'));
    await Promise.allSettled(left.map((f) => f.promise));
    return { finished: pending.length - left.length, released: left.length };
  }
}
