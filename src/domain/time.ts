/** Clock and id source, injected everywhere so tests drive time. */
import { randomBytes, randomUUID } from 'node:crypto';

export interface Clock {
  now(): number;
  /** Resolves after `ms` of this clock's time, or rejects when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason ?? new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

export type IdSource = () => string;
export const uuid: IdSource = () => randomUUID();

export const iso = (ms: number): string => new Date(ms).toISOString();
export const ms = (isoText: string | null | undefined): number | null => (isoText ? Date.parse(isoText) : null);

/** Time-ordered UUIDv7, so that ordering by id is ordering by creation (keyset pagination). */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  const t = BigInt(now);
  for (let i = 0; i < 6; i++) bytes[i] = Number((t >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
