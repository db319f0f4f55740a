/**
 * Request validation: one Ajv instance with strict options (no coercion, no silent removal of
 * unknown fields), and compiled validators cached by schema text. Many routes share the same
 * schemas (path ids, list queries), and compiling each copy again was most of the start-up
 * time spent in `ready()`.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

// ajv-formats ships CommonJS with a default export property.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as unknown as (ajv: Ajv) => Ajv;

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const ajv = new Ajv({ removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: false, strict: false });
  addFormats(ajv);
  const cache = new Map<string, ValidateFunction>();
  return ({ schema }) => {
    const key = JSON.stringify(schema);
    let validate = cache.get(key);
    if (!validate) {
      validate = ajv.compile(schema as object);
      cache.set(key, validate);
    }
    return validate as ReturnType<FastifySchemaCompiler<unknown>>;
  };
}
