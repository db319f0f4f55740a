/** What every service operation needs. */
import type { Clock, IdSource } from '../../domain/time.js';
import type { Store } from '../../store/store.js';
import type { Runtime } from '../runtime.js';

export interface ServiceContext {
  store: Store;
  clock: Clock;
  newId: IdSource;
  runtime: Runtime;
}

/** Who is acting: journaled on every mutation. */
export interface Actor {
  id: string;
  name: string;
  role: 'admin' | 'operator' | 'viewer' | 'agent';
  agent_id: string | null;
}

export const actorLabel = (a: Actor | null | undefined): string | null => (a ? `${a.role}:${a.name}` : null);
