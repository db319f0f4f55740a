/**
 * Group commit: units of work submitted in the same event-loop turn share one transaction (one
 * fsync on SQLite, one round of commits on PostgreSQL). Each unit runs inside its own savepoint,
 * so one unit's failure rolls back only that unit; its caller gets the error, the others commit.
 * A caller's promise settles only after the shared transaction has committed.
 */
import { inSavepoint, type Store, type Tx } from './store.js';

interface Unit<T> { work: (trx: Tx) => Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void }

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class GroupCommitter {
  private queue: Unit<unknown>[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;

  /**
   * `maxBatch` stays small on purpose: a synchronous driver holds the event loop for the whole
   * transaction, so many small batches with a yield between them keep heartbeats and health
   * checks flowing while sweeps commit.
   */
  constructor(private readonly store: Store, private readonly maxBatch = 8) {}

  /** Runs `work` in the next shared transaction. `work` must only touch the database. */
  run<T>(work: (trx: Tx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve, reject } as Unit<unknown>);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flushAll();
    });
  }

  private async flushAll(): Promise<void> {
    if (this.flushing) return;
    this.flushing = (async () => {
      while (this.queue.length) {
        await this.flush(this.queue.splice(0, this.maxBatch));
        if (this.queue.length) await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      await this.flushing;
    } finally {
      this.flushing = null;
      if (this.queue.length) this.schedule();
    }
  }

  private async flush(batch: Unit<unknown>[]): Promise<void> {
    let outcomes: Outcome[];
    try {
      outcomes = await this.store.tx(async (trx) => {
        const out: Outcome[] = [];
        if (batch.length === 1) {
          out.push({ ok: true, value: await batch[0].work(trx) });
          return out;
        }
        for (const unit of batch) {
          const r = await inSavepoint(trx, this.store.caps.isTransient, () => unit.work(trx));
          out.push(r.ok ? { ok: true, value: r.value } : { ok: false, error: r.error });
        }
        return out;
      });
    } catch (error) {
      for (const unit of batch) unit.reject(error);
      return;
    }
    batch.forEach((unit, i) => {
      const o = outcomes[i];
      if (o.ok) unit.resolve(o.value);
      else unit.reject(o.error);
    });
  }

  /** Waits until everything submitted so far has settled. */
  async drain(): Promise<void> {
    while (this.queue.length || this.flushing || this.scheduled) {
      if (this.flushing) await this.flushing;
      else await new Promise((r) => setImmediate(r));
    }
  }
}
