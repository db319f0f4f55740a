/** Keyset pagination: the cursor is the last item's id, opaque to callers. */
import { ApiError } from '../domain/errors.js';

export function pageParams(q: { limit?: string; cursor?: string }): { limit: number; after?: string } {
  const limit = q.limit === undefined ? 50 : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new ApiError(400, 'validation_failed', 'limit: must be an integer between 1 and 500', { problems: [{ path: 'querystring.limit', message: 'between 1 and 500' }] });
  if (!q.cursor) return { limit };
  const after = Buffer.from(q.cursor, 'base64url').toString('utf8');
  // Cursors are ids (UUIDs) or numeric keys; anything else decoded from base64url is not ours.
  if (!/^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9]{1,15})$/.test(after)) throw new ApiError(400, 'validation_failed', 'cursor: not a cursor this API issued', { problems: [{ path: 'querystring.cursor', message: 'invalid' }] });
  return { limit, after };
}

export function page<T>(items: T[], limit: number, key: (t: T) => string | number): { items: T[]; next_cursor: string | null } {
  const last = items[items.length - 1];
  return { items, next_cursor: items.length === limit && last !== undefined ? Buffer.from(String(key(last)), 'utf8').toString('base64url') : null };
}
