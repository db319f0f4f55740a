/**
 * Issue 5: group commit takes no durability shortcut. A burst of concurrent heartbeats is sent,
 * the server is killed with SIGKILL the moment the last acknowledgement arrives, and every
 * acknowledged heartbeat (and the policy evaluation committed with it) is in the database.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { api } from '../helpers/server-process.js';
import { createTestDb, dialects, type TestDb } from '../helpers/db.js';
import { ServerSet, killHard } from '../helpers/failover-kit.js';
import { withRawDb } from '../helpers/raw-db.js';

const AGENTS = 40;
const BEATS_PER_AGENT = 15;

for (const dialect of await dialects()) {
  describe(`heartbeat durability under group commit (${dialect})`, () => {
    const servers = new ServerSet();
    let db: TestDb | undefined;

    afterEach(async () => {
      await servers.reap();
      await db?.drop();
      db = undefined;
    });

    it('finds every acknowledged heartbeat in the database after SIGKILL right behind the last ack', async () => {
      db = await createTestDb(dialect);
      const server = await servers.start({ databaseUrl: db.url, env: { OVERSEER_FOUR_EYES: 'off' } });
      const client = api(server.url);
      const sup = (await client.post('/supervisors', { name: 'durable', config: { heartbeat_interval_seconds: 1 } })).body;
      const agentIds: string[] = [];
      for (let i = 0; i < AGENTS; i++) agentIds.push((await client.post('/agents', { name: `a${i}` })).body.id);
      await client.post(`/supervisors/${sup.id}/teams`, { name: 'all', agent_ids: agentIds });
      const policy = (await client.post('/policies', { name: 'watch-load', policy_type: 'INTERVENTION', definition: { condition: { type: 'field_comparison', field: 'agent.metrics.load', operator: '>', value: 2 }, actions: [{ type: 'notify' }] } })).body;
      await client.post(`/supervisors/${sup.id}/policies`, { policy_id: policy.id });

      // Every agent sends its beats back to back, all agents at once: large group-commit batches.
      const acked = new Map<string, number>();
      await Promise.all(
        agentIds.map(async (id) => {
          for (let n = 0; n < BEATS_PER_AGENT; n++) {
            const r = await client.post(`/agents/${id}/heartbeat`, { metrics: { load: 0.5, n } });
            expect(r.status).toBe(200);
            acked.set(id, Math.max(acked.get(id) ?? 0, r.body.heartbeat_count));
          }
        }),
      );
      await killHard(server);

      const rows = await withRawDb(db.url, (raw) => raw.query<{ id: string; heartbeat_count: number; evaluated_count: number; last_metrics: string }>('select id, heartbeat_count, evaluated_count, last_metrics from agents'));
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const id of agentIds) {
        const row = byId.get(id)!;
        expect(Number(row.heartbeat_count)).toBeGreaterThanOrEqual(acked.get(id)!);
        expect(Number(row.heartbeat_count)).toBe(BEATS_PER_AGENT);
        expect(JSON.parse(row.last_metrics)).toEqual({ load: 0.5, n: BEATS_PER_AGENT - 1 });
      }
      // Heartbeat-triggered evaluation commits with the heartbeat: nothing acknowledged is unevaluated.
      const evaluated = rows.filter((r) => Number(r.evaluated_count) === Number(r.heartbeat_count)).length;
      expect(evaluated).toBe(AGENTS);
      const records = await withRawDb(db.url, (raw) => raw.query<{ n: number }>("select count(*) as n from policy_evaluations where trigger = 'heartbeat'"));
      expect(Number(records[0].n)).toBe(AGENTS * BEATS_PER_AGENT);
      console.log(`[heartbeat-durability ${dialect}] ${AGENTS * BEATS_PER_AGENT} heartbeats acknowledged, all committed and evaluated before SIGKILL`);
    });
  });
}
