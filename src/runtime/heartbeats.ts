/**
 * Group commit for agent heartbeats: concurrent heartbeats share one transaction. A caller's
 * promise resolves only after the transaction holding its heartbeat has committed.
 */
import { statusAfterHeartbeat, type AgentStatus } from '../domain/agent.js';
import { ApiError } from '../domain/errors.js';
import { iso, type Clock } from '../domain/time.js';
import type { Store } from '../store/store.js';
import { json } from '../store/store.js';
import { appendEvents, type NewEvent } from '../store/events.js';
import type { Metrics } from './metrics.js';

export interface HeartbeatInput { agent_id: string; metrics: Record<string, number | string> }
export interface HeartbeatAck { agent_id: string; status: AgentStatus; supervisor_id: string | null; last_heartbeat_at: string; heartbeat_count: number }

interface Pending extends HeartbeatInput { resolve: (a: HeartbeatAck) => void; reject: (e: unknown) => void }

export interface HeartbeatBatcherOptions {
  store: Store;
  clock: Clock;
  metrics?: Metrics;
  maxBatch?: number;
  /** Called after each commit with the supervisors that received heartbeats. */
  onCommitted?: (supervisorIds: Set<string>) => void;
}

export class HeartbeatBatcher {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private readonly maxBatch: number;

  constructor(private readonly opts: HeartbeatBatcherOptions) {
    this.maxBatch = opts.maxBatch ?? 500;
  }

  submit(input: HeartbeatInput): Promise<HeartbeatAck> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...input, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    // One event-loop turn gathers the concurrent requests into one batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flushAll();
    });
  }

  private async flushAll(): Promise<void> {
    if (this.flushing) return;
    this.flushing = (async () => {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        await this.flush(batch);
      }
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
      if (this.queue.length) this.schedule();
    }
  }

  private async flush(batch: Pending[]): Promise<void> {
    const { store, clock } = this.opts;
    const touched = new Set<string>();
    let acks: Map<Pending, HeartbeatAck | ApiError>;
    try {
      acks = await store.tx(async (trx) => {
        const out = new Map<Pending, HeartbeatAck | ApiError>();
        const now = clock.now();
        const nowIso = iso(now);
        const ids = [...new Set(batch.map((b) => b.agent_id))];
        const rows = new Map<string, { status: AgentStatus; supervisor_id: string | null; heartbeat_count: number }>();
        for (let i = 0; i < ids.length; i += 500) {
          const found = await trx.selectFrom('agents').select(['id', 'status', 'supervisor_id', 'heartbeat_count']).where('id', 'in', ids.slice(i, i + 500)).execute();
          for (const r of found) rows.set(r.id, { status: r.status as AgentStatus, supervisor_id: r.supervisor_id, heartbeat_count: Number(r.heartbeat_count) });
        }
        const events: NewEvent[] = [];
        for (const hb of batch) {
          const row = rows.get(hb.agent_id);
          if (!row) {
            out.set(hb, ApiError.notFound('agent', hb.agent_id));
            continue;
          }
          const next = statusAfterHeartbeat(row.status);
          row.heartbeat_count++;
          const changed = next !== row.status;
          await trx
            .updateTable('agents')
            .set({
              last_heartbeat_at: nowIso,
              last_metrics: json(hb.metrics),
              heartbeat_count: row.heartbeat_count,
              ...(changed ? { status: next, status_changed_at: nowIso } : {}),
              updated_at: nowIso,
            })
            .where('id', '=', hb.agent_id)
            .execute();
          if (changed) {
            events.push({ supervisor_id: row.supervisor_id, entity_type: 'agent', entity_id: hb.agent_id, type: 'agent.status_changed', payload: { from: row.status, to: next, by: 'heartbeat' }, at: now });
            row.status = next;
          }
          if (row.supervisor_id) touched.add(row.supervisor_id);
          out.set(hb, { agent_id: hb.agent_id, status: row.status, supervisor_id: row.supervisor_id, last_heartbeat_at: nowIso, heartbeat_count: row.heartbeat_count });
        }
        await appendEvents(trx, events);
        return out;
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.opts.metrics?.heartbeatBatch.observe(batch.length);
    let ok = 0;
    for (const p of batch) {
      const a = acks.get(p);
      if (a instanceof ApiError || !a) p.reject(a ?? new Error('heartbeat lost in batch'));
      else {
        ok++;
        p.resolve(a);
      }
    }
    this.opts.metrics?.heartbeats.inc(ok);
    if (touched.size) this.opts.onCommitted?.(touched);
  }

  /** Waits for queued heartbeats to commit (used on shutdown). */
  async drain(): Promise<void> {
    while (this.queue.length || this.flushing || this.scheduled) {
      if (this.flushing) await this.flushing;
      else await new Promise((r) => setImmediate(r));
    }
  }
}
