/**
 * Property-based fuzzing of the whole HTTP surface: random methods, paths built from the real
 * route templates (with valid, random and hostile parameters) and junk paths, random headers and
 * random JSON and non-JSON bodies. Properties: never a 5xx; every 4xx has the
 * {error, message, details} shape and no stack trace; a 4xx changes nothing in the database
 * (row counts, max(events.seq) and the content of every table); /livez keeps answering.
 *
 * Deterministic: a fixed seed (override with FUZZ_SEED, runs with FUZZ_RUNS / FUZZ_PG_RUNS), printed
 * at start. A second part sweeps fixed hostile values through every field of every request body.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import { createHarness, HARNESS_TOKEN, type Harness } from '../helpers/harness.js';
import { postgresAvailable } from '../helpers/db.js';
import { PERMISSIONS } from '../../src/api/permissions.js';
import { BODY_LIMIT } from '../../src/api/schemas.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20240607);
const RUNS = Number(process.env.FUZZ_RUNS ?? 450);
const PG_RUNS = Number(process.env.FUZZ_PG_RUNS ?? 300);
/** FUZZ_COLLECT=1: run every case and list all violations instead of stopping at the first. */
const COLLECT = process.env.FUZZ_COLLECT === '1';

const ROOT_ROUTES = ['GET /livez', 'GET /readyz', 'GET /healthz', 'GET /metrics'];
const ROUTES = [...Object.keys(PERMISSIONS), ...ROOT_ROUTES].map((k) => {
  const [method, template] = k.split(' ');
  return { key: k, method, template };
});

interface Fixture {
  supervisors: string[];
  agents: string[];
  teams: string[];
  policies: string[];
  interventions: string[];
  tokenIds: string[];
  tokens: Record<'admin' | 'operator' | 'viewer' | 'agent' | 'otherAgent' | 'revoked', string>;
}

interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[]>;
  payload?: string | Buffer;
  label: string;
  [fc.toStringMethod]?: () => string;
}

/** One snapshot of everything the database holds: counts, the journal's head, and a content digest. */
interface Snapshot { counts: Record<string, number>; maxSeq: number; digest: Record<string, string> }

async function tablesOf(h: Harness): Promise<string[]> {
  const rows =
    h.db.dialect === 'sqlite'
      ? await sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name`.execute(h.store.db)
      : await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE' order by table_name`.execute(h.store.db);
  return rows.rows.map((r) => r.name);
}

async function snapshot(h: Harness, tables: string[]): Promise<Snapshot> {
  const counts: Record<string, number> = {};
  const digest: Record<string, string> = {};
  if (h.db.dialect === 'postgres') {
    // Digest in the database: one round trip instead of shipping every row.
    const parts = tables.map((t) => sql`select ${t}::text as t, count(*)::int as n, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as d from ${sql.table(t)} x`);
    const rows = (await sql<{ t: string; n: number; d: string }>`${sql.join(parts, sql` union all `)}`.execute(h.store.db)).rows;
    for (const r of rows) {
      counts[r.t] = Number(r.n);
      digest[r.t] = r.d;
    }
  } else {
    for (const t of tables) {
      const rows = (await sql<Record<string, unknown>>`select * from ${sql.table(t)}`.execute(h.store.db)).rows;
      counts[t] = rows.length;
      const lines = rows.map((r) => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).sort();
      digest[t] = createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
    }
  }
  const seq = await sql<{ m: number | string | null }>`select max(seq) as m from events`.execute(h.store.db);
  return { counts, maxSeq: Number(seq.rows[0]?.m ?? 0), digest };
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const HOSTILE_SEGMENTS = [
  '%00', '..', '../..', '%2e%2e', '%2e%2e%2f%2e%2e', '%2F', '.', '%', '%zz', '%C0%AF', '%E0%A4%A', '%FF%FE', '%u0000',
  'null', 'undefined', 'NaN', '-1', '0', '1e309', '__proto__', 'constructor', 'prototype', 'hasOwnProperty',
  "'%20OR%201=1--", '%3Cscript%3E', '%F0%9F%98%80', '😀', 'ü', '\u202e', '00000000-0000-0000-0000-000000000000',
  'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '01234567-89ab-cdef-0123-456789abcdefg', '{id}', ':id', '*', '~', ';', ',',
];

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];

const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;charset=UTF-8', 'application/json; charset=latin1',
  'application/json; charset=utf-16', 'text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=----x',
  'application/octet-stream', 'application/problem+json', 'application/jsonx', 'application/vnd.api+json', 'text/json', '', ';;;', 'application/', '*/*',
];

const PROTO_BODIES = [
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  '{"name":"p","__proto__":{"role":"admin"}}',
  '{"name":"p","metadata":{"__proto__":{"isAdmin":true}}}',
  '{"name":"p","metadata":{"constructor":{"prototype":{"isAdmin":true}}}}',
  '{"metrics":{"__proto__":1}}',
  '{"metrics":{"constructor":1,"toString":2,"valueOf":"x"}}',
  '{"config":{"__proto__":{"max_restarts":1000}}}',
  '{"definition":{"__proto__":{"condition":{}},"actions":[]}}',
  '{"context":{"__proto__":{"agent":{"status":"STALE"}}}}',
  '{"action_details":{"constructor":{"prototype":{"x":1}}}}',
];

const WEIRD_TEXT_BODIES = [
  '', ' ', 'null', 'true', '0', '-0', '1e999999', 'NaN', 'Infinity', '"\\ud800"', '"\u0000"', '[]', '{}', '{', '}', '{"a":}', '{"a":1,}', "{'a':1}",
  '{"a":1}{"b":2}', '\ufeff{}', '{"a":"\\u0000"}', '[1,2,3', 'name=x&role=admin', '<xml><a/></xml>', '--boundary\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--boundary--',
];

function idPool(fx: Fixture): string[] {
  return [...fx.supervisors, ...fx.agents, ...fx.teams, ...fx.policies, ...fx.interventions, ...fx.tokenIds];
}

/** Valid request bodies per route, so mutations reach the handlers' deeper checks. */
function validBodies(fx: Fixture, n: number): Record<string, unknown> {
  const pick = <T>(xs: T[]) => xs[n % xs.length];
  const def = { condition: { type: 'field_comparison', field: 'agent.metrics.cpu', operator: '>', value: 0.9 }, actions: [{ type: 'notify' }] };
  return {
    'POST /api/v1/supervisors': { name: `fz-sup-${n}`, description: 'd', config: { heartbeat_interval_seconds: 10, max_restarts: 3 }, parent_id: pick(fx.supervisors) },
    'PUT /api/v1/supervisors/:id': { name: `fz-ren-${n}`, description: 'x', config: { max_restarts: 2 }, parent_id: null },
    'POST /api/v1/supervisors/:id/teams': { name: `fz-team-${n}`, objective: 'o', agent_ids: [pick(fx.agents)] },
    'POST /api/v1/supervisors/:id/policies': { policy_id: pick(fx.policies), priority: 10 },
    'POST /api/v1/teams/:id/members': { agent_id: pick(fx.agents), role: 'MEMBER' },
    'POST /api/v1/agents': { name: `fz-agent-${n}`, control_url: 'http://127.0.0.1:9/c', metadata: { k: 'v' } },
    'POST /api/v1/agents/:id/heartbeat': { metrics: { cpu: 0.2, mode: 'idle' } },
    'POST /api/v1/policies': { name: `fz-policy-${n}`, policy_type: 'INTERVENTION', definition: def, description: 'd' },
    'PUT /api/v1/policies/:id': { definition: def, description: 'v+1' },
    'POST /api/v1/policies/:id/activate': { version: 1, is_active: true },
    'POST /api/v1/policies/:id/simulate': { context: { agent: { metrics: { cpu: 0.95 } } }, event_type: 'heartbeat' },
    'POST /api/v1/interventions': { supervisor_id: pick(fx.supervisors), intervention_type: 'NOTIFY', target_type: 'AGENT', target_id: pick(fx.agents), reason: 'fuzz', approval_required: true },
    'PUT /api/v1/interventions/:id/approve': { comment: 'ok' },
    'PUT /api/v1/interventions/:id/reject': { reason: 'no' },
    'POST /api/v1/alerts': { source: 'fuzz', severity: 'warning', kind: 'disk', agent_id: pick(fx.agents), supervisor_id: pick(fx.supervisors), message: 'm' },
    'POST /api/v1/tokens': { role: 'viewer', name: `fz-token-${n}` },
  };
}

/** A nested JSON text of the given depth, built without recursion. */
const nested = (depth: number, kind: 'array' | 'object' | 'metadata' | 'definition' | 'context'): string => {
  if (kind === 'array') return '['.repeat(depth) + ']'.repeat(depth);
  const inner = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  if (kind === 'object') return inner;
  if (kind === 'metadata') return `{"name":"deep","metadata":${inner}}`;
  if (kind === 'context') return `{"context":${inner}}`;
  const cond = '{"type":"composite","operator":"NOT","conditions":['.repeat(depth) + '{"type":"field_comparison","field":"agent.id","operator":"exists"}' + ']}'.repeat(depth);
  return `{"name":"deep","policy_type":"INTERVENTION","definition":{"condition":${cond},"actions":[{"type":"notify"}]}}`;
};

/** A JSON body whose serialized size is `size` bytes: one long string field (optionally multi-byte). */
const sized = (size: number, field: string, ch: string): string => {
  const frame = `{"${field}":""}`;
  const unit = Buffer.byteLength(ch);
  return `{"${field}":"${ch.repeat(Math.max(0, Math.floor((size - frame.length) / unit)))}"}`;
};

const HOLE = '\u0000hole\u0000';

/** Every path to a field of a JSON object, up to three levels down. */
function fieldPaths(v: unknown, prefix: string[] = []): string[][] {
  if (!v || typeof v !== 'object' || Array.isArray(v) || prefix.length >= 3) return [];
  return Object.entries(v).flatMap(([k, child]) => [[...prefix, k], ...fieldPaths(child, [...prefix, k])]);
}

function setAt(target: unknown, path: string[], value: unknown): void {
  let o = target as Record<string, unknown>;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = path[path.length - 1];
  if (value === undefined) delete o[last];
  else o[last] = value;
}

/** Raw JSON texts meant to break parsers, validators, serializers and SQL drivers. */
const hostileValue: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 10, max: 100_000 }).map((d) => '{"a":'.repeat(d) + '1' + '}'.repeat(d)),
  fc.integer({ min: 10, max: 100_000 }).map((d) => '['.repeat(d) + ']'.repeat(d)),
  fc.integer({ min: 10, max: 100_000 }).map((d) => '{"type":"composite","operator":"NOT","conditions":['.repeat(d) + '{"type":"field_comparison","field":"agent.id","operator":"exists"}' + ']}'.repeat(d)),
  fc.integer({ min: BODY_LIMIT - 4096, max: BODY_LIMIT + 64 }).map((len) => JSON.stringify('x'.repeat(len))),
  fc.integer({ min: 256, max: 70_000 }).map((len) => JSON.stringify('é'.repeat(len))),
  fc.integer({ min: 100, max: 20_000 }).map((k) => JSON.stringify(Object.fromEntries(Array.from({ length: k }, (_, i) => [`k${i}`, i])))),
  fc.integer({ min: 100, max: 100_000 }).map((k) => JSON.stringify(Array.from({ length: k }, (_, i) => i))),
  fc.constantFrom(
    '{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}', '{"toString":1,"valueOf":"x","hasOwnProperty":null}',
    '1e308', '-1e308', '1e-400', '-0', '123456789012345678901234567890', '9007199254740993', '0.1e1', 'true', 'false', 'null', '[]', '{}', '""', '" "',
    '"\\ud800"', '"\\u0000"', '"\\u202e"', '"😀"', '"\\\\"', '"\'; DROP TABLE agents; --"', '"${agent.id}"', '"../../etc/passwd"', '"javascript:alert(1)"',
    '"file:///etc/passwd"', '"http://169.254.169.254/latest/meta-data"', '"http://user:pw@127.0.0.1/"', '"ftp://x"', '"2024-13-45T99:99:99Z"',
  ),
);

function requestArb(fx: Fixture): fc.Arbitrary<FuzzRequest> {
  const ids = idPool(fx);
  const typed: Record<string, string[]> = { supervisors: fx.supervisors, agents: fx.agents, teams: fx.teams, policies: fx.policies, interventions: fx.interventions, tokens: fx.tokenIds, ':agentId': fx.agents, ':policyId': fx.policies };
  /** A path parameter: mostly a real id of the right kind, else any real id, a random UUID or something hostile. */
  const param = (kind: string) =>
    fc.oneof(
      { weight: 10, arbitrary: fc.constantFrom(...(typed[kind] ?? ids)) },
      { weight: 2, arbitrary: fc.constantFrom(...ids) },
      { weight: 2, arbitrary: fc.uuid() },
      { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_SEGMENTS) },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }).map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }).map(encodeURIComponent) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }).map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))) },
      { weight: 1, arbitrary: fc.integer({ min: 37, max: 20_000 }).map((n) => 'a'.repeat(n)) },
    );
  /** The kind of each parameter of a template: the resource segment before it, or the parameter's own name. */
  const paramKinds = (template: string): string[] => {
    const parts = template.split('/');
    return parts.flatMap((p, i) => (p.startsWith(':') ? [p === ':id' ? parts[i - 1] : p] : []));
  };
  const queryKey = fc.constantFrom('limit', 'cursor', 'status', 'supervisor_id', 'parent_id', 'team_id', 'agent_id', 'policy_id', 'after', 'actor', 'resource', 'resource_id', 'entity_type', 'since', 'until', 'verbose', '__proto__', 'constructor', 'x');
  const queryValue = fc.oneof(
    fc.constantFrom('1', '0', '-1', '500', '501', '9999', '99999', 'abc', '', 'PENDING', 'ACTIVE', 'HEALTHY', '2024-01-01T00:00:00Z', 'not-a-date', '999999999999999', 'AAAA', 'bm90LWEtY3Vyc29y', '%00', '%zz', '..'),
    fc.constantFrom(...ids),
    fc.string({ maxLength: 30 }).map(encodeURIComponent),
    fc.integer({ min: 201, max: 5000 }).map((n) => 'q'.repeat(n)),
  );
  const query = fc.oneof(
    { weight: 4, arbitrary: fc.constant('') },
    { weight: 3, arbitrary: fc.array(fc.tuple(queryKey, queryValue), { minLength: 1, maxLength: 4 }).map((kv) => '?' + kv.map(([k, v]) => `${k}=${v}`).join('&')) },
    { weight: 1, arbitrary: fc.constantFrom('?', '?&&', '?=', '?limit', '?limit=1&limit=2', '?a[b]=1', '?__proto__[x]=1', '?%', '?%00=%00', `?${'a'.repeat(10_000)}=1`) },
  );

  /** A path from a real route template; `focused` keeps the parameters mostly real and the query string valid. */
  const withBody = ROUTES.filter((r) => r.key in validBodies(fx, 0));
  const templatePathOf = (focused: boolean) =>
    (focused ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...withBody) }, { weight: 1, arbitrary: fc.constantFrom(...ROUTES) }) : fc.constantFrom(...ROUTES))
      .chain((r) =>
        fc.tuple(
          fc.constant(r),
          fc.tuple(...paramKinds(r.template).map((k) => (focused ? fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...(typed[k] ?? ids)) }, { weight: 1, arbitrary: fc.uuid() }) : param(k)))),
          focused ? fc.constantFrom('', '', '', '?limit=2', '?limit=500', `?supervisor_id=${fx.supervisors[0]}`, '?status=PENDING', '?after=3', '?since=2020-01-01T00:00:00Z') : query,
        ),
      )
      .map(([r, params, q]) => {
        let i = 0;
        const path = r.template.replace(/:[A-Za-z]+/g, () => params[i++]);
        return { route: r, path: path + q };
      });
  const templatePath = templatePathOf(false);

  const junkPath = fc.oneof(
    fc.array(fc.oneof(fc.constantFrom(...HOSTILE_SEGMENTS), fc.string({ maxLength: 12 }).map(encodeURIComponent)), { maxLength: 6 }).map((segs) => `/api/v1/${segs.join('/')}`),
    fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)),
    fc.constantFrom(
      '/', '//', '/api', '/api/', '/api/v1', '/api/v1/', '/api/v2/supervisors', '/API/V1/SUPERVISORS', '//api//v1//supervisors', '/api/v1/supervisors/',
      '/api/v1/./supervisors', '/api/v1/supervisors/../tokens', '/api/v1/%2e%2e/tokens', '/api/v1/supervisors%2F..%2Ftokens', '/api/v1/supervisors/%00',
      '/api/v1/supervisors;x=1', '/api/v1/tokens%00', '/livez/', '/livez?x', '/healthz?verbose', '/healthz?verbose=1&verbose=2', '/metrics/x', '/api/v1/supervisors#frag',
      '/%', '/%zz', '/api/v1/%E0%A4%A', `/api/v1/${'x/'.repeat(2000)}`, `/api/v1/supervisors/${'a'.repeat(100_000)}`, `/${'%'.repeat(300)}`,
    ),
    fc.integer({ min: 1000, max: 60_000 }).map((n) => '/api/v1/' + 'é'.repeat(n / 10).split('').map(encodeURIComponent).join('')),
  );

  const path = fc.oneof({ weight: 5, arbitrary: templatePath }, { weight: 1, arbitrary: junkPath.map((p) => ({ route: null, path: p })) });

  const auth = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(`Bearer ${HARNESS_TOKEN}`, `Bearer ${fx.tokens.admin}`, `Bearer ${fx.tokens.operator}`) },
    { weight: 2, arbitrary: fc.constantFrom(`Bearer ${fx.tokens.viewer}`, `Bearer ${fx.tokens.agent}`, `Bearer ${fx.tokens.otherAgent}`, `Bearer ${fx.tokens.revoked}`) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.constantFrom('', 'Bearer', 'Bearer ', 'bearer ' + HARNESS_TOKEN, 'Basic YWRtaW46YWRtaW4=', `Bearer  ${HARNESS_TOKEN}`, `Bearer ${HARNESS_TOKEN} extra`, `Bearer ${'t'.repeat(5000)}`, 'Bearer \u00ff\u00fe', 'Bearer ovs_'),
        fc.string({ maxLength: 60 }).map((s) => `Bearer ${s.replace(/[^\x20-\x7e]/g, '')}`),
      ),
    },
    // Duplicated headers: two Authorization values.
    { weight: 1, arbitrary: fc.constantFrom<string[]>([`Bearer ${HARNESS_TOKEN}`, `Bearer ${HARNESS_TOKEN}`], [`Bearer ${fx.tokens.viewer}`, `Bearer ${HARNESS_TOKEN}`], ['Bearer x', `Bearer ${HARNESS_TOKEN}`]) },
  );

  const contentType = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...CONTENT_TYPES.slice(0, 4)) },
    { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
  const extraHeaders = fc.dictionary(fc.constantFrom('accept', 'accept-encoding', 'x-forwarded-for', 'x-request-id', 'content-encoding', 'expect', 'origin', 'cookie', 'if-none-match'), fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')), { maxKeys: 3 });

  const body = (routeKey: string | null, n: number, focused = false): fc.Arbitrary<string | Buffer | undefined> => {
    const valid = (routeKey ? validBodies(fx, n)[routeKey] : undefined) as Record<string, unknown> | undefined;
    const base = valid ?? {};
    const found = fieldPaths(base);
    const paths = found.length ? found : [['value']];
    // One field of the valid body replaced by a random JSON value, removed, or an unknown field added.
    const mutated = fc
      .tuple(fc.constantFrom(...found, ['__extra__']), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constant(undefined)))
      .map(([path, value]) => {
        const copy = structuredClone(base);
        if (path[0] === '__extra__') (copy as Record<string, unknown>)[`x_${n}`] = value ?? 1;
        else setAt(copy, path, value);
        return JSON.stringify(copy);
      });
    // One field of the valid body replaced by hostile raw JSON: deep nesting, huge strings, prototype keys.
    const hostile = fc.tuple(fc.constantFrom(...paths), hostileValue).map(([path, raw]) => {
      const copy = structuredClone(base);
      setAt(copy, path, HOLE);
      return JSON.stringify(copy).replace(JSON.stringify(HOLE), () => raw);
    });
    if (focused) {
      return fc.oneof(
        { weight: 1, arbitrary: fc.constant(undefined) },
        { weight: 4, arbitrary: fc.constant(JSON.stringify(base)) },
        { weight: 3, arbitrary: mutated },
        { weight: 4, arbitrary: hostile },
      );
    }
    return fc.oneof(
      { weight: 2, arbitrary: fc.constant(undefined) },
      { weight: 5, arbitrary: fc.constant(JSON.stringify(base)) },
      { weight: 4, arbitrary: mutated },
      { weight: 4, arbitrary: hostile },
      { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
      { weight: 1, arbitrary: fc.anything({ maxDepth: 3, withBoxedValues: true, withMap: true, withSet: true, withNullPrototype: true }).map((v) => { try { return JSON.stringify(v) ?? 'undefined'; } catch { return '{}'; } }) },
      { weight: 1, arbitrary: fc.constantFrom(...PROTO_BODIES) },
      { weight: 1, arbitrary: fc.constantFrom(...WEIRD_TEXT_BODIES) },
      { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) },
      { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 10, max: 100_000 }), fc.constantFrom('array', 'object', 'metadata', 'definition', 'context') as fc.Arbitrary<'array' | 'object' | 'metadata' | 'definition' | 'context'>).map(([d, k]) => nested(d, k)) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.integer({ min: -2048, max: 2048 }), fc.constantFrom('name', 'message', 'reason', 'description', 'source'), fc.constantFrom('x', 'é', '😀'))
          .map(([delta, field, ch]) => sized(BODY_LIMIT + delta, field, ch)),
      },
    );
  };

  const finish = (method: string, url: string, headers: Record<string, string | string[]>, payload: string | Buffer | undefined): FuzzRequest => {
    const size = payload === undefined ? 0 : Buffer.byteLength(payload);
    const shownUrl = url.length > 200 ? `${url.slice(0, 200)}…(${url.length})` : url;
    const label = `${method} ${shownUrl} ct=${String(headers['content-type'])} auth=${JSON.stringify(headers.authorization)?.slice(0, 40)} body=${size > 300 ? `<${size} bytes>` : JSON.stringify(String(payload))}`;
    return { method, url, headers, payload, label, [fc.toStringMethod]: () => label };
  };

  // Chaos: anything goes, in every dimension at once.
  const chaos = fc
    .tuple(fc.nat(), path, fc.constantFrom(...METHODS), fc.nat({ max: 9 }), auth, contentType, extraHeaders)
    .chain(([n, p, randomMethod, methodDice, authorization, ct, extra]) =>
      body(p.route?.key ?? null, n).map((payload) => {
        const method = p.route && methodDice < 8 ? p.route.method : randomMethod;
        const headers: Record<string, string | string[]> = { ...extra };
        if (authorization !== undefined) headers.authorization = authorization;
        if (ct !== undefined && payload !== undefined) headers['content-type'] = ct;
        else if (payload !== undefined && methodDice % 3 === 0) headers['content-type'] = 'application/json';
        return finish(method, p.path, headers, payload);
      }),
    );

  // Focused: a privileged caller, the route's own method, real ids and JSON, so the handlers run
  // and meet valid bodies, bodies with one wrong field, and bodies with one hostile field.
  const focusedAuth = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(`Bearer ${HARNESS_TOKEN}`, `Bearer ${fx.tokens.admin}`) },
    { weight: 1, arbitrary: fc.constantFrom(`Bearer ${fx.tokens.operator}`, `Bearer ${fx.tokens.agent}`) },
  );
  const focused = fc
    .tuple(fc.nat(), templatePathOf(true), focusedAuth)
    .chain(([n, p, authorization]) => body(p.route.key, n, true).map((payload) => finish(p.route.method, p.path, { authorization, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) }, payload)));

  return fc.oneof({ weight: 1, arbitrary: chaos }, { weight: 1, arbitrary: focused });
}

// ---------------------------------------------------------------------------------------------

async function makeFixture(h: Harness): Promise<Fixture> {
  const ok = async (method: string, path: string, body?: unknown): Promise<any> => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await h.req(method, path, body);
    if (r.status >= 300) throw new Error(`fixture ${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const fx: Fixture = { supervisors: [], agents: [], teams: [], policies: [], interventions: [], tokenIds: [], tokens: {} as Fixture['tokens'] };
  for (let i = 0; i < 3; i++) {
    const sup = await ok('POST', '/supervisors', { name: `fx-sup-${i}` });
    fx.supervisors.push(sup.id);
    const a1 = await ok('POST', '/agents', { name: `fx-a-${i}`, control_url: 'http://127.0.0.1:9/c' });
    const a2 = await ok('POST', '/agents', { name: `fx-b-${i}` });
    fx.agents.push(a1.id, a2.id);
    fx.teams.push((await ok('POST', `/supervisors/${sup.id}/teams`, { name: `fx-team-${i}`, agent_ids: [a1.id] })).id);
    fx.policies.push((await ok('POST', '/policies', { name: `fx-policy-${i}`, policy_type: 'INTERVENTION', definition: { condition: { type: 'field_comparison', field: 'agent.status', operator: '==', value: 'STALE' }, actions: [{ type: 'notify' }] } })).id);
    fx.interventions.push((await ok('POST', '/interventions', { supervisor_id: sup.id, intervention_type: 'NOTIFY', target_type: 'AGENT', target_id: a1.id, reason: 'fixture', approval_required: true })).id);
  }
  const mk = async (role: 'admin' | 'operator' | 'viewer' | 'agent', agent_id?: string) => (await h.tokens.create({ role, name: `fx-${role}`, agent_id }, null)).token;
  fx.tokens = { admin: await mk('admin'), operator: await mk('operator'), viewer: await mk('viewer'), agent: await mk('agent', fx.agents[0]), otherAgent: await mk('agent', fx.agents[2]), revoked: '' };
  const revoked = await h.tokens.create({ role: 'admin', name: 'fx-revoked' }, null);
  await h.tokens.revoke(revoked.id, null);
  fx.tokens.revoked = revoked.token;
  // Ids the fuzzer may revoke: not the callers' own tokens, or it would lock itself out early.
  for (let i = 0; i < 3; i++) fx.tokenIds.push((await h.tokens.create({ role: 'viewer', name: `fx-disposable-${i}` }, null)).id);
  fx.tokenIds.push(revoked.id);
  return fx;
}

/**
 * app.inject over synchronous SQLite can run request after request on microtasks alone, starving
 * timers (and with them the liveness ticker) in a way no socket-fed server sees; yield once per request.
 */
const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

const STACK_TRACE = /\n\s+at |node:internal|\.(?:ts|js|mjs):\d+:\d+/;

/** What is wrong with this exchange, if anything: a 5xx, a malformed 4xx, or a 4xx that wrote. */
function violation(r: FuzzRequest, res: { statusCode: number; body: string; headers: Record<string, unknown> }, before: Snapshot, after: Snapshot): string | null {
  const where = `${r.label} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
  if (res.statusCode >= 500) return `5xx: ${where}`;
  if (res.statusCode < 400) return null;
  if (STACK_TRACE.test(res.body)) return `stack trace in a 4xx body: ${where}`;
  if (r.method !== 'HEAD') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      return `4xx body is not JSON: ${where}`;
    }
    const b = (parsed ?? {}) as { error?: unknown; message?: unknown; details?: unknown };
    if (typeof b.error !== 'string' || typeof b.message !== 'string' || typeof b.details !== 'object' || b.details === null || Array.isArray(b.details)) {
      return `4xx body lacks {error, message, details}: ${where}`;
    }
  }
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    const changed = Object.keys(after.digest).filter((t) => after.digest[t] !== before.digest[t]);
    return `a 4xx changed the database (tables ${changed.join(', ')}; max seq ${before.maxSeq} -> ${after.maxSeq}): ${where}`;
  }
  return null;
}

async function fuzz(dialect: 'sqlite' | 'postgres', runs: number) {
  const h = await createHarness({ dialect, autoStartLoops: false });
  try {
    const fx = await makeFixture(h);
    const tables = await tablesOf(h);
    expect(tables).toEqual(expect.arrayContaining(['supervisors', 'agents', 'events', 'tokens', 'interventions']));
    let last = await snapshot(h, tables);
    const statuses = new Map<number, number>();
    process.stdout.write(`[fuzz ${dialect}] seed=${SEED} runs=${runs} (replay: FUZZ_SEED=${SEED})\n`);

    const collected: string[] = [];
    await fc.assert(
      fc.asyncProperty(requestArb(fx), async (r) => {
        const res = await h.app.inject({ method: r.method as 'GET', url: r.url, headers: r.headers, payload: r.payload });
        await macrotask();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        const now = await snapshot(h, tables);
        const problem = violation(r, res, last, now);
        last = now;
        const live = await h.app.inject({ method: 'GET', url: '/livez' });
        const failure = problem ?? (live.statusCode !== 200 ? `/livez answered ${live.statusCode} after ${r.label}` : null);
        if (failure && COLLECT) collected.push(failure);
        else if (failure) throw new Error(failure);
      }),
      // No shrinking: requests act on a database that moved on, and the labels are already short.
      { seed: SEED, numRuns: runs, endOnFailure: true },
    );
    if (collected.length) process.stdout.write(`[fuzz ${dialect}] ${collected.length} violations:\n${[...new Set(collected.map((c) => c.slice(0, 600)))].join('\n')}\n`);
    expect(collected.length, 'violations (listed above)').toBe(0);

    process.stdout.write(`[fuzz ${dialect}] statuses ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}\n`);
    // Both outcomes were exercised: requests that got through and requests refused as bad input.
    expect([...statuses.keys()].some((s) => s < 300)).toBe(true);
    expect([...statuses.keys()].filter((s) => s >= 400).length).toBeGreaterThan(3);
    // Still healthy and still serving real requests.
    expect((await h.req('GET', '/livez')).status).toBe(200);
    expect((await h.req('GET', '/readyz')).status).toBe(200);
    const list = await h.req('GET', '/supervisors?limit=5');
    expect(list.status).toBe(200);
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(Object.prototype).not.toHaveProperty('isAdmin');
    expect(({} as Record<string, unknown>).role).toBeUndefined();
  } finally {
    await h.close();
  }
}

/** Fixed hostile JSON texts for the exhaustive sweep: each goes into every field of every body. */
const HOSTILE_FIXED: { label: string; raw: string; heavy?: boolean }[] = [
  { label: 'object nested 4000 deep', raw: '{"a":'.repeat(4000) + '1' + '}'.repeat(4000) },
  { label: 'object nested 100000 deep', raw: '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000), heavy: true },
  { label: 'array nested 6000 deep', raw: '['.repeat(6000) + ']'.repeat(6000) },
  { label: 'array nested 30000 deep', raw: '['.repeat(30_000) + ']'.repeat(30_000), heavy: true },
  { label: 'string just under the body limit', raw: JSON.stringify('x'.repeat(BODY_LIMIT - 600)), heavy: true },
  { label: 'multi-byte string', raw: JSON.stringify('é😀'.repeat(20_000)) },
  { label: 'object with 5000 keys', raw: JSON.stringify(Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]))), heavy: true },
  { label: 'array of 20000 numbers', raw: JSON.stringify(Array.from({ length: 20_000 }, (_, i) => i)), heavy: true },
  { label: '__proto__ object', raw: '{"__proto__":{"polluted":true}}' },
  { label: 'constructor.prototype object', raw: '{"constructor":{"prototype":{"polluted":true}}}' },
  { label: 'huge number', raw: '1e308' },
  { label: 'unsafe integer', raw: '9007199254740993' },
  { label: 'negative zero', raw: '-0' },
  { label: 'lone surrogate', raw: '"\\ud800"' },
  { label: 'NUL character', raw: '"a\\u0000b"' },
  { label: 'NUL in a key', raw: '{"a\\u0000b":1}' },
  { label: 'SQL', raw: '"\'; DROP TABLE agents; --"' },
  { label: 'template', raw: '"${agent.id}${supervisor.id}"' },
  { label: 'internal URL', raw: '"http://169.254.169.254/latest/meta-data/"' },
];

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
const QUERY_KEYS = ['limit', 'cursor', 'after', 'status', 'supervisor_id', 'parent_id', 'team_id', 'agent_id', 'policy_id', 'actor', 'entity_type', 'resource', 'resource_id', 'since', 'until', 'verbose'];
const HOSTILE_QUERY_VALUES = [
  '', '0', '-1', '500', '9999', '999999999999999', '1e308', '%00', 'a%00b', 'x'.repeat(400), '%C0%AF', '%F0%9F%98%80', '2024-02-30T25:61:61Z', '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999Z', 'not-a-date', b64('1e300'), b64('99999999999999999999'), b64('-5'), b64('\u0000'), b64('x'.repeat(100)), b64('%'), 'ACTIVE', 'PENDING',
];

const CREATED_KIND: Record<string, keyof Fixture> = {
  'POST /api/v1/supervisors': 'supervisors',
  'POST /api/v1/agents': 'agents',
  'POST /api/v1/policies': 'policies',
  'POST /api/v1/interventions': 'interventions',
  'POST /api/v1/supervisors/:id/teams': 'teams',
};

/**
 * Every field of every request body (and the whole body) replaced by each hostile value, then every
 * read route over every resource, so what a hostile write stored is also served back without a 5xx.
 */
async function sweep(dialect: 'sqlite' | 'postgres', withHeavy: boolean) {
  const h = await createHarness({ dialect, autoStartLoops: false });
  try {
    const fx = await makeFixture(h);
    const tables = await tablesOf(h);
    let last = await snapshot(h, tables);
    const problems: string[] = [];
    const pools: Record<string, string[]> = { supervisors: fx.supervisors, agents: fx.agents, teams: fx.teams, policies: fx.policies, interventions: fx.interventions, tokens: fx.tokenIds, ':agentId': fx.agents, ':policyId': fx.policies };
    const fill = (template: string, pick: (kind: string) => string) => {
      const parts = template.split('/');
      return parts.map((p, i) => (p.startsWith(':') ? pick(p === ':id' ? parts[i - 1] : p) : p)).join('/');
    };
    const send = async (method: string, url: string, payload?: string) => {
      const headers = { authorization: `Bearer ${HARNESS_TOKEN}`, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) };
      const res = await h.app.inject({ method: method as 'GET', url, headers, payload });
      await macrotask();
      // Reads cannot write; only writes pay for a fresh snapshot.
      const now = method === 'GET' ? last : await snapshot(h, tables);
      const size = payload === undefined ? 0 : Buffer.byteLength(payload);
      const r: FuzzRequest = { method, url, headers, payload, label: `${method} ${url} body=${size > 200 ? `<${size} bytes>` : payload}` };
      const problem = violation(r, res, last, now);
      last = now;
      if (problem) problems.push(problem);
      return res;
    };
    let n = 0;
    for (const [key, valid] of Object.entries(validBodies(fx, 0))) {
      const [method, template] = key.split(' ');
      const paths: (string[] | null)[] = [null, ...fieldPaths(valid)];
      for (const path of paths) {
        for (const { raw } of HOSTILE_FIXED.filter((x) => withHeavy || !x.heavy)) {
          const body = structuredClone(validBodies(fx, ++n)[key]);
          let payload = raw;
          if (path) {
            setAt(body, path, HOLE);
            payload = JSON.stringify(body).replace(JSON.stringify(HOLE), () => raw);
          }
          const res = await send(method, fill(template, (k) => pools[k][0]), payload);
          const kind = CREATED_KIND[key];
          if (res.statusCode === 201 && kind) {
            const id = (JSON.parse(res.body) as { id?: string }).id;
            if (id) (fx[kind] as string[]).push(id);
          }
        }
      }
    }
    // Read back everything, including what the hostile writes stored.
    for (const key of [...Object.keys(PERMISSIONS), ...ROOT_ROUTES].filter((k) => k.startsWith('GET '))) {
      const template = key.slice(4);
      const kinds = template.split('/').flatMap((p, i, parts) => (p.startsWith(':') ? [p === ':id' ? parts[i - 1] : p] : []));
      const ids = kinds.length ? pools[kinds[0]] : [''];
      for (const id of ids) {
        for (const q of ['', '?limit=500']) await send('GET', fill(template, () => id) + q);
      }
      // Every query parameter this route accepts, with hostile values (routes without a query schema ignore them).
      const url = fill(template, () => ids[0]);
      if ((await send('GET', `${url}?not_a_parameter=1`)).statusCode !== 400) continue;
      for (const k of QUERY_KEYS) {
        const probe = await send('GET', `${url}?${k}=1`);
        if (probe.statusCode === 400 && probe.body.includes(`querystring.${k}: unknown field`)) continue;
        for (const v of HOSTILE_QUERY_VALUES) await send('GET', `${url}?${k}=${v}`);
      }
    }
    if (problems.length) process.stdout.write(`[sweep ${dialect}] ${problems.length} violations:\n${[...new Set(problems.map((p) => p.slice(0, 400)))].join('\n')}\n`);
    expect(problems.length, 'violations (listed above)').toBe(0);
    expect(await snapshot(h, tables), 'the reads wrote nothing').toEqual(last);
    expect((await h.req('GET', '/livez')).status).toBe(200);
  } finally {
    await h.close();
  }
}

describe('fuzzing the HTTP API', () => {
  it(`never answers 5xx, keeps the error shape, and a 4xx changes nothing (SQLite, seed ${SEED})`, async () => {
    await fuzz('sqlite', RUNS);
  }, 120_000);

  it(`holds on PostgreSQL too (shorter pass, seed ${SEED})`, async (t) => {
    if (!(await postgresAvailable())) t.skip();
    await fuzz('postgres', PG_RUNS);
  }, 120_000);

  it('every field of every body survives every hostile value, and what was stored reads back (SQLite)', async () => {
    await sweep('sqlite', true);
  }, 120_000);

  it('the hostile-value sweep holds on PostgreSQL too', async (t) => {
    if (!(await postgresAvailable())) t.skip();
    await sweep('postgres', false); // the heavy values test parsers and the stack, not the store
  }, 120_000);
});
