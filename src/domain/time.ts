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

// Ids made in the same millisecond count up from the previous one (RFC 9562 6.2, method 2), so
// that a burst (one transaction, one heartbeat batch) still sorts in creation order.
let lastMs = -1;
let lastRand = 0n;

/** Time-ordered UUIDv7, so that ordering by id is ordering by creation (keyset pagination). */
export function uuidv7(now: number = Date.now()): string {
  const bytes = randomBytes(16);
  // 74 random bits (12 rand_a + 62 rand_b). A fresh millisecond starts below 2^73, and a random
  // step of at most 2^32 keeps ids unguessable with room for far more ids than fit in one ms.
  const rand =
    now === lastMs
      ? lastRand + 1n + BigInt(bytes.readUInt32BE(0))
      : BigInt(`0x${bytes.subarray(6, 16).toString('hex')}`) & ((1n << 73n) - 1n);
  lastMs = now;
  lastRand = rand;
  const t = BigInt(now);
  for (let i = 0; i < 6; i++) bytes[i] = Number((t >> BigInt(8 * (5 - i))) & 0xffn);
  const randA = (rand >> 62n) & 0xfffn;
  bytes[6] = 0x70 | Number(randA >> 8n);
  bytes[7] = Number(randA & 0xffn);
  bytes[8] = 0x80 | Number((rand >> 56n) & 0x3fn);
  for (let i = 9; i < 16; i++) bytes[i] = Number((rand >> BigInt(8 * (15 - i))) & 0xffn);
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
