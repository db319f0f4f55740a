/**
 * Policies in the running supervisor: versioning and rollback without restart, side-effect-free
 * simulation, alert correlation into groups, evaluation records and learned effectiveness.
 */
import { describe, expect, it } from 'vitest';
import { dialects } from '../helpers/db.js';
import { ANOMALY, world, type World } from './fixtures.js';

const loadAbove = (value: number) => ({ condition: { type: 'field_comparison', field: 'agent.metrics.load', operator: '>', value }, actions: [{ type: 'notify' }] });

interface EvaluationView { id: number; policy_id: string; policy_version: number; agent_id: string | null; trigger: string; matched: boolean; decision_path: Record<string, unknown>[]; decision_path_source: string; context: { event: Record<string, unknown> } }

interface StoredResult { policy_id: string; version: number; matched: boolean; decision_path: Record<string, unknown>[]; decision_path_source: string }

/**
 * Evaluation records of a supervisor through the API, oldest first, one entry per policy
 * evaluated (a record holds every policy evaluated for one agent and trigger).
 */
async function evaluations(w: World, sup: string, trigger?: string): Promise<EvaluationView[]> {
  const r = await w.h.req('GET', `/supervisors/${sup}/evaluations?limit=500`);
  expect(r.status).toBe(200);
  const records = (r.body.items as { id: number; agent_id: string | null; trigger: string; context: { event: Record<string, unknown> }; results: StoredResult[] }[])
    .filter((e) => !trigger || e.trigger === trigger)
    .sort((a, b) => a.id - b.id);
  return records.flatMap((e) =>
    e.results.map((x) => ({ id: e.id, agent_id: e.agent_id, trigger: e.trigger, context: e.context, policy_id: x.policy_id, policy_version: x.version, matched: x.matched, decision_path: x.decision_path, decision_path_source: x.decision_path_source })),
  );
}

for (const dialect of await dialects()) {
  describe(`policies and alerts in the running supervisor (${dialect})`, () => {
    it('applies a new policy version without restarting the supervisor and rolls back with activate', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { agentIds: [agent] } = await w.createTeam(sup, ['/ok/a1']);
      const policy = await w.createPolicy('busy-agents', loadAbove(0.9));
      await w.assign(sup, policy);
      const running = w.h.runtime.hosted.get(sup);

      await w.heartbeat(agent, { load: 0.7 });
      await w.tickSupervisor(sup);
      expect((await evaluations(w, sup, 'heartbeat')).map((e) => [e.policy_version, e.matched])).toEqual([[1, false]]);

      // Four-eyes: the new version waits for another admin; the author cannot activate it.
      const v2 = await w.h.req('PUT', `/policies/${policy}`, { definition: loadAbove(0.5) }, w.author);
      expect(v2.status).toBe(200);
      expect(v2.body).toMatchObject({ version: 1, active_version: 1, latest_version: 2, pending_version: 2 });
      expect((await w.h.req('POST', `/policies/${policy}/activate`, {}, w.author)).status).toBe(403);
      const activated = await w.h.req('POST', `/policies/${policy}/activate`, {});
      expect(activated.status).toBe(200);
      expect(activated.body).toMatchObject({ version: 2, active_version: 2, latest_version: 2, pending_version: null });
      const versions = await w.h.req('GET', `/policies/${policy}/versions`);
      expect(versions.body.items.map((v: { version: number; definition: { condition: { value: number } } }) => [v.version, v.definition.condition.value])).toEqual([[1, 0.9], [2, 0.5]]);

      await w.heartbeat(agent, { load: 0.7 });
      await w.tickSupervisor(sup);
      expect((await evaluations(w, sup, 'heartbeat')).map((e) => [e.policy_version, e.matched])).toEqual([[1, false], [2, true]]);
      const created = await w.interventions(sup);
      expect(created.map((i) => [i.intervention_type, i.policy_version, i.target_id])).toEqual([['NOTIFY', 2, agent]]);

      const rollback = await w.h.req('POST', `/policies/${policy}/activate`, { version: 1 });
      expect(rollback.status).toBe(200);
      expect(rollback.body).toMatchObject({ version: 1, active_version: 1, latest_version: 2, definition: loadAbove(0.9) });
      await w.heartbeat(agent, { load: 0.7 });
      await w.tickSupervisor(sup);
      expect((await evaluations(w, sup, 'heartbeat')).map((e) => [e.policy_version, e.matched])).toEqual([[1, false], [2, true], [1, false]]);

      // Same in-memory supervisor throughout: no restart was needed.
      expect(w.h.runtime.hosted.get(sup)).toBe(running);
      const health = await w.h.req('GET', `/supervisors/${sup}/health`);
      expect(health.body).toMatchObject({ status: 'ACTIVE', restart_count: 0 });
      expect(await w.interventions(sup)).toHaveLength(1);
    });

    it('simulates against a given context and a live agent without writing anything', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor();
      const { agentIds: [hot, calm] } = await w.createTeam(sup, ['/ok/a1', '/ok/a2']);
      const policy = await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] });
      await w.assign(sup, policy);
      await w.heartbeat(hot, { anomaly_score: 0.97 });
      await w.heartbeat(calm, { anomaly_score: 0.1 });
      const tables = ['interventions', 'policy_evaluations', 'events'] as const;
      const before = await Promise.all(tables.map((t) => w.count(t)));
      const supBefore = (await w.h.req('GET', `/supervisors/${sup}`)).body;
      const policyBefore = (await w.h.req('GET', `/policies/${policy}`)).body;

      const step = (actual: number, result: boolean) => [{ path: 'condition', kind: 'field_comparison', operator: '>', field: 'agent.metrics.anomaly_score', expected: 0.9, actual, result }];
      const planned = (target: string) => [{ action: 'quarantine_agent', intervention_type: 'AGENT_QUARANTINE', target_type: 'AGENT', target_id: target, approval_required: false, action_details: { policy_id: policy, policy_version: 1, action: 'quarantine_agent' }, problems: [], reason: expect.any(String) }];

      const byContext = await w.h.req('POST', `/policies/${policy}/simulate`, { context: { agent: { id: 'agent-x', metrics: { anomaly_score: 0.95 } } } });
      expect(byContext.status).toBe(200);
      expect(byContext.body).toMatchObject({ policy_id: policy, version: 1, matched: true, decision_path: step(0.95, true), would_create: planned('agent-x') });
      const quiet = await w.h.req('POST', `/policies/${policy}/simulate`, { context: { agent: { id: 'agent-y', metrics: { anomaly_score: 0.5 } } } });
      expect(quiet.body).toMatchObject({ matched: false, decision_path: step(0.5, false), would_create: [] });

      const live = await w.h.req('POST', `/policies/${policy}/simulate`, { agent_id: hot });
      expect(live.status).toBe(200);
      expect(live.body).toMatchObject({ matched: true, decision_path: step(0.97, true), would_create: planned(hot) });
      expect(live.body.context).toMatchObject({ agent: { id: hot, metrics: { anomaly_score: 0.97 } }, supervisor: { id: sup } });
      const liveCalm = await w.h.req('POST', `/policies/${policy}/simulate`, { agent_id: calm });
      expect(liveCalm.body).toMatchObject({ matched: false, decision_path: step(0.1, false), would_create: [] });

      expect(await Promise.all(tables.map((t) => w.count(t)))).toEqual(before);
      const supAfter = (await w.h.req('GET', `/supervisors/${sup}`)).body;
      expect(supAfter.last_policy_evaluation).toEqual(supBefore.last_policy_evaluation);
      const policyAfter = (await w.h.req('GET', `/policies/${policy}`)).body;
      expect({ times_triggered: policyAfter.times_triggered, effectiveness: policyAfter.effectiveness }).toEqual({ times_triggered: policyBefore.times_triggered, effectiveness: policyBefore.effectiveness });
    });

    it('correlates alerts for one agent and kind into one group evaluated once, at the highest severity', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor({ alert_correlation_window_seconds: 60 });
      const { agentIds: [agent] } = await w.createTeam(sup, ['/ok/a1']);
      const critical = { type: 'composite', operator: 'AND', conditions: [{ type: 'field_comparison', field: 'event.type', operator: '==', value: 'alert_group' }, { type: 'field_comparison', field: 'event.alert.severity', operator: '==', value: 'critical' }] };
      await w.assign(sup, await w.createPolicy('critical-alerts', { condition: critical, actions: [{ type: 'escalate' }] }));
      const alert = (severity: string, kind = 'cpu_high') => w.h.req('POST', '/alerts', { source: 'prometheus', severity, kind, agent_id: agent, message: `${kind} ${severity}` });

      // Sent concurrently: still one group.
      const burst = await Promise.all(['warning', 'critical', 'error', 'info'].map((s) => alert(s)));
      expect(burst.map((r) => r.status)).toEqual([201, 201, 201, 201]);
      expect(new Set(burst.map((r) => r.body.group_id)).size).toBe(1);
      expect(burst.filter((r) => r.body.new_group)).toHaveLength(1);
      const groups = await w.h.req('GET', `/supervisors/${sup}/alerts`);
      expect(groups.body.items).toHaveLength(1);
      expect(groups.body.items[0]).toMatchObject({ kind: 'cpu_high', agent_id: agent, severity: 'critical', alert_count: 4 });
      expect(groups.body.items[0].alerts).toHaveLength(4);

      await w.tickSupervisor(sup);
      await w.tickSupervisor(sup);
      const once = await evaluations(w, sup, 'alert_group');
      expect(once).toHaveLength(1);
      expect(once[0]).toMatchObject({ agent_id: agent, matched: true });
      expect(once[0].context.event).toEqual({ type: 'alert_group', alert: { group_id: burst[0].body.group_id, kind: 'cpu_high', severity: 'critical', count: 4, agent_id: agent } });
      expect((await w.interventions(sup)).map((i) => [i.intervention_type, i.target_id])).toEqual([['ESCALATE', agent]]);

      const disk = await alert('warning', 'disk_full');
      expect(disk.body.new_group).toBe(true);
      expect(disk.body.group_id).not.toBe(burst[0].body.group_id);
      await w.tickSupervisor(sup);
      const twice = await evaluations(w, sup, 'alert_group');
      expect(twice.map((e) => [e.context.event.alert, e.matched])).toEqual([
        [expect.objectContaining({ kind: 'cpu_high', severity: 'critical' }), true],
        [expect.objectContaining({ kind: 'disk_full', severity: 'warning', count: 1 }), false],
      ]);

      // After the window the same kind opens a new group.
      w.clock!.advance(60_000);
      const later = await alert('critical');
      expect(later.body.new_group).toBe(true);
      await w.tickSupervisor(sup);
      expect(await evaluations(w, sup, 'alert_group')).toHaveLength(3);
      expect((await w.h.req('GET', `/supervisors/${sup}/alerts`)).body.items.map((g: { kind: string; alert_count: number }) => [g.kind, g.alert_count])).toEqual([['cpu_high', 4], ['disk_full', 1], ['cpu_high', 1]]);
    });

    it('persists every evaluation and reports the last one in supervisor health', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor({ policy_evaluation_interval_seconds: 5 });
      const { agentIds: [a1, a2] } = await w.createTeam(sup, ['/ok/a1', '/ok/a2']);
      const quarantine = await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] });
      const busy = await w.createPolicy('busy-agents', loadAbove(0.8));
      await w.assign(sup, quarantine, 200);
      await w.assign(sup, busy, 100);

      const t0 = w.clock!.now();
      await w.tickSupervisor(sup); // loads the policies; the first sweep comes one interval after hosting
      let health = (await w.h.req('GET', `/supervisors/${sup}/health`)).body;
      expect(health.last_policy_evaluation).toBeNull();
      w.clock!.advance(5_000);
      await w.tickSupervisor(sup); // sweeps both agents against both policies
      health = (await w.h.req('GET', `/supervisors/${sup}/health`)).body;
      expect(health.last_policy_evaluation).toMatchObject({ at: new Date(t0 + 5_000).toISOString(), evaluated: 4, matched: 0, trigger: 'sweep' });

      w.clock!.advance(1_000);
      await w.heartbeat(a2, { anomaly_score: 0.1, load: 0.2 });
      await w.heartbeat(a1, { anomaly_score: 0.95, load: 0.1 });
      health = (await w.h.req('GET', `/supervisors/${sup}/health`)).body;
      const last = health.last_policy_evaluation;
      // Heartbeats are evaluated in their own commit: the last one was a1's, two policies, one match.
      expect(last).toMatchObject({ at: new Date(t0 + 6_000).toISOString(), evaluated: 2, matched: 1, trigger: 'heartbeat' });
      expect(typeof last.duration_ms).toBe('number');
      expect(last.duration_ms).toBeGreaterThanOrEqual(0);
      expect(health.active_interventions).toBe(1);

      const rows = await w.h.store.db.selectFrom('policy_evaluations').selectAll().where('supervisor_id', '=', sup).orderBy('id').execute();
      expect(rows.map((r) => [r.trigger, Number(r.evaluated)])).toEqual([['sweep', 2], ['sweep', 2], ['heartbeat', 2], ['heartbeat', 2]]);
      const heartbeatResults = rows
        .filter((r) => r.trigger === 'heartbeat')
        .flatMap((r) => (JSON.parse(r.results) as { policy_id: string; version: number; matched: boolean }[]).map((x) => [r.agent_id, x.policy_id, x.matched, x.version]));
      expect(heartbeatResults.sort()).toEqual([[a1, quarantine, true, 1], [a1, busy, false, 1], [a2, quarantine, false, 1], [a2, busy, false, 1]].sort());
      // Priority order inside a record: quarantine (200) before busy (100).
      expect((JSON.parse(rows[2].results) as { policy_id: string }[]).map((x) => x.policy_id)).toEqual([quarantine, busy]);
      const matchedRow = rows.find((r) => Number(r.matched) > 0)!;
      expect(JSON.parse(matchedRow.decision_paths)).toEqual({ [quarantine]: [{ path: 'condition', kind: 'field_comparison', operator: '>', field: 'agent.metrics.anomaly_score', expected: 0.9, actual: 0.95, result: true }] });
      expect(JSON.parse(matchedRow.context)).toMatchObject({ agent: { id: a1, metrics: { anomaly_score: 0.95, load: 0.1 } }, event: { type: 'heartbeat' } });
      expect(rows.every((r) => r.at)).toBe(true);

      const api = await evaluations(w, sup);
      expect(api).toHaveLength(8);
      expect(api.filter((e) => e.matched).map((e) => [e.agent_id, e.policy_id, e.trigger, e.decision_path_source])).toEqual([[a1, quarantine, 'heartbeat', 'recorded']]);
      // Non-matching decisions are replayed from the stored context and the policy version.
      const replayed = api.find((e) => e.agent_id === a1 && e.policy_id === busy && e.trigger === 'heartbeat')!;
      expect(replayed.decision_path_source).toBe('replayed');
      expect(replayed.decision_path).toEqual([{ path: 'condition', kind: 'field_comparison', operator: '>', field: 'agent.metrics.load', expected: 0.8, actual: 0.1, result: false }]);

      // A heartbeat from a quarantined agent evaluates nothing: it is not reported as an evaluation.
      await w.tickExecutor();
      await w.waitForStatus((await w.interventions(sup))[0].id, ['COMPLETED']);
      w.clock!.advance(1_000);
      await w.heartbeat(a1, { anomaly_score: 0.99, load: 0.1 });
      await w.tickSupervisor(sup);
      expect(await w.count('policy_evaluations')).toBe(4);
      health = (await w.h.req('GET', `/supervisors/${sup}/health`)).body;
      expect(health.last_policy_evaluation).toEqual(last);
      expect(health.agents).toMatchObject({ total: 2, quarantined: 1, healthy: 1 });
    });

    it('learns policy effectiveness from outcomes with the supervisor learning rate and counts triggers', async () => {
      const w = await world(dialect);
      const sup = await w.createSupervisor({ policy_learning_rate: 0.2 });
      const { agentIds: [good, bad] } = await w.createTeam(sup, ['/ok/a1', '/reject/a2']);
      const policy = await w.createPolicy('quarantine-anomalies', { condition: ANOMALY, actions: [{ type: 'quarantine_agent' }] });
      await w.assign(sup, policy);
      const view = async () => (await w.h.req('GET', `/policies/${policy}`)).body;
      expect(await view()).toMatchObject({ effectiveness: 0.5, times_triggered: 0, successes: 0, failures: 0 });

      await w.heartbeat(good, { anomaly_score: 0.95 });
      await w.tickSupervisor(sup);
      expect(await view()).toMatchObject({ effectiveness: 0.5, times_triggered: 1 });
      await w.tickExecutor();
      await w.waitForStatus((await w.interventions(sup))[0].id, ['COMPLETED']);
      let p = await view();
      expect(p.effectiveness).toBeCloseTo(0.5 * 0.8 + 0.2, 10);
      expect(p).toMatchObject({ times_triggered: 1, successes: 1, failures: 0 });

      await w.heartbeat(bad, { anomaly_score: 0.95 });
      await w.tickSupervisor(sup);
      await w.tickExecutor();
      await w.waitForStatus((await w.interventions(sup))[1].id, ['FAILED']);
      p = await view();
      expect(p.effectiveness).toBeCloseTo(0.6 * 0.8, 10);
      expect(p).toMatchObject({ times_triggered: 2, successes: 1, failures: 1 });
    });
  });
}
