/**
 * One running supervisor: a heartbeat loop and a monitor loop. Memory holds only a cache of
 * committed rows; every decision is committed before it is acted on. Heartbeat-triggered
 * evaluation normally runs inside the heartbeat's own group commit (`evaluateInline`); the
 * monitor loop picks up whatever that missed through the durable evaluation cursor.
 */
import { CAN_GO_STALE, EVALUATED_STATUSES, isStale } from '../domain/agent.js';
import { MONITORING_STATUSES, validateConfig, type SupervisorConfig } from '../domain/supervisor.js';
import { iso, type Clock, type IdSource } from '../domain/time.js';
import type { Db, Store, Tx } from '../store/store.js';
import { beatSupervisor, getSupervisor, type Supervisor } from '../store/supervisors.js';
import { assignedPolicies } from '../store/policies.js';
import { agentsForEvaluation, getAgents, markEvaluated, markHeartbeatsEvaluated, markStaleIfUnchanged, staleCandidates, teamsWithCounts, type Agent } from '../store/agents.js';
import { markGroupEvaluated, unevaluatedGroups } from '../store/alerts.js';
import { appendEvents, type NewEvent } from '../store/events.js';
import { commitEvaluation, compilePolicies, planEvaluation, type CompiledPolicy, type EvaluationItem, type TeamInfo } from './evaluator.js';
import { Loop } from './loop.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface SupervisorAgentDeps {
  store: Store;
  clock: Clock;
  newId: IdSource;
  logger: Logger;
  metrics?: Metrics;
  instanceId: string;
  /** Group commit: the unit of work shares a transaction with others submitted in the same turn. */
  commit: <T>(work: (trx: Tx) => Promise<T>) => Promise<T>;
  /** A tick threw something that is not a store outage: the supervisor has failed. */
  onFailure: (agent: SupervisorAgent, reason: string) => void;
  /** Interventions were approved: the executor should look. */
  onApproved: () => void;
  /** The row is gone or owned by another process: stop hosting it. */
  onLost: (agent: SupervisorAgent) => void;
}

/** Policies and teams are re-read at least this often, so changes apply without restart. */
const RELOAD_MS = 5_000;
/** The monitor loop's period: cursor catch-up, staleness and alert groups. */
const MONITOR_TICK_MS = 1_000;

/** Raised when the stored row cannot be used (for example a corrupt config). */
export class SupervisorCorruptError extends Error {}

export class SupervisorAgent {
  readonly heartbeatLoop: Loop;
  readonly monitorLoop: Loop;
  sup: Supervisor;
  config: SupervisorConfig;
  private policies: CompiledPolicy[] = [];
  private teams = new Map<string, TeamInfo>();
  private lastReload = 0;
  /** Bumped by refresh(): a reload that started before an invalidation must not count as fresh. */
  private generation = 0;
  private lastSweep: number;
  lastBeatAt: number | null;

  constructor(private readonly deps: SupervisorAgentDeps, sup: Supervisor) {
    this.sup = sup;
    this.config = SupervisorAgent.checkedConfig(sup);
    this.lastBeatAt = sup.last_heartbeat_at ? Date.parse(sup.last_heartbeat_at) : null;
    // The first sweep comes within one interval after hosting, at a random point, so a boot (or
    // many supervisors started together) does not evaluate every agent at the same moment.
    this.lastSweep = deps.clock.now() - Math.floor(Math.random() * this.config.policy_evaluation_interval_seconds * 1000 * 0.9);
    const name = `supervisor:${sup.id}`;
    // Whoever hosts a supervisor commits its first beat (recovery, adoption, restart), so the
    // loop's first beat is one interval later; first monitor ticks are spread over a second so
    // that a boot with many supervisors does not queue them all in front of /readyz.
    this.heartbeatLoop = new Loop({ name: `${name}:heartbeat`, clock: deps.clock, logger: deps.logger, intervalMs: () => this.config.heartbeat_interval_seconds * 1000, initialDelayMs: () => this.config.heartbeat_interval_seconds * 1000, tick: () => this.beat(), onError: (e) => this.onLoopError(e) });
    this.monitorLoop = new Loop({ name: `${name}:monitor`, clock: deps.clock, logger: deps.logger, intervalMs: () => MONITOR_TICK_MS, initialDelayMs: () => Math.floor(Math.random() * MONITOR_TICK_MS), tick: () => this.tickOnce(), onError: (e) => this.onLoopError(e) });
  }

  get id(): string {
    return this.sup.id;
  }

  /** Validates the stored config; a row the code cannot use is a supervisor failure, not a crash. */
  static checkedConfig(sup: Supervisor): SupervisorConfig {
    const checked = validateConfig(sup.config ?? {});
    if (!checked.ok) throw new SupervisorCorruptError(`stored config is invalid: ${checked.problems.map((p) => `${p.path} ${p.message}`).join('; ')}`);
    return checked.value;
  }

  start(): void {
    this.heartbeatLoop.start();
    this.monitorLoop.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.heartbeatLoop.stop(), this.monitorLoop.stop()]);
  }

  /** Something arrived (an alert group, a change): look now instead of at the next tick. */
  poke(): void {
    this.monitorLoop.poke();
  }

  /** Replaces the cached row after a committed change made elsewhere in this process. */
  refresh(sup: Supervisor): void {
    this.config = SupervisorAgent.checkedConfig(sup);
    this.sup = sup;
    this.lastReload = 0;
    this.generation++;
  }

  get monitoring(): boolean {
    return MONITORING_STATUSES.includes(this.sup.status);
  }

  private onLoopError(err: unknown): void {
    if (this.deps.store.caps.isTransient(err) || (err as { code?: string })?.code === 'store_unavailable') return;
    this.deps.metrics?.loopFailures.inc({ loop: 'supervisor' });
    this.deps.onFailure(this, err instanceof Error ? err.message : String(err));
  }

  /** Writes the supervisor heartbeat, unless the monitor is stuck (then the watchdog should see it). */
  async beat(): Promise<void> {
    const intervalMs = this.config.heartbeat_interval_seconds * 1000;
    if (this.monitorLoop.overrunning(Math.max(intervalMs, 5_000))) return;
    const now = this.deps.clock.now();
    const ok = await this.deps.store.read((db) => beatSupervisor(db, this.sup.id, this.deps.instanceId, now));
    if (!ok) {
      this.deps.onLost(this);
      return;
    }
    this.lastBeatAt = now;
    this.sup = { ...this.sup, last_heartbeat_at: iso(now) };
  }

  /** One monitoring pass. Exposed so tests can drive it by hand. */
  async tickOnce(): Promise<void> {
    const now = this.deps.clock.now();
    if (this.lastReload === 0 || now - this.lastReload >= RELOAD_MS) await this.reload(now);
    if (!this.monitoring) return;
    await this.evaluatePendingHeartbeats();
    await this.markStaleAgents();
    await this.evaluateAlertGroups();
    if (now - this.lastSweep >= this.config.policy_evaluation_interval_seconds * 1000) {
      this.lastSweep = now;
      await this.sweep();
    }
  }

  /** Re-reads the row, policies and teams; through `db` when called inside a transaction. */
  private async reload(now: number, db?: Db): Promise<void> {
    const read = <T>(fn: (d: Db) => Promise<T>) => (db ? fn(db) : this.deps.store.read(fn));
    const generation = this.generation;
    const sup = await read((d) => getSupervisor(d, this.sup.id));
    if (!sup || sup.owner_instance_id !== this.deps.instanceId) {
      this.deps.onLost(this);
      return;
    }
    this.config = SupervisorAgent.checkedConfig(sup);
    this.sup = sup;
    this.policies = compilePolicies(await read((d) => assignedPolicies(d, sup.id)));
    this.teams = new Map((await read((d) => teamsWithCounts(d, sup.id))).map((t) => [t.id, t]));
    // Invalidated while reading (a policy or team change committed meanwhile): read again next time.
    if (generation === this.generation) this.lastReload = now;
  }

  /**
   * Evaluates freshly committed heartbeats inside the heartbeat transaction itself and moves
   * their cursor there. Returns false when this supervisor cannot evaluate right now (not
   * monitoring, or not loaded yet); the cursor then stays behind for the monitor loop.
   */
  async evaluateInline(trx: Tx, agents: Agent[], now: number): Promise<{ evaluated: boolean; approved: number }> {
    // Not loaded yet (just hosted, or a change asked for a reload): load inside this transaction.
    if (this.lastReload === 0) await this.reload(now, trx);
    if (!this.monitoring || this.lastReload === 0) return { evaluated: false, approved: 0 };
    const items = agents.filter((a) => EVALUATED_STATUSES.includes(a.status)).map((a) => ({ agent: a, trigger: 'heartbeat' as const }));
    const plan = planEvaluation(this.sup, this.policies, this.teams, items, now);
    const { approved } = await commitEvaluation(trx, this.deps.store.caps, this.deps.newId, this.sup, this.config, plan);
    await markHeartbeatsEvaluated(trx, agents.map((a) => a.id));
    this.observe(plan.evaluated, plan.matched, 'heartbeat', plan.durationMs);
    return { evaluated: true, approved };
  }

  private observe(evaluated: number, matched: number, trigger: string, ms: number): void {
    const m = this.deps.metrics;
    if (!m || !evaluated) return;
    m.evaluationSeconds.observe({ trigger }, ms / 1000);
    m.evaluations.inc({ matched: 'true' }, matched);
    m.evaluations.inc({ matched: 'false' }, evaluated - matched);
  }

  /** Plans now, commits through the group committer, and wakes the executor when needed. */
  private async run(items: EvaluationItem[], trigger: string, extra?: (trx: Tx) => Promise<void>): Promise<void> {
    const plan = planEvaluation(this.sup, this.policies, this.teams, items, this.deps.clock.now());
    const { approved } = await this.deps.commit(async (trx) => {
      if (extra) await extra(trx);
      return commitEvaluation(trx, this.deps.store.caps, this.deps.newId, this.sup, this.config, plan);
    });
    this.observe(plan.evaluated, plan.matched, trigger, plan.durationMs);
    if (approved) this.deps.onApproved();
  }

  private loadAgents(which: 'pending' | 'evaluated'): Promise<Agent[]> {
    return this.deps.store.read((db) => agentsForEvaluation(db, this.sup.id, which, EVALUATED_STATUSES));
  }

  /** Evaluates every agent whose committed heartbeats are past the durable evaluation cursor. */
  async evaluatePendingHeartbeats(): Promise<void> {
    const pending = await this.loadAgents('pending');
    if (!pending.length) return;
    const items = pending.filter((a) => EVALUATED_STATUSES.includes(a.status)).map((a) => ({ agent: a, trigger: 'heartbeat' as const }));
    await this.run(items, 'heartbeat', async (trx) => {
      for (const a of pending) await markEvaluated(trx, a.id, a.heartbeat_count);
    });
  }

  /** Agents silent for longer than the timeout (never counting supervisor downtime) go STALE. */
  async markStaleAgents(): Promise<void> {
    const now = this.deps.clock.now();
    const timeoutMs = this.config.agent_heartbeat_timeout_seconds * 1000;
    const resumed = this.sup.resumed_at ? Date.parse(this.sup.resumed_at) : null;
    // Nobody can be stale until a full timeout has passed since this supervisor resumed.
    if (resumed !== null && now - resumed <= timeoutMs) return;
    const rows = await this.deps.store.read((db) => staleCandidates(db, this.sup.id, CAN_GO_STALE, iso(now - timeoutMs)));
    const candidates = rows.filter((a) => isStale(a.last_heartbeat_at ? Date.parse(a.last_heartbeat_at) : null, Date.parse(a.created_at), resumed, this.config.agent_heartbeat_timeout_seconds, now));
    if (!candidates.length) return;
    const items = candidates.map((a) => ({ agent: { ...a, status: 'STALE' as const }, trigger: 'agent_stale' as const }));
    await this.run(items, 'agent_stale', async (trx) => {
      const events: NewEvent[] = [];
      for (const a of candidates) {
        if (await markStaleIfUnchanged(trx, a, now)) {
          events.push({ supervisor_id: this.sup.id, entity_type: 'agent', entity_id: a.id, type: 'agent.status_changed', payload: { from: a.status, to: 'STALE', last_heartbeat_at: a.last_heartbeat_at, timeout_seconds: this.config.agent_heartbeat_timeout_seconds }, at: now });
        }
      }
      await appendEvents(trx, events);
    });
  }

  /** One evaluation per alert group, committed together with the group's "evaluated" flag. */
  async evaluateAlertGroups(): Promise<void> {
    const groups = await this.deps.store.read((db) => unevaluatedGroups(db, this.sup.id));
    if (!groups.length) return;
    const agentIds = groups.map((g) => g.agent_id).filter((x): x is string => !!x);
    const agents = new Map((await this.deps.store.read((db) => getAgents(db, agentIds))).map((a) => [a.id, a]));
    const items: EvaluationItem[] = groups.map((g) => ({
      agent: (g.agent_id && agents.get(g.agent_id)) || null,
      trigger: 'alert_group',
      event: { alert: { group_id: g.id, kind: g.kind, severity: g.severity, count: g.alert_count, agent_id: g.agent_id } },
    }));
    await this.run(items, 'alert_group', async (trx) => {
      for (const g of groups) await markGroupEvaluated(trx, g.id);
    });
  }

  /** Periodic level-triggered pass over every agent of this supervisor. */
  async sweep(): Promise<void> {
    if (!this.policies.length) return;
    const agents = await this.loadAgents('evaluated');
    if (agents.length) await this.run(agents.map((a) => ({ agent: a, trigger: 'sweep' as const })), 'sweep');
  }

  /** Fresh row from the database (for health), falling back to the cache. */
  async current(): Promise<Supervisor> {
    return (await this.deps.store.read((db) => getSupervisor(db, this.sup.id))) ?? this.sup;
  }
}
