/**
 * Test databases: a fresh SQLite file or a fresh PostgreSQL database per call. PostgreSQL comes
 * from PG_TEST_URL (default postgres://postgres@127.0.0.1:5432/test). When it is unreachable the
 * Postgres suites skip with a notice, unless REQUIRE_POSTGRES=1 (CI), where they fail.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_ADMIN_URL = process.env.PG_TEST_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REQUIRE_POSTGRES = process.env.REQUIRE_POSTGRES === '1';

let pgAvailable: boolean | null = null;

export async function postgresAvailable(): Promise<boolean> {
  if (pgAvailable !== null) return pgAvailable;
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    pgAvailable = true;
  } catch (err) {
    if (REQUIRE_POSTGRES) throw new Error(`REQUIRE_POSTGRES=1 but PostgreSQL at ${PG_ADMIN_URL} is unreachable: ${(err as Error).message}`);
    process.stderr.write(`\n[notice] PostgreSQL at ${PG_ADMIN_URL} unreachable (${(err as Error).message}); Postgres suites are skipped.\n`);
    pgAvailable = false;
  } finally {
    await client.end().catch(() => {});
  }
  return pgAvailable;
}

/** Top-level-await friendly: the dialects to run a suite against. */
export async function dialects(): Promise<('sqlite' | 'postgres')[]> {
  return (await postgresAvailable()) ? ['sqlite', 'postgres'] : ['sqlite'];
}

export interface TestDb {
  url: string;
  dialect: 'sqlite' | 'postgres';
  /** Drops the database / removes the file. */
  drop(): Promise<void>;
}

export async function createTestDb(dialect: 'sqlite' | 'postgres'): Promise<TestDb> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'overseer-test-'));
    return { url: `sqlite:${join(dir, 'overseer.db')}`, dialect, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `overseer_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    dialect,
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** Every table the application owns (the migrator's own tables excluded). */
export const APP_TABLES = [
  'instances',
  'supervisors',
  'teams',
  'team_members',
  'agents',
  'policies',
  'policy_versions',
  'policy_assignments',
  'policy_evaluations',
  'interventions',
  'alert_groups',
  'alerts',
  'events',
  'tokens',
] as const;
