/** A periodic task: start/stop/tickOnce, abortable sleep, a failing tick never kills the loop. */
import type { Clock } from '../domain/time.js';
import type { Logger } from './logger.js';

export interface LoopOptions {
  name: string;
  clock: Clock;
  logger: Logger;
  /** Milliseconds between the end of one tick and the start of the next; read every time. */
  intervalMs: () => number;
  tick: () => Promise<void>;
  /** Called with each failure; the loop backs off and carries on. */
  onError?: (err: unknown, consecutive: number) => void;
  /** Wait before the first tick (default: tick at once). */
  initialDelayMs?: () => number;
}

export class Loop {
  private abort: AbortController | null = null;
  private running: Promise<void> | null = null;
  private inFlight: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private pokedWhileBusy = false;
  consecutiveFailures = 0;
  totalFailures = 0;
  lastTickStartedAt: number | null = null;
  lastTickEndedAt: number | null = null;

  constructor(private readonly opts: LoopOptions) {}

  get name(): string {
    return this.opts.name;
  }

  get started(): boolean {
    return this.abort !== null;
  }

  /** Starts ticking; a second call is a no-op. The first tick runs after `initialDelayMs`. */
  start(): void {
    if (this.abort) return;
    const abort = new AbortController();
    this.abort = abort;
    this.running = this.run(abort.signal);
  }

  /** Runs one tick now (also used by tests to drive the loop by hand). */
  async tickOnce(): Promise<void> {
    if (this.inFlight) {
      this.pokedWhileBusy = true;
      return this.inFlight;
    }
    this.lastTickStartedAt = this.opts.clock.now();
    this.inFlight = (async () => {
      try {
        await this.opts.tick();
        this.consecutiveFailures = 0;
      } catch (err) {
        this.consecutiveFailures++;
        this.totalFailures++;
        this.opts.logger.warn({ err, loop: this.opts.name, consecutive: this.consecutiveFailures }, 'loop tick failed');
        this.opts.onError?.(err, this.consecutiveFailures);
      } finally {
        this.lastTickEndedAt = this.opts.clock.now();
        this.inFlight = null;
      }
    })();
    return this.inFlight;
  }

  /** Asks for a tick as soon as possible instead of waiting out the interval. */
  poke(): void {
    if (this.inFlight) this.pokedWhileBusy = true;
    this.wake?.();
  }

  /** Whether a tick is running and has been for more than `ms`. */
  overrunning(ms: number): boolean {
    return this.inFlight !== null && this.lastTickStartedAt !== null && this.opts.clock.now() - this.lastTickStartedAt > ms;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const initial = this.opts.initialDelayMs?.() ?? 0;
    if (initial > 0) await this.sleep(initial, signal);
    while (!signal.aborted) {
      await this.tickOnce();
      if (signal.aborted) break;
      if (this.pokedWhileBusy) {
        this.pokedWhileBusy = false;
        // Yield a macrotask: with a synchronous driver a tick resolves in microtasks only, and
        // back-to-back ticks would starve I/O (HTTP, group commits) for as long as pokes arrive.
        await new Promise((r) => setImmediate(r));
        continue;
      }
      const base = this.opts.intervalMs();
      // Back off while failing (for example while the store is down), capped at 30 s.
      const delay = this.consecutiveFailures ? Math.min(30_000, Math.max(base, 250 * 2 ** Math.min(this.consecutiveFailures, 7))) : base;
      await this.sleep(delay, signal);
    }
  }

  private async sleep(ms: number, signal: AbortSignal): Promise<void> {
    const wake = new AbortController();
    const onAbort = () => wake.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.wake = () => wake.abort();
    try {
      await this.opts.clock.sleep(ms, wake.signal);
    } catch {
      // Woken by poke() or stop().
    } finally {
      this.wake = null;
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Stops the loop: aborts the sleep and waits for the tick in flight. Safe to call twice. */
  async stop(): Promise<void> {
    const abort = this.abort;
    if (!abort) return;
    abort.abort();
    await this.running;
    this.abort = null;
    this.running = null;
  }
}
