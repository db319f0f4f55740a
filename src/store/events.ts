/** The append-only journal. Every state change appends here in the same transaction. */
import type { Db } from './store.js';
import { json, parseJson } from './store.js';
import { iso } from '../domain/time.js';

export interface NewEvent {
  supervisor_id?: string | null;
  entity_type: string;
  entity_id?: string | null;
  type: string;
  actor?: string | null;
  payload?: Record<string, unknown>;
  at: number;
}

export interface JournalEvent {
  seq: number;
  supervisor_id: string | null;
  entity_type: string;
  entity_id: string | null;
  type: string;
  actor: string | null;
  payload: Record<string, unknown>;
  at: string;
}

export async function appendEvents(db: Db, events: NewEvent[]): Promise<void> {
  if (!events.length) return;
  const rows = events.map((e) => ({
    supervisor_id: e.supervisor_id ?? null,
    entity_type: e.entity_type,
    entity_id: e.entity_id ?? null,
    type: e.type,
    actor: e.actor ?? null,
    payload: json(e.payload ?? {}),
    at: iso(e.at),
  }));
  // Chunked: SQLite limits bound parameters per statement.
  for (let i = 0; i < rows.length; i += 100) await db.insertInto('events').values(rows.slice(i, i + 100)).execute();
}

export const appendEvent = (db: Db, e: NewEvent): Promise<void> => appendEvents(db, [e]);

export interface EventFilter {
  supervisor_id?: string;
  after?: number;
  actor?: string;
  entity_type?: string;
  entity_id?: string;
  since?: string;
  until?: string;
  types?: string[];
  /** Only events caused by an authenticated caller (the audit trail). */
  withActor?: boolean;
  limit: number;
}

export async function listEvents(db: Db, f: EventFilter): Promise<JournalEvent[]> {
  let q = db.selectFrom('events').selectAll().orderBy('seq', 'asc').limit(f.limit);
  if (f.supervisor_id) q = q.where('supervisor_id', '=', f.supervisor_id);
  if (f.after !== undefined) q = q.where('seq', '>', f.after);
  if (f.actor) q = q.where('actor', '=', f.actor);
  if (f.entity_type) q = q.where('entity_type', '=', f.entity_type);
  if (f.entity_id) q = q.where('entity_id', '=', f.entity_id);
  if (f.since) q = q.where('at', '>=', f.since);
  if (f.until) q = q.where('at', '<', f.until);
  if (f.types?.length) q = q.where('type', 'in', f.types);
  if (f.withActor) q = q.where('actor', 'is not', null);
  const rows = await q.execute();
  return rows.map((r) => ({ ...r, seq: Number(r.seq), payload: parseJson(r.payload, {}) }));
}
