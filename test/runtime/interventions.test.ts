/**
 * Interventions through the agents' control endpoints: delivery contract, retry rules, timeouts
 * and the approval workflow. Loops are ticked by hand on a driven clock, except where a real
 * HTTP timeout is the point of the test.
 */
import { describe, expect, it } from 'vitest';
import { dialects } from '../helpers/db.js';
import { until } from '../helpers/until.js';
import { ANOMALY, world } from './fixtures.js';

const ADMIN_ACTOR = 'admin:OVERSEER_ADMIN_TOKEN';

for (const dialect of await dialects()) {
  describe(`interventions via the control endpoint (${dialect})`, () => {
    it('quarantines an anomalous agent with exactly one delivery and keeps it QUARANTINED until released', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor({ intervention_cooldown_seconds: 0 });
      const { agentIds: [agent] } = await w.createTeam(sup, ['/ok/a1']);
      const policy = await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] });
      await w.assign(sup, policy);

      await w.heartbeat(agent, { anomaly_score: 0.95 });
      await w.tickSupervisor(sup);
      const created = await w.interventions(sup);
      expect(created).toHaveLength(1);
      const i = created[0];
      expect(i).toMatchObject({ status: 'APPROVED', intervention_type: 'AGENT_QUARANTINE', target_type: 'AGENT', target_id: agent, policy_id: policy, attempts: 0 });
      expect(i.action_details).toEqual({
        policy_id: policy,
        policy_version: 1,
        action: 'quarantine_agent',
        rollback_plan: { steps: [`POST /api/v1/agents/${agent}/release`], note: expect.any(String) },
      });

      await w.tickExecutor();
      const done = await w.waitForStatus(i.id, ['COMPLETED', 'FAILED']);
      expect(done).toMatchObject({ status: 'COMPLETED', attempts: 1, error_message: null });
      expect(w.cs.deliveries).toHaveLength(1);
      const d = w.cs.deliveries[0];
      expect(d.path).toBe('/ok/a1');
      expect(d.key).toBe(i.id);
      expect(d.body).toEqual({ intervention_id: i.id, type: 'AGENT_QUARANTINE', supervisor_id: sup, agent_id: agent, reason: i.reason, action_details: i.action_details });
      // The endpoint's JSON body is the outcome.
      expect(done.outcome).toEqual({ ok: true, handled: i.id, duplicate: false });
      expect(await w.agentStatus(agent)).toBe('QUARANTINED');

      // Cool-down is 0: only the quarantine itself keeps further anomalies from acting again.
      for (let n = 0; n < 3; n++) {
        w.clock!.advance(11_000);
        await w.heartbeat(agent, { anomaly_score: 0.99 });
        await w.tickSupervisor(sup);
        await w.tickExecutor();
      }
      expect(await w.agentStatus(agent)).toBe('QUARANTINED');
      expect(await w.interventions(sup)).toHaveLength(1);
      expect(w.executorInFlight()).toBe(0);
      expect(w.cs.deliveries).toHaveLength(1);

      const released = await w.h.req('POST', `/agents/${agent}/release`);
      expect(released.status).toBe(200);
      expect(released.body.status).toBe('HEALTHY');
      // A sweep after the release must not re-quarantine on the telemetry that caused the quarantine.
      w.clock!.advance(11_000);
      await w.tickSupervisor(sup);
      await w.tickExecutor();
      expect(await w.agentStatus(agent)).toBe('HEALTHY');
      expect(await w.interventions(sup)).toHaveLength(1);
      expect((await w.h.req('POST', `/agents/${agent}/release`)).status).toBe(409);
      // Fresh telemetry is judged again: a new anomaly after the release quarantines anew.
      await w.heartbeat(agent, { anomaly_score: 0.2 });
      await w.tickSupervisor(sup);
      expect(await w.interventions(sup)).toHaveLength(1);
      await w.heartbeat(agent, { anomaly_score: 0.97 });
      await w.tickSupervisor(sup);
      const after = await w.interventions(sup);
      expect(after.map((x) => [x.intervention_type, x.status])).toEqual([['AGENT_QUARANTINE', 'COMPLETED'], ['AGENT_QUARANTINE', 'APPROVED']]);
    });

    it('retries a 503 under the same idempotency key and completes on the second attempt', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { agentIds: [agent] } = await w.createTeam(sup, ['/fail-once/a1']);
      await w.assign(sup, await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] }));
      await w.heartbeat(agent, { anomaly_score: 0.95 });
      await w.tickSupervisor(sup);
      const [i] = await w.interventions(sup);

      await w.tickExecutor();
      const retrying = await until(async () => {
        const r = await w.intervention(i.id);
        return r.status === 'APPROVED' && r.attempts === 1 ? r : null;
      }, { what: 'first attempt to be scheduled for retry' });
      expect(retrying.error_message).toContain('503');
      const retryAt = Date.parse(retrying.next_attempt_at!);
      expect(retryAt).toBeGreaterThan(w.clock!.now());
      expect(retryAt).toBeLessThanOrEqual(w.clock!.now() + 500);

      // Not due yet on the driven clock: nothing is sent.
      await w.tickExecutor();
      expect(w.executorInFlight()).toBe(0);
      expect(w.cs.deliveries).toHaveLength(1);

      w.clock!.advance(500);
      await w.tickExecutor();
      const done = await w.waitForStatus(i.id, ['COMPLETED', 'FAILED']);
      expect(done).toMatchObject({ status: 'COMPLETED', attempts: 2 });
      expect(done.outcome).toEqual({ ok: true, handled: i.id, duplicate: true });
      expect(w.cs.deliveries.map((d) => [d.key, d.status])).toEqual([[i.id, 503], [i.id, 200]]);
      expect(w.cs.keyCounts()).toEqual(new Map([[i.id, 2]]));
      expect(await w.agentStatus(agent)).toBe('QUARANTINED');
    });

    it('fails a delivery to a hanging endpoint when the intervention times out', async () => {
      const w = await world(dialect, { realTime: true });
      const sup = await w.createSupervisor({ intervention_timeout_seconds: 5 });
      const { agentIds: [agent] } = await w.createTeam(sup, ['/hang/a1']);
      await w.assign(sup, await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] }));
      await w.heartbeat(agent, { anomaly_score: 0.95 });
      await w.tickSupervisor(sup);
      const [i] = await w.interventions(sup);
      expect(Date.parse(i.deadline_at!) - Date.parse(i.created_at)).toBe(5_000);

      // Tick like the executor loop would until the intervention is final.
      const failed = await until(async () => {
        await w.tickExecutor();
        const r = await w.intervention(i.id);
        return ['COMPLETED', 'FAILED'].includes(r.status) ? r : null;
      }, { timeoutMs: 20_000, intervalMs: 100, what: 'hanging delivery to time out' });
      expect(failed.status).toBe('FAILED');
      expect(failed.error_message).toMatch(/timed out/);
      expect(failed.attempts).toBe(1);
      expect(Date.parse(failed.completed_at!)).toBeGreaterThanOrEqual(Date.parse(i.deadline_at!) - 500);
      expect(w.cs.deliveries.map((d) => d.key)).toEqual([i.id]);
      expect(await w.agentStatus(agent)).toBe('HEALTHY');
    });

    it('fails on a 400 from the control endpoint without retrying', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { agentIds: [agent] } = await w.createTeam(sup, ['/reject/a1']);
      await w.assign(sup, await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] }));
      await w.heartbeat(agent, { anomaly_score: 0.95 });
      await w.tickSupervisor(sup);
      const [i] = await w.interventions(sup);

      await w.tickExecutor();
      const failed = await w.waitForStatus(i.id, ['COMPLETED', 'FAILED']);
      expect(failed).toMatchObject({ status: 'FAILED', attempts: 1, outcome: null });
      expect(failed.error_message).toContain('400');
      w.clock!.advance(60_000);
      await w.tickExecutor();
      expect(w.executorInFlight()).toBe(0);
      expect(w.cs.keyCounts()).toEqual(new Map([[i.id, 1]]));
      expect(await w.agentStatus(agent)).toBe('HEALTHY');
    });

    it('holds approval-required interventions until approved, never delivers rejected ones, and refuses a second decision', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { agentIds: [a1, a2] } = await w.createTeam(sup, ['/ok/a1', '/ok/a2']);
      await w.assign(sup, await w.createPolicy('quarantine-with-approval', { condition: ANOMALY, actions: [{ type: 'quarantine_agent', approval_required: true }] }));
      await w.heartbeat(a1, { anomaly_score: 0.95 });
      await w.heartbeat(a2, { anomaly_score: 0.96 });
      await w.tickSupervisor(sup);
      const pending = await w.interventions(sup);
      expect(pending.map((i) => [i.target_id, i.status, i.approval_required, i.next_attempt_at]).sort()).toEqual(
        [[a1, 'PENDING', true, null], [a2, 'PENDING', true, null]].sort(),
      );
      const forA1 = pending.find((i) => i.target_id === a1)!;
      const forA2 = pending.find((i) => i.target_id === a2)!;

      await w.tickExecutor();
      w.clock!.advance(600_000);
      await w.tickExecutor();
      expect(w.executorInFlight()).toBe(0);
      expect(w.cs.deliveries).toHaveLength(0);

      // Two concurrent approvals: exactly one wins.
      const decisions = await Promise.all([w.h.req('PUT', `/interventions/${forA1.id}/approve`, { comment: 'go' }), w.h.req('PUT', `/interventions/${forA1.id}/approve`, { comment: 'go' })]);
      expect(decisions.map((r) => r.status).sort()).toEqual([200, 409]);
      const approved = decisions.find((r) => r.status === 200)!.body;
      expect(approved).toMatchObject({ status: 'APPROVED', approved_by: ADMIN_ACTOR, approved_at: new Date(w.clock!.now()).toISOString() });
      expect((await w.h.req('PUT', `/interventions/${forA1.id}/approve`)).status).toBe(409);

      const rejected = await w.h.req('PUT', `/interventions/${forA2.id}/reject`, { reason: 'false positive' });
      expect(rejected.status).toBe(200);
      expect(rejected.body).toMatchObject({ status: 'REJECTED', rejected_by: ADMIN_ACTOR, rejected_reason: 'false positive', approved_by: null });
      expect((await w.h.req('PUT', `/interventions/${forA2.id}/approve`)).status).toBe(409);
      expect((await w.h.req('PUT', `/interventions/${forA2.id}/reject`)).status).toBe(409);

      await w.tickExecutor();
      const done = await w.waitForStatus(forA1.id, ['COMPLETED', 'FAILED']);
      expect(done).toMatchObject({ status: 'COMPLETED', attempts: 1, approved_by: ADMIN_ACTOR });
      w.clock!.advance(60_000);
      await w.tickExecutor();
      expect(w.cs.deliveries.map((d) => d.key)).toEqual([forA1.id]);
      expect((await w.intervention(forA2.id)).status).toBe('REJECTED');
      expect(await w.agentStatus(a1)).toBe('QUARANTINED');
      expect(await w.agentStatus(a2)).toBe('HEALTHY');
    });
  });
}
