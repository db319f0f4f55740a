/** Shared request schemas and limits (DESIGN "limits"). */
import { Type, type TSchema } from '@sinclair/typebox';

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const Uuid = Type.String({ pattern: UUID_PATTERN, maxLength: 36 });
export const Name = Type.String({ minLength: 1, maxLength: 255, pattern: '\\S' });
export const Description = Type.String({ maxLength: 4096 });
export const BODY_LIMIT = 1024 * 1024;
export const METADATA_LIMIT = 16 * 1024;
export const MAX_METRICS = 100;

export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false });

export const ListQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    cursor: Type.Optional(Type.String({ maxLength: 200, pattern: '^[A-Za-z0-9_-]*$' })),
  },
  { additionalProperties: false },
);

export const withList = <T extends Record<string, TSchema>>(extra: T) =>
  Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })), cursor: Type.Optional(Type.String({ maxLength: 200, pattern: '^[A-Za-z0-9_-]*$' })), ...extra }, { additionalProperties: false });

export const EmptyBody = Type.Union([Type.Null(), Type.Object({}, { additionalProperties: false })]);

/** Request JSON nests at most this deep (policy conditions, at their limit of 10, need about 22). */
export const MAX_JSON_DEPTH = 64;

/**
 * What the schemas cannot express: a NUL character in a string or key (PostgreSQL refuses it in
 * text, SQLite would store it) and nesting deeper than MAX_JSON_DEPTH (serializing such a value
 * again, for a size check or a response, exhausts the stack). Iterative, so hostile input cannot
 * exhaust the stack here either.
 */
export function findHostileJson(value: unknown, root: string): { path: string; message: string } | null {
  interface Node { v: unknown; depth: number; parent: Node | null; key: string; index: boolean }
  // Paths are only spelled out for the node at fault, so wide input costs no string building.
  const pathOf = (n: Node): string => {
    const parts: string[] = [];
    for (let c: Node | null = n; c?.parent; c = c.parent) parts.push(c.index ? `[${c.key}]` : `.${c.key}`);
    const path = root + parts.reverse().join('');
    return path.length > 200 ? `${path.slice(0, 200)}…` : path;
  };
  const stack: Node[] = [{ v: value, depth: 0, parent: null, key: '', index: false }];
  while (stack.length) {
    const n = stack.pop()!;
    if (typeof n.v === 'string') {
      if (n.v.includes('\u0000')) return { path: pathOf(n), message: 'must not contain NUL characters' };
      continue;
    }
    if (n.v === null || typeof n.v !== 'object') continue;
    if (n.depth >= MAX_JSON_DEPTH) return { path: pathOf(n), message: `nested deeper than ${MAX_JSON_DEPTH} levels` };
    const index = Array.isArray(n.v);
    for (const [key, v] of Object.entries(n.v)) {
      const child: Node = { v, depth: n.depth + 1, parent: n, key, index };
      if (key.includes('\u0000')) return { path: pathOf(child), message: 'must not contain NUL characters' };
      stack.push(child);
    }
  }
  return null;
}

