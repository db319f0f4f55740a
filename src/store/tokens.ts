/** API tokens: only hashes are stored. */
import type { Db } from './store.js';
import type { TokensTable } from './schema.js';
import { iso } from '../domain/time.js';

export type TokenRow = TokensTable;

export async function insertToken(db: Db, t: { id: string; name: string; role: string; agent_id: string | null; token_hash: string; at: number }): Promise<void> {
  await db.insertInto('tokens').values({ id: t.id, name: t.name, role: t.role, agent_id: t.agent_id, token_hash: t.token_hash, created_at: iso(t.at), revoked_at: null, last_used_at: null }).execute();
}

export async function findTokenByHash(db: Db, hash: string): Promise<TokenRow | undefined> {
  return db.selectFrom('tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
}

export async function listTokens(db: Db): Promise<Omit<TokenRow, 'token_hash'>[]> {
  return db.selectFrom('tokens').select(['id', 'name', 'role', 'agent_id', 'created_at', 'revoked_at', 'last_used_at']).orderBy('id').execute();
}

export async function revokeToken(db: Db, id: string, at: number): Promise<boolean> {
  const r = await db.updateTable('tokens').set({ revoked_at: iso(at) }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

export async function countTokens(db: Db): Promise<number> {
  const r = await db.selectFrom('tokens').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
  return Number(r?.n ?? 0);
}
