/**
 * When interventions are allowed to happen: cool-downs under a burst of anomalies, staggered
 * team restarts on the driven clock, and the per-supervisor concurrency limit.
 */
import { describe, expect, it } from 'vitest';
import { dialects } from '../helpers/db.js';
import { until } from '../helpers/until.js';
import { ANOMALY, world } from './fixtures.js';

for (const dialect of await dialects()) {
  describe(`intervention scheduling (${dialect})`, () => {
    it('turns a concurrent burst of 100 anomalous heartbeats into one intervention, and allows another only after the cool-down', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor({ intervention_cooldown_seconds: 60 });
      const { agentIds: [agent] } = await w.createTeam(sup, ['/ok/a1']);
      const policy = await w.createPolicy('restart-anomalies', { condition: ANOMALY, actions: [{ type: 'restart_agent' }] });
      await w.assign(sup, policy);
      const monitor = w.h.runtime.hosted.get(sup)!.monitorLoop;

      // The monitor keeps ticking while the burst lands, so several evaluations see anomalies.
      let landed = false;
      const burst = Promise.all(Array.from({ length: 100 }, (_, n) => w.heartbeat(agent, { anomaly_score: 0.91 + n / 10_000 }))).then(() => (landed = true));
      while (!landed) {
        await monitor.tickOnce();
        // better-sqlite3 answers synchronously: yield so the heartbeat batcher's setImmediate runs.
        await new Promise((r) => setImmediate(r));
      }
      await burst;
      await monitor.tickOnce();

      const agentRow = await w.h.store.db.selectFrom('agents').select(['heartbeat_count', 'evaluated_count']).where('id', '=', agent).executeTakeFirstOrThrow();
      expect([Number(agentRow.heartbeat_count), Number(agentRow.evaluated_count)]).toEqual([100, 100]);
      const first = await w.interventions(sup);
      expect(first.map((i) => [i.intervention_type, i.target_id, i.status])).toEqual([['AGENT_RESTART', agent, 'APPROVED']]);

      await w.tickExecutor();
      await w.waitForStatus(first[0].id, ['COMPLETED']);
      expect(await w.agentStatus(agent)).toBe('RESTARTING');

      // Inside the cool-down (counted from creation and completion): matched, but nothing new.
      w.clock!.advance(59_000);
      await w.heartbeat(agent, { anomaly_score: 0.99 });
      await w.tickSupervisor(sup);
      expect(await w.interventions(sup)).toHaveLength(1);
      const matched = await w.h.store.db.selectFrom('policy_evaluations').select('id').where('agent_id', '=', agent).where('trigger', '=', 'heartbeat').where('matched', '=', 1).execute();
      expect(matched.length).toBeGreaterThanOrEqual(2);

      w.clock!.advance(1_001);
      await w.heartbeat(agent, { anomaly_score: 0.99 });
      await w.tickSupervisor(sup);
      const after = await w.interventions(sup);
      expect(after).toHaveLength(2);
      expect(after[1]).toMatchObject({ intervention_type: 'AGENT_RESTART', target_id: agent, status: 'APPROVED', created_at: new Date(w.clock!.now()).toISOString() });
      expect((await w.h.req('GET', `/policies/${policy}`)).body.times_triggered).toBe(2);
    });

    it('restarts a team member by member, stagger_seconds apart on the driven clock, then completes the parent', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { teamId, agentIds } = await w.createTeam(sup, ['/ok/a1', '/ok/a2', '/ok/a3']);
      const created = await w.h.req('POST', '/interventions', { supervisor_id: sup, intervention_type: 'TEAM_RESTART', target_type: 'TEAM', target_id: teamId, reason: 'rolling restart', action_details: { stagger_seconds: 10 } });
      expect(created.status).toBe(201);
      // A team restart is destructive: it waits for a second person whatever the request said.
      expect(created.body).toMatchObject({ status: 'PENDING', approval_required: true, action_details: { approval_reason: expect.stringContaining('destructive') } });
      const approved = await w.h.req('PUT', `/interventions/${created.body.id}/approve`, { comment: 'go' }, w.author);
      expect(approved.status).toBe(200);
      const parent = approved.body;
      expect(parent).toMatchObject({ status: 'APPROVED', intervention_type: 'TEAM_RESTART', target_type: 'TEAM', target_id: teamId });
      const t0 = w.clock!.now();

      await w.tickExecutor(); // claims the parent and fans it out
      const kids = await until(async () => {
        const k = (await w.interventions(sup)).filter((i) => i.parent_intervention_id === parent.id);
        return k.length === 3 && w.executorInFlight() === 0 ? k : null;
      }, { what: 'team restart fan-out' });
      kids.sort((a, b) => Date.parse(a.next_attempt_at!) - Date.parse(b.next_attempt_at!));
      expect(kids.map((k) => Date.parse(k.next_attempt_at!) - t0)).toEqual([0, 10_000, 20_000]);
      expect(kids.map((k) => k.target_id).sort()).toEqual([...agentIds].sort());
      expect(kids.every((k) => k.intervention_type === 'AGENT_RESTART' && k.status === 'APPROVED')).toBe(true);
      expect(w.cs.deliveries).toHaveLength(0);
      expect((await w.intervention(parent.id)).status).toBe('EXECUTING');

      const deliveredAgents = () => w.cs.deliveries.map((d) => d.body.agent_id);
      for (const [n, kid] of kids.entries()) {
        if (n > 0) {
          // One millisecond short of the member's turn: nothing goes out.
          w.clock!.advance(9_999);
          await w.tickExecutor();
          expect(w.executorInFlight()).toBe(0);
          expect(deliveredAgents()).toEqual(kids.slice(0, n).map((k) => k.target_id));
          expect(await w.intervention(kid.id)).toMatchObject({ status: 'APPROVED', attempts: 0 });
          w.clock!.advance(1);
        }
        await w.tickExecutor();
        await w.waitForStatus(kid.id, ['COMPLETED']);
        expect(deliveredAgents()).toEqual(kids.slice(0, n + 1).map((k) => k.target_id));
        const d = w.cs.deliveries[n];
        expect(d.key).toBe(kid.id);
        expect(d.body).toMatchObject({ type: 'AGENT_RESTART', action_details: { stagger_seconds: 10, team_id: teamId, parent_intervention_id: parent.id } });
        if (n < 2) expect((await w.intervention(parent.id)).status).toBe('EXECUTING');
      }

      await w.tickExecutor();
      const done = await w.intervention(parent.id);
      expect(done.status).toBe('COMPLETED');
      expect((done.outcome as { restarted: string[]; failed: string[] }).restarted.sort()).toEqual([...agentIds].sort());
      expect((done.outcome as { failed: string[] }).failed).toEqual([]);
      for (const a of agentIds) expect(await w.agentStatus(a)).toBe('RESTARTING');
      expect([...w.cs.keyCounts().values()]).toEqual([1, 1, 1]);
    });

    it('keeps at most max_concurrent_interventions deliveries in flight per supervisor', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor({ max_concurrent_interventions: 1 });
      const { agentIds: [a1, a2] } = await w.createTeam(sup, ['/hang/a1', '/hang/a2']);
      await w.assign(sup, await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] }));
      await w.heartbeat(a1, { anomaly_score: 0.95 });
      await w.heartbeat(a2, { anomaly_score: 0.95 });
      await w.tickSupervisor(sup);
      const both = await w.interventions(sup);
      expect(both.map((i) => i.status)).toEqual(['APPROVED', 'APPROVED']);

      await w.tickExecutor();
      await until(() => w.cs.deliveries.length === 1, { what: 'first delivery' });
      for (let n = 0; n < 3; n++) {
        w.clock!.advance(1_000);
        await w.tickExecutor();
      }
      expect(w.executorInFlight()).toBe(1);
      expect(w.cs.deliveries).toHaveLength(1);
      const statuses = (await w.interventions(sup)).map((i) => [i.status, i.attempts]).sort();
      expect(statuses).toEqual([['APPROVED', 0], ['EXECUTING', 1]]);
      expect(w.cs.deliveries[0].key).toBe((await w.interventions(sup)).find((i) => i.status === 'EXECUTING')!.id);

      // Raising the limit (no restart) lets the second one go.
      const raised = await w.h.req('PUT', `/supervisors/${sup}`, { config: { max_concurrent_interventions: 2 } });
      expect(raised.status).toBe(200);
      await w.tickExecutor();
      await until(() => w.cs.deliveries.length === 2, { what: 'second delivery' });
      expect(w.executorInFlight()).toBe(2);
      expect(new Set(w.cs.deliveries.map((d) => d.key))).toEqual(new Set(both.map((i) => i.id)));
    });
  });
}
