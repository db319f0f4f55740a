/**
 * Caller mistakes in credentials, policy definitions, list parameters and routes: each one gets
 * its exact 4xx and error code, never a stack trace, and leaves the database exactly as it was.
 * (Bodies, limits and path ids: bad-input.test.ts; conflicting state: bad-input-state.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, HARNESS_TOKEN, type Harness } from '../helpers/harness.js';
import { dialects } from '../helpers/db.js';
import { call, expectError, problemPaths, raw, untouched } from './bad-input.shared.js';

const UNKNOWN = '01890000-0000-7000-8000-000000000000';
const JSON_HEADERS = { authorization: `Bearer ${HARNESS_TOKEN}`, 'content-type': 'application/json' };

for (const dialect of await dialects()) {
  describe(`bad requests (${dialect})`, () => {
    let h: Harness;
    let sup: { id: string };
    let agentId: string;
    let policyId: string;

    beforeAll(async () => {
      h = await createHarness({ dialect, autoStartLoops: false });
      sup = (await call(h, 'POST', '/supervisors', { name: 'fixture' })).body;
      agentId = (await call(h, 'POST', '/agents', { name: 'fixture-agent' })).body.id;
      await call(h, 'POST', '/agents', { name: 'fixture-agent-2' });
      policyId = (
        await call(h, 'POST', '/policies', {
          name: 'fixture-policy',
          policy_type: 'INTERVENTION',
          definition: { condition: { type: 'field_comparison', field: 'agent.metrics.cpu', operator: '>', value: 0.9 }, actions: [{ type: 'notify' }] },
        })
      ).body.id;
      expect(sup.id && agentId && policyId).toBeTruthy();
    });
    afterAll(async () => h?.close());

    describe('authentication and roles', () => {
      const body = JSON.stringify({ name: 'should-not-exist' });
      let revoked: string;
      let viewer: string;
      let agentToken: string;

      beforeAll(async () => {
        const r = await h.tokens.create({ role: 'operator', name: 'soon-revoked' }, null);
        await h.tokens.revoke(r.id, null);
        revoked = r.token;
        viewer = (await h.tokens.create({ role: 'viewer', name: 'viewer' }, null)).token;
        agentToken = (await h.tokens.create({ role: 'agent', name: 'agent', agent_id: agentId }, null)).token;
      });

      it.each([
        ['no Authorization header', undefined],
        ['an empty bearer', 'Bearer '],
        ['another scheme', `Basic ${Buffer.from('admin:admin').toString('base64')}`],
        ['the token without "Bearer"', HARNESS_TOKEN],
        ['an unknown token', 'Bearer ovs_not-a-real-token'],
        ['a 600-char token', `Bearer ${'t'.repeat(600)}`],
        ['a revoked token', 'REVOKED'],
      ])('%s -> 401 unauthorized and nothing written', async (_label, auth) => {
        const authorization = auth === 'REVOKED' ? `Bearer ${revoked}` : auth;
        await untouched(h, async () => {
          for (const [method, url, payload] of [
            ['POST', '/api/v1/supervisors', body],
            ['GET', '/api/v1/supervisors', undefined],
            ['POST', `/api/v1/supervisors/${sup.id}/stop`, undefined],
            ['POST', '/api/v1/supervisors', '{"broken'],
          ] as const) {
            const res = await raw(h, method, url, payload, { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) });
            expectError(res, 401, 'unauthorized');
          }
        });
        expect((await call(h, 'GET', `/supervisors/${sup.id}`)).body.status).toBe('ACTIVE');
      });

      it('a viewer may not mutate (403 forbidden); an agent token may only beat for its own agent', async () => {
        await untouched(h, async () => {
          expectError(await call(h, 'POST', '/supervisors', { name: 'v' }, viewer), 403, 'forbidden');
          expectError(await call(h, 'POST', `/supervisors/${sup.id}/pause`, undefined, viewer), 403, 'forbidden');
          expectError(await call(h, 'GET', '/supervisors', undefined, agentToken), 403, 'forbidden');
          expectError(await call(h, 'POST', `/agents/${UNKNOWN}/heartbeat`, { metrics: {} }, agentToken), 403, 'forbidden');
        });
      });
    });

    describe('policies', () => {
      const cond = (operator: string) => ({
        type: 'composite',
        operator: 'AND',
        conditions: [
          { type: 'field_comparison', field: 'agent.metrics.cpu', operator: '>', value: 0.9 },
          { type: 'field_comparison', field: 'agent.metrics.mem', operator, value: 1 },
        ],
      });

      it('an invalid definition -> 400 validation_failed with the exact path of the problem', async () => {
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/policies', { name: 'bad-op', policy_type: 'INTERVENTION', definition: { condition: cond('=~'), actions: [{ type: 'notify' }] } });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toEqual(['definition.condition.conditions[1].operator']);
        });
      });

      it('conditions nested 11 deep, unknown actions and a missing definition are refused', async () => {
        let deep: Record<string, unknown> = { type: 'field_comparison', field: 'agent.status', operator: '==', value: 'HEALTHY' };
        for (let i = 0; i < 10; i++) deep = { type: 'composite', operator: 'NOT', conditions: [deep] };
        await untouched(h, async () => {
          const tooDeep = await call(h, 'POST', '/policies', { name: 'deep', policy_type: 'INTERVENTION', definition: { condition: deep, actions: [{ type: 'notify' }] } });
          expectError(tooDeep, 400, 'validation_failed');
          expect(problemPaths(tooDeep)).toEqual([`definition.condition${'.conditions[0]'.repeat(10)}`]);
          const action = await call(h, 'POST', '/policies', { name: 'act', policy_type: 'INTERVENTION', definition: { condition: cond('=='), actions: [{ type: 'explode' }] } });
          expect(problemPaths(action)).toEqual(['definition.actions[0].type']);
          const missing = await call(h, 'POST', '/policies', { name: 'none', policy_type: 'INTERVENTION' });
          expect(problemPaths(missing)).toEqual(['body.definition']);
          const type = await call(h, 'POST', '/policies', { name: 'type', policy_type: 'MAGIC', definition: { condition: cond('=='), actions: [{ type: 'notify' }] } });
          expect(problemPaths(type)).toContain('body.policy_type');
        });
      });

      it('PUT with an invalid definition adds no version', async () => {
        const before = (await call(h, 'GET', `/policies/${policyId}`)).body;
        await untouched(h, async () => {
          const res = await call(h, 'PUT', `/policies/${policyId}`, { definition: { condition: cond('~'), actions: [] } });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toContain('definition.condition.conditions[1].operator');
        });
        expect((await call(h, 'GET', `/policies/${policyId}`)).body).toEqual(before);
      });
    });

    describe('listing parameters', () => {
      const LISTS = ['/supervisors', '/agents', '/policies', '/supervisors/{sup}/teams', '/supervisors/{sup}/interventions', '/supervisors/{sup}/alerts', '/supervisors/{sup}/evaluations'];

      it.each([['limit=0'], ['limit=501'], ['limit=-1'], ['limit=abc'], ['limit=1.5'], ['limit=99999'], ['cursor=!!!'], ['cursor=zzzz'], ['cursor=AAAA'], [`cursor=${'a'.repeat(201)}`], ['bogus=1'], ['limit=10&limit=20']])(
        '?%s -> 400 validation_failed on every list',
        async (query) => {
          await untouched(h, async () => {
            for (const list of LISTS) {
              const res = await call(h, 'GET', `${list.replace('{sup}', sup.id)}?${query}`);
              expectError(res, 400, 'validation_failed');
            }
          });
        },
      );

      it('a cursor the API issued still works (the checks do not break real paging)', async () => {
        const first = await call(h, 'GET', '/agents?limit=1');
        expect(first.status).toBe(200);
        expect(first.body.next_cursor).toEqual(expect.any(String));
        const second = await call(h, 'GET', `/agents?limit=1&cursor=${first.body.next_cursor}`);
        expect(second.status).toBe(200);
        expect(second.body.items[0].id > first.body.items[0].id).toBe(true);
      });

      it.each([['after=abc'], ['after=-1'], ['limit=0'], ['limit=1001'], ['supervisor_id=nope'], ['since=yesterday'], ['whatever=1']])('GET /events?%s -> 400 validation_failed', async (query) => {
        await untouched(h, async () => expectError(await call(h, 'GET', `/events?${query}`), 400, 'validation_failed'));
      });

      it('status filters must be known statuses', async () => {
        await untouched(h, async () => {
          expectError(await call(h, 'GET', '/supervisors?status=ASLEEP'), 400, 'validation_failed');
          expectError(await call(h, 'GET', '/agents?status=healthy'), 400, 'validation_failed');
          expectError(await call(h, 'GET', `/supervisors/${sup.id}/interventions?status=DONE`), 400, 'validation_failed');
        });
      });
    });

    describe('unknown routes', () => {
      it.each([
        ['GET', '/api/v1/nothing-here'],
        ['POST', '/api/v1/supervisors/x/y/z'],
        ['PATCH', '/api/v1/supervisors'],
        ['GET', '/api/v2/supervisors'],
        ['GET', '/nope'],
        ['DELETE', '/api/v1/events'],
      ])('%s %s -> 404 not_found as JSON, with or without a token', async (method, url) => {
        await untouched(h, async () => {
          const hasBody = method !== 'GET' && method !== 'DELETE';
          const variants: Record<string, string>[] = [hasBody ? JSON_HEADERS : { authorization: JSON_HEADERS.authorization }, {}];
          for (const headers of variants) {
            const res = await raw(h, method, url, hasBody ? '{}' : undefined, headers);
            expectError(res, 404, 'not_found');
          }
        });
      });
    });
  });
}
