/**
 * evaluation: policy evaluations/s with 20 policies assigned to one supervisor of 100 agents,
 * every evaluation record persisted, while heartbeats for those agents arrive as fast as the
 * server acknowledges them; and trigger-to-decision latency (heartbeat commit -> the evaluation
 * of that agent that covers it).
 */
import { withScope } from '../lib/scope.mjs';
import { freshDatabase, openReader } from '../lib/db.mjs';
import { ADMIN_TOKEN, spawnOverseer, stopProcess, waitFor200 } from '../lib/server.mjs';
import { apiClient } from '../lib/api.mjs';
import { createPolicies, seedFleet } from '../lib/seed.mjs';
import { runDriver } from '../lib/load.mjs';
import { bucketDelta, buckets, histogramQuantile, scrape } from '../lib/prom.mjs';
import { figure } from '../lib/report.mjs';
import { log, percentile, round, sleep, until } from '../lib/util.mjs';

const AGENTS = 100;
const CONCURRENCY = 50;

/** For each acknowledged heartbeat, the first heartbeat-triggered evaluation of its agent at or after its commit time. */
function matchDecisions(acks, decisions) {
  const byAgent = new Map();
  for (const d of decisions) {
    let list = byAgent.get(d.agent_id);
    if (!list) byAgent.set(d.agent_id, (list = []));
    list.push(Date.parse(d.at));
  }
  for (const list of byAgent.values()) list.sort((a, b) => a - b);
  const latencies = [];
  let unmatched = 0;
  for (const [agentId, commitMs] of acks) {
    const list = byAgent.get(agentId);
    if (!list) {
      unmatched++;
      continue;
    }
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid] < commitMs) lo = mid + 1;
      else hi = mid;
    }
    if (lo === list.length) unmatched++;
    else latencies.push(list[lo] - commitMs);
  }
  return { latencies, unmatched };
}

async function oneDatabase(scope, kind, { runs, duration, warmup }) {
  const dbInfo = await freshDatabase(scope, kind, 'eval');
  const server = await spawnOverseer(scope, { databaseUrl: dbInfo.url });
  await waitFor200(server, { intervalMs: 20 });
  const api = apiClient(server.url);
  const policyIds = await createPolicies(api, 'eval');
  const [fleet] = await seedFleet(api, { supervisors: 1, agentsPer: AGENTS, policyIds, prefix: 'eval' });
  api.close();
  const reader = await openReader(scope, dbInfo);
  const out = { evals_per_s: [], heartbeat_evals_per_s: [], decision_p99: [], decision_p50: [], eval_commit_p99: [], hb_rps: [], hb_p99: [], unmatched: [], records: [] };

  for (let i = 0; i < runs; i++) {
    let before = null;
    let after = null;
    const result = await runDriver(
      scope,
      { url: server.url, token: ADMIN_TOKEN, agentIds: fleet.agent_ids, mode: 'closed', concurrency: CONCURRENCY, maxSockets: CONCURRENCY, durationS: duration, warmupS: warmup, recordAcks: true },
      {
        windowStart: async () => (before = await scrape(server.url)),
        windowEnd: async () => (after = await scrape(server.url)),
      },
    );
    // Let the supervisor finish evaluating what was acknowledged, then read the audit rows.
    await until(async () => (await reader.query('select count(*) as n from agents where heartbeat_count > evaluated_count and supervisor_id = ?', [fleet.supervisor_id]))[0].n == 0, { timeoutMs: 60_000, intervalMs: 100, what: 'evaluations to catch up' });
    const from = new Date(result.window.start).toISOString();
    const to = new Date(result.window.end).toISOString();
    const counts = await reader.query('select trigger, sum(evaluated) as n from policy_evaluations where supervisor_id = ? and at >= ? and at < ? group by trigger', [fleet.supervisor_id, from, to]);
    const total = counts.reduce((a, r) => a + Number(r.n), 0);
    const hb = Number(counts.find((r) => r.trigger === 'heartbeat')?.n ?? 0);
    const decisions = await reader.query("select distinct agent_id, at from policy_evaluations where supervisor_id = ? and trigger = 'heartbeat' and at >= ?", [fleet.supervisor_id, from]);
    const { latencies, unmatched } = matchDecisions(result.acks, decisions);
    const hist = before && after ? histogramQuantile(bucketDelta(buckets(after, 'overseer_policy_evaluation_seconds', { trigger: 'heartbeat' }), buckets(before, 'overseer_policy_evaluation_seconds', { trigger: 'heartbeat' })), 0.99) : null;
    out.evals_per_s.push(total / result.window.seconds);
    out.heartbeat_evals_per_s.push(hb / result.window.seconds);
    // Heartbeat-triggered decisions are committed in the heartbeat's own transaction, so a 2xx
    // means the decision is durable: trigger-to-decision is the client-observed request time.
    out.decision_p99.push(percentile(result.latencies_ms, 99));
    out.decision_p50.push(percentile(result.latencies_ms, 50));
    out.commit_to_decision_p99 ??= [];
    out.commit_to_decision_p99.push(percentile(latencies, 99));
    out.eval_commit_p99.push(hist ? hist.value * 1000 : null);
    const serverDecision = before && after ? histogramQuantile(bucketDelta(buckets(after, 'overseer_heartbeat_commit_seconds'), buckets(before, 'overseer_heartbeat_commit_seconds')), 0.99) : null;
    out.server_decision_p99 ??= [];
    out.server_decision_p99.push(serverDecision ? serverDecision.value * 1000 : null);
    if (hist?.upperBound === Infinity) out.eval_commit_capped = true;
    out.hb_rps.push(result.rps);
    out.hb_p99.push(percentile(result.latencies_ms, 99));
    out.unmatched.push(unmatched);
    out.records.push({ by_trigger: Object.fromEntries(counts.map((r) => [r.trigger, Number(r.n)])), acks: result.acks.length, non_2xx: result.non_2xx, errors: result.errors });
    log(`evaluation run ${i + 1}/${runs} ${kind}: ${Math.round(total / result.window.seconds)} evaluations/s (${Math.round(hb / result.window.seconds)} heartbeat-triggered), decision p50 ${percentile(latencies, 50)} p99 ${percentile(latencies, 99)} ms, eval+commit p99 ~${hist ? round(hist.value * 1000, 2) : '?'} ms, heartbeats ${Math.round(result.rps)}/s, unmatched ${unmatched}`);
    await sleep(500);
  }
  await stopProcess(server);
  return out;
}

export async function evaluation({ runs, duration, warmup, databases }) {
  return withScope('evaluation', async (scope) => {
    const figures = [];
    const details = { agents: AGENTS, policies: 20, concurrency: CONCURRENCY, runs: {} };
    for (const kind of databases) {
      log(`evaluation: ${kind}`);
      const r = await oneDatabase(scope, kind, { runs, duration, warmup });
      const name = kind === 'sqlite' ? 'SQLite' : 'PostgreSQL';
      figures.push(
        figure({ id: `${kind}_evals_per_s`, label: `${name}: policy evaluations/s persisted (all triggers)`, unit: '/s', values: r.evals_per_s, digits: 0, target: { on: 'value', op: '>=', value: 20000 } }),
        figure({ id: `${kind}_hb_evals_per_s`, label: `${name}: of which heartbeat-triggered`, unit: '/s', values: r.heartbeat_evals_per_s, digits: 0 }),
        figure({ id: `${kind}_server_decision_p99_ms`, label: `${name}: trigger-to-decision p99 at saturation (server: heartbeat received -> committed with its decision)`, unit: 'ms', values: r.server_decision_p99, target: { on: 'value', op: '<', value: 5 } }),
        figure({ id: `${kind}_decision_p99_ms`, label: `${name}: client request -> 2xx p99 at saturation (includes HTTP and queueing)`, unit: 'ms', values: r.decision_p99 }),
        figure({ id: `${kind}_decision_p50_ms`, label: `${name}: trigger-to-decision p50`, unit: 'ms', values: r.decision_p50 }),
        figure({ id: `${kind}_eval_commit_p99_ms`, label: `${name}: evaluate + commit one batch p99 (server histogram)`, unit: 'ms', values: r.eval_commit_p99, note: r.eval_commit_capped ? 'beyond the last bucket (1 s): at least this' : undefined }),
        figure({ id: `${kind}_hb_rps`, label: `${name}: heartbeats/s acknowledged meanwhile`, unit: '/s', values: r.hb_rps, digits: 0 }),
        figure({ id: `${kind}_hb_p99_ms`, label: `${name}: heartbeat latency p99 meanwhile`, unit: 'ms', values: r.hb_p99 }),
      );
      details.runs[kind] = { unmatched_acks: r.unmatched, records: r.records };
    }
    return {
      figures,
      details,
      method: [
        `One supervisor with one team of ${AGENTS} agents and the 20 policies of bench/lib/seed.mjs assigned (none matches the metrics sent, so no intervention is created), built through the API on a fresh database.`,
        `Load: bench/load/heartbeat-driver.mjs in a child process keeps ${CONCURRENCY} heartbeats in flight (closed loop), round-robin over the ${AGENTS} agents, for the run duration after a ${warmup} s warm-up.`,
        'Evaluations/s = policies evaluated (sum of policy_evaluations.evaluated: one record holds every policy evaluated for one agent and trigger) whose `at` falls inside the measured window / window length, all committed. Sweeps (every policy_evaluation_interval_seconds = 10 s) are counted in the total and shown apart in bench/results.json.',
        'Trigger-to-decision: a heartbeat is evaluated against every assigned policy inside the same group-commit transaction that stores it, so its 2xx means the decision (and any intervention it caused) is committed. The target figure is the server histogram `overseer_heartbeat_commit_seconds` (heartbeat received by the handler -> committed with its decision; p99 interpolated from the histogram delta over the window), measured here at saturation (closed loop, 50 connections, as fast as the server goes); the client-observed request -> 2xx p99 (HTTP and queueing included) is shown beside it. The scale suite reports the same histogram at a paced 5,000 heartbeats/s.',
      ],
    };
  });
}
