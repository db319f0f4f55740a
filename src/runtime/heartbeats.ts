/**
 * Group commit for agent heartbeats: concurrent heartbeats share one transaction. A caller's
 * promise resolves only after the transaction holding its heartbeat has committed. Policy
 * evaluation of those heartbeats runs in the same transaction (see `evaluate`), so a decision
 * is durable the moment its heartbeat is, and nothing needs a second commit.
 */
import { statusAfterHeartbeat, type AgentStatus } from '../domain/agent.js';
import { ApiError } from '../domain/errors.js';
import { iso, type Clock } from '../domain/time.js';
import type { Store, Tx } from '../store/store.js';
import { applyHeartbeats, lockAgentsForHeartbeat, toAgent, type Agent } from '../store/agents.js';
import { appendEvents, type NewEvent } from '../store/events.js';
import type { Metrics } from './metrics.js';

export interface HeartbeatInput { agent_id: string; metrics: Record<string, number | string> }
export interface HeartbeatAck { agent_id: string; status: AgentStatus; supervisor_id: string | null; last_heartbeat_at: string; heartbeat_count: number }

interface Pending extends HeartbeatInput { resolve: (a: HeartbeatAck) => void; reject: (e: unknown) => void; receivedAt: number }

export interface HeartbeatBatcherOptions {
  store: Store;
  clock: Clock;
  metrics?: Metrics;
  maxBatch?: number;
  /** Minimum time between the starts of two commits (default 2 ms). */
  minGapMs?: number;
  /** Batches that may commit at the same time (1 for SQLite's single writer). */
  parallelFlushes?: number;
  /** Runs inside the batch transaction with the agents as updated; returns approved interventions. */
  evaluate?: (trx: Tx, agents: Agent[], now: number) => Promise<void>;
  /** Called after each commit. */
  onCommitted?: () => void;
}

export class HeartbeatBatcher {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly maxBatch: number;
  private readonly minGapMs: number;
  private readonly parallel: number;
  private lastFlushAt = -Infinity;

  constructor(private readonly opts: HeartbeatBatcherOptions) {
    this.maxBatch = opts.maxBatch ?? 500;
    this.minGapMs = opts.minGapMs ?? 2;
    this.parallel = Math.max(1, opts.parallelFlushes ?? 1);
  }

  submit(input: HeartbeatInput): Promise<HeartbeatAck> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...input, resolve, reject, receivedAt: performance.now() });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight.size >= this.parallel || !this.queue.length) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      this.startFlush();
    };
    // Commits are spaced at least minGapMs apart: under a steady trickle (5,000 agents at one
    // beat a second) this turns thousands of one-heartbeat fsyncs into a few hundred batches,
    // for at most minGapMs of added latency. A burst still goes out on the next turn.
    const wait = this.lastFlushAt + this.minGapMs - performance.now();
    if (wait > 0) setTimeout(run, wait);
    else setImmediate(run);
  }

  /** Starts one batch; with `parallel` > 1 (PostgreSQL) the next may start while it commits. */
  private startFlush(): void {
    if (this.inFlight.size >= this.parallel || !this.queue.length) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.lastFlushAt = performance.now();
    const done: Promise<void> = this.flush(batch).finally(() => {
      this.inFlight.delete(done);
      this.schedule();
    });
    this.inFlight.add(done);
    this.schedule();
  }

  private async flush(batch: Pending[]): Promise<void> {
    const { store, clock } = this.opts;
    let acks: Map<Pending, HeartbeatAck | ApiError>;
    try {
      acks = await store.tx(async (trx) => {
        const out = new Map<Pending, HeartbeatAck | ApiError>();
        const now = clock.now();
        const nowIso = iso(now);
        const ids = [...new Set(batch.map((b) => b.agent_id))];
        const rows = new Map((await lockAgentsForHeartbeat(trx, store.caps, ids)).map((r) => [r.id, toAgent(r)]));
        const events: NewEvent[] = [];
        const updated = new Map<string, Agent>();
        // Heartbeats of one agent in one batch collapse into one update: counts add up, the
        // latest metrics win.
        const perAgent = new Map<string, { n: number; metrics: Record<string, number | string> }>();
        for (const hb of batch) {
          const agent = updated.get(hb.agent_id) ?? rows.get(hb.agent_id);
          if (!agent) {
            out.set(hb, ApiError.notFound('agent', hb.agent_id));
            continue;
          }
          const next = statusAfterHeartbeat(agent.status);
          if (next !== agent.status) {
            events.push({ supervisor_id: agent.supervisor_id, entity_type: 'agent', entity_id: agent.id, type: 'agent.status_changed', payload: { from: agent.status, to: next, by: 'heartbeat' }, at: now });
          }
          const after: Agent = { ...agent, status: next, status_changed_at: next !== agent.status ? nowIso : agent.status_changed_at, last_heartbeat_at: nowIso, last_metrics: hb.metrics, heartbeat_count: agent.heartbeat_count + 1, updated_at: nowIso };
          updated.set(agent.id, after);
          const acc = perAgent.get(agent.id) ?? { n: 0, metrics: hb.metrics };
          acc.n++;
          acc.metrics = hb.metrics;
          perAgent.set(agent.id, acc);
          out.set(hb, { agent_id: agent.id, status: next, supervisor_id: agent.supervisor_id, last_heartbeat_at: nowIso, heartbeat_count: after.heartbeat_count });
        }
        await applyHeartbeats(trx, [...perAgent].map(([id, v]) => ({ id, count: v.n, metrics: v.metrics })), nowIso);
        await appendEvents(trx, events);
        if (this.opts.evaluate && updated.size) await this.opts.evaluate(trx, [...updated.values()], now);
        return out;
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.opts.metrics?.heartbeatBatch.observe(batch.length);
    let ok = 0;
    const committedAt = performance.now();
    for (const p of batch) {
      this.opts.metrics?.heartbeatCommitSeconds.observe((committedAt - p.receivedAt) / 1000);
      const a = acks.get(p);
      if (a instanceof ApiError || !a) p.reject(a ?? new Error('heartbeat lost in batch'));
      else {
        ok++;
        p.resolve(a);
      }
    }
    this.opts.metrics?.heartbeats.inc(ok);
    this.opts.onCommitted?.();
  }

  /** Waits for queued heartbeats to commit (used on shutdown). */
  async drain(): Promise<void> {
    while (this.queue.length || this.inFlight.size || this.scheduled) {
      if (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
      else await new Promise((r) => setTimeout(r, 1));
    }
  }
}
