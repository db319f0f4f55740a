/**
 * scale: 50 supervisors x 100 agents (5,000 agents) heartbeating every second with 20 policies
 * assigned to every supervisor and interventions flowing to a local control endpoint; server CPU,
 * RSS, event-loop lag and GET /supervisors/{id}/health latency while it runs.
 */
import http from 'node:http';
import { withScope } from '../lib/scope.mjs';
import { copySqlite, freshDatabase, openReader, tempPostgres, tempSqlite } from '../lib/db.mjs';
import { ADMIN_TOKEN, spawnOverseer, stopProcess, waitFor200 } from '../lib/server.mjs';
import { apiClient } from '../lib/api.mjs';
import { createPolicies, seedFleet } from '../lib/seed.mjs';
import { runDriver } from '../lib/load.mjs';
import { startControlServer } from '../lib/control.mjs';
import { sampleProcess } from '../lib/procstat.mjs';
import { bucketDelta, buckets, histogramQuantile, scrape, value } from '../lib/prom.mjs';
import { figure } from '../lib/report.mjs';
import { log, percentile, request, round, sleep } from '../lib/util.mjs';

const SUPERVISORS = 50;
const AGENTS_PER = 100;
const INTERVAL_MS = 1000;
/** Per heartbeat: about one rare reading (and so one intervention) per second across the fleet. */
const RARE_PROBABILITY = 1 / (SUPERVISORS * AGENTS_PER);
const HEALTH_EVERY_MS = 50;
const LAG_METRIC = 'overseer_nodejs_eventloop_lag_p99_seconds';

/** Samples GET /api/v1/supervisors/{id}/health round-robin until stopped. */
function healthSampler(baseUrl, supervisorIds) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const latencies = [];
  const statuses = {};
  let stopped = false;
  let i = 0;
  const done = (async () => {
    while (!stopped) {
      const t0 = performance.now();
      const id = supervisorIds[i++ % supervisorIds.length];
      const r = await request(`${baseUrl}/api/v1/supervisors/${id}/health`, { agent, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }).catch(() => null);
      if (r) {
        latencies.push(r.ms);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      } else statuses.error = (statuses.error ?? 0) + 1;
      await sleep(Math.max(0, HEALTH_EVERY_MS - (performance.now() - t0)));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      agent.destroy();
      return { latencies, statuses };
    },
  };
}

/** Builds the fleet once on a fresh database through the API, then stops the server. */
export async function seed(scope, kind, control) {
  const dbInfo = await freshDatabase(scope, kind, 'scale-seed');
  const server = await spawnOverseer(scope, { databaseUrl: dbInfo.url });
  await waitFor200(server, { intervalMs: 20 });
  const api = apiClient(server.url);
  const t0 = performance.now();
  const policyIds = await createPolicies(api, 'scale');
  const fleet = await seedFleet(api, { supervisors: SUPERVISORS, agentsPer: AGENTS_PER, policyIds, controlUrl: (i) => control.url(`/agents/${i}`), prefix: 'scale' });
  api.close();
  const stop = await stopProcess(server);
  if (stop.code !== 0) throw new Error(`seeding server exited with ${stop.code ?? stop.signal}`);
  log(`  scale ${kind}: seeded ${SUPERVISORS}x${AGENTS_PER} agents + 20 policies in ${Math.round(performance.now() - t0)} ms`);
  return { dbInfo, fleet };
}

/** A copy of the seeded database for one run. */
async function runCopy(scope, kind, seeded) {
  if (kind === 'sqlite') {
    const t = tempSqlite(scope, 'scale-run');
    copySqlite(seeded.dbInfo.path, t.path);
    return { kind, ...t };
  }
  return { kind, ...(await tempPostgres(scope, 'scale_run', { template: seeded.dbInfo.name })) };
}

export async function oneRun(scope, kind, seeded, control, { duration, warmup }) {
  const dbInfo = await runCopy(scope, kind, seeded);
  const { fleet } = seeded;
  const deliveredBefore = control.stats();
  const server = await spawnOverseer(scope, { databaseUrl: dbInfo.url });
  await waitFor200(server, { intervalMs: 20 });

  // Idle reference for the event-loop lag figure (timer resolution and idle loops only).
  await sleep(2000);
  await scrape(server.url);
  await sleep(5000);
  const idleLag = value(await scrape(server.url), LAG_METRIC);

  const agentIds = fleet.flatMap((f) => f.agent_ids);
  const supervisorIds = fleet.map((f) => f.supervisor_id);
  const reader = await openReader(scope, dbInfo);
  let sampler = null;
  let health = null;
  let procStats = null;
  let healthStats = null;
  let lagP99 = null;
  let windowMetrics = null;
  let windowStartMetrics = null;
  const result = await runDriver(
    scope,
    {
      url: server.url,
      token: ADMIN_TOKEN,
      agentIds,
      mode: 'open',
      intervalMs: INTERVAL_MS,
      maxSockets: 64,
      maxInflight: SUPERVISORS * AGENTS_PER,
      drainS: 3,
      durationS: duration,
      warmupS: warmup,
      rare: { probability: RARE_PROBABILITY, metrics: { cpu: 0.5, anomaly_score: 0.995 } },
    },
    {
      windowStart: async () => {
        windowStartMetrics = await scrape(server.url); // also resets the event-loop delay histogram behind the lag gauges
        sampler = sampleProcess(server.pid, 500);
        health = healthSampler(server.url, supervisorIds);
      },
      windowEnd: async () => {
        procStats = sampler.stop();
        windowMetrics = await scrape(server.url);
        lagP99 = value(windowMetrics, LAG_METRIC);
        healthStats = await health.stop();
      },
    },
  );
  const from = new Date(result.window.start).toISOString();
  const to = new Date(result.window.end).toISOString();
  await sleep(2000); // let in-flight interventions reach the control endpoint
  const interventions = await reader.query('select status, count(*) as n from interventions where created_at >= ? and created_at < ? group by status', [from, to]);
  const evals = await reader.query('select sum(evaluated) as n from policy_evaluations where at >= ? and at < ?', [from, to]);
  const stale = await reader.query("select count(*) as n from agents where status = 'STALE'");
  await stopProcess(server);
  const out = {
    cpu_percent: procStats.cpu_percent,
    cpu_percent_max_interval: procStats.cpu_percent_max_interval,
    rss_max_mib: procStats.rss_max_mib,
    lag_p99_ms: lagP99 === null ? null : lagP99 * 1000,
    decision_p99_ms: windowStartMetrics && windowMetrics ? histogramQuantile(bucketDelta(buckets(windowMetrics, 'overseer_heartbeat_commit_seconds'), buckets(windowStartMetrics, 'overseer_heartbeat_commit_seconds')), 0.99)?.value * 1000 : null,
    idle_lag_p99_ms: idleLag === null ? null : idleLag * 1000,
    health_p99_ms: percentile(healthStats.latencies, 99),
    health_p50_ms: percentile(healthStats.latencies, 50),
    health_samples: healthStats.latencies.length,
    health_statuses: healthStats.statuses,
    hb_rps: result.rps,
    hb_p99_ms: percentile(result.latencies_ms, 99),
    hb_non2xx: result.non_2xx + result.errors,
    late_sends: result.late_sends,
    max_send_lag_ms: round(result.max_send_lag_ms, 1),
    rare_sent: result.rare_sent,
    interventions_created: Object.fromEntries(interventions.map((r) => [r.status, Number(r.n)])),
    control_endpoint: { deliveries: control.stats().deliveries - deliveredBefore.deliveries, distinct_keys: control.stats().distinct_keys - deliveredBefore.distinct_keys },
    sent: result.sent,
    skipped_overloaded: result.skipped_overloaded,
    unfinished_at_end: result.unfinished_at_end,
    evaluations_per_s: Number(evals[0].n) / result.window.seconds,
    stale_agents_at_end: Number(stale[0].n),
  };
  log(`scale ${kind}: CPU ${round(out.cpu_percent, 1)}% RSS ${round(out.rss_max_mib, 0)} MiB lag p99 ${round(out.lag_p99_ms, 1)} ms (idle ${round(out.idle_lag_p99_ms, 1)}) health p99 ${round(out.health_p99_ms, 2)} ms; heartbeats ${Math.round(out.hb_rps)}/s p99 ${round(out.hb_p99_ms, 1)} ms non-2xx ${out.hb_non2xx}; evaluations ${Math.round(out.evaluations_per_s)}/s; interventions ${JSON.stringify(out.interventions_created)} deliveries ${out.control_endpoint.deliveries}`);
  return out;
}

export async function scale({ runs, duration, warmup, databases }) {
  return withScope('scale', async (scope) => {
    const figures = [];
    const details = { supervisors: SUPERVISORS, agents_per_supervisor: AGENTS_PER, heartbeat_interval_ms: INTERVAL_MS, rare_probability: RARE_PROBABILITY, runs: {} };
    const control = await startControlServer(scope);
    for (const kind of databases) {
      log(`scale: seeding ${kind}`);
      const seeded = await seed(scope, kind, control);
      const rs = [];
      for (let i = 0; i < runs; i++) {
        log(`scale: ${kind} run ${i + 1}/${runs}`);
        rs.push(await withScope(`scale-${kind}-${i}`, (s) => oneRun(s, kind, seeded, control, { duration, warmup })));
      }
      details.runs[kind] = rs;
      const name = kind === 'sqlite' ? 'SQLite' : 'PostgreSQL';
      const col = (k) => rs.map((r) => r[k]);
      figures.push(
        figure({ id: `${kind}_cpu_percent`, label: `${name}: server CPU, % of one core`, unit: '%', values: col('cpu_percent'), digits: 1, target: { on: 'value', op: '<', value: 50 } }),
        figure({ id: `${kind}_rss_max_mib`, label: `${name}: server RSS, max`, unit: 'MiB', values: col('rss_max_mib'), digits: 0, target: { on: 'value', op: '<', value: 250 } }),
        figure({ id: `${kind}_decision_p99_ms`, label: `${name}: trigger-to-decision p99 (server: heartbeat received -> committed with its policy decision)`, unit: 'ms', values: col('decision_p99_ms'), digits: 2, target: { on: 'value', op: '<', value: 5 } }),
        figure({ id: `${kind}_lag_p99_ms`, label: `${name}: event-loop lag p99`, unit: 'ms', values: col('lag_p99_ms'), digits: 1, baseline: { label: 'same server idle, before the load', values: col('idle_lag_p99_ms') }, target: { on: 'value', op: '<', value: 20 } }),
        figure({ id: `${kind}_health_p99_ms`, label: `${name}: GET /supervisors/{id}/health p99`, unit: 'ms', values: col('health_p99_ms'), target: { on: 'value', op: '<', value: 10 } }),
        figure({ id: `${kind}_hb_rps`, label: `${name}: heartbeats acknowledged/s (offered 5,000/s)`, unit: '/s', values: col('hb_rps'), digits: 0 }),
        figure({ id: `${kind}_hb_p99_ms`, label: `${name}: heartbeat latency p99`, unit: 'ms', values: col('hb_p99_ms'), digits: 1 }),
        figure({ id: `${kind}_evals_per_s`, label: `${name}: policy evaluations persisted/s`, unit: '/s', values: col('evaluations_per_s'), digits: 0 }),
        figure({ id: `${kind}_hb_non2xx`, label: `${name}: heartbeat non-2xx + errors`, unit: '', values: col('hb_non2xx'), digits: 0 }),
      );
    }
    return {
      figures,
      details,
      method: [
        `Fleet built through the API on a fresh database: ${SUPERVISORS} supervisors, each with one team of ${AGENTS_PER} agents whose control_url points at a local control endpoint in the benchmark process (answers 200, counts Idempotency-Keys), and the 20 policies of bench/lib/seed.mjs assigned to every supervisor (default supervisor config: sweep every 10 s, cool-down 300 s).`,
        `Load: bench/load/heartbeat-driver.mjs in a child process, open loop: each of the ${SUPERVISORS * AGENTS_PER} agents sends one heartbeat every ${INTERVAL_MS} ms, start times spread evenly over the second, over at most 64 keep-alive connections. A heartbeat carries anomaly_score 0.995 with probability 1/${SUPERVISORS * AGENTS_PER} (about one per second fleet-wide); the policy \`rare-anomaly-restart\` turns it into an AGENT_RESTART delivered to the control endpoint.`,
        'Measured window = the run duration after the warm-up. CPU: utime+stime deltas of the server process from /proc/<pid>/stat over the window, as % of one core. RSS: max of /proc/<pid>/status VmRSS sampled every 500 ms.',
        `Event-loop lag: \`${LAG_METRIC}\` from GET /metrics at the end of the window (prom-client resets its histogram on each scrape; the suite scrapes at the window start). It includes the 10 ms sampling resolution: the idle reference (same server, 5 s idle before the load) is shown as the baseline.`,
        `Health: the benchmark process requests GET /api/v1/supervisors/{id}/health every ${HEALTH_EVERY_MS} ms round-robin over the supervisors during the window; p99 of the client-side latency.`,
      ],
    };
  });
}
