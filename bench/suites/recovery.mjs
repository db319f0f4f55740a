/**
 * recovery: with 50 supervisors x 100 agents in the database, how long from process spawn to
 * GET /readyz 200, and to every supervisor's last_heartbeat_at being newer than the spawn; after a
 * clean stop and after kill -9; SQLite and PostgreSQL. Baseline in the same run: a bare Fastify +
 * better-sqlite3 (synchronous=FULL) server from spawn to its first 200. Also SIGTERM -> exit when idle.
 */
import http from 'node:http';
import { withScope } from '../lib/scope.mjs';
import { copySqlite, tempPostgres, tempSqlite } from '../lib/db.mjs';
import { spawnBaseline, spawnOverseer, stopProcess, waitFor200, ADMIN_TOKEN } from '../lib/server.mjs';
import { apiClient } from '../lib/api.mjs';
import { seedFleet } from '../lib/seed.mjs';
import { figure } from '../lib/report.mjs';
import { log, request, sleep } from '../lib/util.mjs';

const SUPERVISORS = 50;
const AGENTS_PER = 100;
const pollAgent = new http.Agent({ keepAlive: false });

/** Milliseconds from spawn until every supervisor's last_heartbeat_at >= the spawn time. */
async function waitAllBeat(proc, expected, { intervalMs = 10, timeoutMs = 60_000 } = {}) {
  const deadline = performance.now() + timeoutMs;
  let gone = null;
  void proc.exited.then((e) => (gone = e));
  for (;;) {
    if (gone) throw new Error(`overseer exited (${gone.code ?? gone.signal}) before every supervisor beat:\n${proc.output().slice(-4000)}`);
    const r = await request(`${proc.url}/api/v1/supervisors?limit=500`, { agent: pollAgent, headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, timeoutMs: 5000 }).catch(() => null);
    const at = performance.now();
    if (r?.status === 200) {
      const items = r.body.items ?? [];
      const fresh = items.filter((s) => s.last_heartbeat_at && Date.parse(s.last_heartbeat_at) >= proc.spawnedAt);
      if (items.length >= expected && fresh.length === items.length) return at - proc.spawnedPerf;
    }
    if (at > deadline) throw new Error(`not every supervisor beat within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

async function measureStart(scope, databaseUrl) {
  const proc = await spawnOverseer(scope, { databaseUrl });
  const [ready, beat] = await Promise.all([waitFor200(proc), waitAllBeat(proc, SUPERVISORS)]);
  return { proc, ready, beat };
}

async function seed(scope, databaseUrl) {
  const proc = await spawnOverseer(scope, { databaseUrl });
  await waitFor200(proc, { intervalMs: 20 });
  const api = apiClient(proc.url);
  const t0 = performance.now();
  await seedFleet(api, { supervisors: SUPERVISORS, agentsPer: AGENTS_PER, prefix: 'rec' });
  api.close();
  log(`  seeded ${SUPERVISORS}x${AGENTS_PER} in ${Math.round(performance.now() - t0)} ms`);
  const stop = await stopProcess(proc);
  if (stop.code !== 0) throw new Error(`seeding server exited with ${stop.code ?? stop.signal}`);
}

export async function recovery({ runs, databases }) {
  return withScope('recovery', async (scope) => {
    const seeds = {};
    for (const db of databases) {
      log(`recovery: seeding ${db}`);
      if (db === 'sqlite') {
        const s = tempSqlite(scope, 'recovery-seed');
        await seed(scope, s.url);
        seeds.sqlite = s;
      } else {
        const s = await tempPostgres(scope, 'recovery_seed');
        await seed(scope, s.url);
        seeds.postgres = s;
      }
    }
    const base = tempSqlite(scope, 'recovery-baseline');
    // One unmeasured start creates the baseline's file, so every measured start opens an existing one.
    {
      const b = await spawnBaseline(scope, { mode: 'listen', sqlitePath: base.path });
      await waitFor200(b);
      await stopProcess(b);
    }

    const r = { baseline: [], term: [] };
    for (const db of databases) Object.assign(r, { [`${db}_ready_clean`]: [], [`${db}_beat_clean`]: [], [`${db}_ready_crash`]: [], [`${db}_beat_crash`]: [], [`${db}_term`]: [], [`${db}_codes`]: [] });
    const exitCodes = [];

    for (let i = 0; i < runs; i++) {
      const b = await spawnBaseline(scope, { mode: 'listen', sqlitePath: base.path });
      r.baseline.push(await waitFor200(b));
      await stopProcess(b);

      for (const db of databases) {
        await withScope(`recovery-run-${db}`, async (run) => {
          let url;
          if (db === 'sqlite') {
            const t = tempSqlite(run, 'recovery-run');
            copySqlite(seeds.sqlite.path, t.path);
            url = t.url;
          } else {
            url = (await tempPostgres(run, 'recovery_run', { template: seeds.postgres.name })).url;
          }
          // After a clean stop (the seeding server was stopped with SIGTERM).
          const a = await measureStart(run, url);
          r[`${db}_ready_clean`].push(a.ready);
          r[`${db}_beat_clean`].push(a.beat);
          // kill -9, then recover from the crash.
          await stopProcess(a.proc, { signal: 'SIGKILL' });
          const c = await measureStart(run, url);
          r[`${db}_ready_crash`].push(c.ready);
          r[`${db}_beat_crash`].push(c.beat);
          // Idle for a moment, then SIGTERM -> exit.
          await sleep(1000);
          const t = await stopProcess(c.proc, { signal: 'SIGTERM' });
          r[`${db}_term`].push(t.ms);
          r[`${db}_codes`].push(t.code ?? t.signal);
          exitCodes.push(t.code ?? t.signal);
        });
      }
      log(`recovery run ${i + 1}/${runs}: baseline ${Math.round(r.baseline.at(-1))} ms; ${databases.map((d) => `${d} ready ${Math.round(r[`${d}_ready_clean`].at(-1))}/${Math.round(r[`${d}_ready_crash`].at(-1))} ms (clean/crash), all beat ${Math.round(r[`${d}_beat_crash`].at(-1))} ms, SIGTERM->exit ${Math.round(r[`${d}_term`].at(-1))} ms`).join('; ')}`);
    }

    const baseline = { label: 'bare Fastify + better-sqlite3 spawn -> first 200', values: r.baseline };
    const figures = [
      figure({ id: 'baseline_listen_ms', label: 'baseline: bare Fastify + better-sqlite3, spawn -> first 200', unit: 'ms', values: r.baseline, digits: 0 }),
    ];
    for (const db of databases) {
      const name = db === 'sqlite' ? 'SQLite' : 'PostgreSQL';
      figures.push(
        figure({ id: `${db}_ready_crash_ms`, label: `${name}: spawn -> /readyz 200 after kill -9`, unit: 'ms', values: r[`${db}_ready_crash`], digits: 0, baseline, target: { on: 'ratio', op: '<=', value: 1.5 } }),
        figure({ id: `${db}_beat_crash_ms`, label: `${name}: spawn -> all 50 supervisors heartbeat after kill -9`, unit: 'ms', values: r[`${db}_beat_crash`], digits: 0, baseline, target: { on: 'ratio', op: '<=', value: 1.5 } }),
        figure({ id: `${db}_ready_clean_ms`, label: `${name}: spawn -> /readyz 200 after clean stop`, unit: 'ms', values: r[`${db}_ready_clean`], digits: 0, baseline, target: { on: 'ratio', op: '<=', value: 1.5 } }),
        figure({ id: `${db}_beat_clean_ms`, label: `${name}: spawn -> all 50 supervisors heartbeat after clean stop`, unit: 'ms', values: r[`${db}_beat_clean`], digits: 0, baseline, target: { on: 'ratio', op: '<=', value: 1.5 } }),
        figure({ id: `${db}_sigterm_exit_ms`, label: `${name}: SIGTERM -> exit, idle`, unit: 'ms', values: r[`${db}_term`], digits: 0, target: { on: 'value', op: '<', value: 500 }, note: r[`${db}_codes`].every((c) => c === 0) ? undefined : `exit codes ${r[`${db}_codes`].join(',')}` }),
      );
    }
    return {
      figures,
      details: { supervisors: SUPERVISORS, agents_per_supervisor: AGENTS_PER, sigterm_exit_codes: exitCodes },
      method: [
        `The database is seeded once per dialect through the real server's API (${SUPERVISORS} supervisors, each with one team holding its ${AGENTS_PER} agents = ${SUPERVISORS * AGENTS_PER} agents), then the seeding server is stopped with SIGTERM. Each run starts from a copy of that seed (file copy for SQLite, \`create database ... template\` for PostgreSQL).`,
        'Per run and dialect: spawn `node dist/main.js serve` (after the clean stop) and time it; kill -9 it; spawn again and time the crash recovery; idle 1 s; SIGTERM and time until the process has exited.',
        'Times are taken in the benchmark process from `spawn()` to the first 200 on GET /readyz (polled every 5 ms) and to the first GET /api/v1/supervisors?limit=500 (polled every 10 ms from spawn) in which every supervisor\'s last_heartbeat_at is at or after the spawn time.',
        'Baseline, in the same run: `bench/baseline-server.mjs` in mode `listen` (Fastify + better-sqlite3 opening an existing file with WAL and synchronous=FULL, GET /readyz runs `select 1`), spawn -> first 200, polled the same way. Baseline and Overseer starts are interleaved run by run.',
        'SIGTERM -> exit is measured on the server that just recovered, after 1 s idle, from `kill()` to the child\'s exit event; the exit code must be 0.',
      ],
    };
  });
}
