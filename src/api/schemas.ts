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
