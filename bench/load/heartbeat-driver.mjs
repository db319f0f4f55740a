/**
 * Load generator process (forked by the suites) sending agent heartbeats over keep-alive HTTP.
 *
 *   mode "closed": `concurrency` requests in flight at all times, agents taken round-robin
 *                  (as fast as the server acknowledges);
 *   mode "open":   every agent sends one heartbeat every `intervalMs`, start times spread evenly
 *                  over the interval (a fleet on a timer, whatever the server's speed).
 *
 * A warm-up phase runs first and is not recorded. The parent is told over IPC when the measured
 * window starts and ends ({type:'window-start'|'window-end', at}); results go to `outFile` as JSON:
 * latencies, statuses, and with `recordAcks` every acknowledged heartbeat's
 * (agent, server commit time) pair for trigger-to-decision matching.
 *
 * Usage: node bench/load/heartbeat-driver.mjs <config.json>
 */
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.maxSockets ?? cfg.concurrency ?? 64 });
const target = new URL(cfg.url);
const ids = cfg.agentIds;
const normalBody = JSON.stringify({ metrics: cfg.metrics ?? { cpu: 0.5, anomaly_score: 0.1 } });
const rareBody = cfg.rare ? JSON.stringify({ metrics: cfg.rare.metrics }) : null;

let measuring = false;
let stopping = false;
const latencies = [];
const statuses = {};
let errors = 0;
let sent = 0;
let rareSent = 0;
let lateSends = 0;
let skipped = 0;
let unfinished = 0;
const maxInflight = cfg.maxInflight ?? Infinity;
let maxSendLagMs = 0;
const acks = cfg.recordAcks ? [] : null;
const openRequests = new Set();

function send(agentId) {
  return new Promise((resolve) => {
    const rare = rareBody && Math.random() < cfg.rare.probability;
    const body = rare ? rareBody : normalBody;
    const rec = measuring;
    if (rec) {
      sent++;
      if (rare) rareSent++;
    }
    const t0 = performance.now();
    const req = http.request({
      host: target.hostname,
      port: target.port,
      method: 'POST',
      path: `/api/v1/agents/${agentId}/heartbeat`,
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${cfg.token}` },
    });
    openRequests.add(req);
    req.once('close', () => openRequests.delete(req));
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      if (rec) errors++;
      resolve();
    });
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (rec) {
          latencies.push(performance.now() - t0);
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          if (acks && res.statusCode >= 200 && res.statusCode < 300) {
            try {
              const ack = JSON.parse(Buffer.concat(chunks).toString('utf8'));
              acks.push([agentId, Date.parse(ack.last_heartbeat_at), Date.now()]);
            } catch {
              // unparsable ack counts as a status only
            }
          }
        }
        resolve();
      });
    });
    req.end(body);
  });
}

async function closedLoop(until) {
  let i = 0;
  const inflight = new Set();
  const worker = async () => {
    while (!stopping && performance.now() < until()) {
      const p = send(ids[i++ % ids.length]);
      inflight.add(p);
      await p;
      inflight.delete(p);
    }
  };
  const workers = Promise.all(Array.from({ length: cfg.concurrency }, worker));
  while (!stopping && performance.now() < until()) await new Promise((r) => setTimeout(r, 20));
  await drain(inflight);
  await workers;
}

async function openLoop(until) {
  const interval = cfg.intervalMs;
  const start = performance.now();
  const n = ids.length;
  const due = ids.map((_, k) => start + (k / n) * interval);
  const inflight = new Set();
  let k = 0;
  // Agents are visited in due-time order: agent k is next due at due[k]; after a send it moves
  // one interval later, so the order never changes and a cursor suffices.
  while (!stopping && performance.now() < until()) {
    const now = performance.now();
    while (due[k] <= now) {
      const lag = now - due[k];
      if (measuring) {
        if (lag > 100) lateSends++;
        if (lag > maxSendLagMs) maxSendLagMs = lag;
      }
      if (inflight.size >= maxInflight) {
        // The server is this far behind: queueing more would only measure the client's queue.
        if (measuring) skipped++;
      } else {
        const p = send(ids[k]);
        inflight.add(p);
        void p.then(() => inflight.delete(p));
      }
      due[k] += interval;
      k = (k + 1) % n;
    }
    const wait = Math.max(1, Math.min(20, due[k] - performance.now()));
    await new Promise((r) => setTimeout(r, wait));
  }
  await drain(inflight);
}

/** Waits a little for requests still in flight, then abandons them (counted as unfinished). */
async function drain(inflight) {
  const grace = new Promise((r) => setTimeout(r, (cfg.drainS ?? 3) * 1000));
  await Promise.race([Promise.all(inflight), grace]);
  unfinished = inflight.size;
  for (const req of openRequests) req.destroy(new Error('abandoned at the end of the run'));
  agent.destroy();
}

process.on('SIGTERM', () => (stopping = true));

const warmupMs = (cfg.warmupS ?? 0) * 1000;
const durationMs = cfg.durationS * 1000;
const t0 = performance.now();
let windowStart = null;
let windowEnd = null;
const switcher = setInterval(() => {
  const now = performance.now();
  if (!measuring && windowStart === null && now - t0 >= warmupMs) {
    measuring = true;
    windowStart = Date.now();
    process.send?.({ type: 'window-start', at: windowStart });
  }
  if (measuring && now - t0 >= warmupMs + durationMs) {
    measuring = false;
    windowEnd = Date.now();
    process.send?.({ type: 'window-end', at: windowEnd });
    clearInterval(switcher);
  }
}, 5);

const stopAt = () => t0 + warmupMs + durationMs;
if (cfg.mode === 'open') await openLoop(stopAt);
else await closedLoop(stopAt);
clearInterval(switcher);
if (windowEnd === null) {
  // The switcher timer can be starved by a busy send loop: close the window (and tell the
  // parent, which samples the server between the two messages) here instead.
  windowEnd = Date.now();
  measuring = false;
  if (windowStart !== null) process.send?.({ type: 'window-end', at: windowEnd });
}
agent.destroy();

const elapsedS = (windowEnd - (windowStart ?? windowEnd)) / 1000;
const ok = Object.entries(statuses).reduce((a, [s, c]) => a + (Number(s) >= 200 && Number(s) < 300 ? c : 0), 0);
writeFileSync(
  cfg.outFile,
  JSON.stringify({
    window: { start: windowStart, end: windowEnd, seconds: elapsedS },
    sent,
    rare_sent: rareSent,
    ok_2xx: ok,
    non_2xx: latencies.length - ok,
    errors,
    statuses,
    rps: elapsedS ? ok / elapsedS : null,
    late_sends: lateSends,
    skipped_overloaded: skipped,
    unfinished_at_end: unfinished,
    max_send_lag_ms: maxSendLagMs,
    latencies_ms: latencies,
    acks,
  }),
);
process.send?.({ type: 'done' });
process.exit(0);
