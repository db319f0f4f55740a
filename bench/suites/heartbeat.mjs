/**
 * heartbeat: durable heartbeats/s over HTTP, 50 connections, against
 * POST /api/v1/agents/{id}/heartbeat spread over 1,000 registered agents, SQLite and PostgreSQL.
 * Baselines in the same run: bench/baseline-server.mjs doing one raw upsert per request
 * (better-sqlite3 WAL synchronous=FULL; `pg` over a pool of 10).
 */
import Database from 'better-sqlite3';
import { withScope } from '../lib/scope.mjs';
import { pgClient, tempPostgres, tempSqlite } from '../lib/db.mjs';
import { ADMIN_TOKEN, spawnBaseline, spawnOverseer, stopProcess, waitFor200 } from '../lib/server.mjs';
import { apiClient } from '../lib/api.mjs';
import { createAgents } from '../lib/seed.mjs';
import { runAutocannon } from '../lib/load.mjs';
import { buckets, scrape, value } from '../lib/prom.mjs';
import { figure } from '../lib/report.mjs';
import { log, round } from '../lib/util.mjs';

const AGENTS = 1000;
const CONNECTIONS = 50;
const BODY = { metrics: { cpu: 0.5, anomaly_score: 0.1 } };

async function setup(scope, db) {
  let overseerUrl;
  let baselineOpts;
  let committed;
  if (db === 'sqlite') {
    const o = tempSqlite(scope, 'hb-overseer');
    const b = tempSqlite(scope, 'hb-baseline');
    overseerUrl = o.url;
    baselineOpts = { mode: 'sqlite-upsert', sqlitePath: b.path };
    committed = () => {
      const d = new Database(o.path, { readonly: true, fileMustExist: true });
      try {
        return d.prepare('select coalesce(sum(heartbeat_count), 0) as n from agents').get().n;
      } finally {
        d.close();
      }
    };
  } else {
    const o = await tempPostgres(scope, 'hb_overseer');
    const b = await tempPostgres(scope, 'hb_baseline');
    overseerUrl = o.url;
    baselineOpts = { mode: 'pg-upsert', pgUrl: b.url };
    committed = async () => {
      const c = await pgClient(scope, o.url);
      const r = await c.query('select coalesce(sum(heartbeat_count), 0)::bigint as n from agents');
      return Number(r.rows[0].n);
    };
  }
  const overseer = await spawnOverseer(scope, { databaseUrl: overseerUrl });
  await waitFor200(overseer, { intervalMs: 20 });
  const api = apiClient(overseer.url);
  const agentIds = await createAgents(api, AGENTS, { prefix: 'hb' });
  api.close();
  const baseline = await spawnBaseline(scope, baselineOpts);
  await waitFor200(baseline, { intervalMs: 20 });
  return { overseer, baseline, agentIds, committed };
}

function load(scope, target, agentIds, duration, token) {
  return runAutocannon(scope, { url: target.url, token, agentIds, connections: CONNECTIONS, duration, body: BODY });
}

export async function heartbeat({ runs, duration, warmup, databases }) {
  return withScope('heartbeat', async (scope) => {
    const targets = {};
    for (const db of databases) {
      log(`heartbeat: setting up ${db} (overseer + baseline, ${AGENTS} agents)`);
      targets[db] = await setup(scope, db);
    }
    const acked = Object.fromEntries(databases.map((d) => [d, 0]));
    if (warmup > 0) {
      for (const db of databases) {
        const t = targets[db];
        await load(scope, t.baseline, t.agentIds, warmup);
        acked[db] += (await load(scope, t.overseer, t.agentIds, warmup, ADMIN_TOKEN)).ok_2xx;
      }
    }
    const batchBefore = {};
    for (const db of databases) batchBefore[db] = buckets(await scrape(targets[db].overseer.url), 'overseer_heartbeat_batch_size');

    const res = Object.fromEntries(databases.flatMap((d) => [[`${d}_overseer`, []], [`${d}_baseline`, []]]));
    for (let i = 0; i < runs; i++) {
      for (const db of databases) {
        const t = targets[db];
        const b = await load(scope, t.baseline, t.agentIds, duration);
        const o = await load(scope, t.overseer, t.agentIds, duration, ADMIN_TOKEN);
        acked[db] += o.ok_2xx;
        res[`${db}_baseline`].push(b);
        res[`${db}_overseer`].push(o);
        log(`heartbeat run ${i + 1}/${runs} ${db}: baseline ${Math.round(b.rps)}/s p99 ${b.latency_ms.p99} ms; overseer ${Math.round(o.rps)}/s p50 ${o.latency_ms.p50} p99 ${o.latency_ms.p99} ms non-2xx ${o.non_2xx + o.errors}`);
      }
    }

    const figures = [];
    const details = { agents: AGENTS, connections: CONNECTIONS, body: BODY, durability_check: {}, batch_size: {} };
    for (const db of databases) {
      const name = db === 'sqlite' ? 'SQLite' : 'PostgreSQL';
      const o = res[`${db}_overseer`];
      const b = res[`${db}_baseline`];
      const baseLabel = db === 'sqlite' ? 'bare Fastify, one better-sqlite3 upsert per request' : 'bare Fastify, one pg upsert per request (pool 10)';
      figures.push(
        figure({ id: `${db}_rps`, label: `${name}: durable heartbeats/s`, unit: '/s', values: o.map((x) => x.rps), digits: 0, baseline: { label: baseLabel, values: b.map((x) => x.rps) }, target: { on: 'ratio', op: '>=', value: db === 'sqlite' ? 4 : 3 } }),
        figure({ id: `${db}_p50_ms`, label: `${name}: latency p50`, unit: 'ms', values: o.map((x) => x.latency_ms.p50), baseline: { label: baseLabel, values: b.map((x) => x.latency_ms.p50) } }),
        figure({ id: `${db}_p99_ms`, label: `${name}: latency p99`, unit: 'ms', values: o.map((x) => x.latency_ms.p99), baseline: { label: baseLabel, values: b.map((x) => x.latency_ms.p99) }, ...(db === 'sqlite' ? { target: { on: 'value', op: '<', value: 15 } } : {}) }),
        figure({ id: `${db}_non2xx`, label: `${name}: non-2xx + errors per run`, unit: '', values: o.map((x) => x.non_2xx + x.errors + x.timeouts), digits: 0, target: { on: 'value', op: '<=', value: 0 } }),
      );
      const url = targets[db].overseer.url;
      const after = await scrape(url);
      const bk = buckets(after, 'overseer_heartbeat_batch_size');
      const sum = value(after, 'overseer_heartbeat_batch_size_sum');
      const count = value(after, 'overseer_heartbeat_batch_size_count');
      details.batch_size[db] = { mean_over_process: count ? round(sum / count, 1) : null, commits: count, buckets: bk.map(([le, c]) => [le === Infinity ? '+Inf' : le, c]) };
      await stopProcess(targets[db].overseer);
      const stored = await targets[db].committed();
      details.durability_check[db] = { acknowledged: acked[db], committed_heartbeat_count_sum: stored, ok: stored >= acked[db] };
      if (stored < acked[db]) log(`heartbeat ${db}: DURABILITY CHECK FAILED: ${acked[db]} acknowledged, ${stored} in the database`);
    }
    return {
      figures,
      details,
      method: [
        `Overseer: \`node dist/main.js serve\` on a fresh database with ${AGENTS} agents registered through the API (no supervisor, so a heartbeat is pure ingest: the group-committed row update + journal, no policy evaluation). Admin bearer token on every request; the per-token ingest rate limit is lifted (\`OVERSEER_INGEST_RATE_LIMIT=10000000\`, default 20,000/s) so the figure is the server's, not the limiter's.`,
        `Load: autocannon in a child process, ${CONNECTIONS} connections, each request POST /api/v1/agents/{id}/heartbeat with the next of the ${AGENTS} agent ids, body \`${JSON.stringify(BODY)}\`. "Durable heartbeats/s" = 2xx responses / run duration; a 2xx is sent only after the commit holding the heartbeat.`,
        'Baselines (same run, same load, interleaved run by run with Overseer): `bench/baseline-server.mjs` mode `sqlite-upsert` (Fastify + one prepared better-sqlite3 `insert ... on conflict do update` per request, WAL, synchronous=FULL) and mode `pg-upsert` (one `pg` upsert per request over a pool of 10).',
        `A warm-up of ${warmup} s per server precedes the measured runs. After the runs the suite checks that the sum of heartbeat_count in the database is at least the number of acknowledged heartbeats (details.durability_check in bench/results.json).`,
      ],
    };
  });
}
