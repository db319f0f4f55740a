/**
 * The baselines the benchmarks compare Overseer with, measured in the same run on the same
 * machine: a bare Fastify server with no supervisor logic.
 *
 *   BASELINE_MODE=listen         open a SQLite file (WAL, synchronous=FULL) and listen; GET /readyz
 *   BASELINE_MODE=sqlite-upsert  + POST /api/v1/agents/:id/heartbeat: one better-sqlite3 upsert per request
 *   BASELINE_MODE=pg-upsert      + POST /api/v1/agents/:id/heartbeat: one `pg` upsert per request (pool of 10)
 *
 * env: PORT, HOST (127.0.0.1), BASELINE_SQLITE (file path), BASELINE_PG_URL, BASELINE_PG_POOL (10).
 */
import Fastify from 'fastify';

const mode = process.env.BASELINE_MODE ?? 'listen';
const app = Fastify({ logger: false });
const closers = [];

const UPSERT_SQLITE = `insert into agents (id, last_heartbeat_at, last_metrics, heartbeat_count) values (?, ?, ?, 1)
  on conflict (id) do update set last_heartbeat_at = excluded.last_heartbeat_at, last_metrics = excluded.last_metrics, heartbeat_count = agents.heartbeat_count + 1
  returning heartbeat_count`;
const UPSERT_PG = `insert into agents (id, last_heartbeat_at, last_metrics, heartbeat_count) values ($1, $2, $3, 1)
  on conflict (id) do update set last_heartbeat_at = excluded.last_heartbeat_at, last_metrics = excluded.last_metrics, heartbeat_count = agents.heartbeat_count + 1
  returning heartbeat_count`;
const TABLE = 'create table if not exists agents (id text primary key, last_heartbeat_at text, last_metrics text, heartbeat_count integer not null default 0)';

if (mode === 'listen' || mode === 'sqlite-upsert') {
  const { default: Database } = await import('better-sqlite3');
  const path = process.env.BASELINE_SQLITE;
  if (!path) throw new Error('BASELINE_SQLITE is required');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(TABLE);
  closers.push(() => db.close());
  const ping = db.prepare('select 1 as ok');
  app.get('/readyz', async () => ({ status: ping.get().ok === 1 ? 'ready' : 'not_ready' }));
  if (mode === 'sqlite-upsert') {
    const upsert = db.prepare(UPSERT_SQLITE);
    app.post('/api/v1/agents/:id/heartbeat', async (req) => {
      const at = new Date().toISOString();
      const row = upsert.get(req.params.id, at, JSON.stringify(req.body?.metrics ?? {}));
      return { agent_id: req.params.id, last_heartbeat_at: at, heartbeat_count: row.heartbeat_count };
    });
  }
} else if (mode === 'pg-upsert') {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: process.env.BASELINE_PG_URL, max: Number(process.env.BASELINE_PG_POOL ?? 10) });
  await pool.query(TABLE);
  closers.push(() => pool.end());
  app.get('/readyz', async () => {
    await pool.query('select 1');
    return { status: 'ready' };
  });
  app.post('/api/v1/agents/:id/heartbeat', async (req) => {
    const at = new Date().toISOString();
    const { rows } = await pool.query(UPSERT_PG, [req.params.id, at, JSON.stringify(req.body?.metrics ?? {})]);
    return { agent_id: req.params.id, last_heartbeat_at: at, heartbeat_count: rows[0].heartbeat_count };
  });
} else {
  throw new Error(`unknown BASELINE_MODE ${mode}`);
}

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) });

const stop = async () => {
  await app.close();
  for (const c of closers) await c();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
