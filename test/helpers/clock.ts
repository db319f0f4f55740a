/** A clock tests drive by hand: sleepers wake only when time is advanced past their deadline. */
import type { Clock } from '../../src/domain/time.js';

export class ManualClock implements Clock {
  private sleepers: { at: number; resolve: () => void }[] = [];
  constructor(private t: number = Date.parse('2026-01-01T00:00:00.000Z')) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.at <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.at > this.t);
    for (const s of due) s.resolve();
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new Error('aborted'));
      const entry = { at: this.t + ms, resolve };
      this.sleepers.push(entry);
      signal?.addEventListener('abort', () => {
        this.sleepers = this.sleepers.filter((s) => s !== entry);
        reject(new Error('aborted'));
      }, { once: true });
    });
  }
}
