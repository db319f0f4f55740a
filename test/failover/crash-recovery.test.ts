/**
 * Issue 2: a supervisor process killed with SIGKILL resumes from the database. Every committed
 * row comes back, statuses are kept, monitoring resumes, and the time the process was down is not
 * held against the agents.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { api } from '../helpers/server-process.js';
import { createTestDb, dialects, type TestDb } from '../helpers/db.js';
import { ControlServer } from '../helpers/control-server.js';
import { ServerSet, journal, killHard, type Api } from '../helpers/failover-kit.js';
import { openRawDb, withRawDb, type RawDb } from '../helpers/raw-db.js';
import { until } from '../helpers/until.js';

const TIMEOUT_S = 3;
const CONFIG = { heartbeat_interval_seconds: 1, policy_evaluation_interval_seconds: 1, agent_heartbeat_timeout_seconds: TIMEOUT_S };
/** Longer than the agents' heartbeat timeout: measured from the last heartbeat, every agent would be stale. */
const DOWNTIME_MS = TIMEOUT_S * 1000 + 1500;

/** Everything an operator created, as committed, minus fields that move by themselves. */
async function snapshot(db: RawDb) {
  return {
    supervisors: await db.query('select id, name, status, config, parent_id, hierarchy_level, restart_count, failure_reason from supervisors order by id'),
    teams: await db.query('select id, supervisor_id, name, objective from teams order by id'),
    memberships: await db.query('select id, team_id, agent_id, role, joined_at, left_at from team_members order by id'),
    agents: await db.query('select id, name, status, team_id, supervisor_id, control_url, metadata, heartbeat_count, last_heartbeat_at, last_metrics from agents order by id'),
    policies: await db.query('select id, name, policy_type, active_version, is_active from policies order by id'),
    policy_versions: await db.query('select policy_id, version, definition from policy_versions order by policy_id, version'),
    assignments: await db.query('select supervisor_id, policy_id, priority from policy_assignments order by supervisor_id, policy_id'),
  };
}

async function created(res: { status: number; body: any }, what: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  if (res.status !== 201 && res.status !== 200) throw new Error(`${what} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

async function instanceId(base: string): Promise<string> {
  const r = await fetch(`${base}/healthz`);
  return ((await r.json()) as { serviceId: string }).serviceId;
}

for (const dialect of await dialects()) {
  describe(`crash recovery after kill -9 (${dialect})`, () => {
    const servers = new ServerSet();
    let db: TestDb | undefined;
    let control: ControlServer | undefined;
    let stopBeats: (() => Promise<void>) | undefined;

    afterEach(async () => {
      const stopping = stopBeats?.();
      stopBeats = undefined;
      await servers.reap();
      await stopping;
      await control?.stop();
      await db?.drop();
      db = undefined;
    });

    it('brings back every row and status, resumes heartbeats and marks no agent stale for the downtime', async () => {
      db = await createTestDb(dialect);
      control = await new ControlServer().start();
      let server = await servers.start({ databaseUrl: db.url });
      let client: Api = api(server.url);

      const active = await created(await client.post('/supervisors', { name: 'active', config: CONFIG }), 'create active');
      const paused = await created(await client.post('/supervisors', { name: 'paused', config: CONFIG }), 'create paused');
      expect((await client.post(`/supervisors/${paused.id}/pause`)).body.status).toBe('PAUSED');
      const agents: Record<string, string> = {};
      for (const name of ['a1', 'a2', 'a3']) agents[name] = (await created(await client.post('/agents', { name, control_url: control.url('/ok') }), `agent ${name}`)).id;
      const alpha = await created(await client.post(`/supervisors/${active.id}/teams`, { name: 'alpha', objective: 'serve', agent_ids: [agents.a1, agents.a2] }), 'team alpha');
      const beta = await created(await client.post(`/supervisors/${paused.id}/teams`, { name: 'beta', agent_ids: [agents.a3] }), 'team beta');
      const policy = await created(
        await client.post('/policies', {
          name: 'cpu-guard',
          policy_type: 'INTERVENTION',
          definition: { condition: { type: 'field_comparison', field: 'agent.metrics.cpu', operator: '>', value: 0.99 }, actions: [{ type: 'restart_agent' }] },
        }),
        'policy',
      );
      // Four-eyes: a second admin activates the policy.
      const reviewer = api(server.url, (await created(await client.post('/tokens', { role: 'admin', name: 'reviewer' }), 'reviewer token')).token);
      await created(await reviewer.post(`/policies/${policy.id}/activate`, {}), 'activate policy');
      await created(await client.post(`/supervisors/${active.id}/policies`, { policy_id: policy.id, priority: 10 }), 'assign policy');
      for (const id of Object.values(agents)) {
        const hb = await client.post(`/agents/${id}/heartbeat`, { metrics: { cpu: 0.2 } });
        expect(hb.status).toBe(200);
        expect(hb.body.status).toBe('HEALTHY');
      }
      // The running supervisor has beaten at least once after the agents' last heartbeat.
      const beforeKill = Date.now();
      await until(async () => Date.parse((await client.get(`/supervisors/${active.id}/health`)).body.last_heartbeat_at) > beforeKill, { what: 'a supervisor heartbeat' });

      const raw = await openRawDb(db.url);
      const before = await snapshot(raw);
      await raw.close();
      expect(before.supervisors).toHaveLength(2);
      expect(before.teams).toHaveLength(2);
      expect(before.memberships).toHaveLength(3);
      expect(before.agents).toHaveLength(3);
      expect(before.policies).toHaveLength(1);
      expect(before.assignments).toHaveLength(1);
      const crashedInstance = await instanceId(server.url);

      await killHard(server);
      const killedAt = Date.now();
      // While nothing runs, the dead instance looks exactly like a crash: no clean shutdown.
      await withRawDb(db.url, async (d) => {
        const row = await d.one<{ clean_shutdown_at: string | null }>('select clean_shutdown_at from instances where id = ?', [crashedInstance]);
        expect(row).toBeDefined();
        expect(row!.clean_shutdown_at).toBeNull();
      });
      await until(() => Date.now() - killedAt >= DOWNTIME_MS, { what: 'downtime longer than the agent heartbeat timeout', intervalMs: 100 });

      server = await servers.start({ databaseUrl: db.url });
      client = api(server.url);
      const newInstance = await instanceId(server.url);
      expect(newInstance).not.toBe(crashedInstance);

      // Every row is back as it was committed; the PAUSED supervisor is still PAUSED.
      const after = await withRawDb(db.url, snapshot);
      expect(after).toEqual(before);
      expect((await client.get(`/supervisors/${paused.id}`)).body.status).toBe('PAUSED');
      expect((await client.get(`/supervisors/${active.id}`)).body.status).toBe('ACTIVE');
      expect((await client.get(`/teams/${alpha.id}`)).body.members.map((m: { agent_id: string }) => m.agent_id).sort()).toEqual([agents.a1, agents.a2].sort());
      expect((await client.get(`/teams/${beta.id}`)).body.members.map((m: { agent_id: string }) => m.agent_id)).toEqual([agents.a3]);
      expect((await client.get(`/supervisors/${active.id}/policies`)).body.items.map((p: { policy_id: string }) => p.policy_id)).toEqual([policy.id]);

      // The crashed instance keeps no clean_shutdown_at (it was recovered), and neither has the running one.
      const instances = await withRawDb(db.url, (d) => d.query<{ id: string; clean_shutdown_at: string | null; recovered_by: string | null }>('select id, clean_shutdown_at, recovered_by from instances order by started_at'));
      expect(instances).toEqual([
        { id: crashedInstance, clean_shutdown_at: null, recovered_by: newInstance },
        { id: newInstance, clean_shutdown_at: null, recovered_by: null },
      ]);

      // Both supervisors were recovered from the crashed owner, with the downtime on record.
      for (const s of [active, paused]) {
        const recovered = (await journal(client, s.id)).filter((e) => e.type === 'supervisor.recovered');
        expect(recovered).toHaveLength(1);
        expect(recovered[0].payload).toMatchObject({ previous_owner: crashedInstance, instance_id: newInstance });
        expect(recovered[0].payload.downtime_ms).toBeGreaterThanOrEqual(DOWNTIME_MS);
        expect(recovered[0].payload.downtime_ms).toBeLessThan(DOWNTIME_MS + 30_000);
      }

      // Heartbeats resume for both (a paused supervisor still beats), under the new owner.
      const health = (await client.get(`/supervisors/${active.id}/health`)).body;
      expect(health).toMatchObject({ status: 'ACTIVE', running: true, owner_instance_id: newInstance, hosted_here: true });
      const resumedAt = Date.parse(health.resumed_at);
      expect(resumedAt).toBeGreaterThanOrEqual(killedAt + DOWNTIME_MS);
      for (const s of [active, paused]) {
        await until(async () => Date.parse((await client.get(`/supervisors/${s.id}/health`)).body.last_heartbeat_at) > resumedAt, { what: `${s.id} heartbeat after restart` });
      }
      expect((await client.get(`/supervisors/${paused.id}/health`)).body).toMatchObject({ status: 'PAUSED', running: true, owner_instance_id: newInstance });

      // Monitoring ran twice after the restart (a sweep >= 1 s after resuming) and found nobody stale,
      // although every agent has been silent for longer than the timeout.
      await until(
        async () => {
          const ev = (await client.get(`/supervisors/${active.id}/health`)).body.last_policy_evaluation;
          return ev && ev.trigger === 'sweep' && Date.parse(ev.at) >= resumedAt + 1000;
        },
        { what: 'a policy sweep one second after resuming' },
      );
      const afterSweep = await withRawDb(db.url, (d) => d.query<{ id: string; status: string }>('select id, status from agents order by id'));
      expect(afterSweep.map((a) => a.status)).toEqual(['HEALTHY', 'HEALTHY', 'HEALTHY']);
      expect((await journal(client)).filter((e) => e.type === 'agent.status_changed' && e.payload.to === 'STALE')).toEqual([]);

      // The staleness check is live: a1 stays silent and goes STALE, but only a full timeout after
      // the resume; a2 heartbeats again and stays HEALTHY; a3's supervisor is paused.
      let beating = true;
      const beats = (async () => {
        while (beating) {
          await client.post(`/agents/${agents.a2}/heartbeat`, { metrics: { cpu: 0.3 } }).catch(() => null);
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      stopBeats = async () => {
        beating = false;
        await beats;
      };
      await until(async () => (await client.get(`/agents/${agents.a1}`)).body.status === 'STALE', { timeoutMs: 10_000, what: 'a1 to go stale' });
      await stopBeats();
      const staleEvents = (await journal(client)).filter((e) => e.type === 'agent.status_changed' && e.payload.to === 'STALE');
      expect(staleEvents.map((e) => e.entity_id)).toEqual([agents.a1]);
      expect(Date.parse(staleEvents[0].at) - resumedAt).toBeGreaterThan(TIMEOUT_S * 1000);
      expect((await client.get(`/agents/${agents.a2}`)).body.status).toBe('HEALTHY');
      expect((await client.get(`/agents/${agents.a3}`)).body.status).toBe('HEALTHY');
    });
  });
}
