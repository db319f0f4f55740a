/** One row per Overseer process: tells a crash from a clean stop. */
import type { Db } from './store.js';
import { iso } from '../domain/time.js';
import type { InstancesTable } from './schema.js';

export async function insertInstance(db: Db, i: { id: string; host: string; pid: number; version: string; at: number }): Promise<void> {
  await db.insertInto('instances').values({ id: i.id, host: i.host, pid: i.pid, version: i.version, started_at: iso(i.at), last_seen_at: iso(i.at), clean_shutdown_at: null, recovered_at: null, recovered_by: null }).execute();
}

/** Instances that never recorded a clean shutdown and were not yet recovered, other than `self`. */
export async function crashedInstances(db: Db, self: string): Promise<InstancesTable[]> {
  return db.selectFrom('instances').selectAll().where('clean_shutdown_at', 'is', null).where('recovered_at', 'is', null).where('id', '!=', self).execute();
}

/** Marks a crashed instance as recovered by `by`, so the next boot does not recover it again. */
export async function markRecovered(db: Db, id: string, by: string, at: number): Promise<void> {
  await db.updateTable('instances').set({ recovered_at: iso(at), recovered_by: by }).where('id', '=', id).where('recovered_at', 'is', null).execute();
}

export async function markCleanShutdown(db: Db, id: string, at: number): Promise<void> {
  await db.updateTable('instances').set({ clean_shutdown_at: iso(at), last_seen_at: iso(at) }).where('id', '=', id).execute();
}

export async function touchInstance(db: Db, id: string, at: number): Promise<void> {
  await db.updateTable('instances').set({ last_seen_at: iso(at) }).where('id', '=', id).execute();
}

export async function getInstance(db: Db, id: string): Promise<InstancesTable | undefined> {
  return db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirst();
}
