/**
 * Shared set-up for the runtime suites: an in-process Overseer whose loops are ticked by hand, a
 * real control server playing the agents, and small helpers that go through the HTTP API.
 */
import { onTestFinished } from 'vitest';
import { createHarness, type Harness } from '../helpers/harness.js';
import { ControlServer } from '../helpers/control-server.js';
import { ManualClock } from '../helpers/clock.js';
import { until } from '../helpers/until.js';
import { systemClock } from '../../src/domain/time.js';
import type { Intervention } from '../../src/store/interventions.js';

export type Dialect = 'sqlite' | 'postgres';

export const ANOMALY = { type: 'field_comparison', field: 'agent.metrics.anomaly_score', operator: '>', value: 0.9 } as const;

export interface World {
  h: Harness;
  cs: ControlServer;
  /** The driven clock; null when the world runs on real time. */
  clock: ManualClock | null;
  createSupervisor(config?: Record<string, unknown>): Promise<string>;
  /** Registers one agent per control path and puts them all in one new team of `supervisorId`. */
  createTeam(supervisorId: string, controlPaths: string[]): Promise<{ teamId: string; agentIds: string[] }>;
  /**
   * A second admin's token. It writes the world's policies, so that (four-eyes) the harness
   * admin may activate them and approve what they create; and it may approve what the harness
   * admin requests.
   */
  author: string;
  /** Written by `author`, activated by the harness admin: running from the next tick. */
  createPolicy(name: string, definition: Record<string, unknown>): Promise<string>;
  assign(supervisorId: string, policyId: string, priority?: number): Promise<void>;
  heartbeat(agentId: string, metrics: Record<string, number | string>): Promise<void>;
  /** One monitoring pass of the supervisor (heartbeats, stale agents, alert groups, sweep). */
  tickSupervisor(supervisorId: string): Promise<void>;
  tickExecutor(): Promise<void>;
  /** Deliveries the executor has started and not yet finished. */
  executorInFlight(): number;
  intervention(id: string): Promise<Intervention>;
  interventions(supervisorId: string): Promise<Intervention[]>;
  waitForStatus(id: string, statuses: string[], timeoutMs?: number): Promise<Intervention>;
  count(table: 'interventions' | 'policy_evaluations' | 'events' | 'alert_groups' | 'alerts'): Promise<number>;
  agentStatus(agentId: string): Promise<string>;
}

/** A fresh database, harness and control server for one test, closed when the test ends. */
export async function world(dialect: Dialect, opts: { realTime?: boolean } = {}): Promise<World> {
  const clock = opts.realTime ? null : new ManualClock();
  const cs = await new ControlServer().start();
  const h = await createHarness({ dialect, clock: clock ?? systemClock, autoStartLoops: false });
  onTestFinished(async () => {
    await h.close();
    await cs.stop();
  });

  const ok = <T extends { status: number; body: any }>(r: T, status: number, what: string): T => { // eslint-disable-line @typescript-eslint/no-explicit-any
    if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status} ${JSON.stringify(r.body)}`);
    return r;
  };

  const author = (await h.tokens.create({ role: 'admin', name: 'policy-author' }, null)).token;

  const w: World = {
    h,
    cs,
    clock,
    author,
    async createSupervisor(config = {}) {
      const r = ok(await h.req('POST', '/supervisors', { name: `sup-${h.ctx.newId()}`, config }), 201, 'create supervisor');
      return r.body.id as string;
    },
    async createTeam(supervisorId, controlPaths) {
      const agentIds: string[] = [];
      for (const [n, path] of controlPaths.entries()) {
        const r = ok(await h.req('POST', '/agents', { name: `agent-${n}-${h.ctx.newId()}`, control_url: cs.url(path) }), 201, 'create agent');
        agentIds.push(r.body.id);
      }
      const t = ok(await h.req('POST', `/supervisors/${supervisorId}/teams`, { name: `team-${h.ctx.newId()}`, agent_ids: agentIds }), 201, 'create team');
      return { teamId: t.body.id as string, agentIds };
    },
    async createPolicy(name, definition) {
      const r = ok(await h.req('POST', '/policies', { name, policy_type: 'INTERVENTION', definition }, author), 201, 'create policy');
      ok(await h.req('POST', `/policies/${r.body.id}/activate`, { version: 1 }), 200, 'activate policy');
      return r.body.id as string;
    },
    async assign(supervisorId, policyId, priority = 100) {
      ok(await h.req('POST', `/supervisors/${supervisorId}/policies`, { policy_id: policyId, priority }), 201, 'assign policy');
    },
    async heartbeat(agentId, metrics) {
      ok(await h.req('POST', `/agents/${agentId}/heartbeat`, { metrics }), 200, 'heartbeat');
    },
    async tickSupervisor(supervisorId) {
      const agent = h.runtime.hosted.get(supervisorId);
      if (!agent) throw new Error(`supervisor ${supervisorId} is not hosted`);
      await agent.tickOnce();
    },
    tickExecutor: () => h.runtime.executor.tickOnce(),
    executorInFlight: () => h.runtime.executor.inFlightCount,
    async intervention(id) {
      return ok(await h.req('GET', `/interventions/${id}`), 200, 'get intervention').body as Intervention;
    },
    async interventions(supervisorId) {
      return ok(await h.req('GET', `/supervisors/${supervisorId}/interventions?limit=500`), 200, 'list interventions').body.items as Intervention[];
    },
    async waitForStatus(id, statuses, timeoutMs = 15_000) {
      return until(async () => {
        const i = await w.intervention(id);
        return statuses.includes(i.status) ? i : null;
      }, { timeoutMs, what: `intervention ${id} in ${statuses.join('/')}` });
    },
    async count(table) {
      const r = await h.store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      return Number(r.n);
    },
    async agentStatus(agentId) {
      return ok(await h.req('GET', `/agents/${agentId}`), 200, 'get agent').body.status as string;
    },
  };
  return w;
}
