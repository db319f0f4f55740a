/** What every service operation needs. */
import { ApiError } from '../../domain/errors.js';
import { fourEyesViolation } from '../../domain/safety.js';
import type { Clock, IdSource } from '../../domain/time.js';
import type { Store } from '../../store/store.js';
import type { Runtime } from '../runtime.js';

export interface ServiceContext {
  store: Store;
  clock: Clock;
  newId: IdSource;
  runtime: Runtime;
  settings: ServiceSettings;
}

/** Operator-facing rules that change what the services allow. */
export interface ServiceSettings {
  /**
   * Four-eyes (OVERSEER_FOUR_EYES, on by default): approving an intervention or activating a
   * policy version needs a different token from the one that asked for it or wrote it, and a new
   * policy version waits for that activation instead of running at once.
   */
  fourEyes: boolean;
}

/** Who is acting: journaled on every mutation. */
export interface Actor {
  id: string;
  name: string;
  role: 'admin' | 'operator' | 'viewer' | 'agent';
  agent_id: string | null;
}

export const actorLabel = (a: Actor | null | undefined): string | null => (a ? `${a.role}:${a.name}` : null);

/**
 * Four-eyes: 403 unless `actor` is someone other than each author (compared by token id). `did`
 * says what that author did, for the message. Nothing to check with four-eyes off.
 */
export function requireFourEyes(ctx: ServiceContext, actor: Actor | null, authors: { id: string | null | undefined; did: string }[]): void {
  if (!ctx.settings.fourEyes) return;
  const hit = actor ? authors.find((a) => a.id && a.id === actor.id) : undefined;
  const violation = actor ? fourEyesViolation(actor.id, authors.map((a) => a.id)) : 'four-eyes rule: an approver must be an authenticated caller';
  if (!violation) return;
  throw new ApiError(403, 'forbidden', hit ? `${violation}; ${actorLabel(actor)} ${hit.did}` : violation, { rule: 'four_eyes', actor: actorLabel(actor) });
}
