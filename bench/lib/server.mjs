/** Spawning the real Overseer server and the baseline server as children, and stopping them. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { freePort, request, sleep } from './util.mjs';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
export const BASELINE = fileURLToPath(new URL('../baseline-server.mjs', import.meta.url));
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';

function spawnChild(scope, args, env, label) {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const spawnedAt = Date.now();
  const spawnedPerf = performance.now();
  scope.child(child);
  let out = '';
  const keep = (d) => {
    out += d;
    if (out.length > 64_000) out = out.slice(-32_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })));
  return { child, pid: child.pid, label, spawnedAt, spawnedPerf, exited, output: () => out };
}

let extraNodeArgs = [];

/** Node flags for every Overseer server spawned from now on (run.mjs --profile uses --cpu-prof). */
export function setOverseerNodeArgs(args) {
  extraNodeArgs = [...args];
}

/** Starts `node dist/main.js serve` on `databaseUrl`. Does not wait for readiness. */
export async function spawnOverseer(scope, { databaseUrl, env = {}, port, nodeArgs = [] }) {
  port ??= await freePort();
  const proc = spawnChild(
    scope,
    [...extraNodeArgs, ...nodeArgs, MAIN, 'serve'],
    {
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      OVERSEER_ADMIN_TOKEN: ADMIN_TOKEN,
      LOG_LEVEL: 'warn',
      // All load uses one (admin) token: lift its per-token ingest limit (default 20,000/s) so the
      // figures measure the server, not the limiter. The limiter itself still runs per request.
      OVERSEER_INGEST_RATE_LIMIT: '10000000',
      // The benchmarks seed policies with one admin token; four-eyes activation is not what they measure.
      OVERSEER_FOUR_EYES: 'off',
      ...env,
    },
    'overseer',
  );
  return { ...proc, port, url: `http://127.0.0.1:${port}`, readyPath: '/readyz' };
}

/** Starts bench/baseline-server.mjs in one of its modes (listen | sqlite-upsert | pg-upsert). */
export async function spawnBaseline(scope, { mode, sqlitePath, pgUrl, port }) {
  port ??= await freePort();
  const env = { PORT: String(port), BASELINE_MODE: mode };
  if (sqlitePath) env.BASELINE_SQLITE = sqlitePath;
  if (pgUrl) env.BASELINE_PG_URL = pgUrl;
  const proc = spawnChild(scope, [BASELINE], env, `baseline:${mode}`);
  return { ...proc, port, url: `http://127.0.0.1:${port}`, readyPath: '/readyz' };
}

const probeAgent = new http.Agent({ keepAlive: false });

/**
 * Polls `path` every `intervalMs` until it answers 200; resolves the milliseconds since spawn
 * (performance clock of this process). Fails fast if the child exits.
 */
export async function waitFor200(proc, { path = proc.readyPath, intervalMs = 5, timeoutMs = 60_000 } = {}) {
  let gone = null;
  void proc.exited.then((e) => (gone = e));
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`${proc.label} exited (${gone.code ?? gone.signal}) before answering 200 on ${path}:\n${proc.output().slice(-4000)}`);
    const r = await request(`${proc.url}${path}`, { agent: probeAgent, timeoutMs: 2000 }).catch(() => null);
    if (r?.status === 200) return performance.now() - proc.spawnedPerf;
    if (performance.now() > deadline) throw new Error(`${proc.label} did not answer 200 on ${path} within ${timeoutMs} ms:\n${proc.output().slice(-4000)}`);
    await sleep(intervalMs);
  }
}

/** Sends `signal` and resolves the milliseconds until the process exited (and its exit code). */
export async function stopProcess(proc, { signal = 'SIGTERM', timeoutMs = 15_000 } = {}) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return { ms: 0, code: proc.child.exitCode, signal: proc.child.signalCode };
  const t0 = performance.now();
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  const e = await proc.exited;
  clearTimeout(timer);
  return { ms: e.at - t0, code: e.code, signal: e.signal, forced: e.signal === 'SIGKILL' && signal !== 'SIGKILL' };
}
