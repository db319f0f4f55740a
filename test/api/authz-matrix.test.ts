/**
 * Authorization matrix: every route under /api/v1 x every kind of caller, generated from the
 * PERMISSIONS table. A route the app serves without a table entry fails here (and at
 * registration); a table entry without a matrix case is still checked for 401/403 with generic
 * parameters, so the matrix grows with the table.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/harness.js';
import { dialects } from '../helpers/db.js';
import { PERMISSIONS } from '../../src/api/permissions.js';
import type { Role } from '../../src/runtime/services/tokens.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
type CallerName = 'no token' | 'garbage token' | 'revoked token' | 'admin' | 'operator' | 'viewer' | 'agent' | 'other agent';
const CALLERS: CallerName[] = ['no token', 'garbage token', 'revoked token', 'admin', 'operator', 'viewer', 'agent', 'other agent'];
const ROLE_OF: Partial<Record<CallerName, Role>> = { admin: 'admin', operator: 'operator', viewer: 'viewer', agent: 'agent', 'other agent': 'agent' };

/** What a request looks like once its parameters are real ids. */
interface Prepared { path: string; body?: unknown }

/**
 * How to call one route successfully: `build` creates whatever state the call needs (a fresh
 * supervisor, a PENDING intervention, ...) through the API as the setup actor, so each caller
 * that is allowed gets its own untouched resources.
 */
interface RouteCase { build: () => Promise<Prepared> }

const VALID_DEFINITION = { condition: { type: 'field_comparison', field: 'agent.status', operator: '==', value: 'STALE' }, actions: [{ type: 'notify' }] };

/** Parses `printRoutes({ commonPrefix: false })` into "METHOD /url" keys. */
function servedRoutes(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([^)]*)\))?\s*$/u.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    stack.length = depth;
    const url = (depth ? stack[depth - 1] : '') + m[2];
    stack.push(url);
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) out.push(`${method} ${url}`);
  }
  return out;
}

for (const dialect of await dialects()) {
  describe(`authorization matrix (${dialect})`, () => {
    let h: Harness;
    let seq = 0;
    const uniq = (p: string) => `${p}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;
    /** The setup actor is the harness admin; callers below are separate tokens, so four-eyes rules never bite. */
    const setup = async (method: string, path: string, body?: unknown): Promise<any> => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const r = await h.req(method, path, body);
      if (r.status >= 300) throw new Error(`setup ${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const mkSupervisor = async (): Promise<string> => (await setup('POST', '/supervisors', { name: uniq('sup') })).id;
    const mkAgent = async (): Promise<string> => (await setup('POST', '/agents', { name: uniq('agent'), control_url: 'http://127.0.0.1:9/control' })).id;
    const mkTeam = async (sup: string, agentIds: string[] = []): Promise<string> => (await setup('POST', `/supervisors/${sup}/teams`, { name: uniq('team'), agent_ids: agentIds })).id;
    const mkPolicy = async (): Promise<string> => (await setup('POST', '/policies', { name: uniq('policy'), policy_type: 'INTERVENTION', definition: VALID_DEFINITION })).id;
    const mkPending = async (): Promise<string> => {
      const sup = await mkSupervisor();
      const agent = await mkAgent();
      await mkTeam(sup, [agent]);
      const i = await setup('POST', '/interventions', { supervisor_id: sup, intervention_type: 'NOTIFY', target_type: 'AGENT', target_id: agent, reason: 'matrix', approval_required: true });
      expect(i.status).toBe('PENDING');
      return i.id;
    };

    // Shared state: agent A (the agent token's own agent) sits in a team of supervisor S.
    let agentA = '';
    let agentB = '';
    let supS = '';
    const tokens: Partial<Record<CallerName, string>> = {};

    const CASES: Record<string, RouteCase> = {
      'GET /api/v1/supervisors': { build: async () => ({ path: '/supervisors' }) },
      'POST /api/v1/supervisors': { build: async () => ({ path: '/supervisors', body: { name: uniq('sup') } }) },
      'GET /api/v1/supervisors/:id': { build: async () => ({ path: `/supervisors/${supS}` }) },
      'PUT /api/v1/supervisors/:id': { build: async () => ({ path: `/supervisors/${await mkSupervisor()}`, body: { description: 'changed by the matrix' } }) },
      'DELETE /api/v1/supervisors/:id': { build: async () => ({ path: `/supervisors/${await mkSupervisor()}` }) },
      'POST /api/v1/supervisors/:id/start': {
        build: async () => {
          const id = await mkSupervisor();
          await h.runtime.fail(id, 'matrix: make it startable'); // FAILED is one of the states start accepts
          return { path: `/supervisors/${id}/start` };
        },
      },
      'POST /api/v1/supervisors/:id/pause': { build: async () => ({ path: `/supervisors/${await mkSupervisor()}/pause` }) },
      'POST /api/v1/supervisors/:id/resume': {
        build: async () => {
          const id = await mkSupervisor();
          await setup('POST', `/supervisors/${id}/pause`);
          return { path: `/supervisors/${id}/resume` };
        },
      },
      'POST /api/v1/supervisors/:id/stop': { build: async () => ({ path: `/supervisors/${await mkSupervisor()}/stop` }) },
      'GET /api/v1/supervisors/:id/health': { build: async () => ({ path: `/supervisors/${supS}/health` }) },
      'GET /api/v1/supervisors/:id/hierarchy': { build: async () => ({ path: `/supervisors/${supS}/hierarchy` }) },
      'GET /api/v1/supervisors/:id/teams': { build: async () => ({ path: `/supervisors/${supS}/teams` }) },
      'POST /api/v1/supervisors/:id/teams': { build: async () => ({ path: `/supervisors/${supS}/teams`, body: { name: uniq('team') } }) },
      'GET /api/v1/supervisors/:id/policies': { build: async () => ({ path: `/supervisors/${supS}/policies` }) },
      'POST /api/v1/supervisors/:id/policies': { build: async () => ({ path: `/supervisors/${await mkSupervisor()}/policies`, body: { policy_id: await mkPolicy(), priority: 5 } }) },
      'DELETE /api/v1/supervisors/:id/policies/:policyId': {
        build: async () => {
          const sup = await mkSupervisor();
          const policy = await mkPolicy();
          await setup('POST', `/supervisors/${sup}/policies`, { policy_id: policy });
          return { path: `/supervisors/${sup}/policies/${policy}` };
        },
      },
      'GET /api/v1/supervisors/:id/interventions': { build: async () => ({ path: `/supervisors/${supS}/interventions?status=PENDING` }) },
      'GET /api/v1/supervisors/:id/alerts': { build: async () => ({ path: `/supervisors/${supS}/alerts` }) },
      'GET /api/v1/supervisors/:id/evaluations': { build: async () => ({ path: `/supervisors/${supS}/evaluations` }) },
      'GET /api/v1/teams/:id': { build: async () => ({ path: `/teams/${await mkTeam(supS)}` }) },
      'POST /api/v1/teams/:id/members': { build: async () => ({ path: `/teams/${await mkTeam(supS)}/members`, body: { agent_id: await mkAgent(), role: 'LEAD' } }) },
      'DELETE /api/v1/teams/:id/members/:agentId': {
        build: async () => {
          const agent = await mkAgent();
          return { path: `/teams/${await mkTeam(supS, [agent])}/members/${agent}` };
        },
      },
      'GET /api/v1/agents': { build: async () => ({ path: '/agents' }) },
      'POST /api/v1/agents': { build: async () => ({ path: '/agents', body: { name: uniq('agent'), control_url: 'https://agents.example/control', metadata: { zone: 'a' } } }) },
      'GET /api/v1/agents/:id': { build: async () => ({ path: `/agents/${agentA}` }) },
      'DELETE /api/v1/agents/:id': { build: async () => ({ path: `/agents/${await mkAgent()}` }) },
      // Always agent A: its own token may send it, another agent's token may not.
      'POST /api/v1/agents/:id/heartbeat': { build: async () => ({ path: `/agents/${agentA}/heartbeat`, body: { metrics: { cpu: 0.5, mode: 'busy' } } }) },
      'POST /api/v1/agents/:id/release': {
        build: async () => {
          const id = await mkAgent();
          await h.store.db.updateTable('agents').set({ status: 'QUARANTINED' }).where('id', '=', id).execute();
          return { path: `/agents/${id}/release` };
        },
      },
      'GET /api/v1/policies': { build: async () => ({ path: '/policies' }) },
      'POST /api/v1/policies': { build: async () => ({ path: '/policies', body: { name: uniq('policy'), policy_type: 'INTERVENTION', definition: VALID_DEFINITION } }) },
      'GET /api/v1/policies/:id': { build: async () => ({ path: `/policies/${await mkPolicy()}` }) },
      'PUT /api/v1/policies/:id': { build: async () => ({ path: `/policies/${await mkPolicy()}`, body: { definition: VALID_DEFINITION, description: 'v2' } }) },
      'GET /api/v1/policies/:id/versions': { build: async () => ({ path: `/policies/${await mkPolicy()}/versions` }) },
      'POST /api/v1/policies/:id/activate': { build: async () => ({ path: `/policies/${await mkPolicy()}/activate`, body: { version: 1, is_active: true } }) },
      'POST /api/v1/policies/:id/simulate': { build: async () => ({ path: `/policies/${await mkPolicy()}/simulate`, body: { context: { agent: { status: 'STALE' } } } }) },
      'POST /api/v1/interventions': {
        build: async () => ({ path: '/interventions', body: { supervisor_id: supS, intervention_type: 'NOTIFY', target_type: 'AGENT', target_id: agentA, reason: 'matrix', approval_required: true } }),
      },
      'GET /api/v1/interventions/:id': { build: async () => ({ path: `/interventions/${await mkPending()}` }) },
      'PUT /api/v1/interventions/:id/approve': { build: async () => ({ path: `/interventions/${await mkPending()}/approve`, body: { comment: 'ok' } }) },
      'PUT /api/v1/interventions/:id/reject': { build: async () => ({ path: `/interventions/${await mkPending()}/reject`, body: { reason: 'no' } }) },
      // Always about agent A.
      'POST /api/v1/alerts': { build: async () => ({ path: '/alerts', body: { source: 'matrix', severity: 'warning', kind: 'disk', agent_id: agentA, message: 'disk 91%' } }) },
      'GET /api/v1/events': { build: async () => ({ path: `/events?supervisor_id=${supS}` }) },
      'GET /api/v1/audit': { build: async () => ({ path: '/audit?resource=supervisor' }) },
      'GET /api/v1/tokens': { build: async () => ({ path: '/tokens' }) },
      'POST /api/v1/tokens': { build: async () => ({ path: '/tokens', body: { role: 'viewer', name: uniq('token') } }) },
      'DELETE /api/v1/tokens/:id': { build: async () => ({ path: `/tokens/${(await h.tokens.create({ role: 'viewer', name: uniq('doomed') }, null)).id}` }) },
    };

    /** For a table entry without a case: real ids where the parameter's resource is known, a random UUID otherwise. */
    async function genericBuild(template: string): Promise<Prepared> {
      const ids: Record<string, () => Promise<string>> = { supervisors: async () => supS, agents: async () => agentA, teams: () => mkTeam(supS), policies: mkPolicy, interventions: mkPending };
      const parts = template.replace(/^\/api\/v1/, '').split('/');
      const out: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i];
        if (!p.startsWith(':')) out.push(p);
        else if (p === ':agentId') out.push(agentA);
        else if (p === ':policyId') out.push(await mkPolicy());
        else out.push(ids[parts[i - 1]] ? await ids[parts[i - 1]]() : randomUUID());
      }
      return { path: out.join('/'), body: {} };
    }

    beforeAll(async () => {
      h = await createHarness({ dialect, autoStartLoops: false });
      supS = await mkSupervisor();
      agentA = await mkAgent();
      agentB = await mkAgent();
      await mkTeam(supS, [agentA, agentB]);
      tokens.admin = (await h.tokens.create({ role: 'admin', name: 'matrix-admin' }, null)).token;
      tokens.operator = (await h.tokens.create({ role: 'operator', name: 'matrix-operator' }, null)).token;
      tokens.viewer = (await h.tokens.create({ role: 'viewer', name: 'matrix-viewer' }, null)).token;
      tokens.agent = (await h.tokens.create({ role: 'agent', name: 'matrix-agent-a', agent_id: agentA }, null)).token;
      tokens['other agent'] = (await h.tokens.create({ role: 'agent', name: 'matrix-agent-b', agent_id: agentB }, null)).token;
      tokens['garbage token'] = 'ovs_this-is-not-a-token-anyone-issued';
      const revoked = await h.tokens.create({ role: 'admin', name: 'matrix-revoked' }, null);
      await h.tokens.revoke(revoked.id, null);
      tokens['revoked token'] = revoked.token;
    });
    afterAll(async () => h?.close());

    it('every route the app serves under /api/v1 has a permissions entry, and every entry is served', () => {
      const served = servedRoutes(h.app.printRoutes({ commonPrefix: false })).filter((k) => k.split(' ')[1].startsWith('/api/v1') && !/^(HEAD|OPTIONS) /.test(k));
      expect(served.length).toBeGreaterThan(10); // the parser found the tree
      const missing = served.filter((k) => !PERMISSIONS[k]);
      expect(missing, 'served routes without a PERMISSIONS entry').toEqual([]);
      for (const key of Object.keys(PERMISSIONS)) {
        const [method, url] = key.split(' ');
        expect(h.app.hasRoute({ method: method as Method, url }), `${key} is in PERMISSIONS but not served`).toBe(true);
      }
      expect(new Set(served)).toEqual(new Set(Object.keys(PERMISSIONS)));
    });

    it('has a matrix case for every entry of the permissions table', () => {
      expect(Object.keys(PERMISSIONS).filter((k) => !CASES[k]), 'add a case to CASES for these routes').toEqual([]);
    });

    for (const key of Object.keys(PERMISSIONS)) {
      const [method, template] = key.split(' ');
      const allowed = PERMISSIONS[key];
      it(`${key}: allowed ${allowed.join(', ')}`, async () => {
        const build = () => (CASES[key] ? CASES[key].build() : genericBuild(template));
        // Callers that must be refused share one prepared request: the refusal comes before any handler.
        const shared = await build();
        const seen: string[] = [];
        for (const caller of CALLERS) {
          const role = ROLE_OF[caller];
          const mayCall = role !== undefined && allowed.includes(role);
          const req = mayCall ? await build() : shared;
          const res = await h.req(method, req.path, req.body, caller === 'no token' ? null : tokens[caller]);
          seen.push(`${caller}=${res.status}`);
          const where = `${caller} ${method} ${req.path} -> ${res.status} ${JSON.stringify(res.body)}`;
          expect(res.status, where).toBeLessThan(500);
          if (role === undefined) {
            expect(res.status, where).toBe(401);
            expect(res.body).toMatchObject({ error: 'unauthorized' });
          } else if (!mayCall) {
            expect(res.status, where).toBe(403);
            expect(res.body).toMatchObject({ error: 'forbidden' });
          } else if (caller === 'other agent') {
            // Agent-callable routes are exercised on agent A's resources: agent B is refused by binding.
            expect(res.status, where).toBe(403);
          } else {
            expect([401, 403], where).not.toContain(res.status);
            // With a real case, a permitted caller gets a success, not just "not refused".
            if (CASES[key]) expect(res.status, where).toBeLessThan(300);
          }
        }
        expect(seen.length).toBe(CALLERS.length);
      });
    }

    it("an agent token may send its own heartbeats and alerts, not another agent's", async () => {
      const own = await h.req('POST', `/agents/${agentA}/heartbeat`, { metrics: { cpu: 0.1 } }, tokens.agent);
      expect(own.status).toBe(200);
      const foreign = await h.req('POST', `/agents/${agentB}/heartbeat`, { metrics: { cpu: 0.1 } }, tokens.agent);
      expect(foreign.status).toBe(403);
      expect(foreign.body.error).toBe('forbidden');
      const ownAlert = await h.req('POST', '/alerts', { source: 'a', severity: 'error', kind: 'oom', agent_id: agentA }, tokens.agent);
      expect(ownAlert.status).toBe(201);
      const foreignAlert = await h.req('POST', '/alerts', { source: 'a', severity: 'error', kind: 'oom', agent_id: agentB }, tokens.agent);
      expect(foreignAlert.status).toBe(403);
      // An alert naming no agent at all is not "its own" either.
      const anonymous = await h.req('POST', '/alerts', { source: 'a', severity: 'error', kind: 'oom', supervisor_id: supS }, tokens.agent);
      expect(anonymous.status).toBe(403);
      // The refused calls left no trace.
      const alerts = await h.req('GET', `/supervisors/${supS}/alerts?limit=500`);
      const agentsWithAlerts = alerts.body.items.flatMap((g: { alerts: { agent_id: string | null; source: string }[] }) => g.alerts.filter((a) => a.source === 'a').map((a) => a.agent_id));
      expect(agentsWithAlerts).toEqual([agentA]);
    });

    it('revoking a token through DELETE /tokens/{id} takes effect on the very next call', async () => {
      for (const role of ['operator', 'agent', 'admin'] as const) {
        const created = await h.req('POST', '/tokens', { role, name: uniq(`short-lived-${role}`), ...(role === 'agent' ? { agent_id: agentA } : {}) });
        expect(created.status).toBe(201);
        const probe = role === 'agent' ? (['POST', `/agents/${agentA}/heartbeat`, { metrics: { n: 1 } }] as const) : (['GET', '/tokens'] as const);
        const before = await h.req(probe[0], probe[1], probe[2], created.body.token);
        expect([200, 403], `${role} before revocation`).toContain(before.status); // operators may not list tokens: 403, not 401
        expect(before.status).toBe(role === 'operator' ? 403 : 200);
        const revoke = await h.req('DELETE', `/tokens/${created.body.id}`);
        expect(revoke.status).toBe(204);
        const after = await h.req(probe[0], probe[1], probe[2], created.body.token);
        expect(after.status, `${role} after revocation`).toBe(401);
        expect(after.body).toMatchObject({ error: 'unauthorized' });
        // Revoking twice is a 404, not a silent success.
        expect((await h.req('DELETE', `/tokens/${created.body.id}`)).status).toBe(404);
      }
    });

    it('a token can revoke itself, and is refused from the next call on', async () => {
      const me = await h.tokens.create({ role: 'admin', name: uniq('self-revoker') }, null);
      expect((await h.req('DELETE', `/tokens/${me.id}`, undefined, me.token)).status).toBe(204);
      expect((await h.req('GET', '/supervisors', undefined, me.token)).status).toBe(401);
    });

    it('malformed Authorization headers are 401, never 5xx', async () => {
      for (const header of ['', 'Bearer', 'Bearer ', 'bearer ' + 'x', 'Basic YWRtaW46YWRtaW4=', `Bearer ${'x'.repeat(600)}`, `Token ${tokens.admin}`]) {
        const res = await h.app.inject({ method: 'GET', url: '/api/v1/supervisors', headers: { authorization: header } });
        expect(res.statusCode, `authorization: ${header.slice(0, 40)}`).toBe(401);
        expect(JSON.parse(res.body)).toMatchObject({ error: 'unauthorized' });
      }
    });
  });
}
