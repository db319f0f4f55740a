/** Shared checks for the bad-input suites: exact error shape, no stack, database untouched. */
import { APP_TABLES } from '../helpers/db.js';
import { expect } from 'vitest';
import { sql } from 'kysely';
import type { Harness } from '../helpers/harness.js';
import { HARNESS_TOKEN } from '../helpers/harness.js';

export const TABLES = [...APP_TABLES, 'kysely_migration'] as const;

export type Snapshot = Record<string, number>;

/** Row count of every table plus the highest journal seq. */
export async function snapshot(h: Harness): Promise<Snapshot> {
  const out: Snapshot = {};
  for (const t of TABLES) {
    const r = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(t)}`.execute(h.store.db);
    out[t] = Number(r.rows[0].n);
  }
  const seq = await sql<{ m: number | string | null }>`select max(seq) as m from events`.execute(h.store.db);
  out['events.max_seq'] = Number(seq.rows[0].m ?? 0);
  return out;
}

export interface Res {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

/** app.inject with full control of payload and headers; every answer must be JSON and below 500. */
export async function raw(h: Harness, method: string, url: string, payload?: string | Buffer, headers: Record<string, string> = {}): Promise<Res> {
  const res = await h.app.inject({ method: method as 'GET', url, payload, headers });
  let body: unknown = null;
  try {
    body = res.body ? JSON.parse(res.body) : null;
  } catch {
    body = res.body;
  }
  expect(res.statusCode, `${method} ${url} must never be a 5xx: ${res.body.slice(0, 300)}`).toBeLessThan(500);
  return { status: res.statusCode, body, text: res.body };
}

/** A JSON call with the admin token (or `token`; null sends none). */
export function call(h: Harness, method: string, path: string, body?: unknown, token: string | null = HARNESS_TOKEN): Promise<Res> {
  const url = path.startsWith('/api/') ? path : `/api/v1${path}`;
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return raw(h, method, url, body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), headers);
}

/** The contract's error: exactly `{error, message, details}`, the given status and code, no stack. */
export function expectError(res: Res, status: number, code: string): void {
  expect(res.status, res.text.slice(0, 500)).toBe(status);
  expect(res.body).toBeTypeOf('object');
  expect(Object.keys(res.body).sort()).toEqual(['details', 'error', 'message']);
  expect(res.body.error).toBe(code);
  expect(typeof res.body.message).toBe('string');
  expect(res.body.message.length).toBeGreaterThan(0);
  expect(res.body.details).toBeTypeOf('object');
  expect(res.body.details).not.toBeNull();
  expect(Array.isArray(res.body.details)).toBe(false);
  expectNoStack(res.text);
}

export function expectNoStack(text: string): void {
  expect(text).not.toMatch(/\n\s+at\s|\bat [\w.<>]+ \(|\.[cm]?[jt]s:\d+|node_modules|"stack"/);
}

/** The validation problems' distinct paths (a union schema reports one path once per branch). */
export function problemPaths(res: Res): string[] {
  const problems = res.body?.details?.problems;
  expect(Array.isArray(problems), `details.problems in ${res.text.slice(0, 300)}`).toBe(true);
  return [...new Set((problems as { path: string; message: string }[]).map((p) => p.path))];
}

/** Runs `fn` and asserts that no table gained or lost a row and no event was journaled. */
export async function untouched<T>(h: Harness, fn: () => Promise<T>): Promise<T> {
  const before = await snapshot(h);
  const out = await fn();
  // Heartbeats commit in a batch on the next turn; wait for any queued one before comparing.
  await h.runtime.heartbeats.drain();
  expect(await snapshot(h)).toEqual(before);
  return out;
}
