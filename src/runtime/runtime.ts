/**
 * The runtime hosts this process's supervisors: boot recovery, the watchdog, in-process restarts,
 * the intervention executor, heartbeat group commit and graceful shutdown.
 */
import { hostname } from 'node:os';
import { CAN_GO_STALE, isStale } from '../domain/agent.js';
import {
  DEFAULT_CONFIG,
  MONITORING_STATUSES,
  UNRESPONSIVE_AFTER_MISSED,
  backoffMs,
  missedHeartbeats,
  takeRestart,
  validateConfig,
  type SupervisorConfig,
} from '../domain/supervisor.js';
import { iso, type Clock, type IdSource } from '../domain/time.js';
import { inSavepoint, type Store, type Tx } from '../store/store.js';
import { appendEvent, appendEvents, type NewEvent } from '../store/events.js';
import { crashedInstances, insertInstance, markCleanShutdown, markRecovered, touchInstance } from '../store/instances.js';
import { getSupervisor, listRunnableSupervisors, ownedUnhosted, restartsDue, updateSupervisor, type Supervisor } from '../store/supervisors.js';
import { failOpenInterventions, insertIntervention, interventionsInStatus, terminatedWithExecuting, transitionIntervention } from '../store/interventions.js';
import { pruneEvaluations } from '../store/policies.js';
import { GroupCommitter } from '../store/group-commit.js';
import { markStaleIfUnchanged, staleCandidates, type Agent } from '../store/agents.js';
import { InterventionExecutor } from './executor.js';
import { HeartbeatBatcher } from './heartbeats.js';
import { Loop } from './loop.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { SupervisorAgent } from './supervisor-agent.js';
import { transitionIn } from './transitions.js';

export type RuntimePhase = 'created' | 'recovering' | 'ready' | 'draining' | 'stopped';

export interface RuntimeDeps {
  store: Store;
  clock: Clock;
  newId: IdSource;
  logger: Logger;
  metrics?: Metrics;
  version?: string;
  /** Loops tick on their own unless false; tests drive them by hand. */
  autoStartLoops?: boolean;
  random?: () => number;
  /** Evaluation records older than this are pruned by the watchdog (default 24 h). */
  evaluationRetentionHours?: number;
}

export interface RecoveryReport {
  started_at: string;
  completed_at: string | null;
  duration_ms: number | null;
  crashed_instances: { id: string; last_seen_at: string }[];
  supervisors_resumed: number;
  interventions_redispatched: number;
  interventions_interrupted: number;
}

const WATCHDOG_MS = 1_000;
const PRUNE_EVERY_MS = 60_000;
/** An instance on another host that touched its row this recently is taken to be alive. */
const INSTANCE_ALIVE_MS = 15_000;
/** On the same host a live pid is required too, so a longer silence is tolerated (a busy process). */
const SAME_HOST_ALIVE_MS = 60_000;

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
const INSTANCE_TOUCH_MS = 5_000;
const RESTART_BASE_MS = 1_000;
const RESTART_CAP_MS = 60_000;
/** Default timeout for agents that belong to no supervisor's team. */
const UNASSIGNED_AGENT_TIMEOUT_S = 90;

export class Runtime {
  readonly instanceId: string;
  readonly hosted = new Map<string, SupervisorAgent>();
  readonly executor: InterventionExecutor;
  readonly heartbeats: HeartbeatBatcher;
  readonly watchdog: Loop;
  /** Shares one transaction among the monitor loops' evaluation commits. */
  readonly committer: GroupCommitter;
  private approvedInBatch = false;
  phase: RuntimePhase = 'created';
  recovery: RecoveryReport | null = null;
  startedAt = 0;
  private lastInstanceTouch = 0;
  private lastPrune = 0;
  private readonly pendingFailures = new Set<Promise<void>>();
  private readonly failing = new Map<string, Promise<void>>();

  constructor(private readonly deps: RuntimeDeps) {
    this.instanceId = deps.newId();
    this.executor = new InterventionExecutor({
      store: deps.store,
      clock: deps.clock,
      newId: deps.newId,
      logger: deps.logger,
      metrics: deps.metrics,
      random: deps.random,
      host: { dispatchable: () => this.dispatchable(), configOf: (id) => this.hosted.get(id)?.config },
    });
    this.committer = new GroupCommitter(deps.store);
    this.heartbeats = new HeartbeatBatcher({
      store: deps.store,
      clock: deps.clock,
      metrics: deps.metrics,
      parallelFlushes: deps.store.caps.writeConcurrency,
      evaluate: (trx, agents, now) => this.evaluateHeartbeats(trx, agents, now),
      onCommitted: () => {
        if (this.approvedInBatch) {
          this.approvedInBatch = false;
          this.executor.poke();
        }
      },
    });
    this.watchdog = new Loop({ name: 'watchdog', clock: deps.clock, logger: deps.logger, intervalMs: () => WATCHDOG_MS, tick: () => this.watchdogTick() });
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  /**
   * Heartbeat-triggered evaluation inside the heartbeat batch's transaction, per supervisor in
   * a savepoint: a supervisor whose evaluation fails leaves its agents' cursors behind (its
   * monitor loop retries them, and fails the supervisor if it fails again) without failing the
   * heartbeats themselves.
   */
  private async evaluateHeartbeats(trx: Tx, agents: Agent[], now: number): Promise<void> {
    const bySupervisor = new Map<string, Agent[]>();
    for (const a of agents) {
      if (!a.supervisor_id || !this.hosted.has(a.supervisor_id)) continue;
      const list = bySupervisor.get(a.supervisor_id) ?? [];
      list.push(a);
      bySupervisor.set(a.supervisor_id, list);
    }
    // A fixed order (by supervisor id) so concurrent batches on PostgreSQL take row locks alike.
    for (const id of [...bySupervisor.keys()].sort()) {
      const list = bySupervisor.get(id) as Agent[];
      const sup = this.hosted.get(id) as SupervisorAgent;
      const r = await inSavepoint(trx, this.deps.store.caps.isTransient, () => sup.evaluateInline(trx, list, now));
      if (r.ok && r.value.approved) this.approvedInBatch = true;
      if (!r.ok) {
        this.deps.logger.warn({ err: r.error, supervisor_id: id }, 'inline evaluation failed; the monitor loop will retry');
        sup.poke();
      }
    }
  }

  private dispatchable(): Map<string, SupervisorConfig> {
    const out = new Map<string, SupervisorConfig>();
    for (const [id, a] of this.hosted) if (MONITORING_STATUSES.includes(a.sup.status)) out.set(id, a.config);
    return out;
  }

  /** Boot: register this instance, recover what crashed, resume every supervisor, then serve. */
  async start(): Promise<RecoveryReport> {
    if (this.phase !== 'created') throw new Error(`runtime already ${this.phase}`);
    this.phase = 'recovering';
    const { store, clock } = this.deps;
    const t0 = performance.now();
    const now = clock.now();
    this.startedAt = now;
    const report: RecoveryReport = { started_at: iso(now), completed_at: null, duration_ms: null, crashed_instances: [], supervisors_resumed: 0, interventions_redispatched: 0, interventions_interrupted: 0 };
    await this.waitUntilAlone();
    await store.tx((trx) => insertInstance(trx, { id: this.instanceId, host: hostname(), pid: process.pid, version: this.deps.version ?? '0.0.0', at: now }));

    const resumed = await store.tx(async (trx) => {
      report.crashed_instances = [];
      report.interventions_redispatched = 0;
      report.interventions_interrupted = 0;
      const crashed = await crashedInstances(trx, this.instanceId);
      const crashedById = new Map(crashed.map((c) => [c.id, c]));
      report.crashed_instances = crashed.map((c) => ({ id: c.id, last_seen_at: c.last_seen_at }));
      const sups = await listRunnableSupervisors(trx);
      const events: NewEvent[] = [];
      for (const s of sups) {
        const hostable = s.status !== 'FAILED';
        const crashedOwner = s.owner_instance_id ? crashedById.get(s.owner_instance_id) : undefined;
        const lastAlive = Math.max(s.last_heartbeat_at ? Date.parse(s.last_heartbeat_at) : 0, crashedOwner ? Date.parse(crashedOwner.last_seen_at) : 0);
        await updateSupervisor(trx, s.id, { owner_instance_id: this.instanceId, running: hostable ? 1 : 0, resumed_at: iso(now), ...(hostable ? { last_heartbeat_at: iso(now) } : {}) }, now);
        events.push({
          supervisor_id: s.id,
          entity_type: 'supervisor',
          entity_id: s.id,
          type: crashedOwner ? 'supervisor.recovered' : 'supervisor.resumed',
          payload: { status: s.status, previous_owner: s.owner_instance_id, downtime_ms: lastAlive ? now - lastAlive : null, instance_id: this.instanceId },
          at: now,
        });
        if (s.status === 'SPAWNING') {
          await transitionIn(trx, { id: s.id, to: 'ACTIVE', from: ['SPAWNING'], event: 'supervisor.activated', payload: { by: 'recovery' }, at: now });
        }
      }
      // Interrupted deliveries go back to the outbox under the same id (the idempotency key).
      const ids = sups.map((s) => s.id);
      for (const i of await interventionsInStatus(trx, 'EXECUTING', ids)) {
        if (i.intervention_type === 'TEAM_RESTART') continue; // finished from its children
        if (i.deadline_at && Date.parse(i.deadline_at) <= now) {
          await transitionIntervention(trx, i.id, ['EXECUTING'], { status: 'FAILED', completed_at: iso(now), error_message: 'interrupted: the supervisor process stopped during delivery and the intervention timed out' }, now);
          events.push({ supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: i.id, type: 'intervention.failed', payload: { error: 'interrupted', attempts: i.attempts }, at: now });
          report.interventions_interrupted++;
        } else {
          await transitionIntervention(trx, i.id, ['EXECUTING'], { status: 'APPROVED', next_attempt_at: iso(now), error_message: 'interrupted: re-dispatching after restart' }, now);
          events.push({ supervisor_id: i.supervisor_id, entity_type: 'intervention', entity_id: i.id, type: 'intervention.redispatched', payload: { attempts: i.attempts }, at: now });
          report.interventions_redispatched++;
        }
      }
      // Deliveries of supervisors terminated meanwhile cannot be re-dispatched: end them.
      for (const supId of await terminatedWithExecuting(trx)) {
        const ended = await failOpenInterventions(trx, supId, 'interrupted: the supervisor was terminated while this was being delivered', now, true);
        report.interventions_interrupted += ended.length;
      }
      for (const c of crashed) await markRecovered(trx, c.id, this.instanceId, now);
      await appendEvents(trx, events);
      return Promise.all(ids.map((id) => getSupervisor(trx, id)));
    });

    for (const s of resumed) {
      if (!s) continue;
      if (s.status === 'FAILED') continue; // the watchdog restarts it when its backoff is over
      this.host(s);
      report.supervisors_resumed++;
    }
    if (this.deps.autoStartLoops !== false) {
      this.executor.start();
      this.watchdog.start();
    }
    report.completed_at = iso(clock.now());
    report.duration_ms = Math.round((performance.now() - t0) * 100) / 100;
    this.deps.metrics?.recoverySeconds.set(report.duration_ms / 1000);
    this.recovery = report;
    this.phase = 'ready';
    this.deps.logger.info({ recovery: report, since_process_start_ms: Math.round(performance.now()) }, 'recovery complete; ready');
    return report;
  }

  /**
   * Until leases arrive, one process runs a database's supervisors. Another instance without a
   * clean shutdown is alive when its process still exists on this host, or when another host's
   * instance touched its row within INSTANCE_ALIVE_MS; then this one waits (readiness 503)
   * instead of running the same supervisors twice. A dead one is recovered at once.
   */
  private async waitUntilAlone(): Promise<void> {
    const { store, clock, logger } = this.deps;
    for (let waited = 0; ; waited++) {
      const others = await store.read((db) => crashedInstances(db, this.instanceId));
      const live = others.filter((o) => {
        // Same host: the process must exist and have touched its row recently (a reused pid
        // belongs to somebody else; a container's pid 1 is ours).
        if (o.host === hostname()) return o.pid !== process.pid && processExists(o.pid) && clock.now() - Date.parse(o.last_seen_at) < SAME_HOST_ALIVE_MS;
        return clock.now() - Date.parse(o.last_seen_at) < INSTANCE_ALIVE_MS;
      });
      if (!live.length) return;
      if (waited % 10 === 0) logger.warn({ live: live.map((o) => ({ id: o.id, host: o.host, pid: o.pid, last_seen_at: o.last_seen_at })) }, 'another Overseer process is running on this database; waiting for it to stop');
      await clock.sleep(1_000);
    }
  }

  /** Starts running a supervisor whose row says this process owns it. Corrupt rows fail alone. */
  private host(s: Supervisor): SupervisorAgent | null {
    // Two concurrent API calls may both find it unhosted: one running instance only.
    const existing = this.hosted.get(s.id);
    if (existing) {
      existing.refresh(s);
      return existing;
    }
    let agent: SupervisorAgent;
    try {
      agent = new SupervisorAgent(
        {
          store: this.deps.store,
          clock: this.deps.clock,
          newId: this.deps.newId,
          logger: this.deps.logger,
          metrics: this.deps.metrics,
          instanceId: this.instanceId,
          onFailure: (a, reason) => this.track(this.fail(a.id, reason)),
          commit: (work) => this.committer.run(work),
          onApproved: () => this.executor.poke(),
          onLost: (a) => this.track(this.unhost(a.id)),
        },
        s,
      );
    } catch (err) {
      this.track(this.fail(s.id, err instanceof Error ? err.message : String(err)));
      return null;
    }
    this.hosted.set(s.id, agent);
    if (this.deps.autoStartLoops !== false) agent.start();
    return agent;
  }

  private track(p: Promise<void>): void {
    const wrapped = p.catch((err) => this.deps.logger.error({ err }, 'supervisor bookkeeping failed; the watchdog will retry'));
    this.pendingFailures.add(wrapped);
    void wrapped.finally(() => this.pendingFailures.delete(wrapped));
  }

  private async unhost(id: string): Promise<void> {
    const a = this.hosted.get(id);
    if (!a) return;
    this.hosted.delete(id);
    await a.stop();
  }

  /**
   * A supervisor failed in-process: FAILED with its reason, and a restart scheduled with jittered
   * exponential backoff while the persisted budget lasts; TERMINATED and escalated when spent.
   */
  fail(id: string, reason: string): Promise<void> {
    // One failure at a time per supervisor: a second report of the same failure (watchdog and
    // the stuck tick itself) must not spend a second restart.
    const running = this.failing.get(id);
    if (running) return running;
    const p = this.failOnce(id, reason).finally(() => this.failing.delete(id));
    this.failing.set(id, p);
    return p;
  }

  private async failOnce(id: string, reason: string): Promise<void> {
    await this.unhost(id);
    const { store, clock } = this.deps;
    const now = clock.now();
    const outcome = await store.tx(async (trx) => {
      const s = await getSupervisor(trx, id);
      if (!s || s.status === 'TERMINATED') return null;
      if (s.status !== 'FAILED') {
        await transitionIn(trx, { id, to: 'FAILED', event: 'supervisor.failed', payload: { reason }, patch: { failure_reason: reason, running: 0 }, at: now });
      } else {
        await updateSupervisor(trx, id, { failure_reason: reason, running: 0 }, now);
        await appendEvent(trx, { supervisor_id: id, entity_type: 'supervisor', entity_id: id, type: 'supervisor.restart_failed', payload: { reason }, at: now });
      }
      // A corrupt config still bounds the restarts with the budget keys that are valid in it
      // (defaults only for the rest), so one bad key does not raise the operator's budget.
      const checked = validateConfig(s.config);
      const config = checked.ok ? checked.value : salvageBudget(s.config);
      const budget = takeRestart(
        { restarts_in_window: s.restarts_in_window, restart_window_started_at: s.restart_window_started_at ? Date.parse(s.restart_window_started_at) : null },
        config,
        now,
      );
      if (budget.allowed) {
        const next = now + backoffMs(budget.restarts_in_window, RESTART_BASE_MS, RESTART_CAP_MS, this.deps.random);
        await updateSupervisor(trx, id, { restarts_in_window: budget.restarts_in_window, restart_window_started_at: iso(budget.restart_window_started_at), restart_count: s.restart_count + 1, next_restart_at: iso(next) }, now);
        await appendEvent(trx, { supervisor_id: id, entity_type: 'supervisor', entity_id: id, type: 'supervisor.restart_scheduled', payload: { reason, next_restart_at: iso(next), restarts_in_window: budget.restarts_in_window }, at: now });
        return 'scheduled' as const;
      }
      const why = `restart budget exhausted (${config.max_restarts} restarts in ${config.restart_window_seconds} s); last failure: ${reason}`;
      await transitionIn(trx, { id, to: 'TERMINATED', from: ['FAILED'], event: 'supervisor.terminated', payload: { reason: why }, patch: { failure_reason: why, running: 0, next_restart_at: null }, at: now });
      await this.escalateIn(trx, s, why, now);
      return 'terminated' as const;
    });
    if (outcome) this.deps.metrics?.loopFailures.inc({ loop: `supervisor_${outcome}` });
    this.deps.logger.warn({ supervisor_id: id, reason, outcome }, 'supervisor failed');
    if (outcome === 'terminated') this.executor.poke();
  }

  /** Tells the parent (if any) through an approved ESCALATE intervention and its journal. */
  private async escalateIn(trx: Tx, s: Supervisor, why: string, now: number): Promise<void> {
    if (!s.parent_id) return;
    const parent = await getSupervisor(trx, s.parent_id);
    if (!parent || parent.status === 'TERMINATED') return;
    const id = this.deps.newId();
    const config = validateConfig(parent.config);
    const timeout = (config.ok ? config.value.intervention_timeout_seconds : 300) * 1000;
    await insertIntervention(trx, {
      id,
      supervisor_id: parent.id,
      intervention_type: 'ESCALATE',
      target_type: 'TEAM',
      target_id: s.id,
      reason: `child supervisor ${s.name} terminated: ${why}`,
      action_details: { child_supervisor_id: s.id, child_name: s.name },
      approval_required: false,
      requested_by: `supervisor:${s.id}`,
      status: 'APPROVED',
      next_attempt_at: now,
      deadline_at: now + timeout,
      at: now,
    });
    await appendEvent(trx, { supervisor_id: parent.id, entity_type: 'supervisor', entity_id: s.id, type: 'escalation.child_terminated', payload: { child_supervisor_id: s.id, reason: why, intervention_id: id }, at: now });
  }

  /** Restarts a FAILED supervisor whose backoff has elapsed. */
  private async restart(s: Supervisor): Promise<void> {
    const now = this.deps.clock.now();
    try {
      SupervisorAgent.checkedConfig(s);
    } catch (err) {
      await this.fail(s.id, err instanceof Error ? err.message : String(err));
      return;
    }
    const after = await this.deps.store.tx((trx) =>
      transitionIn(trx, {
        id: s.id,
        to: 'ACTIVE',
        from: ['FAILED'],
        event: 'supervisor.restarted',
        payload: { restart_count: s.restart_count },
        patch: { running: 1, owner_instance_id: this.instanceId, resumed_at: iso(now), last_heartbeat_at: iso(now), last_restart_at: iso(now), next_restart_at: null },
        at: now,
      }),
    );
    this.deps.metrics?.supervisorRestarts.inc();
    this.host(after);
  }

  /** Watchdog: unresponsive detection, overrun detection, due restarts, unassigned agents, liveness row. */
  async watchdogTick(): Promise<void> {
    if (this.phase !== 'ready') return;
    const { store, clock } = this.deps;
    const now = clock.now();
    if (now - this.lastInstanceTouch >= INSTANCE_TOUCH_MS) {
      await store.read((db) => touchInstance(db, this.instanceId, now));
      this.lastInstanceTouch = now;
      await this.markUnassignedStale(now);
    }
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      const cutoff = iso(now - (this.deps.evaluationRetentionHours ?? 24) * 3_600_000);
      await store.read((db) => pruneEvaluations(db, cutoff, 5_000));
    }
    for (const a of [...this.hosted.values()]) {
      const intervalMs = a.config.heartbeat_interval_seconds * 1000;
      // A tick stuck on an unreachable database is an outage, not this supervisor's failure.
      const storeTrouble = store.lastError !== null && now - store.lastError.at < 30_000;
      if (!storeTrouble && a.monitorLoop.overrunning(Math.max(60_000, 6 * intervalMs))) {
        this.track(this.fail(a.id, `monitor tick overran the watchdog (${Math.round((now - (a.monitorLoop.lastTickStartedAt ?? now)) / 1000)} s)`));
        continue;
      }
      const missed = missedHeartbeats(a.lastBeatAt, a.sup.resumed_at ? Date.parse(a.sup.resumed_at) : null, a.config.heartbeat_interval_seconds, now);
      if (a.sup.status === 'ACTIVE' && missed > UNRESPONSIVE_AFTER_MISSED) {
        a.refresh(await transition(store, a.id, 'UNRESPONSIVE', 'supervisor.unresponsive', { missed_heartbeats: missed }, now));
      } else if (a.sup.status === 'UNRESPONSIVE' && missed <= 1) {
        a.refresh(await transition(store, a.id, 'ACTIVE', 'supervisor.responsive', { missed_heartbeats: missed }, now));
      }
    }
    const failed = await store.read((db) => restartsDue(db, this.instanceId, iso(now)));
    for (const id of failed) {
      const s = await store.read((db) => getSupervisor(db, id));
      if (s && s.status === 'FAILED' && !this.hosted.has(id) && !this.failing.has(id)) await this.restart(s);
    }
    // Level-triggered: a supervisor this process owns and should be running but is not hosting
    // (its failure could not be recorded during an outage) is taken up again.
    for (const id of await store.read((db) => ownedUnhosted(db, this.instanceId, [...this.hosted.keys()]))) {
      if (!this.failing.has(id)) await this.supervisorChanged(id);
    }
  }

  /** Agents outside every team still go STALE, on the default timeout. */
  private async markUnassignedStale(now: number): Promise<void> {
    const { store } = this.deps;
    const cutoff = iso(now - UNASSIGNED_AGENT_TIMEOUT_S * 1000);
    const rows = await store.read((db) => staleCandidates(db, null, CAN_GO_STALE, cutoff));
    const stale = rows.filter((r) => isStale(r.last_heartbeat_at ? Date.parse(r.last_heartbeat_at) : null, Date.parse(r.created_at), this.startedAt, UNASSIGNED_AGENT_TIMEOUT_S, now));
    if (!stale.length) return;
    await store.tx(async (trx) => {
      const events: NewEvent[] = [];
      for (const r of stale) {
        if (await markStaleIfUnchanged(trx, r, now)) events.push({ entity_type: 'agent', entity_id: r.id, type: 'agent.status_changed', payload: { from: r.status, to: 'STALE' }, at: now });
      }
      await appendEvents(trx, events);
    });
  }

  /**
   * After a committed change to a supervisor row made by the API: adopt, refresh or let go of it.
   * SPAWNING supervisors are initialised here (SPAWNING -> ACTIVE).
   */
  async supervisorChanged(id: string): Promise<Supervisor | undefined> {
    const { store, clock } = this.deps;
    let s = await store.read((db) => getSupervisor(db, id));
    const hosted = this.hosted.get(id);
    if (!s || s.status === 'TERMINATED' || s.status === 'FAILED') {
      if (hosted) await this.unhost(id);
      if (s && s.status !== 'TERMINATED' && hosted) await store.read((db) => updateSupervisor(db, id, { running: 0 }, clock.now()));
      return s;
    }
    if (this.phase !== 'ready') return s;
    if (hosted) {
      try {
        hosted.refresh(s);
      } catch (err) {
        await this.fail(id, err instanceof Error ? err.message : String(err));
        return store.read((db) => getSupervisor(db, id));
      }
      hosted.poke();
      return s;
    }
    const now = clock.now();
    s = await store.tx(async (trx) => {
      await updateSupervisor(trx, id, { owner_instance_id: this.instanceId, running: 1, resumed_at: iso(now), last_heartbeat_at: iso(now) }, now);
      if (s!.status === 'SPAWNING') return transitionIn(trx, { id, to: 'ACTIVE', from: ['SPAWNING'], event: 'supervisor.activated', payload: { by: 'runtime' }, at: now });
      return (await getSupervisor(trx, id)) as Supervisor;
    });
    this.host(s);
    return s;
  }

  /** Policies or teams changed: the supervisor (or every one) re-reads them on its next tick. */
  policiesChanged(supervisorId?: string): void {
    const targets = supervisorId ? [this.hosted.get(supervisorId)].filter((a): a is SupervisorAgent => !!a) : [...this.hosted.values()];
    for (const a of targets) {
      a.refresh(a.sup);
      a.poke();
    }
  }

  /**
   * Graceful shutdown: stop taking work, let in-flight deliveries finish until `deadline`,
   * release the rest, mark supervisors not running and this instance cleanly shut down.
   */
  async shutdown(deadline: number): Promise<{ finished: number; released: number }> {
    if (this.phase === 'stopped') return { finished: 0, released: 0 };
    this.phase = 'draining';
    const { store, clock } = this.deps;
    // No new deliveries from here on; those in flight get the grace below.
    this.executor.stopAccepting();
    await this.watchdog.stop();
    await Promise.all([...this.hosted.values()].map((a) => a.stop()));
    await Promise.allSettled([...this.pendingFailures]);
    await this.heartbeats.drain();
    await this.committer.drain();
    const drained = await this.executor.drain(deadline);
    const now = clock.now();
    await store.tx(async (trx) => {
      for (const id of this.hosted.keys()) await updateSupervisor(trx, id, { running: 0 }, now, { owner: this.instanceId });
      await appendEvent(trx, { entity_type: 'instance', entity_id: this.instanceId, type: 'instance.shutdown', payload: { supervisors: this.hosted.size, ...drained }, at: now });
      await markCleanShutdown(trx, this.instanceId, now);
    });
    this.hosted.clear();
    this.phase = 'stopped';
    return drained;
  }
}

/** The defaults, overridden by each restart-budget key that is valid on its own in a corrupt config. */
function salvageBudget(raw: unknown): SupervisorConfig {
  const config = { ...DEFAULT_CONFIG };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return config;
  for (const key of ['max_restarts', 'restart_window_seconds'] as const) {
    if (!(key in raw)) continue;
    const one = validateConfig({ [key]: (raw as Record<string, unknown>)[key] });
    if (one.ok) config[key] = one.value[key];
  }
  return config;
}

async function transition(store: Store, id: string, to: 'ACTIVE' | 'UNRESPONSIVE', event: string, payload: Record<string, unknown>, at: number): Promise<Supervisor> {
  return store.tx((trx) => transitionIn(trx, { id, to, event, payload, at }));
}
