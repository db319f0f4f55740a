/** `overseer tokens create|list|revoke`, working directly on the database. */
import { Store } from '../store/store.js';
import { systemClock, uuidv7 } from '../domain/time.js';
import { ROLES, TokenService, type Role } from '../runtime/services/tokens.js';
import { ApiError } from '../domain/errors.js';

const CLI_ACTOR = { id: 'cli', name: process.env.USER ?? 'cli', role: 'admin' as const, agent_id: null };

export async function runTokens(action: 'create' | 'list' | 'revoke', url: string, opts: { role?: string; name?: string; agentId?: string; id?: string; databaseUrl?: string }): Promise<void> {
  const store = await Store.open({ url });
  const service = new TokenService({ store, clock: systemClock, newId: () => uuidv7() }, undefined);
  try {
    if (action === 'create') {
      if (!ROLES.includes(opts.role as Role)) throw new Error(`--role must be one of ${ROLES.join(', ')}`);
      if (!opts.name || opts.name.length > 255) throw new Error('--name must be 1-255 characters');
      const t = await service.create({ role: opts.role as Role, name: opts.name, agent_id: opts.agentId ?? null }, CLI_ACTOR);
      process.stdout.write(`created token ${t.id} (role ${t.role}, name ${t.name}${t.agent_id ? `, agent ${t.agent_id}` : ''}); it is shown only once:\n${t.token}\n`);
    } else if (action === 'list') {
      const rows = await service.list();
      for (const r of rows) process.stdout.write(`${r.id}  ${r.role.padEnd(8)}  ${r.name}  ${r.agent_id ?? '-'}  created ${r.created_at}  ${r.revoked_at ? `revoked ${r.revoked_at}` : 'active'}\n`);
      if (!rows.length) process.stdout.write('no tokens\n');
    } else {
      await service.revoke(opts.id as string, CLI_ACTOR);
      process.stdout.write(`revoked ${opts.id}\n`);
    }
  } catch (err) {
    if (err instanceof ApiError) throw new Error(err.message);
    throw err;
  } finally {
    await store.close();
  }
}
