#!/usr/bin/env node
/**
 * Overseer benchmarks. Prints the results of this run as JSON on stdout, merges them into
 * bench/results.json and rewrites BENCHMARKS.md (progress goes to stderr).
 *
 *   node bench/run.mjs [--suite recovery,heartbeat,evaluation,scale] [--runs N] [--duration S]
 *                      [--warmup S] [--db sqlite,postgres] [--no-write] [--profile]
 *
 * --profile runs every Overseer server under `node --cpu-prof` and leaves the profiles (one per
 * server that exited cleanly) in bench/profiles/<date>/; open them in Chrome DevTools.
 *
 * Needs the build (`npm run build`; `npm run bench` builds first) and, for the PostgreSQL
 * figures, a server at BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test) on which a
 * scratch database is created per suite and dropped afterwards.
 */
import { cpus, totalmem, platform, release } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { closeAllScopes, killLiveChildrenSync } from './lib/scope.mjs';
import { postgresAvailable } from './lib/db.mjs';
import { MAIN, setOverseerNodeArgs } from './lib/server.mjs';
import { writeMarkdown } from './lib/report.mjs';
import { log, withTimeout } from './lib/util.mjs';
import { recovery } from './suites/recovery.mjs';
import { heartbeat } from './suites/heartbeat.mjs';
import { evaluation } from './suites/evaluation.mjs';
import { scale } from './suites/scale.mjs';

const SUITES = {
  recovery: { run: recovery, runs: 5, duration: null, warmup: 0, databases: ['sqlite', 'postgres'] },
  heartbeat: { run: heartbeat, runs: 3, duration: 10, warmup: 3, databases: ['sqlite', 'postgres'] },
  evaluation: { run: evaluation, runs: 3, duration: 10, warmup: 2, databases: ['sqlite', 'postgres'] },
  scale: { run: scale, runs: 1, duration: 60, warmup: 10, databases: ['sqlite'] },
};

const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));
const MARKDOWN = fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url));

const { values: args } = parseArgs({
  options: {
    suite: { type: 'string', multiple: true },
    runs: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    db: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: false,
});

if (args.help) {
  process.stdout.write(`usage: node bench/run.mjs [--suite ${Object.keys(SUITES).join(',')}] [--runs N] [--duration S] [--warmup S] [--db sqlite,postgres] [--no-write] [--profile]\n`);
  process.exit(0);
}

function positiveNumber(name, raw) {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`bench: --${name} must be a non-negative number\n`);
    process.exit(2);
  }
  return n;
}

const selected = (args.suite ?? ['all']).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
const names = selected.includes('all') ? Object.keys(SUITES) : selected;
for (const n of names) {
  if (!SUITES[n]) {
    process.stderr.write(`bench: unknown suite "${n}" (known: ${Object.keys(SUITES).join(', ')})\n`);
    process.exit(2);
  }
}
const runsArg = positiveNumber('runs', args.runs);
const durationArg = positiveNumber('duration', args.duration);
const warmupArg = positiveNumber('warmup', args.warmup);
const dbArg = args.db?.split(',').map((s) => s.trim()).filter(Boolean);
if (dbArg?.some((d) => d !== 'sqlite' && d !== 'postgres')) {
  process.stderr.write('bench: --db takes sqlite and/or postgres\n');
  process.exit(2);
}
if (runsArg !== undefined && (runsArg < 1 || !Number.isInteger(runsArg))) {
  process.stderr.write('bench: --runs must be a positive integer\n');
  process.exit(2);
}

const rawArgs = process.argv.slice(2).join(' ');
const command = process.env.npm_lifecycle_event === 'bench' ? `npm run bench${rawArgs ? ` -- ${rawArgs}` : ''}` : `node bench/run.mjs${rawArgs ? ` ${rawArgs}` : ''}`;

const machine = {
  cpu: cpus()[0]?.model?.trim() ?? 'unknown',
  cores: cpus().length,
  ram_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  node: process.version,
  platform: `${platform()} ${release()}`,
};

process.on('exit', killLiveChildrenSync);
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${sig}: cleaning up children and scratch databases`);
    closeAllScopes().finally(() => process.exit(130));
  });
}

if (!existsSync(MAIN)) {
  process.stderr.write('bench: dist/main.js is missing; run `npm run build` (or `npm run bench`, which builds first)\n');
  process.exit(2);
}

let profilesDir = null;
if (args.profile) {
  profilesDir = fileURLToPath(new URL(`./profiles/${new Date().toISOString().replace(/[:.]/g, '-')}/`, import.meta.url));
  mkdirSync(profilesDir, { recursive: true });
  setOverseerNodeArgs(['--cpu-prof', `--cpu-prof-dir=${profilesDir}`]);
  log(`CPU profiles of the Overseer servers go to ${profilesDir}`);
}

const pgOk = await postgresAvailable();
if (!pgOk) log('PostgreSQL is not reachable: PostgreSQL figures are skipped');

const output = { machine, command, date: new Date().toISOString(), ...(profilesDir ? { profiles_dir: profilesDir } : {}), suites: {} };
for (const name of names) {
  const def = SUITES[name];
  const options = {
    runs: runsArg ?? def.runs,
    duration: def.duration === null ? null : durationArg ?? def.duration,
    warmup: warmupArg ?? def.warmup,
    databases: (dbArg ?? def.databases).filter((d) => d === 'sqlite' || pgOk),
  };
  const smoke = [];
  if (options.runs < def.runs) smoke.push(`runs=${options.runs} < ${def.runs}`);
  if (def.duration !== null && options.duration < def.duration) smoke.push(`duration=${options.duration} s < ${def.duration} s`);
  if (options.warmup < def.warmup) smoke.push(`warm-up=${options.warmup} s < ${def.warmup} s`);
  if (profilesDir) smoke.push('servers profiled under --cpu-prof');
  const entry = { machine, command, date: new Date().toISOString(), options, smoke: smoke.join(', ') || null };
  if (!pgOk && (dbArg ?? def.databases).includes('postgres')) entry.skipped = 'postgres: server not reachable';
  log(`suite ${name}: ${JSON.stringify(options)}`);
  const t0 = performance.now();
  // Generous bound: a hung child or server fails the suite instead of the whole run hanging.
  const budgetMs = (300 + options.runs * options.databases.length * ((options.duration ?? 10) + options.warmup + 90)) * 1000;
  try {
    Object.assign(entry, await withTimeout(def.run(options), budgetMs, `suite ${name}`));
  } catch (err) {
    entry.error = err instanceof Error ? err.message.slice(0, 2000) : String(err);
    log(`suite ${name} FAILED: ${entry.error}`);
    await closeAllScopes();
  }
  entry.elapsed_s = Math.round((performance.now() - t0) / 100) / 10;
  output.suites[name] = entry;
}

process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);

if (!args['no-write']) {
  const merged = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : { suites: {} };
  for (const [n, s] of Object.entries(output.suites)) merged.suites[n] = s;
  merged.updated = output.date;
  writeFileSync(RESULTS, `${JSON.stringify(merged, null, 2)}\n`);
  writeMarkdown(MARKDOWN, merged);
  log(`wrote ${MARKDOWN} and ${RESULTS}`);
}
const failed = Object.values(output.suites).some((s) => s.error);
process.exit(failed ? 1 : 0);
