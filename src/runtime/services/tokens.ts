/** API tokens: random secrets shown once, stored as SHA-256 hashes, compared in constant time. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiError } from '../../domain/errors.js';
import { appendEvent } from '../../store/events.js';
import { countTokens, findTokenByHash, insertToken, listTokens, revokeToken } from '../../store/tokens.js';
import { getAgent } from '../../store/agents.js';
import type { Store } from '../../store/store.js';
import type { Clock, IdSource } from '../../domain/time.js';
import { actorLabel, type Actor } from './context.js';

export const ROLES = ['admin', 'operator', 'viewer', 'agent'] as const;
export type Role = (typeof ROLES)[number];

export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');
export const newSecret = (): string => `ovs_${randomBytes(24).toString('base64url')}`;

export interface TokenDeps { store: Store; clock: Clock; newId: IdSource }

export class TokenService {
  private readonly adminHash: Buffer | null;

  constructor(private readonly deps: TokenDeps, adminToken: string | undefined) {
    this.adminHash = adminToken ? Buffer.from(hashToken(adminToken), 'hex') : null;
  }

  /** Resolves a bearer token to an actor, or null. Revocation is read from the database each time. */
  async authenticate(token: string): Promise<Actor | null> {
    if (!token || token.length > 512) return null;
    const digest = hashToken(token);
    const buf = Buffer.from(digest, 'hex');
    if (this.adminHash && timingSafeEqual(buf, this.adminHash)) return { id: 'env-admin', name: 'OVERSEER_ADMIN_TOKEN', role: 'admin', agent_id: null };
    // Lookup is by hash through a unique index: timing depends on the hash, not on the secret.
    const row = await this.deps.store.read((db) => findTokenByHash(db, digest));
    if (!row || row.revoked_at) return null;
    if (!timingSafeEqual(Buffer.from(row.token_hash, 'hex'), buf)) return null;
    return { id: row.id, name: row.name, role: row.role as Role, agent_id: row.agent_id };
  }

  async create(input: { role: Role; name: string; agent_id?: string | null }, actor: Actor | null): Promise<{ id: string; token: string; role: Role; name: string; agent_id: string | null }> {
    if (input.role === 'agent' && !input.agent_id) throw new ApiError(400, 'validation_failed', 'agent_id: an agent token must be bound to an agent', { problems: [{ path: 'agent_id', message: 'required for role agent' }] });
    if (input.role !== 'agent' && input.agent_id) throw new ApiError(400, 'validation_failed', 'agent_id: only agent tokens are bound to an agent', { problems: [{ path: 'agent_id', message: 'only for role agent' }] });
    const token = newSecret();
    const id = this.deps.newId();
    const now = this.deps.clock.now();
    await this.deps.store.tx(async (trx) => {
      if (input.agent_id && !(await getAgent(trx, input.agent_id))) throw new ApiError(400, 'validation_failed', `agent_id: agent ${input.agent_id} not found`, { problems: [{ path: 'agent_id', message: 'not found' }] });
      await insertToken(trx, { id, name: input.name, role: input.role, agent_id: input.agent_id ?? null, token_hash: hashToken(token), at: now });
      await appendEvent(trx, { entity_type: 'token', entity_id: id, type: 'token.created', actor: actorLabel(actor), payload: { name: input.name, role: input.role, agent_id: input.agent_id ?? null }, at: now });
    });
    return { id, token, role: input.role, name: input.name, agent_id: input.agent_id ?? null };
  }

  list() {
    return this.deps.store.read((db) => listTokens(db));
  }

  async revoke(id: string, actor: Actor | null): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.store.tx(async (trx) => {
      if (!(await revokeToken(trx, id, now))) throw ApiError.notFound('active token', id);
      await appendEvent(trx, { entity_type: 'token', entity_id: id, type: 'token.revoked', actor: actorLabel(actor), payload: {}, at: now });
    });
  }

  /** First start with no admin token configured and no tokens stored: mint one admin token. */
  async bootstrap(): Promise<string | null> {
    if (this.adminHash) return null;
    if ((await this.deps.store.read((db) => countTokens(db))) > 0) return null;
    const created = await this.create({ role: 'admin', name: 'bootstrap-admin' }, null);
    return created.token;
  }
}
