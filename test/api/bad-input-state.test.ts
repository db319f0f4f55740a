/**
 * Requests that are well-formed but conflict with the current state: illegal transitions, a
 * second team, hierarchy cycles and depth, decided interventions. Each is refused with its exact
 * code and leaves both the database and the affected rows exactly as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, HARNESS_TOKEN, type Harness } from '../helpers/harness.js';
import { dialects } from '../helpers/db.js';
import { getSupervisor, type Supervisor } from '../../src/store/supervisors.js';
import { getIntervention } from '../../src/store/interventions.js';
import { PERMISSIONS } from '../../src/api/permissions.js';
import { call, expectError, problemPaths, raw, untouched } from './bad-input.shared.js';

const UNKNOWN = '01890000-0000-7000-8000-000000000000';

for (const dialect of await dialects()) {
  describe(`conflicting requests (${dialect})`, () => {
    let h: Harness;
    let n = 0;
    const mkSupervisor = async (extra: Record<string, unknown> = {}) => {
      const res = await call(h, 'POST', '/supervisors', { name: `s-${++n}`, ...extra });
      expect(res.status, res.text).toBe(201);
      return res.body as Supervisor;
    };
    const mkAgent = async () => {
      const res = await call(h, 'POST', '/agents', { name: `a-${++n}` });
      expect(res.status, res.text).toBe(201);
      return res.body.id as string;
    };
    const row = (id: string) => h.store.read((db) => getSupervisor(db, id));
    /** A refused request must leave the row byte-for-byte as it was, as well as every count. */
    const rowUntouched = async (id: string, fn: () => Promise<void>) => {
      const before = await row(id);
      await untouched(h, fn);
      expect(await row(id)).toEqual(before);
    };

    beforeAll(async () => {
      h = await createHarness({ dialect, autoStartLoops: false });
    });
    afterAll(async () => h?.close());

    describe('supervisor transitions', () => {
      it('resume of an ACTIVE supervisor -> 409 illegal_transition, status and version unchanged', async () => {
        const s = await mkSupervisor();
        expect(s.status).toBe('ACTIVE');
        await rowUntouched(s.id, async () => {
          const res = await call(h, 'POST', `/supervisors/${s.id}/resume`);
          expectError(res, 409, 'illegal_transition');
          expect(res.body.details).toEqual({ from: 'ACTIVE', command: 'resume', allowed_from: ['PAUSED'] });
          expectError(await call(h, 'POST', `/supervisors/${s.id}/start`), 409, 'illegal_transition');
        });
        expect((await row(s.id))?.version).toBe(s.version);
      });

      it('pause of a PAUSED supervisor -> 409 illegal_transition', async () => {
        const s = await mkSupervisor();
        const paused = await call(h, 'POST', `/supervisors/${s.id}/pause`);
        expect(paused.body.status).toBe('PAUSED');
        await rowUntouched(s.id, async () => {
          const res = await call(h, 'POST', `/supervisors/${s.id}/pause`);
          expectError(res, 409, 'illegal_transition');
          expect(res.body.details).toMatchObject({ from: 'PAUSED', command: 'pause' });
          expectError(await call(h, 'POST', `/supervisors/${s.id}/start`), 409, 'illegal_transition');
        });
        expect((await row(s.id))).toMatchObject({ status: 'PAUSED', version: paused.body.version });
      });

      it('every command on a TERMINATED supervisor -> 409 illegal_transition; PUT -> 409 conflict', async () => {
        const s = await mkSupervisor();
        const stopped = await call(h, 'POST', `/supervisors/${s.id}/stop`);
        expect(stopped.body.status).toBe('TERMINATED');
        await rowUntouched(s.id, async () => {
          for (const command of ['start', 'pause', 'resume', 'stop']) {
            const res = await call(h, 'POST', `/supervisors/${s.id}/${command}`);
            expectError(res, 409, 'illegal_transition');
            expect(res.body.details).toMatchObject({ from: 'TERMINATED', command });
          }
          expectError(await call(h, 'PUT', `/supervisors/${s.id}`, { name: 'renamed' }), 409, 'conflict');
          expectError(await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'late' }), 409, 'conflict');
          expectError(await call(h, 'POST', '/supervisors', { name: 'orphan', parent_id: s.id }), 409, 'conflict');
        });
        expect(await row(s.id)).toMatchObject({ status: 'TERMINATED', version: stopped.body.version });
      });

      it('a supervisor with children cannot be deleted (409), and nothing is deleted', async () => {
        const parent = await mkSupervisor();
        await mkSupervisor({ parent_id: parent.id });
        await rowUntouched(parent.id, async () => expectError(await call(h, 'DELETE', `/supervisors/${parent.id}`), 409, 'conflict'));
      });
    });

    describe('team membership', () => {
      it('an agent added to a second team -> 409, membership unchanged', async () => {
        const s = await mkSupervisor();
        const agent = await mkAgent();
        const t1 = (await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'one', agent_ids: [agent] })).body;
        const t2 = (await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'two' })).body;
        const other = await mkSupervisor();
        const t3 = (await call(h, 'POST', `/supervisors/${other.id}/teams`, { name: 'three' })).body;
        const agentBefore = (await call(h, 'GET', `/agents/${agent}`)).body;
        await untouched(h, async () => {
          for (const team of [t2.id, t3.id, t1.id]) {
            const res = await call(h, 'POST', `/teams/${team}/members`, { agent_id: agent, role: 'LEAD' });
            expectError(res, 409, 'conflict');
            expect(res.body.details).toMatchObject({ agent_id: agent, team_id: t1.id });
          }
        });
        expect((await call(h, 'GET', `/teams/${t1.id}`)).body.members.map((m: { agent_id: string; role: string }) => [m.agent_id, m.role])).toEqual([[agent, 'MEMBER']]);
        expect((await call(h, 'GET', `/teams/${t2.id}`)).body.members).toEqual([]);
        expect((await call(h, 'GET', `/agents/${agent}`)).body).toEqual(agentBefore);
      });

      it('creating a team whose agent_ids include a taken agent creates nothing at all', async () => {
        const s = await mkSupervisor();
        const [taken, free] = [await mkAgent(), await mkAgent()];
        await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'first', agent_ids: [taken] });
        await untouched(h, async () => {
          expectError(await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'second', agent_ids: [free, taken] }), 409, 'conflict');
        });
        expect((await call(h, 'GET', `/agents/${free}`)).body.team_id).toBeNull();
        expect((await call(h, 'GET', `/supervisors/${s.id}/teams`)).body.items.map((t: { name: string }) => t.name)).toEqual(['first']);
      });

      it('duplicate team names, unknown agents and teams, bad roles and non-members are refused', async () => {
        const s = await mkSupervisor();
        const team = (await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'dup' })).body;
        const agent = await mkAgent();
        await untouched(h, async () => {
          expectError(await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'dup' }), 409, 'conflict');
          expectError(await call(h, 'POST', `/supervisors/${s.id}/teams`, { name: 'ghosts', agent_ids: [UNKNOWN] }), 404, 'not_found');
          expectError(await call(h, 'POST', `/supervisors/${UNKNOWN}/teams`, { name: 'nobody' }), 404, 'not_found');
          expectError(await call(h, 'POST', `/teams/${team.id}/members`, { agent_id: UNKNOWN }), 404, 'not_found');
          expectError(await call(h, 'POST', `/teams/${UNKNOWN}/members`, { agent_id: agent }), 404, 'not_found');
          expect(problemPaths(await call(h, 'POST', `/teams/${team.id}/members`, { agent_id: agent, role: 'BOSS' }))).toContain('body.role');
          expect(problemPaths(await call(h, 'POST', `/teams/${team.id}/members`, { agent_id: 'me' }))).toContain('body.agent_id');
          expectError(await call(h, 'DELETE', `/teams/${team.id}/members/${agent}`), 404, 'not_found');
          expectError(await call(h, 'DELETE', `/teams/${team.id}/members/nope`), 400, 'validation_failed');
        });
      });
    });

    describe('hierarchy', () => {
      it('a chain of 5 is allowed; a 6th level -> 400 validation_failed on parent_id', async () => {
        const chain = [await mkSupervisor()];
        for (let i = 1; i < 5; i++) chain.push(await mkSupervisor({ parent_id: chain[i - 1].id }));
        expect(chain.map((s) => s.hierarchy_level)).toEqual([0, 1, 2, 3, 4]);
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/supervisors', { name: 'sixth', parent_id: chain[4].id });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toEqual(['parent_id']);
          // A deeper max_hierarchy_depth on the child cannot lift the limit its ancestors set.
          expectError(await call(h, 'POST', '/supervisors', { name: 'sixth', parent_id: chain[4].id, config: { max_hierarchy_depth: 10 } }), 400, 'validation_failed');
        });
      });

      it('a cycle via PUT parent_id -> 409 conflict; every row of the chain unchanged', async () => {
        const a = await mkSupervisor();
        const b = await mkSupervisor({ parent_id: a.id });
        const c = await mkSupervisor({ parent_id: b.id });
        const before = await Promise.all([a, b, c].map((s) => row(s.id)));
        await untouched(h, async () => {
          for (const [id, parent] of [[a.id, c.id], [a.id, b.id], [b.id, c.id], [b.id, b.id]]) {
            const res = await call(h, 'PUT', `/supervisors/${id}`, { parent_id: parent });
            expectError(res, 409, 'conflict');
            expect(res.body.message).toMatch(/cycle/);
          }
        });
        expect(await Promise.all([a, b, c].map((s) => row(s.id)))).toEqual(before);
      });

      it('moving a subtree where it would end deeper than 5 -> 400, nothing moved', async () => {
        const chain = [await mkSupervisor()];
        for (let i = 1; i < 4; i++) chain.push(await mkSupervisor({ parent_id: chain[i - 1].id }));
        const top = await mkSupervisor();
        const leaf = await mkSupervisor({ parent_id: top.id });
        const before = [await row(top.id), await row(leaf.id)];
        await untouched(h, async () => {
          const res = await call(h, 'PUT', `/supervisors/${top.id}`, { parent_id: chain[3].id });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toEqual(['parent_id']);
        });
        expect([await row(top.id), await row(leaf.id)]).toEqual(before);
      });

      it('an unknown parent -> 400; a duplicate name under the same parent -> 409', async () => {
        const root = await mkSupervisor();
        await mkSupervisor({ parent_id: root.id, name: 'twin' });
        await untouched(h, async () => {
          expect(problemPaths(await call(h, 'POST', '/supervisors', { name: 'x', parent_id: UNKNOWN }))).toEqual(['parent_id']);
          expectError(await call(h, 'PUT', `/supervisors/${root.id}`, { parent_id: UNKNOWN }), 400, 'validation_failed');
          expectError(await call(h, 'POST', '/supervisors', { name: 'twin', parent_id: root.id }), 409, 'conflict');
          expectError(await call(h, 'POST', '/supervisors', { name: root.name }), 409, 'conflict');
        });
      });
    });

    describe('interventions', () => {
      let sup: Supervisor;
      let agent: string;
      beforeAll(async () => {
        sup = await mkSupervisor();
        agent = await mkAgent();
      });
      const base = () => ({ supervisor_id: sup.id, intervention_type: 'AGENT_RESTART', target_type: 'AGENT', target_id: agent, reason: 'test', approval_required: true });

      it('approve or reject of an intervention that is no longer PENDING -> 409, row unchanged', async () => {
        const created = await call(h, 'POST', '/interventions', base());
        expect(created.body.status).toBe('PENDING');
        const id = created.body.id as string;
        expect((await call(h, 'PUT', `/interventions/${id}/reject`, { reason: 'no' })).body.status).toBe('REJECTED');
        const before = await h.store.read((db) => getIntervention(db, id));
        await untouched(h, async () => {
          for (const verb of ['approve', 'reject']) {
            const res = await call(h, 'PUT', `/interventions/${id}/${verb}`);
            expectError(res, 409, 'illegal_transition');
            expect(res.body.details).toEqual({ status: 'REJECTED' });
          }
        });
        expect(await h.store.read((db) => getIntervention(db, id))).toEqual(before);
      });

      it.each([
        ['an unknown supervisor', { supervisor_id: UNKNOWN }, 400, 'validation_failed'],
        ['an unknown target', { target_id: UNKNOWN }, 400, 'validation_failed'],
        ['TEAM_RESTART on an agent', { intervention_type: 'TEAM_RESTART' }, 400, 'validation_failed'],
        ['an unknown type', { intervention_type: 'NUKE' }, 400, 'validation_failed'],
        ['an empty reason', { reason: '' }, 400, 'validation_failed'],
        ['approval_required as a string', { approval_required: 'yes' }, 400, 'validation_failed'],
        ['action_details over 16 KiB of UTF-8', { action_details: { note: 'ü'.repeat(9000) } }, 400, 'validation_failed'],
      ])('creating one with %s -> %d %s', async (_label, patch, status, code) => {
        await untouched(h, async () => expectError(await call(h, 'POST', '/interventions', { ...base(), ...patch }), status, code));
      });

      it('alerts with a bad severity, an unknown agent or no supervisor are refused', async () => {
        await untouched(h, async () => {
          expect(problemPaths(await call(h, 'POST', '/alerts', { source: 's', severity: 'apocalyptic', kind: 'k', supervisor_id: sup.id }))).toContain('body.severity');
          expectError(await call(h, 'POST', '/alerts', { source: 's', severity: 'error', kind: 'k', agent_id: UNKNOWN }), 400, 'validation_failed');
          expectError(await call(h, 'POST', '/alerts', { source: 's', severity: 'error', kind: 'k', agent_id: agent }), 400, 'validation_failed');
          expectError(await call(h, 'POST', '/alerts', { source: 's', severity: 'error', kind: 'k', supervisor_id: UNKNOWN }), 400, 'validation_failed');
        });
      });
    });

    it('no route answers junk or unknown ids with a 5xx, and none of them writes anything', async () => {
      const JUNK: (string | undefined)[] = [undefined, 'null', '{}', '[]', '"x"', '0', '{"name":5,"id":[]}', '{"x":{"y":{"z":[1,{"w":null}]}}}', '{"definition":null,"metrics":null,"config":null}'];
      const seen = new Map<number, number>();
      await untouched(h, async () => {
        for (const key of Object.keys(PERMISSIONS)) {
          const [method, route] = key.split(' ');
          for (const params of [UNKNOWN, 'not-an-id']) {
            const url = route.replace(/:[A-Za-z]+/g, params);
            for (const payload of JUNK) {
              const res = await raw(h, method, url, payload, { authorization: `Bearer ${HARNESS_TOKEN}`, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) });
              seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
              if (method !== 'GET') {
                expect(res.status, `${method} ${url} ${payload}: ${res.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
                expectError(res, res.status, res.body.error);
              }
            }
          }
        }
      });
      expect([...seen.keys()].every((s) => s < 500)).toBe(true);
    });
  });
}
