/**
 * Issue 4 (1): kill -9 at random moments under load, restart, carry on. Agents heartbeat all the
 * time, policies restart and quarantine agents on an anomaly metric, operators create (and approve)
 * interventions. Every write that was acknowledged with a 2xx is recorded and must be in the
 * database at the end; every intervention ends in a final state, delivered only ever under its own
 * id as Idempotency-Key; no agent goes STALE because of the restarts.
 *
 * Replay a run with FAILOVER_SEED=<seed printed in the summary line>.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { api, freePort, type ServerProcess } from '../helpers/server-process.js';
import { createTestDb, dialects, type TestDb } from '../helpers/db.js';
import { ControlServer } from '../helpers/control-server.js';
import { GatedEndpoint } from '../helpers/gated-endpoint.js';
import { ServerSet, journal, killHard, seededRandom, tryCall, type Api } from '../helpers/failover-kit.js';
import { withRawDb } from '../helpers/raw-db.js';
import { until } from '../helpers/until.js';

const ROUNDS = 10;
const TIMEOUT_S = 4;
const CONFIG = {
  heartbeat_interval_seconds: 1,
  policy_evaluation_interval_seconds: 1,
  agent_heartbeat_timeout_seconds: TIMEOUT_S,
  intervention_timeout_seconds: 120,
  intervention_cooldown_seconds: 0,
  max_concurrent_interventions: 20,
};
const FINAL = ['COMPLETED', 'FAILED', 'REJECTED'];
const MANUAL_TYPES = ['TASK_REASSIGN', 'PRIORITY_OVERRIDE', 'AGENT_RESTART'] as const;

/** Every write the API acknowledged with a 2xx. */
class Ledger {
  agents: string[] = [];
  memberships: { team: string; agent: string }[] = [];
  interventions: { id: string; approvalRequired: boolean }[] = [];
  approvals: string[] = [];
  releases = new Map<string, number>();
  /** agent -> every heartbeat_count acknowledged. */
  acks = new Map<string, number[]>();
  /** agent -> latest acknowledged last_heartbeat_at. */
  lastBeat = new Map<string, string>();
  writes = 0;
  refused = 0;

  ack(agent: string, count: number, at: string): void {
    const list = this.acks.get(agent) ?? [];
    list.push(count);
    this.acks.set(agent, list);
    if ((this.lastBeat.get(agent) ?? '') < at) this.lastBeat.set(agent, at);
    this.writes++;
  }
}

interface Agent { id: string; silent: boolean; silenced: boolean }

/** The traffic: heartbeating agents (with occasional anomalies), operators creating and approving interventions. */
class Load {
  private stopped = false;
  private calm = false;
  private readonly workers: Promise<void>[] = [];
  private readonly pendingApproval: string[] = [];
  readonly agents: Agent[] = [];

  /** `approver` is a second person (four-eyes): `client` requests, `approver` approves. */
  constructor(private readonly client: Api, private readonly approver: Api, private readonly ledger: Ledger, private readonly rand: () => number, private readonly supervisorId: string) {}

  private pause(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }

  private ok(status: number): boolean {
    if (status >= 200 && status < 300) return true;
    this.ledger.refused++;
    return false;
  }

  /** One agent's heartbeat loop; it releases its own quarantine like an operator would. */
  addAgent(a: Agent): void {
    this.agents.push(a);
    this.workers.push(
      (async () => {
        while (!this.stopped && !a.silenced) {
          const roll = this.rand();
          const anomaly = a.silent || this.calm ? 0.1 : roll < 0.012 ? 0.97 : roll < 0.05 ? 0.85 : 0.1;
          const r = await tryCall(() => this.client.post(`/agents/${a.id}/heartbeat`, { metrics: { anomaly, cpu: Math.round(this.rand() * 100) / 100 } }));
          if (this.ok(r.status)) {
            this.ledger.ack(a.id, r.body.heartbeat_count, r.body.last_heartbeat_at);
            if (r.body.status === 'QUARANTINED') {
              const rel = await tryCall(() => this.client.post(`/agents/${a.id}/release`));
              if (this.ok(rel.status)) {
                this.ledger.releases.set(a.id, (this.ledger.releases.get(a.id) ?? 0) + 1);
                this.ledger.writes++;
              }
            }
          }
          await this.pause(r.status === 0 ? 100 : 100 + this.rand() * 100);
        }
      })(),
    );
  }

  /** Operators: manual interventions (some needing approval) and the approvals. */
  startOperators(): void {
    this.workers.push(
      (async () => {
        while (!this.stopped) {
          if (!this.calm) {
            const target = this.agents[Math.floor(this.rand() * this.agents.length)];
            const type = MANUAL_TYPES[Math.floor(this.rand() * MANUAL_TYPES.length)];
            const approvalRequired = this.rand() < 0.4;
            const r = await tryCall(() =>
              this.client.post('/interventions', { supervisor_id: this.supervisorId, intervention_type: type, target_type: 'AGENT', target_id: target.id, reason: 'operator under load', approval_required: approvalRequired }),
            );
            if (this.ok(r.status)) {
              this.ledger.interventions.push({ id: r.body.id, approvalRequired });
              this.ledger.writes++;
              if (approvalRequired) this.pendingApproval.push(r.body.id);
            }
          }
          await this.pause(150 + this.rand() * 150);
        }
      })(),
      (async () => {
        while (!this.stopped) {
          const id = this.pendingApproval[0];
          if (id) {
            const r = await tryCall(() => this.approver.put(`/interventions/${id}/approve`, { comment: 'looks right' }));
            if (this.ok(r.status)) {
              this.ledger.approvals.push(id);
              this.ledger.writes++;
            }
            // 409: approved already (the answer to an earlier attempt was lost in a crash).
            if (r.status === 200 || r.status === 409) this.pendingApproval.shift();
          }
          await this.pause(100 + this.rand() * 200);
        }
      })(),
    );
  }

  /** No more anomalies or new interventions: let the system settle. */
  quiet(): void {
    this.calm = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }
}

interface Delivery { key: string | undefined; body: Record<string, unknown>; status: number | null }

/** Re-deliveries per key, split by what came before: a 5xx answer (a retry) or a crash. */
function redeliveries(deliveries: Delivery[]) {
  const byKey = new Map<string, Delivery[]>();
  for (const d of deliveries) {
    const k = String(d.key);
    byKey.set(k, [...(byKey.get(k) ?? []), d]);
  }
  let afterRetryable = 0;
  let afterCrash = 0;
  let duplicateSuccesses = 0;
  for (const list of byKey.values()) {
    for (let n = 1; n < list.length; n++) {
      const prev = list[n - 1].status;
      if (prev !== null && prev >= 500) afterRetryable++;
      else afterCrash++;
    }
    if (list.filter((d) => d.status !== null && d.status >= 200 && d.status < 300).length > 1) duplicateSuccesses++;
  }
  return { keys: byKey.size, total: deliveries.length, keysRedelivered: [...byKey.values()].filter((l) => l.length > 1).length, afterRetryable, afterCrash, duplicateSuccesses, byKey };
}

for (const dialect of await dialects()) {
  describe(`random kill -9 under load (${dialect})`, () => {
    const servers = new ServerSet();
    let db: TestDb | undefined;
    let control: ControlServer | undefined;
    let slow: GatedEndpoint | undefined;
    let load: Load | undefined;

    afterEach(async () => {
      // Stop the traffic and kill the server together: a worker never waits on a server left hanging.
      const stopping = load?.stop();
      load = undefined;
      await servers.reap();
      await stopping;
      await control?.stop();
      await slow?.stop();
      await db?.drop();
      db = undefined;
    });

    it(`loses no acknowledged write and finishes every intervention across ${ROUNDS} random kills`, async () => {
      const seed = Number(process.env.FAILOVER_SEED ?? Math.floor(Math.random() * 2 ** 31));
      const rand = seededRandom(seed);
      db = await createTestDb(dialect);
      control = await new ControlServer().start();
      // A control endpoint that takes a moment, so kills also land while deliveries are open.
      slow = await new GatedEndpoint(async () => {
        await new Promise((r) => setTimeout(r, 150 + Math.floor(rand() * 250)));
        return { status: 200 };
      }).start();
      const port = await freePort();
      let server: ServerProcess = await servers.start({ databaseUrl: db.url, port });
      const client = api(server.url);
      const ledger = new Ledger();

      const sup = await client.post('/supervisors', { name: 'under-load', config: CONFIG });
      expect(sup.status).toBe(201);
      // Four-eyes: a second admin activates the policies and approves what the operators request.
      const reviewerToken = await client.post('/tokens', { role: 'admin', name: 'reviewer' });
      expect(reviewerToken.status).toBe(201);
      const reviewer = api(server.url, reviewerToken.body.token);
      const anomaly = (op: string, value: number) => ({ type: 'field_comparison', field: 'agent.metrics.anomaly', operator: op, value });
      const restartPolicy = await client.post('/policies', {
        name: 'restart-on-anomaly',
        policy_type: 'INTERVENTION',
        definition: { condition: { type: 'composite', operator: 'AND', conditions: [anomaly('>=', 0.8), anomaly('<', 0.95)] }, actions: [{ type: 'restart_agent', reason: 'anomaly ${agent.metrics.anomaly}' }] },
      });
      const quarantinePolicy = await client.post('/policies', {
        name: 'quarantine-on-severe-anomaly',
        policy_type: 'INTERVENTION',
        definition: { condition: anomaly('>=', 0.95), actions: [{ type: 'quarantine_agent' }] },
      });
      for (const p of [restartPolicy, quarantinePolicy]) {
        expect(p.status).toBe(201);
        expect((await reviewer.post(`/policies/${p.body.id}/activate`, {})).status).toBe(200);
        expect((await client.post(`/supervisors/${sup.body.id}/policies`, { policy_id: p.body.id, priority: 10 })).status).toBe(201);
      }
      const urls = [control.url('/ok'), control.url('/ok'), control.url('/ok'), control.url('/flaky'), slow.url('/slow'), slow.url('/slow'), control.url('/ok')];
      const team = await client.post(`/supervisors/${sup.body.id}/teams`, { name: 'pool' });
      expect(team.status).toBe(201);
      load = new Load(client, reviewer, ledger, rand, sup.body.id);
      const registerAgent = async (name: string, url: string, silent = false): Promise<boolean> => {
        const a = await tryCall(() => client.post('/agents', { name, control_url: url }));
        if (a.status !== 201) return false;
        ledger.agents.push(a.body.id);
        ledger.writes++;
        // The membership may need another try after a crash; a 409 means the first one committed.
        const m = await until(async () => {
          const r = await tryCall(() => client.post(`/teams/${team.body.id}/members`, { agent_id: a.body.id }));
          return r.status === 201 || r.status === 409 ? r : null;
        }, { what: `membership of ${name}` });
        if (m.status === 201) ledger.memberships.push({ team: team.body.id, agent: a.body.id });
        load!.addAgent({ id: a.body.id, silent, silenced: false });
        return true;
      };
      for (const [n, url] of urls.entries()) expect(await registerAgent(`agent-${n}`, url, n === 6)).toBe(true);
      const silent = load.agents[6];
      load.startOperators();

      // Rounds: let a random number of acknowledged writes happen, kill -9, restart on the same port.
      const kills: number[] = [];
      const timings: string[] = [];
      let roundStart = Date.now();
      for (let round = 1; round <= ROUNDS; round++) {
        if (round === 4) silent.silenced = true; // deliberately silenced: the only agent allowed to go STALE
        if (round % 3 === 0) await registerAgent(`late-${round}`, round % 2 ? control.url('/ok') : slow.url('/slow'));
        const target = ledger.writes + 15 + Math.floor(rand() * 75);
        await until(() => ledger.writes >= target, { timeoutMs: 20_000, intervalMs: 5, what: `round ${round}: ${target} acknowledged writes` });
        kills.push(ledger.writes);
        const t0 = Date.now();
        await killHard(server);
        server = await servers.start({ databaseUrl: db.url, port });
        timings.push(`${t0 - roundStart}+${Date.now() - t0}`);
        roundStart = Date.now();
      }

      // Settle: no more anomalies or new work; approve whatever still waits; everything finishes.
      load.quiet();
      const settleStarted = Date.now();
      await until(
        async () => {
          const open = await withRawDb(db!.url, (d) => d.query<{ id: string; status: string }>("select id, status from interventions where status in ('PENDING', 'APPROVED', 'EXECUTING')"));
          for (const i of open.filter((x) => x.status === 'PENDING')) await tryCall(() => reviewer.put(`/interventions/${i.id}/approve`, { comment: 'settling' }));
          return open.length === 0;
        },
        { timeoutMs: 45_000, intervalMs: 200, what: 'every intervention to reach a final state' },
      );
      const settleMs = Date.now() - settleStarted;
      // The silenced agent does go STALE (so the check is live), a full timeout after the last resume.
      await until(async () => (await client.get(`/agents/${silent.id}`)).body.status === 'STALE', { timeoutMs: 15_000, what: 'the silenced agent to go stale' });

      // Snapshot right after the traffic stops, before silence could make anyone stale.
      await load.stop();
      const rows = await withRawDb(db.url, async (d) => ({
        interventions: await d.query<{ id: string; status: string; attempts: number; approved_at: string | null; intervention_type: string; target_id: string; error_message: string | null }>(
          'select id, status, attempts, approved_at, intervention_type, target_id, error_message from interventions',
        ),
        agents: await d.query<{ id: string; status: string; heartbeat_count: number; last_heartbeat_at: string | null }>('select id, status, heartbeat_count, last_heartbeat_at from agents'),
        members: await d.query<{ team_id: string; agent_id: string }>('select team_id, agent_id from team_members where left_at is null'),
      }));
      const events = await journal(client);

      // 1. Every acknowledged write is in the database.
      const interventionById = new Map(rows.interventions.map((i) => [i.id, i]));
      const agentById = new Map(rows.agents.map((a) => [a.id, a]));
      for (const id of ledger.agents) expect(agentById.has(id), `agent ${id}`).toBe(true);
      for (const m of ledger.memberships) expect(rows.members, `membership ${m.agent}`).toContainEqual({ team_id: m.team, agent_id: m.agent });
      for (const i of ledger.interventions) expect(interventionById.has(i.id), `intervention ${i.id}`).toBe(true);
      for (const id of ledger.approvals) expect(interventionById.get(id)!.approved_at, `approval of ${id}`).not.toBeNull();
      for (const [agent, n] of ledger.releases) expect(events.filter((e) => e.type === 'agent.released' && e.entity_id === agent).length, `releases of ${agent}`).toBeGreaterThanOrEqual(n);
      let acked = 0;
      for (const [agent, counts] of ledger.acks) {
        acked += counts.length;
        const row = agentById.get(agent)!;
        // A lost acknowledged heartbeat would have its count handed out a second time.
        expect(new Set(counts).size, `distinct heartbeat counts of ${agent}`).toBe(counts.length);
        expect(row.heartbeat_count, `heartbeat_count of ${agent}`).toBeGreaterThanOrEqual(Math.max(...counts));
        expect(row.last_heartbeat_at! >= ledger.lastBeat.get(agent)!, `last_heartbeat_at of ${agent}`).toBe(true);
      }

      // 2. Every intervention reached a final state; deliveries went out under the intervention's own id only.
      expect(rows.interventions.filter((i) => !FINAL.includes(i.status))).toEqual([]);
      const deliveries: Delivery[] = [...control.deliveries.map((d) => ({ key: d.key, body: d.body, status: d.status })), ...slow.deliveries];
      for (const d of deliveries) {
        expect(d.key, 'Idempotency-Key').toBeDefined();
        expect(d.key).toBe(d.body.intervention_id);
        expect(interventionById.has(String(d.key)), `delivered key ${d.key} is an intervention`).toBe(true);
      }
      const r = redeliveries(deliveries);
      for (const i of rows.interventions.filter((x) => x.status === 'COMPLETED')) {
        const answered = (r.byKey.get(i.id) ?? []).filter((d) => d.status !== null && d.status >= 200 && d.status < 300);
        expect(answered.length, `a 2xx delivery for completed ${i.intervention_type} ${i.id}`).toBeGreaterThanOrEqual(1);
      }
      // Nothing here fails for good (endpoints answer 2xx, or 503 then 2xx; the timeout is far away).
      expect(rows.interventions.filter((i) => i.status === 'FAILED')).toEqual([]);

      // The supervisor itself rode every crash out: resumed each time, never failed.
      expect(events.filter((e) => /^supervisor\.(failed|restart_scheduled|terminated)$/.test(e.type))).toEqual([]);
      expect(events.filter((e) => e.type === 'supervisor.recovered')).toHaveLength(ROUNDS);

      // 3. No agent went STALE because of the restarts: only the silenced one, ever.
      const staleEvents = events.filter((e) => e.type === 'agent.status_changed' && e.payload.to === 'STALE');
      expect([...new Set(staleEvents.map((e) => e.entity_id))]).toEqual([silent.id]);
      expect(rows.agents.filter((a) => a.status === 'STALE').map((a) => a.id)).toEqual([silent.id]);

      const byStatus = Object.entries(rows.interventions.reduce<Record<string, number>>((acc, i) => ({ ...acc, [i.status]: (acc[i.status] ?? 0) + 1 }), {})).map(([k, v]) => `${k}=${v}`).join(' ');
      const policyMade = rows.interventions.length - ledger.interventions.length;
      console.log(
        `[random-kill ${dialect}] seed=${seed} rounds=${ROUNDS} kills_after_writes=[${kills.join(',')}] acked_writes=${ledger.writes} acked_heartbeats=${acked} refused_or_failed=${ledger.refused} ` +
          `interventions=${rows.interventions.length} (manual ${ledger.interventions.length}, approved ${ledger.approvals.length}, policy/other ${policyMade}; ${byStatus}) settle_ms=${settleMs} round_ms(load+restart)=[${timings.join(',')}] ` +
          `deliveries=${r.total} keys=${r.keys} redelivered_keys=${r.keysRedelivered} redeliveries_after_crash=${r.afterCrash} redeliveries_after_5xx=${r.afterRetryable} keys_with_two_2xx=${r.duplicateSuccesses} ` +
          `recovered_events=${events.filter((e) => e.type === 'supervisor.recovered').length} redispatched_events=${events.filter((e) => e.type === 'intervention.redispatched').length}`,
      );
    }, 150_000);
  });
}
