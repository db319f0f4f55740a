/**
 * Safety rules (issue 6) through the API, on both dialects: four-eyes on intervention approval
 * and on policy activation, approval forced for destructive interventions and for more than 10
 * affected agents, rollback plans on dangerous actions, and OVERSEER_FOUR_EYES=off.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { createHarness, type Harness } from '../helpers/harness.js';
import { ManualClock } from '../helpers/clock.js';
import { dialects } from '../helpers/db.js';
import { loadConfig, ConfigError } from '../../src/config.js';
import type { Role } from '../../src/runtime/services/tokens.js';

const ANOMALY = { type: 'field_comparison', field: 'agent.metrics.anomaly_score', operator: '>', value: 0.9 };
const notifyAbove = (value: number) => ({ condition: { ...ANOMALY, value }, actions: [{ type: 'notify' }] });

interface Person { id: string; token: string; label: string }

interface Fixture {
  h: Harness;
  clock: ManualClock;
  /** Operators alice and bob, admins carol and dave: four different people. */
  alice: Person;
  bob: Person;
  carol: Person;
  dave: Person;
  /** A request as `who` (the harness admin when omitted). */
  as(who: Person | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  supervisor(): Promise<string>;
  /** `n` agents in one new team of `sup`. */
  team(sup: string, n: number): Promise<{ teamId: string; agentIds: string[] }>;
  heartbeat(agentId: string, metrics: Record<string, number>): Promise<void>;
  tick(sup: string): Promise<void>;
  /** [version, matched] of every evaluation of `policyId` on `sup`, oldest first. */
  evaluated(sup: string, policyId: string): Promise<[number, boolean][]>;
  eventCount(): Promise<number>;
}

async function fixture(dialect: 'sqlite' | 'postgres', fourEyes?: boolean): Promise<Fixture> {
  const clock = new ManualClock();
  const h = await createHarness({ dialect, clock, autoStartLoops: false, ...(fourEyes === undefined ? {} : { fourEyes }) });
  onTestFinished(() => h.close());
  const person = async (role: Role, name: string): Promise<Person> => {
    const t = await h.tokens.create({ role, name }, null);
    return { id: t.id, token: t.token, label: `${role}:${name}` };
  };
  const as: Fixture['as'] = (who, method, path, body) => h.req(method, path, body, who?.token);
  const ok = async (r: Promise<{ status: number; body: any }>, what: string) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await r;
    if (res.status >= 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  let seq = 0;
  const f: Fixture = {
    h,
    clock,
    alice: await person('operator', 'alice'),
    bob: await person('operator', 'bob'),
    carol: await person('admin', 'carol'),
    dave: await person('admin', 'dave'),
    as,
    async supervisor() {
      return (await ok(h.req('POST', '/supervisors', { name: `sup-${++seq}` }), 'create supervisor')).id;
    },
    async team(sup, n) {
      const agentIds: string[] = [];
      for (let i = 0; i < n; i++) agentIds.push((await ok(h.req('POST', '/agents', { name: `agent-${++seq}`, control_url: 'http://127.0.0.1:9/control' }), 'create agent')).id);
      const t = await ok(h.req('POST', `/supervisors/${sup}/teams`, { name: `team-${++seq}`, agent_ids: agentIds }), 'create team');
      return { teamId: t.id, agentIds };
    },
    async heartbeat(agentId, metrics) {
      await ok(h.req('POST', `/agents/${agentId}/heartbeat`, { metrics }), 'heartbeat');
    },
    async tick(sup) {
      await h.runtime.hosted.get(sup)!.tickOnce();
    },
    async evaluated(sup, policyId) {
      const r = await ok(h.req('GET', `/supervisors/${sup}/evaluations?limit=500`), 'evaluations');
      return (r.items as { id: number; results: { policy_id: string; version: number; matched: boolean }[] }[])
        .sort((a, b) => a.id - b.id)
        .flatMap((e) => e.results.filter((x) => x.policy_id === policyId).map((x): [number, boolean] => [x.version, x.matched]));
    },
    async eventCount() {
      const r = await h.store.db.selectFrom('events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      return Number(r.n);
    },
  };
  return f;
}

const FOUR_EYES_MESSAGE = /four-eyes rule/;

for (const dialect of await dialects()) {
  describe(`safety rules (${dialect})`, () => {
    it('four-eyes on a manual intervention: its requester gets 403 and nothing changes; another operator approves and is recorded', async () => {
      const f = await fixture(dialect);
      const sup = await f.supervisor();
      const { agentIds: [agent] } = await f.team(sup, 1);
      const created = await f.as(f.alice, 'POST', '/interventions', { supervisor_id: sup, intervention_type: 'AGENT_RESTART', target_type: 'AGENT', target_id: agent, reason: 'stuck', approval_required: true });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ status: 'PENDING', requested_by: f.alice.label, requested_by_id: f.alice.id, approved_by: null, approved_by_id: null });
      const id = created.body.id as string;
      const events = await f.eventCount();

      const own = await f.as(f.alice, 'PUT', `/interventions/${id}/approve`, { comment: 'mine' });
      expect(own.status).toBe(403);
      expect(own.body.error).toBe('forbidden');
      expect(own.body.message).toMatch(FOUR_EYES_MESSAGE);
      expect(own.body.message).toContain('requested this intervention');
      expect((await f.as(undefined, 'GET', `/interventions/${id}`)).body).toEqual(created.body);
      expect(await f.eventCount()).toBe(events);

      const approved = await f.as(f.bob, 'PUT', `/interventions/${id}/approve`, { comment: 'checked' });
      expect(approved.status).toBe(200);
      expect(approved.body).toMatchObject({ status: 'APPROVED', requested_by_id: f.alice.id, approved_by: f.bob.label, approved_by_id: f.bob.id });
      const row = await f.h.store.db.selectFrom('interventions').select(['requested_by_id', 'approved_by_id']).where('id', '=', id).executeTakeFirstOrThrow();
      expect(row).toEqual({ requested_by_id: f.alice.id, approved_by_id: f.bob.id });

      // Rejecting is not four-eyes: the requester may withdraw her own request.
      const second = await f.as(f.alice, 'POST', '/interventions', { supervisor_id: sup, intervention_type: 'NOTIFY', target_type: 'AGENT', target_id: agent, reason: 'maybe', approval_required: true });
      const withdrawn = await f.as(f.alice, 'PUT', `/interventions/${second.body.id}/reject`, { reason: 'changed my mind' });
      expect(withdrawn.status).toBe(200);
      expect(withdrawn.body).toMatchObject({ status: 'REJECTED', rejected_by: f.alice.label });
    });

    it('four-eyes on a policy-created intervention: the author of the policy version cannot approve it, anyone else may', async () => {
      const f = await fixture(dialect);
      const sup = await f.supervisor();
      const { agentIds: [agent] } = await f.team(sup, 1);
      const policy = await f.as(f.carol, 'POST', '/policies', { name: 'quarantine-with-approval', policy_type: 'INTERVENTION', definition: { condition: ANOMALY, actions: [{ type: 'quarantine_agent', approval_required: true }] } });
      expect(policy.status).toBe(201);
      expect((await f.as(f.dave, 'POST', `/policies/${policy.body.id}/activate`, {})).status).toBe(200);
      expect((await f.as(undefined, 'POST', `/supervisors/${sup}/policies`, { policy_id: policy.body.id })).status).toBe(201);
      await f.heartbeat(agent, { anomaly_score: 0.97 });
      await f.tick(sup);
      const list = await f.as(undefined, 'GET', `/supervisors/${sup}/interventions`);
      expect(list.body.items).toHaveLength(1);
      const pending = list.body.items[0];
      expect(pending).toMatchObject({ status: 'PENDING', policy_id: policy.body.id, policy_version: 1, requested_by_id: null });
      const events = await f.eventCount();

      const byAuthor = await f.as(f.carol, 'PUT', `/interventions/${pending.id}/approve`);
      expect(byAuthor.status).toBe(403);
      expect(byAuthor.body).toMatchObject({ error: 'forbidden', message: expect.stringMatching(FOUR_EYES_MESSAGE) });
      expect(byAuthor.body.message).toContain(`wrote version 1 of policy ${policy.body.id}`);
      expect((await f.as(undefined, 'GET', `/interventions/${pending.id}`)).body).toEqual(pending);
      expect(await f.eventCount()).toBe(events);

      const approved = await f.as(f.alice, 'PUT', `/interventions/${pending.id}/approve`);
      expect(approved.status).toBe(200);
      expect(approved.body).toMatchObject({ status: 'APPROVED', approved_by: f.alice.label, approved_by_id: f.alice.id });
    });

    it('four-eyes on policy activation: a new version runs nothing until another admin activates it, then the running supervisor uses it on its next tick', async () => {
      const f = await fixture(dialect);
      const sup = await f.supervisor();
      const { agentIds: [agent] } = await f.team(sup, 1);
      const created = await f.as(f.carol, 'POST', '/policies', { name: 'notify-anomalies', policy_type: 'INTERVENTION', definition: notifyAbove(0.9) });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      expect(created.body).toMatchObject({ active_version: 0, latest_version: 1, pending_version: 1, is_active: false, version: 1, definition: notifyAbove(0.9) });
      expect((await f.as(undefined, 'GET', `/policies/${id}`)).body).toEqual(created.body);
      expect((await f.as(undefined, 'GET', '/policies')).body.items).toEqual([expect.objectContaining({ id, active_version: 0, pending_version: 1, definition: notifyAbove(0.9) })]);
      const versions = (await f.as(undefined, 'GET', `/policies/${id}/versions`)).body.items;
      expect(versions).toEqual([expect.objectContaining({ version: 1, created_by: f.carol.label, created_by_id: f.carol.id })]);
      expect((await f.as(undefined, 'POST', `/supervisors/${sup}/policies`, { policy_id: id })).status).toBe(201);

      // Nothing is active: the supervisor evaluates nothing for this policy.
      await f.heartbeat(agent, { anomaly_score: 0.95 });
      await f.tick(sup);
      expect(await f.evaluated(sup, id)).toEqual([]);
      expect((await f.as(undefined, 'GET', `/supervisors/${sup}/interventions`)).body.items).toEqual([]);

      // The author may not activate her own version; nothing changes.
      const events = await f.eventCount();
      const own = await f.as(f.carol, 'POST', `/policies/${id}/activate`, {});
      expect(own.status).toBe(403);
      expect(own.body).toMatchObject({ error: 'forbidden', message: expect.stringMatching(FOUR_EYES_MESSAGE) });
      expect(own.body.message).toContain('wrote version 1 of this policy');
      expect((await f.as(undefined, 'GET', `/policies/${id}`)).body).toEqual(created.body);
      expect(await f.eventCount()).toBe(events);

      const activated = await f.as(f.dave, 'POST', `/policies/${id}/activate`, {});
      expect(activated.status).toBe(200);
      expect(activated.body).toMatchObject({ active_version: 1, latest_version: 1, pending_version: null, is_active: true, version: 1 });
      await f.heartbeat(agent, { anomaly_score: 0.95 });
      await f.tick(sup);
      expect(await f.evaluated(sup, id)).toEqual([[1, true]]);
      expect((await f.as(undefined, 'GET', `/supervisors/${sup}/interventions`)).body.items.map((i: { intervention_type: string; policy_version: number }) => [i.intervention_type, i.policy_version])).toEqual([['NOTIFY', 1]]);

      // A new version waits while version 1 keeps running.
      const v2 = await f.as(f.carol, 'PUT', `/policies/${id}`, { definition: notifyAbove(0.99) });
      expect(v2.status).toBe(200);
      expect(v2.body).toMatchObject({ active_version: 1, latest_version: 2, pending_version: 2, version: 1, definition: notifyAbove(0.9) });
      await f.heartbeat(agent, { anomaly_score: 0.95 });
      await f.tick(sup);
      expect(await f.evaluated(sup, id)).toEqual([[1, true], [1, true]]);

      expect((await f.as(f.carol, 'POST', `/policies/${id}/activate`, { version: 2 })).status).toBe(403);
      const toV2 = await f.as(f.dave, 'POST', `/policies/${id}/activate`, { version: 2 });
      expect(toV2.body).toMatchObject({ active_version: 2, pending_version: null, definition: notifyAbove(0.99) });
      await f.heartbeat(agent, { anomaly_score: 0.95 });
      await f.tick(sup);
      expect(await f.evaluated(sup, id)).toEqual([[1, true], [1, true], [2, false]]);

      // Rollback is an activation too: carol wrote version 1, so dave (or another admin) rolls back.
      expect((await f.as(f.carol, 'POST', `/policies/${id}/activate`, { version: 1 })).status).toBe(403);
      const back = await f.as(f.dave, 'POST', `/policies/${id}/activate`, { version: 1 });
      expect(back.body).toMatchObject({ active_version: 1, latest_version: 2, definition: notifyAbove(0.9) });
      await f.heartbeat(agent, { anomaly_score: 0.95 });
      await f.tick(sup);
      expect((await f.evaluated(sup, id)).at(-1)).toEqual([1, true]);

      // The same holds for dave's own version; switching a policy off needs no second person.
      expect((await f.as(f.dave, 'PUT', `/policies/${id}`, { definition: notifyAbove(0.5) })).body).toMatchObject({ active_version: 1, pending_version: 3 });
      expect((await f.as(f.dave, 'POST', `/policies/${id}/activate`, { version: 3 })).status).toBe(403);
      expect((await f.as(f.carol, 'POST', `/policies/${id}/activate`, { version: 3 })).body).toMatchObject({ active_version: 3, pending_version: null });
      const off = await f.as(f.carol, 'POST', `/policies/${id}/activate`, { is_active: false });
      expect(off.status).toBe(200);
      expect(off.body).toMatchObject({ active_version: 3, is_active: false });
    });

    it('forces approval for more than 10 affected agents, counting a team\'s active members only', async () => {
      const f = await fixture(dialect);
      const sup = await f.supervisor();
      const { teamId, agentIds } = await f.team(sup, 11);
      const notifyTeam = { supervisor_id: sup, intervention_type: 'NOTIFY', target_type: 'TEAM', target_id: teamId, reason: 'heads up', approval_required: false };

      const eleven = await f.as(f.alice, 'POST', '/interventions', notifyTeam);
      expect(eleven.status).toBe(201);
      expect(eleven.body).toMatchObject({ status: 'PENDING', approval_required: true, next_attempt_at: null, action_details: { approval_reason: 'affects 11 agents (more than 10)' } });

      // One member leaves: 10 active members, a non-destructive type, no approval asked -> not forced.
      expect((await f.as(undefined, 'DELETE', `/teams/${teamId}/members/${agentIds[0]}`)).status).toBe(200);
      const ten = await f.as(f.alice, 'POST', '/interventions', notifyTeam);
      expect(ten.status).toBe(201);
      expect(ten.body).toMatchObject({ status: 'APPROVED', approval_required: false });
      expect(ten.body.action_details).not.toHaveProperty('approval_reason');
      expect(ten.body.action_details).not.toHaveProperty('rollback_plan'); // NOTIFY has nothing to roll back
    });

    it('forces approval for a destructive TEAM_RESTART whatever the request says, even for a team of one', async () => {
      const f = await fixture(dialect);
      const sup = await f.supervisor();
      const { teamId } = await f.team(sup, 1);
      const r = await f.as(f.alice, 'POST', '/interventions', { supervisor_id: sup, intervention_type: 'TEAM_RESTART', target_type: 'TEAM', target_id: teamId, reason: 'rolling restart', approval_required: false });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({ status: 'PENDING', approval_required: true, action_details: { approval_reason: 'TEAM_RESTART is destructive and always needs approval' } });
      expect((await f.as(f.alice, 'PUT', `/interventions/${r.body.id}/approve`)).status).toBe(403);
      expect((await f.as(f.bob, 'PUT', `/interventions/${r.body.id}/approve`)).body).toMatchObject({ status: 'APPROVED', approved_by_id: f.bob.id });
    });

    it('attaches a rollback plan to quarantine, restart and team restart, and keeps one the caller supplied', async () => {
      const f = await fixture(dialect);
      const sup = await f.supervisor();
      const { teamId, agentIds: [agent] } = await f.team(sup, 2);
      const create = (type: string, targetType: string, targetId: string, details?: Record<string, unknown>) =>
        f.as(f.alice, 'POST', '/interventions', { supervisor_id: sup, intervention_type: type, target_type: targetType, target_id: targetId, reason: 'plan', approval_required: true, ...(details ? { action_details: details } : {}) });

      const quarantine = await create('AGENT_QUARANTINE', 'AGENT', agent);
      expect(quarantine.body.action_details.rollback_plan).toEqual({ steps: [`POST /api/v1/agents/${agent}/release`], note: expect.any(String) });
      const restart = await create('AGENT_RESTART', 'AGENT', agent);
      expect(restart.body.action_details.rollback_plan).toEqual({ steps: [expect.stringContaining(`/agents/${agent}`), expect.stringContaining('AGENT_QUARANTINE')], note: expect.any(String) });
      const teamRestart = await create('TEAM_RESTART', 'TEAM', teamId, { stagger_seconds: 5 });
      expect(teamRestart.body.action_details).toMatchObject({ stagger_seconds: 5, rollback_plan: { steps: [expect.stringContaining('/reject'), expect.any(String)], note: expect.any(String) } });
      // Approval was asked for, so it is not "forced"; the destructive type still names its reason.
      expect(teamRestart.body.action_details.approval_reason).toBe('TEAM_RESTART is destructive and always needs approval');

      const own = { steps: ['call the on-call engineer'], note: 'custom' };
      const supplied = await create('AGENT_QUARANTINE', 'AGENT', agent, { rollback_plan: own });
      expect(supplied.body.action_details.rollback_plan).toEqual(own);
      const notify = await create('NOTIFY', 'AGENT', agent);
      expect(notify.body.action_details).toEqual({});
    });

    it('with OVERSEER_FOUR_EYES=off the same person may approve, and policies are active at once', async () => {
      const f = await fixture(dialect, false); // the single-operator development setting under test
      const sup = await f.supervisor();
      const { teamId, agentIds: [agent] } = await f.team(sup, 1);
      const own = await f.as(f.alice, 'POST', '/interventions', { supervisor_id: sup, intervention_type: 'AGENT_RESTART', target_type: 'AGENT', target_id: agent, reason: 'solo', approval_required: true });
      const approved = await f.as(f.alice, 'PUT', `/interventions/${own.body.id}/approve`);
      expect(approved.status).toBe(200);
      expect(approved.body).toMatchObject({ status: 'APPROVED', requested_by_id: f.alice.id, approved_by_id: f.alice.id });
      // The approval rules themselves still hold.
      const team = await f.as(f.alice, 'POST', '/interventions', { supervisor_id: sup, intervention_type: 'TEAM_RESTART', target_type: 'TEAM', target_id: teamId, reason: 'solo' });
      expect(team.body.status).toBe('PENDING');

      const created = await f.as(f.carol, 'POST', '/policies', { name: 'notify-anomalies', policy_type: 'INTERVENTION', definition: notifyAbove(0.9) });
      expect(created.body).toMatchObject({ active_version: 1, latest_version: 1, pending_version: null, is_active: true });
      expect((await f.as(undefined, 'POST', `/supervisors/${sup}/policies`, { policy_id: created.body.id })).status).toBe(201);
      await f.heartbeat(agent, { anomaly_score: 0.95 });
      await f.tick(sup);
      expect(await f.evaluated(sup, created.body.id)).toEqual([[1, true]]);
      const v2 = await f.as(f.carol, 'PUT', `/policies/${created.body.id}`, { definition: notifyAbove(0.99) });
      expect(v2.body).toMatchObject({ active_version: 2, latest_version: 2, pending_version: null });
      const back = await f.as(f.carol, 'POST', `/policies/${created.body.id}/activate`, { version: 1 });
      expect(back.status).toBe(200);
      expect(back.body).toMatchObject({ active_version: 1 });
    });
  });
}

describe('OVERSEER_FOUR_EYES', () => {
  it('is on unless set to off, and refuses anything but on/off', () => {
    expect(loadConfig({}).fourEyes).toBe(true);
    expect(loadConfig({ OVERSEER_FOUR_EYES: 'on' }).fourEyes).toBe(true);
    expect(loadConfig({ OVERSEER_FOUR_EYES: 'OFF' }).fourEyes).toBe(false);
    expect(() => loadConfig({ OVERSEER_FOUR_EYES: 'no' })).toThrow(ConfigError);
  });
});
