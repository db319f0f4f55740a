import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/harness.js';
import { dialects } from '../helpers/db.js';

for (const dialect of await dialects()) {
  describe(`API walk-through (${dialect})`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await createHarness({ dialect });
    });
    afterAll(async () => h?.close());

    it('creates a supervisor, team, agent, heartbeat and reports health', async () => {
      const sup = await h.req('POST', '/supervisors', { name: 'walk', config: { heartbeat_interval_seconds: 5 } });
      expect(sup.status).toBe(201);
      expect(sup.body.status).toBe('ACTIVE');
      const agent = await h.req('POST', '/agents', { name: 'a1', control_url: 'http://127.0.0.1:9/control' });
      expect(agent.status).toBe(201);
      const team = await h.req('POST', `/supervisors/${sup.body.id}/teams`, { name: 't1', agent_ids: [agent.body.id] });
      expect(team.status).toBe(201);
      expect(team.body.members.map((m: { agent_id: string }) => m.agent_id)).toEqual([agent.body.id]);
      const hb = await h.req('POST', `/agents/${agent.body.id}/heartbeat`, { metrics: { cpu: 0.4, mode: 'idle' } });
      expect(hb.status).toBe(200);
      expect(hb.body.status).toBe('HEALTHY');
      const health = await h.req('GET', `/supervisors/${sup.body.id}/health`);
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'ACTIVE', running: true, missed_heartbeats: 0, restart_count: 0, agents: { total: 1, healthy: 1 } });
      const events = await h.req('GET', `/events?supervisor_id=${sup.body.id}`);
      expect(events.body.items.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(['supervisor.created', 'supervisor.activated', 'team.created', 'team.member_added']));
    });
  });
}
