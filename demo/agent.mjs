#!/usr/bin/env node
/**
 * A sample agent for the Overseer demo: an HTTP control endpoint that honours Idempotency-Key,
 * and (when given an agent id) a heartbeat sender with metrics.
 *
 *   node demo/agent.mjs --port 9301                      control endpoint only
 *   node demo/agent.mjs --port 9301 --api http://127.0.0.1:8080/api/v1 \
 *        --agent-id <id> --token <token> [--name a1] [--interval-ms 1000] \
 *        [--misbehave-after-ms 3000] [--slow-ms 2000]
 *
 * The token may come from the AGENT_TOKEN environment variable instead of --token (keeps it out
 * of the process list).
 *
 * Control endpoint:
 *   POST /control   an intervention from Overseer. The first delivery of a key applies the effect
 *                   once (after --slow-ms); a repeated key gets the stored answer, and one that
 *                   arrives while the first is still being applied waits for it. Never applied twice.
 *   GET  /deliveries  what arrived so far: per idempotency key, how many times and the effect.
 *
 * Plain ESM JavaScript, Node 20, no dependencies. Logs one line per event to stdout.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    name: { type: 'string', default: 'agent' },
    api: { type: 'string' },
    'agent-id': { type: 'string' },
    token: { type: 'string' },
    'interval-ms': { type: 'string', default: '1000' },
    'misbehave-after-ms': { type: 'string' },
    'slow-ms': { type: 'string', default: '0' },
  },
});

const name = args.name;
const token = args.token ?? process.env.AGENT_TOKEN;
const intervalMs = Number(args['interval-ms']);
const slowMs = Number(args['slow-ms']);
const misbehaveAfterMs = args['misbehave-after-ms'] === undefined ? null : Number(args['misbehave-after-ms']);
const startedAt = Date.now();

const log = (msg, extra = {}) => process.stdout.write(`${JSON.stringify({ t: new Date().toISOString(), agent: name, msg, ...extra })}\n`);

/** Per idempotency key: how often it arrived, and the one application of its effect. */
const byKey = new Map();
/** What this agent is doing; an applied intervention changes it exactly once. */
let mode = 'working';
let tasksDone = 0;

async function applyEffect(body) {
  // The "work" of the intervention: slow on purpose for the misbehaving agent.
  if (slowMs > 0) await new Promise((r) => setTimeout(r, slowMs));
  const before = mode;
  if (body.type === 'AGENT_QUARANTINE') mode = 'quarantined';
  else if (body.type === 'AGENT_RESTART') {
    tasksDone = 0;
    mode = 'working';
  }
  log('effect applied', { intervention_id: body.intervention_id, type: body.type, from: before, to: mode });
  return { ok: true, agent: name, applied: body.type, mode, applied_at: new Date().toISOString() };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, payload) {
  if (res.destroyed) return; // the caller went away (for example Overseer was killed)
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(payload));
}

const server = createServer(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/deliveries') {
    const keys = [...byKey.entries()].map(([key, e]) => ({ key, count: e.count, type: e.type, applied: e.applied }));
    return send(res, 200, { agent: name, mode, keys });
  }
  if (req.method !== 'POST' || path !== '/control') return send(res, 404, { error: 'not_found' });

  let body;
  try {
    body = JSON.parse((await readBody(req)) || '{}');
  } catch {
    return send(res, 400, { error: 'bad_request', message: 'body is not JSON' });
  }
  const key = req.headers['idempotency-key'];
  if (typeof key !== 'string' || !key) return send(res, 400, { error: 'bad_request', message: 'Idempotency-Key header is required' });

  let entry = byKey.get(key);
  const duplicate = entry !== undefined;
  if (!entry) {
    entry = { count: 0, type: body.type, applied: false, result: null };
    byKey.set(key, entry);
  }
  entry.count++;
  log('control request', { idempotency_key: key, type: body.type, delivery: entry.count, duplicate, in_progress: duplicate && !entry.applied, reason: body.reason });
  if (!duplicate) {
    const current = entry;
    current.result = applyEffect(body).then((r) => {
      current.applied = true;
      return r;
    });
  }
  try {
    const result = await entry.result;
    send(res, 200, { ...result, duplicate });
  } catch (err) {
    byKey.delete(key); // not applied: a retry may try again
    send(res, 500, { error: 'internal', message: String(err) });
  }
});

let heartbeatTimer = null;
let failures = 0;

async function heartbeat() {
  tasksDone += mode === 'working' ? 1 : 0;
  const misbehaving = misbehaveAfterMs !== null && Date.now() - startedAt >= misbehaveAfterMs;
  const metrics = {
    cpu: Math.round((misbehaving ? 0.9 : 0.2 + Math.random() * 0.2) * 100) / 100,
    memory_mb: 200 + Math.round(Math.random() * 50),
    tasks_done: tasksDone,
    anomaly_score: misbehaving ? 0.97 : Math.round(Math.random() * 10) / 100,
    mode,
  };
  try {
    const res = await fetch(`${args.api}/agents/${args['agent-id']}/heartbeat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ metrics }),
      signal: AbortSignal.timeout(2000),
    });
    await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    if (failures) log('heartbeats accepted again', { after_failures: failures });
    failures = 0;
  } catch (err) {
    // Overseer may be down (the demo kills it on purpose): keep trying, log once per outage.
    if (failures++ === 0) log('heartbeat failed; will keep trying', { error: err?.cause?.code ?? err?.message ?? String(err) });
  }
}

function scheduleHeartbeats() {
  const tick = async () => {
    await heartbeat();
    heartbeatTimer = setTimeout(tick, intervalMs);
  };
  heartbeatTimer = setTimeout(tick, 0);
}

function stop() {
  clearTimeout(heartbeatTimer);
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The demo runner is our parent: if it goes away, so do we.
process.on('disconnect', stop);

server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  log('control endpoint listening', { control_url: `http://${args.host}:${port}/control`, slow_ms: slowMs });
  if (args.api && args['agent-id'] && token) {
    scheduleHeartbeats();
    log('sending heartbeats', { every_ms: intervalMs, misbehave_after_ms: misbehaveAfterMs });
  }
});
