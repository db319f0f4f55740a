#!/usr/bin/env node
/**
 * `npm run demo`: Overseer surviving a kill -9 in the middle of an intervention.
 *
 * Starts the real server (`node dist/main.js serve`) on a scratch SQLite file, three sample agents
 * (demo/agent.mjs) with control endpoints and heartbeats, a supervisor, a team and a policy
 * `agent.metrics.anomaly_score > 0.9 -> quarantine_agent`. One agent starts misbehaving and its
 * control endpoint answers slowly; while the quarantine is EXECUTING the server is killed with
 * SIGKILL, restarted on the same file, and the demo reports what survived and how long recovery took.
 *
 * Plain ESM JavaScript (Node 20), no dependencies beyond the built server in dist/.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'dist', 'main.js');
const AGENT = join(ROOT, 'demo', 'agent.mjs');

const MISBEHAVE_AFTER_MS = 3000;
const SLOW_MS = 2000;
const GRACE_MS = 5000;

const t0 = Date.now();
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`;
const say = (msg) => process.stdout.write(`${stamp()} ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Children and cleanup: every child is tracked and killed on exit, error or Ctrl-C.

const children = new Set();
let workDir = null;
let cleanedUp = false;

function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stdout.write(`\n${stamp()} ${sig}: stopping the demo and its child processes\n`);
    cleanup();
    process.exit(130);
  });
}

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function until(what, fn, { timeoutMs = 15_000, everyMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The server process.

const port = await freePort();
const BASE = `http://127.0.0.1:${port}`;
const API = `${BASE}/api/v1`;
const ADMIN_TOKEN = `demo-${randomBytes(16).toString('hex')}`;
workDir = mkdtempSync(join(tmpdir(), 'overseer-demo-'));
const DATABASE_URL = `sqlite:${join(workDir, 'overseer.db')}`;
let serverLog = '';
let server = null;

/** Spawns `node dist/main.js serve` and resolves once /readyz answers 200, with the time it took. */
async function startServer() {
  const spawnedAt = performance.now();
  const child = track(
    spawn(process.execPath, [MAIN, 'serve'], {
      env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), DATABASE_URL, OVERSEER_ADMIN_TOKEN: ADMIN_TOKEN, OVERSEER_SHUTDOWN_GRACE_MS: String(GRACE_MS), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  const keep = (d) => (serverLog = (serverLog + d).slice(-20_000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void child.exited.then(() => (gone = true));
  await until(
    'the server to become ready (/readyz 200)',
    async () => {
      if (gone) throw new Error('the server exited before it became ready');
      const r = await fetch(`${BASE}/readyz`).catch(() => null);
      if (r) await r.text();
      return r?.status === 200;
    },
    { timeoutMs: 20_000, everyMs: 5 },
  );
  server = child;
  return { child, readyMs: performance.now() - spawnedAt };
}

async function call(method, path, body, token = ADMIN_TOKEN) {
  const res = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${path} -> ${res.status} ${text}`);
  return json;
}

/** Every item of a paginated list. */
async function all(path) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await call('GET', `${path}${sep}limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

async function allEvents(supervisorId) {
  const items = [];
  let after = 0;
  for (;;) {
    const page = await call('GET', `/events?supervisor_id=${supervisorId}&after=${after}&limit=1000`);
    items.push(...page.items);
    if (!page.next_cursor) return items;
    after = page.next_cursor;
  }
}

// ---------------------------------------------------------------------------------------------
// The agents.

const agents = [];

function startAgent(a) {
  const args = [AGENT, '--name', a.name, '--port', String(a.port), '--api', API, '--agent-id', a.id, '--interval-ms', '1000'];
  if (a.misbehaves) args.push('--misbehave-after-ms', String(MISBEHAVE_AFTER_MS), '--slow-ms', String(SLOW_MS));
  // The IPC channel lets an agent notice when this runner dies, even by SIGKILL.
  const child = track(spawn(process.execPath, args, { env: { ...process.env, AGENT_TOKEN: a.token }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] }));
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      showAgentLine(line);
    }
  });
  a.child = child;
}

function showAgentLine(line) {
  let e;
  try {
    e = JSON.parse(line);
  } catch {
    return say(`  ${line}`);
  }
  const who = `agent ${e.agent}`.padEnd(17);
  if (e.msg === 'control request') {
    say(`  ${who}| control request: ${e.type}, Idempotency-Key ${e.idempotency_key}, delivery #${e.delivery}${e.duplicate ? ` (duplicate${e.in_progress ? ', first one still in progress: waiting for it' : ': answering the stored result'})` : ''}`);
  } else if (e.msg === 'effect applied') {
    say(`  ${who}| applied ${e.type} once: mode ${e.from} -> ${e.to}`);
  } else if (e.msg === 'heartbeat failed; will keep trying') {
    say(`  ${who}| heartbeat failed (${e.error}); retrying every second`);
  } else if (e.msg === 'heartbeats accepted again') {
    say(`  ${who}| heartbeats accepted again`);
  } else if (e.msg === 'control endpoint listening') {
    say(`  ${who}| control endpoint ${e.control_url}${e.slow_ms ? ` (answers after ${e.slow_ms} ms)` : ''}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshots: what the API says, before the kill and after the restart.

async function snapshot(supId) {
  const [supervisors, agentRows, teams, policies, interventions] = await Promise.all([
    all('/supervisors'),
    all('/agents'),
    all(`/supervisors/${supId}/teams`),
    all('/policies'),
    all(`/supervisors/${supId}/interventions`),
  ]);
  return { supervisors, agents: agentRows, teams, policies, interventions };
}

const ids = (rows) => rows.map((r) => r.id).sort().join(',');

// ---------------------------------------------------------------------------------------------

async function main() {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm run demo does)`);
  say(`scratch database ${DATABASE_URL}`);

  const first = await startServer();
  say(`server started (pid ${first.child.pid}) on ${BASE}; ready after ${first.readyMs.toFixed(0)} ms`);

  const sup = await call('POST', '/supervisors', { name: 'demo-fleet', description: 'npm run demo', config: { heartbeat_interval_seconds: 1, policy_evaluation_interval_seconds: 1 } });
  say(`supervisor "${sup.name}" ${sup.id}: ${sup.status}`);

  for (const [i, name] of ['alpha', 'bravo', 'charlie'].entries()) {
    const agentPort = await freePort();
    const misbehaves = i === 2;
    const row = await call('POST', '/agents', { name, control_url: `http://127.0.0.1:${agentPort}/control`, metadata: { demo: true, misbehaves } });
    const tok = await call('POST', '/tokens', { role: 'agent', name: `${name}-token`, agent_id: row.id });
    agents.push({ name, id: row.id, port: agentPort, token: tok.token, misbehaves });
  }
  say(`registered agents ${agents.map((a) => a.name).join(', ')} with control_url and one agent-role token each`);

  const team = await call('POST', `/supervisors/${sup.id}/teams`, { name: 'demo-team', objective: 'process the demo workload', agent_ids: agents.map((a) => a.id) });
  say(`team "${team.name}" with ${team.members.length} members`);

  const policy = await call('POST', '/policies', {
    name: 'quarantine-anomalous',
    policy_type: 'INTERVENTION',
    description: 'quarantine an agent whose anomaly score goes above 0.9',
    definition: {
      condition: { type: 'field_comparison', field: 'agent.metrics.anomaly_score', operator: '>', value: 0.9 },
      actions: [{ type: 'quarantine_agent', reason: 'anomaly_score ${agent.metrics.anomaly_score} > 0.9' }],
    },
  });
  // Four-eyes (on by default): a second admin activates the version the first one wrote.
  const reviewer = await call('POST', '/tokens', { role: 'admin', name: 'demo-reviewer' });
  await call('POST', `/policies/${policy.id}/activate`, {}, reviewer.token);
  await call('POST', `/supervisors/${sup.id}/policies`, { policy_id: policy.id, priority: 10 });
  say(`policy "${policy.name}" (agent.metrics.anomaly_score > 0.9 -> quarantine_agent) activated by a second admin and assigned`);

  for (const a of agents) startAgent(a);
  const bad = agents.find((a) => a.misbehaves);
  say(`agents started; "${bad.name}" will report anomaly_score 0.97 after ${MISBEHAVE_AFTER_MS / 1000} s and its control endpoint answers after ${SLOW_MS / 1000} s`);

  const executing = await until(
    'the quarantine intervention to be EXECUTING',
    async () => (await call('GET', `/supervisors/${sup.id}/interventions?status=EXECUTING`)).items.find((i) => i.intervention_type === 'AGENT_QUARANTINE'),
    { timeoutMs: 20_000, everyMs: 20 },
  );
  say(`intervention ${executing.id} ${executing.intervention_type} -> ${bad.name} is EXECUTING (attempt ${executing.attempts})`);

  const before = await snapshot(sup.id);
  const killedAt = performance.now();
  server.kill('SIGKILL');
  const killed = await server.exited;
  say(`>>> server killed with ${killed.signal} in the middle of the intervention <<<`);

  await sleep(300); // a moment of downtime: agents notice their heartbeats failing
  const second = await startServer();
  const recoveryMs = second.readyMs;
  say(`server restarted (pid ${second.child.pid}) on the same file: /readyz 200 after ${recoveryMs.toFixed(0)} ms (${(performance.now() - killedAt).toFixed(0)} ms after the kill)`);
  const healthz = await (await fetch(`${BASE}/healthz?verbose`)).json();
  const report = healthz.details?.recovery ?? {};
  say(`recovery report: ${report.crashed_instances?.length ?? '?'} crashed instance(s) found, ${report.supervisors_resumed ?? '?'} supervisor(s) resumed, ${report.interventions_redispatched ?? '?'} intervention(s) re-dispatched, in-process recovery ${report.duration_ms ?? '?'} ms`);

  const done = await until(
    'the intervention to finish',
    async () => {
      const i = await call('GET', `/interventions/${executing.id}`);
      return ['COMPLETED', 'FAILED', 'REJECTED'].includes(i.status) ? i : null;
    },
    { timeoutMs: 20_000, everyMs: 50 },
  );
  say(`intervention ${done.id} is ${done.status} after ${done.attempts} attempt(s)`);
  const finalAgent = await call('GET', `/agents/${bad.id}`);
  say(`agent "${finalAgent.name}" is ${finalAgent.status}`);

  // Let a couple of supervisor heartbeats and agent heartbeats pass, then look at everything.
  await sleep(1500);
  const after = await snapshot(sup.id);
  const deliveries = await (await fetch(`http://127.0.0.1:${bad.port}/deliveries`)).json();
  const events = await allEvents(sup.id);
  const health = await call('GET', `/supervisors/${sup.id}/health`);

  // Graceful stop, to show the other half of the contract.
  const termAt = performance.now();
  server.kill('SIGTERM');
  const termExit = await server.exited;
  const termMs = performance.now() - termAt;
  for (const a of agents) a.child?.kill('SIGTERM');

  // -------------------------------------------------------------------------------------------
  const problems = [];
  const check = (ok, what) => {
    if (!ok) problems.push(what);
    return ok ? 'yes' : 'NO';
  };
  const staleEvents = events.filter((e) => e.type === 'agent.status_changed' && e.payload?.to === 'STALE');
  const recovered = events.filter((e) => e.type === 'supervisor.recovered');
  const redispatched = events.filter((e) => e.type === 'intervention.redispatched' && e.entity_id === executing.id);
  const statusOf = (rows) => Object.fromEntries(rows.map((r) => [r.name ?? r.id, r.status]));

  const lines = [];
  const out = (s = '') => lines.push(s);
  out();
  out('================================ demo summary ================================');
  out('What survived the kill -9 (as the API reports it before the kill / after the restart):');
  const row = (what, b, a, same) => out(`  ${what.padEnd(15)} ${String(b).padEnd(34)} ${String(a).padEnd(34)} ${same}`);
  row('', 'before kill', 'after restart', 'all there?');
  row('supervisors', before.supervisors.map((s) => `${s.name} ${s.status}`).join(', '), after.supervisors.map((s) => `${s.name} ${s.status}`).join(', '), check(ids(after.supervisors) === ids(before.supervisors), 'supervisors differ'));
  row('agents', `${before.agents.length} rows`, `${after.agents.length} rows`, check(ids(after.agents) === ids(before.agents), 'agents differ'));
  row('teams', before.teams.map((t) => `${t.name}`).join(', '), after.teams.map((t) => `${t.name}`).join(', '), check(ids(after.teams) === ids(before.teams), 'teams differ'));
  row('policies', before.policies.map((p) => `${p.name} v${p.active_version}`).join(', '), after.policies.map((p) => `${p.name} v${p.active_version}`).join(', '), check(ids(after.policies) === ids(before.policies), 'policies differ'));
  row('interventions', before.interventions.map((i) => `${i.intervention_type} ${i.status}`).join(', '), after.interventions.map((i) => `${i.intervention_type} ${i.status}`).join(', '), check(ids(after.interventions) === ids(before.interventions), 'interventions differ'));
  out(`  agent statuses before: ${JSON.stringify(statusOf(before.agents))}`);
  out(`  agent statuses after:  ${JSON.stringify(statusOf(after.agents))}`);
  out();
  out('Recovery:');
  out(`  spawn -> /readyz 200:            ${recoveryMs.toFixed(0)} ms   (Node start-up, migrations check, recovery; the recovery itself: ${report.duration_ms ?? '?'} ms)`);
  out(`  supervisor.recovered event:      ${recovered.length ? `yes, downtime ${recovered.at(-1).payload?.downtime_ms} ms (counted from the last committed supervisor heartbeat)` : 'no'}`);
  out(`  intervention re-dispatched:      ${check(redispatched.length === 1, 'intervention not re-dispatched exactly once')} (same id, same Idempotency-Key)`);
  out(`  supervisor after restart:        ${health.status}, running ${health.running}, missed heartbeats ${health.missed_heartbeats}, last heartbeat ${health.last_heartbeat_at}`);
  out(`  false STALE agents after restart: ${check(staleEvents.length === 0, 'agents were marked STALE')  === 'yes' ? 'none' : staleEvents.length}`);
  out();
  out(`The misbehaving agent "${bad.name}":`);
  for (const k of deliveries.keys) out(`  Idempotency-Key ${k.key}: received ${k.count} time(s), ${k.type} applied ${k.applied ? 'once' : 'not yet'}`);
  check(deliveries.keys.length === 1 && deliveries.keys[0].key === executing.id, 'the agent saw another key than the intervention id');
  out(`  intervention ${done.id}: ${check(done.status === 'COMPLETED', `intervention ended ${done.status}`) === 'yes' ? 'COMPLETED' : done.status}, attempts ${done.attempts}, outcome ${JSON.stringify(done.outcome)}`);
  out(`  final agent status:              ${finalAgent.status}${check(finalAgent.status === 'QUARANTINED', `agent is ${finalAgent.status}, not QUARANTINED`) === 'yes' ? '' : '  <-- expected QUARANTINED'}`);
  out();
  out(`Graceful stop: SIGTERM -> exit code ${termExit.code} in ${termMs.toFixed(0)} ms${check(termExit.code === 0, `SIGTERM exit code ${termExit.code}`) === 'yes' ? '' : '  <-- expected 0'}`);
  out(`Total demo time: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  out(problems.length ? `DEMO FAILED: ${problems.join('; ')}` : 'DEMO OK: nothing was lost, the quarantine was applied exactly once.');
  out('==============================================================================');
  process.stdout.write(`${lines.join('\n')}\n`);
  return problems.length ? 1 : 0;
}

main()
  .then((code) => {
    cleanup();
    process.exit(code);
  })
  .catch((err) => {
    process.stderr.write(`\n${stamp()} demo failed: ${err?.stack ?? err}\n`);
    if (serverLog) process.stderr.write(`\n--- last server output ---\n${serverLog.slice(-4000)}\n`);
    cleanup();
    process.exit(1);
  });
