/**
 * Per-token token buckets for the ingest routes. Deliberately in memory: a rate window is
 * ephemeral by nature, and losing it on restart only forgives a few seconds of traffic.
 */
export interface RateLimitOptions {
  /** Sustained requests per second per token. */
  ratePerSecond: number;
  /** Burst size. */
  burst: number;
  now?: () => number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly now: () => number;

  constructor(private readonly opts: RateLimitOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Takes one token; returns 0 when allowed, else the milliseconds until one is available. */
  take(key: string): number {
    const now = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.opts.burst, at: now };
    b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.at) / 1000) * this.opts.ratePerSecond);
    b.at = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      this.buckets.set(key, b);
      if (this.buckets.size > 100_000) this.sweep(now);
      return 0;
    }
    this.buckets.set(key, b);
    return Math.ceil(((1 - b.tokens) / this.opts.ratePerSecond) * 1000);
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) if (now - b.at > 60_000) this.buckets.delete(k);
  }
}
