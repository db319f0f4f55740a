/**
 * Issue 4 (3): the store goes away under a running server. The process stays up, says so on its
 * health endpoints, refuses writes with 503 store_unavailable without half-writing anything, and
 * resumes on its own when the store is back. PostgreSQL: a TCP proxy cuts every connection and
 * refuses new ones. SQLite: another process holds the database's write lock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { api, type ServerProcess } from '../helpers/server-process.js';
import { createTestDb, dialects, type TestDb } from '../helpers/db.js';
import { ControlServer } from '../helpers/control-server.js';
import { ServerSet, journal, running, type Api } from '../helpers/failover-kit.js';
import { sqlitePath, withRawDb } from '../helpers/raw-db.js';
import { holdSqliteWriteLock, type SqliteLock } from '../helpers/sqlite-lock.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/until.js';

const CONFIG = { heartbeat_interval_seconds: 1, policy_evaluation_interval_seconds: 1, agent_heartbeat_timeout_seconds: 60 };

interface Fleet { supervisorId: string; agentId: string; heartbeatCount: number }

async function fleet(client: Api, control: ControlServer): Promise<Fleet> {
  const sup = await client.post('/supervisors', { name: 'outage', config: CONFIG });
  expect(sup.status).toBe(201);
  const agent = await client.post('/agents', { name: 'worker', control_url: control.url('/ok') });
  expect(agent.status).toBe(201);
  expect((await client.post(`/supervisors/${sup.body.id}/teams`, { name: 'crew', agent_ids: [agent.body.id] })).status).toBe(201);
  const hb = await client.post(`/agents/${agent.body.id}/heartbeat`, { metrics: { cpu: 0.1 } });
  expect(hb.status).toBe(200);
  return { supervisorId: sup.body.id, agentId: agent.body.id, heartbeatCount: hb.body.heartbeat_count };
}

async function status(url: string): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}

/** What a client sees while the store is out: one write of each kind, in parallel (each may spend the store's retry budget). */
async function writesDuringOutage(client: Api, f: Fleet) {
  const [agent, heartbeat, intervention] = await Promise.all([
    client.post('/agents', { name: 'during-outage' }),
    client.post(`/agents/${f.agentId}/heartbeat`, { metrics: { cpu: 0.9 } }),
    client.post('/interventions', { supervisor_id: f.supervisorId, intervention_type: 'TASK_REASSIGN', target_type: 'AGENT', target_id: f.agentId, reason: 'during outage' }),
  ]);
  return { agent, heartbeat, intervention };
}

/** After the store is back: nothing of the refused writes exists, and everything works again. */
async function resumesCleanly(server: ServerProcess, client: Api, control: ControlServer, f: Fleet, databaseUrl: string, restoredAt: number) {
  await until(async () => (await status(`${server.url}/readyz`)).status === 200, { timeoutMs: 15_000, what: 'readiness to return by itself' });
  const hb = await client.post(`/agents/${f.agentId}/heartbeat`, { metrics: { cpu: 0.2 } });
  expect(hb.status).toBe(200);
  // The refused heartbeat was not counted: the count goes on from the last acknowledged one.
  expect(hb.body.heartbeat_count).toBe(f.heartbeatCount + 1);
  const i = await client.post('/interventions', { supervisor_id: f.supervisorId, intervention_type: 'TASK_REASSIGN', target_type: 'AGENT', target_id: f.agentId, reason: 'after outage' });
  expect(i.status).toBe(201);
  await until(async () => (await client.get(`/interventions/${i.body.id}`)).body.status === 'COMPLETED', { what: 'an intervention after the outage' });
  expect(control.keyCounts().get(i.body.id)).toBe(1);
  // The supervisor rode the outage out: beating again, never failed, no restart spent.
  await until(async () => {
    const h = (await client.get(`/supervisors/${f.supervisorId}/health`)).body;
    return h.status === 'ACTIVE' && Date.parse(h.last_heartbeat_at) > restoredAt;
  }, { what: 'the supervisor to beat again' });
  expect((await client.get(`/supervisors/${f.supervisorId}`)).body).toMatchObject({ restart_count: 0, failure_reason: null, running: true });
  const types = (await journal(client, f.supervisorId)).map((e) => e.type);
  expect(types.filter((t) => /supervisor\.(failed|restart|terminated)/.test(t))).toEqual([]);
  await withRawDb(databaseUrl, async (d) => {
    expect(await d.query("select id from agents where name = 'during-outage'")).toEqual([]);
    expect(await d.query("select id from interventions where reason = 'during outage'")).toEqual([]);
    expect(await d.one('select heartbeat_count from agents where id = ?', [f.agentId])).toEqual({ heartbeat_count: f.heartbeatCount + 1 });
  });
  expect(running(server)).toBe(true);
  expect(server.output()).not.toMatch(/Unhandled|uncaught|FATAL/i);
  return types;
}

for (const dialect of await dialects()) {
  describe(`store outage (${dialect})`, () => {
    const servers = new ServerSet();
    let db: TestDb | undefined;
    let control: ControlServer | undefined;
    let proxy: TcpProxy | undefined;
    let lock: SqliteLock | undefined;

    afterEach(async () => {
      await lock?.release();
      lock = undefined;
      await servers.reap();
      await proxy?.stop();
      proxy = undefined;
      await control?.stop();
      await db?.drop();
      db = undefined;
    });

    if (dialect === 'postgres') {
      it('keeps running when every database connection is cut: readiness 503 on "database", writes 503 store_unavailable, automatic resume', async () => {
        db = await createTestDb('postgres');
        control = await new ControlServer().start();
        const direct = new URL(db.url);
        proxy = await new TcpProxy({ host: direct.hostname, port: Number(direct.port || 5432) }).start();
        const viaProxy = new URL(db.url);
        viaProxy.port = String(proxy.port);
        const server = await servers.start({ databaseUrl: viaProxy.toString() });
        const client = api(server.url);
        const f = await fleet(client, control);
        expect(proxy.accepted).toBeGreaterThan(0);

        await proxy.cut();
        const ready = await until(async () => {
          if (!running(server)) throw new Error(`the server died when its database connections were cut:\n${server.output().slice(-2000)}`);
          const r = await status(`${server.url}/readyz`);
          return r.status === 503 ? r : null;
        }, { timeoutMs: 5_000, what: '/readyz 503 while the database is cut' });
        expect(ready.body).toMatchObject({ status: 'not_ready', failing: ['database'] });
        expect((await status(`${server.url}/livez`)).status).toBe(200);
        const healthz = await status(`${server.url}/healthz`);
        expect(healthz.status).toBe(503);
        expect(healthz.body.checks['database:responseTime'][0].status).toBe('fail');
        const w = await writesDuringOutage(client, f);
        for (const r of Object.values(w)) {
          expect(r.status).toBe(503);
          expect(r.body.error).toBe('store_unavailable');
        }
        // Reads need the database too; they fail the same clean way.
        const read = await client.get(`/supervisors/${f.supervisorId}`);
        expect({ status: read.status, error: read.body.error }).toEqual({ status: 503, error: 'store_unavailable' });
        expect(running(server)).toBe(true);
        console.log(`[store-outage postgres] cut: readyz ${ready.status} ${JSON.stringify(ready.body.failing)}, livez 200, writes ${w.agent.status}/${w.heartbeat.status}/${w.intervention.status} ${w.agent.body.error}`);

        await proxy.restore();
        const restoredAt = Date.now();
        const types = await resumesCleanly(server, client, control, f, db.url, restoredAt);
        console.log(`[store-outage postgres] restored: ready again, supervisor journal during outage: ${types.filter((t) => /unresponsive|responsive/.test(t)).join(', ') || 'no status change'}`);
      });
    }

    if (dialect === 'sqlite') {
      it('keeps running while another process holds the write lock: readiness 503 on "database", writes 503 store_unavailable, automatic resume on release', async () => {
        db = await createTestDb('sqlite');
        control = await new ControlServer().start();
        const server = await servers.start({ databaseUrl: db.url });
        const client = api(server.url);
        const f = await fleet(client, control);

        lock = await holdSqliteWriteLock(sqlitePath(db.url));
        const w = await writesDuringOutage(client, f);
        for (const r of Object.values(w)) {
          expect(r.status).toBe(503);
          expect(r.body.error).toBe('store_unavailable');
        }
        // Readiness probes the write lock (a plain read would pass under WAL), so it fails too.
        const ready = await status(`${server.url}/readyz`);
        expect(ready).toMatchObject({ status: 503, body: { failing: ['database'] } });
        expect((await status(`${server.url}/livez`)).status).toBe(200);
        expect((await client.get(`/agents/${f.agentId}`)).status).toBe(200);
        expect(running(server)).toBe(true);
        console.log(`[store-outage sqlite] locked: readyz ${ready.status} ${JSON.stringify(ready.body)}, livez 200, writes ${w.agent.status}/${w.heartbeat.status}/${w.intervention.status} ${w.agent.body.error}`);

        await lock.release();
        lock = undefined;
        const restoredAt = Date.now();
        const types = await resumesCleanly(server, client, control, f, db.url, restoredAt);
        console.log(`[store-outage sqlite] released: ready, supervisor journal during outage: ${types.filter((t) => /unresponsive|responsive/.test(t)).join(', ') || 'no status change'}`);
      });
    }
  });
}
