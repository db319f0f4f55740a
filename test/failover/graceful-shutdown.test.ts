/**
 * Issue 4 (2): SIGTERM drains. Readiness flips at once while liveness stays green, new writes are
 * refused with 503 shutting_down, an in-flight delivery gets the grace period to finish, and
 * whatever does not finish is left APPROVED for re-dispatch under the same Idempotency-Key.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { api, type ServerProcess } from '../helpers/server-process.js';
import { createTestDb, dialects, type TestDb } from '../helpers/db.js';
import { GatedEndpoint, gate } from '../helpers/gated-endpoint.js';
import { ServerSet, journal, running, type Api } from '../helpers/failover-kit.js';
import { withRawDb } from '../helpers/raw-db.js';
import { until } from '../helpers/until.js';

const CONFIG = { heartbeat_interval_seconds: 1, policy_evaluation_interval_seconds: 1, agent_heartbeat_timeout_seconds: 30 };

async function instanceId(base: string): Promise<string> {
  return ((await (await fetch(`${base}/healthz`)).json()) as { serviceId: string }).serviceId;
}

/** A supervisor with one agent behind `controlUrl`, and an approved restart for it already being delivered. */
async function interventionInFlight(client: Api, endpoint: GatedEndpoint) {
  const sup = await client.post('/supervisors', { name: 'drain', config: CONFIG });
  expect(sup.status).toBe(201);
  const agent = await client.post('/agents', { name: 'worker', control_url: endpoint.url() });
  expect(agent.status).toBe(201);
  expect((await client.post(`/supervisors/${sup.body.id}/teams`, { name: 'crew', agent_ids: [agent.body.id] })).status).toBe(201);
  const i = await client.post('/interventions', { supervisor_id: sup.body.id, intervention_type: 'AGENT_RESTART', target_type: 'AGENT', target_id: agent.body.id, reason: 'in flight at SIGTERM' });
  expect(i.status).toBe(201);
  await until(() => endpoint.deliveriesFor(i.body.id).length === 1, { what: 'the delivery to reach the control endpoint' });
  expect((await client.get(`/interventions/${i.body.id}`)).body).toMatchObject({ status: 'EXECUTING', attempts: 1 });
  return { supervisorId: sup.body.id as string, agentId: agent.body.id as string, interventionId: i.body.id as string };
}

async function exitWithin(p: ServerProcess, sentAt: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
  const r = await p.exited;
  return { ...r, ms: Date.now() - sentAt };
}

for (const dialect of await dialects()) {
  describe(`graceful shutdown on SIGTERM (${dialect})`, () => {
    const servers = new ServerSet();
    let db: TestDb | undefined;
    let endpoint: GatedEndpoint | undefined;

    afterEach(async () => {
      await servers.reap();
      await endpoint?.stop();
      endpoint = undefined;
      await db?.drop();
      db = undefined;
    });

    it('finishes an in-flight delivery within the grace: 503 while draining, exit 0, clean shutdown saved', async () => {
      db = await createTestDb(dialect);
      const answer = gate();
      endpoint = await new GatedEndpoint(async () => {
        await answer.promise;
        return { status: 200, body: { restarted: true } };
      }).start();
      const server = await servers.start({ databaseUrl: db.url, env: { OVERSEER_SHUTDOWN_GRACE_MS: '5000' } });
      const client = api(server.url);
      const { supervisorId, agentId, interventionId } = await interventionInFlight(client, endpoint);
      const instance = await instanceId(server.url);

      const sentAt = Date.now();
      server.kill('SIGTERM');
      const exit = exitWithin(server, sentAt);

      // Draining: readiness red at once, liveness green, writes refused, reads still served.
      const ready = await until(async () => {
        const r = await fetch(`${server.url}/readyz`);
        return r.status === 503 ? { status: r.status, body: await r.json() } : null;
      }, { what: '/readyz 503 after SIGTERM' });
      expect(ready.body).toMatchObject({ status: 'draining', failing: ['draining'] });
      const live = await fetch(`${server.url}/livez`);
      expect(live.status).toBe(200);
      const write = await client.post('/agents', { name: 'too-late' });
      expect(write.status).toBe(503);
      expect(write.body).toMatchObject({ error: 'shutting_down' });
      const beat = await client.post(`/agents/${agentId}/heartbeat`, { metrics: { cpu: 0.1 } });
      expect(beat.status).toBe(503);
      expect(beat.body.error).toBe('shutting_down');
      expect((await client.get(`/interventions/${interventionId}`)).body.status).toBe('EXECUTING');
      // Still draining because the delivery is still open: nothing cut it short.
      expect(running(server)).toBe(true);

      answer.open();
      const { code, signal, ms } = await exit;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(ms).toBeLessThan(5000);
      console.log(`[graceful-shutdown ${dialect}] drained in-flight delivery, exit 0 after ${ms} ms (grace 5000 ms)`);

      await withRawDb(db.url, async (d) => {
        const i = await d.one<{ status: string; attempts: number; outcome: string }>('select status, attempts, outcome from interventions where id = ?', [interventionId]);
        expect(i).toMatchObject({ status: 'COMPLETED', attempts: 1 });
        expect(JSON.parse(i!.outcome)).toEqual({ restarted: true });
        const inst = await d.one<{ clean_shutdown_at: string | null }>('select clean_shutdown_at from instances where id = ?', [instance]);
        expect(inst!.clean_shutdown_at).not.toBeNull();
        expect(await d.query('select id, running from supervisors')).toEqual([{ id: supervisorId, running: 0 }]);
        expect(await d.query('select count(*) as n from agents where name = ?', ['too-late'])).toEqual([{ n: 0 }]);
        const shutdown = await d.one<{ payload: string }>("select payload from events where type = 'instance.shutdown' and entity_id = ?", [instance]);
        expect(JSON.parse(shutdown!.payload)).toMatchObject({ finished: 1, released: 0 });
      });
      expect(endpoint.deliveriesFor(interventionId)).toHaveLength(1);

      // A clean stop is not a crash: the next start resumes without "recovered" and re-sends nothing.
      const next = await servers.start({ databaseUrl: db.url });
      const c2 = api(next.url);
      const resumedAt = Date.parse((await c2.get(`/supervisors/${supervisorId}/health`)).body.resumed_at);
      await until(async () => Date.parse((await c2.get(`/supervisors/${supervisorId}/health`)).body.last_heartbeat_at) > resumedAt + 500, { what: 'a heartbeat after restart' });
      const types = (await journal(c2, supervisorId)).map((e) => e.type);
      expect(types).toContain('supervisor.resumed');
      expect(types).not.toContain('supervisor.recovered');
      expect(endpoint.deliveriesFor(interventionId)).toHaveLength(1);
    });

    it('gives up on a hanging delivery when a short grace is spent, leaves it APPROVED and re-sends it with the same key after restart', async () => {
      db = await createTestDb(dialect);
      // The first delivery never answers; the re-delivery is acknowledged.
      endpoint = await new GatedEndpoint(async (d) => (d.count === 1 ? null : { status: 200, body: { restarted: true, duplicate: true } })).start();
      const server = await servers.start({ databaseUrl: db.url, env: { OVERSEER_SHUTDOWN_GRACE_MS: '500' } });
      const client = api(server.url);
      const { supervisorId, interventionId } = await interventionInFlight(client, endpoint);
      const instance = await instanceId(server.url);

      const sentAt = Date.now();
      server.kill('SIGTERM');
      const { code, signal, ms } = await exitWithin(server, sentAt);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(ms).toBeLessThan(500 + 2500);
      console.log(`[graceful-shutdown ${dialect}] hanging delivery released, exit 0 after ${ms} ms (grace 500 ms)`);

      await withRawDb(db.url, async (d) => {
        const i = await d.one<{ status: string; attempts: number; error_message: string | null }>('select status, attempts, error_message from interventions where id = ?', [interventionId]);
        expect(i).toMatchObject({ status: 'APPROVED', attempts: 1 });
        expect(i!.error_message).toMatch(/shut/i);
        const inst = await d.one<{ clean_shutdown_at: string | null }>('select clean_shutdown_at from instances where id = ?', [instance]);
        expect(inst!.clean_shutdown_at).not.toBeNull();
        expect(await d.query('select running from supervisors')).toEqual([{ running: 0 }]);
        const shutdown = await d.one<{ payload: string }>("select payload from events where type = 'instance.shutdown' and entity_id = ?", [instance]);
        expect(JSON.parse(shutdown!.payload)).toMatchObject({ finished: 0, released: 1 });
      });

      const next = await servers.start({ databaseUrl: db.url });
      const c2 = api(next.url);
      await until(async () => (await c2.get(`/interventions/${interventionId}`)).body.status === 'COMPLETED', { what: 'the re-delivered intervention to complete' });
      const deliveries = endpoint.deliveriesFor(interventionId);
      expect(deliveries).toHaveLength(2);
      expect(endpoint.deliveries).toHaveLength(2);
      for (const d of deliveries) {
        expect(d.key).toBe(interventionId);
        expect(d.body.intervention_id).toBe(interventionId);
      }
      expect((await c2.get(`/interventions/${interventionId}`)).body).toMatchObject({ status: 'COMPLETED', attempts: 2 });
      const types = (await journal(c2, supervisorId)).filter((e) => e.entity_id === interventionId).map((e) => e.type);
      expect(types).toEqual(['intervention.created', 'intervention.executing', 'intervention.released', 'intervention.executing', 'intervention.completed']);
    });
  });
}
