/**
 * Shared pieces of the failover suites: server processes that are always reaped, readiness
 * waits, journal reads over the API, and a seeded random source so a failing run can be replayed.
 */
import { api, spawnServer, type ServerProcess, type SpawnOptions } from './server-process.js';
import { until } from './until.js';

export type Api = ReturnType<typeof api>;

/** Every server a test starts; `reap()` in afterEach kills whatever is still running. */
export class ServerSet {
  private readonly all: ServerProcess[] = [];

  /** Spawns `node dist/main.js serve` and waits for /readyz 200 (the child is tracked even if that fails). */
  async start(opts: SpawnOptions): Promise<ServerProcess> {
    const p = await spawnServer({ ...opts, waitReady: false });
    this.all.push(p);
    if (opts.waitReady !== false) await waitReady(p);
    return p;
  }

  async reap(): Promise<void> {
    await Promise.all(this.all.filter(running).map((p) => killHard(p)));
    this.all.length = 0;
  }
}

export const running = (p: ServerProcess): boolean => p.child.exitCode === null && p.child.signalCode === null;

export async function waitReady(p: ServerProcess, timeoutMs = 20_000): Promise<void> {
  await until(
    async () => {
      if (!running(p)) throw new Error(`server exited before ready:\n${p.output()}`);
      const r = await fetch(`${p.url}/readyz`).catch(() => null);
      return r?.status === 200;
    },
    { timeoutMs, what: 'server readiness' },
  );
}

/** kill -9 and wait until the process is gone. */
export async function killHard(p: ServerProcess): Promise<void> {
  if (running(p)) p.kill('SIGKILL');
  await p.exited;
}

export interface JournalEvent { seq: number; supervisor_id: string | null; entity_type: string; entity_id: string | null; type: string; payload: Record<string, unknown>; at: string }

/** The whole journal (optionally one supervisor's), read through the API page by page. */
export async function journal(client: Api, supervisorId?: string): Promise<JournalEvent[]> {
  const out: JournalEvent[] = [];
  let after: string | null = null;
  for (;;) {
    const q = new URLSearchParams({ limit: '1000' });
    if (supervisorId) q.set('supervisor_id', supervisorId);
    if (after) q.set('after', after);
    const r = await client.get(`/events?${q}`);
    if (r.status !== 200) throw new Error(`GET /events answered ${r.status}: ${JSON.stringify(r.body)}`);
    out.push(...(r.body.items as JournalEvent[]));
    after = r.body.next_cursor;
    if (!after) return out;
  }
}

/** Mulberry32: small, fast, seeded. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fetch that never throws: network failures (server down) come back as status 0. */
export async function tryCall<T>(fn: () => Promise<T>): Promise<T | { status: 0; body: null; error: string }> {
  try {
    return await fn();
  } catch (err) {
    return { status: 0, body: null, error: err instanceof Error ? `${err.message}${(err as { cause?: { code?: string } }).cause?.code ? ` (${(err as { cause?: { code?: string } }).cause?.code})` : ''}` : String(err) };
  }
}
