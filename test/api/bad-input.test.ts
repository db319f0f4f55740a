/**
 * Caller mistakes in request bodies, size limits and path ids: each one gets its exact
 * 4xx and error code, never a stack trace, and leaves the database exactly as it was.
 * (Credentials, policies, list parameters and routes: bad-input-requests.test.ts; conflicting
 * state changes: bad-input-state.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, HARNESS_TOKEN, type Harness } from '../helpers/harness.js';
import { dialects } from '../helpers/db.js';
import { call, expectError, expectNoStack, problemPaths, raw, snapshot, untouched } from './bad-input.shared.js';

const UNKNOWN = '01890000-0000-7000-8000-000000000000';
const JSON_HEADERS = { authorization: `Bearer ${HARNESS_TOKEN}`, 'content-type': 'application/json' };

for (const dialect of await dialects()) {
  describe(`bad input (${dialect})`, () => {
    let h: Harness;
    let sup: { id: string; version: number; config: Record<string, number> };
    let agentId: string;

    beforeAll(async () => {
      h = await createHarness({ dialect, autoStartLoops: false });
      sup = (await call(h, 'POST', '/supervisors', { name: 'fixture' })).body;
      agentId = (await call(h, 'POST', '/agents', { name: 'fixture-agent' })).body.id;
      expect(sup.id && agentId).toBeTruthy();
    });
    afterAll(async () => h?.close());

    it('the database snapshot notices a write (so "untouched" can fail)', async () => {
      const before = await snapshot(h);
      expect((await call(h, 'POST', '/agents', { name: 'snapshot-probe' })).status).toBe(201);
      const after = await snapshot(h);
      expect(after).not.toEqual(before);
      expect(after.agents).toBe(before.agents + 1);
      expect(after['events.max_seq']).toBeGreaterThan(before['events.max_seq']);
    });

    describe('malformed and mistyped JSON', () => {
      it.each([['{"name": '], ['{name: "x"}'], ["{'name':'x'}"], ['{"name":"x",}'], ['nul'], ['{"name":"x"}garbage']])('malformed body %s -> 400 bad_request', async (payload) => {
        await untouched(h, async () => {
          const res = await raw(h, 'POST', '/api/v1/supervisors', payload, JSON_HEADERS);
          expectError(res, 400, 'bad_request');
          expect(res.body.message).toMatch(/malformed JSON/);
        });
      });

      it('an empty body with a JSON content type -> 400 bad_request', async () => {
        await untouched(h, async () => expectError(await raw(h, 'POST', '/api/v1/supervisors', '', JSON_HEADERS), 400, 'bad_request'));
      });

      it('a prototype-poisoning body is refused -> 400 bad_request', async () => {
        await untouched(h, async () => expectError(await raw(h, 'POST', '/api/v1/supervisors', '{"name":"p","__proto__":{"polluted":true}}', JSON_HEADERS), 400, 'bad_request'));
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      });

      it('a non-JSON content type -> 415 unsupported_media_type', async () => {
        await untouched(h, async () => {
          const res = await raw(h, 'POST', '/api/v1/supervisors', 'name=x', { authorization: `Bearer ${HARNESS_TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' });
          expectError(res, 415, 'unsupported_media_type');
        });
      });

      it.each([
        ['name: 5', { name: 5 }, 'body.name'],
        ['name: null', { name: null }, 'body.name'],
        ['name: ["x"]', { name: ['x'] }, 'body.name'],
        ['description: 7', { name: 'x', description: 7 }, 'body.description'],
        ['config: []', { name: 'x', config: [] }, 'body.config'],
        ['config: "fast"', { name: 'x', config: 'fast' }, 'body.config'],
        ['parent_id: 12', { name: 'x', parent_id: 12 }, 'body.parent_id'],
        ['no name at all', {}, 'body.name'],
      ])('wrong type (%s) -> 400 validation_failed naming %s', async (_label, body, path) => {
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/supervisors', body);
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toContain(path);
        });
      });

      it.each([['null'], ['[]'], ['"a string"'], ['42'], ['true']])('a body that is not an object (%s) -> 400 validation_failed', async (payload) => {
        await untouched(h, async () => expectError(await raw(h, 'POST', '/api/v1/supervisors', payload, JSON_HEADERS), 400, 'validation_failed'));
      });

      it('a config value of the wrong type ("30") -> 400 naming config.heartbeat_interval_seconds; no coercion', async () => {
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/supervisors', { name: 'typed', config: { heartbeat_interval_seconds: '30' } });
          expectError(res, 400, 'validation_failed');
          expect(res.body.details.problems).toEqual([{ path: 'config.heartbeat_interval_seconds', message: 'must be a number' }]);
        });
      });

      it('an unknown top-level field -> 400 validation_failed naming the field path', async () => {
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/supervisors', { name: 'x', nmae: 'typo' });
          expectError(res, 400, 'validation_failed');
          expect(res.body.details.problems).toEqual([{ path: 'body.nmae', message: 'unknown field' }]);
          expect(res.body.message).toContain('body.nmae');
        });
        await untouched(h, async () => {
          const res = await call(h, 'POST', `/agents/${agentId}/heartbeat`, { metrics: { cpu: 1 }, extra: true });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toContain('body.extra');
        });
      });

      it.each([['bogus'], ['toString'], ['constructor'], ['hasOwnProperty']])('an unknown config key (%s) -> 400 validation_failed', async (key) => {
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/supervisors', { name: `cfg-${key}`, config: { [key]: 5 } });
          expectError(res, 400, 'validation_failed');
          expect(res.body.details.problems).toEqual([{ path: `config.${key}`, message: 'unknown config key' }]);
        });
      });

      it.each([[0], [301], [30.5], [-1]])('heartbeat_interval_seconds %d -> 400 validation_failed', async (v) => {
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/supervisors', { name: `range-${v}`, config: { heartbeat_interval_seconds: v } });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toEqual(['config.heartbeat_interval_seconds']);
        });
      });

      it('an out-of-range config in PUT leaves the supervisor row as it was', async () => {
        const before = (await call(h, 'GET', `/supervisors/${sup.id}`)).body;
        for (const config of [{ heartbeat_interval_seconds: 0 }, { heartbeat_interval_seconds: 301 }, { max_restarts: 101 }, { nope: 1 }]) {
          await untouched(h, async () => expectError(await call(h, 'PUT', `/supervisors/${sup.id}`, { config }), 400, 'validation_failed'));
        }
        await untouched(h, async () => expectError(await call(h, 'PUT', `/supervisors/${sup.id}`, {}), 400, 'validation_failed'));
        expect((await call(h, 'GET', `/supervisors/${sup.id}`)).body).toEqual(before);
      });
    });

    describe('size limits', () => {
      it('a body over 1 MiB -> 413 payload_too_large', async () => {
        const payload = JSON.stringify({ name: 'big', description: 'x'.repeat(1024 * 1024 + 10) });
        await untouched(h, async () => {
          const res = await raw(h, 'POST', '/api/v1/supervisors', payload, JSON_HEADERS);
          expectError(res, 413, 'payload_too_large');
          expect(res.body.details).toEqual({ limit: 1024 * 1024 });
        });
      });

      it('a body just under 1 MiB is parsed and then refused by validation (400, not 413)', async () => {
        const payload = JSON.stringify({ name: 'big', description: 'x'.repeat(1024 * 1024 - 100) });
        await untouched(h, async () => {
          const res = await raw(h, 'POST', '/api/v1/supervisors', payload, JSON_HEADERS);
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toEqual(['body.description']);
        });
      });

      it.each([
        ['empty', ''],
        ['256 chars', 'n'.repeat(256)],
        ['whitespace only', '   '],
      ])('a supervisor or agent name that is %s -> 400 validation_failed', async (_label, name) => {
        await untouched(h, async () => {
          for (const path of ['/supervisors', '/agents']) {
            const res = await call(h, 'POST', path, { name });
            expectError(res, 400, 'validation_failed');
            expect(problemPaths(res)).toEqual(['body.name']);
          }
        });
      });

      it('names of exactly 1 and 255 chars are accepted', async () => {
        for (const name of ['a', 'b'.repeat(255)]) expect((await call(h, 'POST', '/agents', { name })).status).toBe(201);
      });

      it('a description over 4 KiB -> 400', async () => {
        await untouched(h, async () => expect(problemPaths(await call(h, 'POST', '/supervisors', { name: 'd', description: 'd'.repeat(4097) }))).toEqual(['body.description']));
      });

      it('agent metadata over 16 KiB serialized -> 400 validation_failed', async () => {
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/agents', { name: 'meta', metadata: { blob: 'm'.repeat(16 * 1024) } });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toEqual(['body.metadata']);
        });
      });

      it('the metadata limit counts bytes, not UTF-16 characters', async () => {
        // 9000 two-byte characters: under 16 Ki characters but about 18 KB of serialized JSON.
        await untouched(h, async () => {
          const res = await call(h, 'POST', '/agents', { name: 'meta-utf8', metadata: { blob: 'é'.repeat(9000) } });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toEqual(['body.metadata']);
        });
      });

      it('metadata right at 16 KiB is accepted; metadata that is not an object is not', async () => {
        const overhead = JSON.stringify({ blob: '' }).length;
        expect((await call(h, 'POST', '/agents', { name: 'meta-max', metadata: { blob: 'm'.repeat(16 * 1024 - overhead) } })).status).toBe(201);
        for (const metadata of [[1, 2], 'text', 5, null]) {
          await untouched(h, async () => expect(problemPaths(await call(h, 'POST', '/agents', { name: 'meta-type', metadata }))).toEqual(['body.metadata']));
        }
      });

      it('heartbeat metrics: 101 keys -> 400, 100 keys -> 200', async () => {
        const metrics = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`m${i}`, i]));
        await untouched(h, async () => {
          const res = await call(h, 'POST', `/agents/${agentId}/heartbeat`, { metrics: metrics(101) });
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res)).toContain('body.metrics');
        });
        const ok = await call(h, 'POST', `/agents/${agentId}/heartbeat`, { metrics: metrics(100) });
        expect(ok.status).toBe(200);
      });

      it.each([
        ['a nested object', '{"metrics":{"cpu":{"user":1}}}'],
        ['an array', '{"metrics":{"cpu":[1,2]}}'],
        ['null', '{"metrics":{"cpu":null}}'],
        ['a boolean', '{"metrics":{"cpu":true}}'],
        ['Infinity (1e999)', '{"metrics":{"cpu":1e999}}'],
        ['-Infinity (-1e999)', '{"metrics":{"cpu":-1e999}}'],
        ['a 257-char string', JSON.stringify({ metrics: { mode: 's'.repeat(257) } })],
        ['a key with spaces', '{"metrics":{"cpu load":1}}'],
        ['an empty key', '{"metrics":{"":1}}'],
        ['a badly named key with a nested value', '{"metrics":{"cpu load":{"deep":[1,{"x":null}]}}}'],
        ['a 129-char key', JSON.stringify({ metrics: { [`k${'x'.repeat(128)}`]: 1 } })],
        ['metrics as an array', '{"metrics":[1,2,3]}'],
      ])('a heartbeat metric that is %s -> 400 validation_failed', async (_label, payload) => {
        const before = (await call(h, 'GET', `/agents/${agentId}`)).body;
        await untouched(h, async () => {
          const res = await raw(h, 'POST', `/api/v1/agents/${agentId}/heartbeat`, payload, JSON_HEADERS);
          expectError(res, 400, 'validation_failed');
          expect(problemPaths(res).filter((p) => p !== 'body').every((p) => p.startsWith('body.metrics'))).toBe(true);
          expect(problemPaths(res).some((p) => p.startsWith('body.metrics'))).toBe(true);
        });
        const after = (await call(h, 'GET', `/agents/${agentId}`)).body;
        expect(after.last_metrics).toEqual(before.last_metrics);
        expect(after.last_heartbeat_at).toBe(before.last_heartbeat_at);
      });

      it.each([['file:///etc/passwd'], ['javascript:alert(1)'], ['data:text/plain,hi'], ['ftp://example.com/x'], ['not a url'], ['http://user:secret@example.com/'], ['//example.com/relative']])(
        'control_url %s -> 400 validation_failed',
        async (control_url) => {
          await untouched(h, async () => {
            const res = await call(h, 'POST', '/agents', { name: 'ctl', control_url });
            expectError(res, 400, 'validation_failed');
            expect(problemPaths(res)).toEqual(['body.control_url']);
          });
        },
      );
    });

    describe('ids in paths', () => {
      const BAD_IDS = ['not-a-uuid', '123', `${UNKNOWN}0`, UNKNOWN.slice(1), "x'%20OR%20'1'='1", '%00', UNKNOWN.replace(/-/g, '')];
      const ROUTES: [string, string][] = [
        ['GET', '/supervisors/:id'],
        ['PUT', '/supervisors/:id'],
        ['DELETE', '/supervisors/:id'],
        ['POST', '/supervisors/:id/pause'],
        ['GET', '/supervisors/:id/health'],
        ['GET', '/agents/:id'],
        ['DELETE', '/agents/:id'],
        ['POST', '/agents/:id/heartbeat'],
        ['GET', '/teams/:id'],
        ['GET', '/policies/:id'],
        ['GET', '/interventions/:id'],
        ['PUT', '/interventions/:id/approve'],
      ];

      it.each(ROUTES)('%s %s with a malformed id -> 400 validation_failed on params.id', async (method, route) => {
        await untouched(h, async () => {
          for (const bad of BAD_IDS) {
            const res = await call(h, method, route.replace(':id', bad), method === 'PUT' && route.endsWith(':id') ? { name: 'x' } : undefined);
            expectError(res, 400, 'validation_failed');
            expect(problemPaths(res)).toContain('params.id');
          }
        });
      });

      it.each(ROUTES)('%s %s with a valid but unknown id -> 404 not_found', async (method, route) => {
        await untouched(h, async () => {
          const res = await call(h, method, route.replace(':id', UNKNOWN), method === 'PUT' && route.endsWith(':id') ? { name: 'x' } : undefined);
          expectError(res, 404, 'not_found');
          expect(res.body.details).toEqual({ id: UNKNOWN });
        });
      });
    });

    it('error bodies never carry stack traces, even for the oddest inputs', async () => {
      const before = await snapshot(h);
      for (const payload of ['{"a":' + '['.repeat(5000), '['.repeat(100_000), '\u0000', '\ufeff{"name":"bom"', '{"name":"x","config":{"heartbeat_interval_seconds":1e400}}', '{"name":"x","config":{"constructor":{"prototype":{"x":1}}}}']) {
        const res = await raw(h, 'POST', '/api/v1/supervisors', payload, JSON_HEADERS);
        expect(res.status, payload.slice(0, 40)).toBeGreaterThanOrEqual(400);
        expectNoStack(res.text);
      }
      expect(await snapshot(h)).toEqual(before);
      // A lone surrogate is valid JSON; whatever the store makes of it, the answer is not a 5xx.
      const lone = await raw(h, 'POST', '/api/v1/supervisors', '{"name":"\\ud800"}', JSON_HEADERS);
      expect([201, 400]).toContain(lone.status);
      expectNoStack(lone.text);
    });
  });
}
