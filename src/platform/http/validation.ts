/**
 * Schema validation for routes. Bodies are validated strictly: no type
 * coercion (a "5" is not an integer) and no silent stripping of unknown
 * fields (schemas say `additionalProperties: false` and mean it). Query
 * strings, params and headers arrive as text, so those are coerced.
 *
 * Installed as the schema controller's validator factory rather than with
 * `setValidatorCompiler`, because fastify rebuilds compilers for every plugin
 * context that adds shared schemas, and a compiler set on the root would be
 * silently replaced by the default (coercing, stripping) one there.
 */
import { Ajv, type Options } from 'ajv';
import ajvFormats from 'ajv-formats';
import type { FastifyInstance, FastifySchemaCompiler, FastifyServerOptions } from 'fastify';
import { AppError } from '../errors.js';

// ajv-formats is CommonJS; under NodeNext its plugin function is the `default` property.
const addFormats = (ajvFormats as unknown as { default: (ajv: Ajv) => Ajv }).default;

const common: Options = {
  removeAdditional: false,
  useDefaults: true,
  allErrors: false,
  strict: false,
};

type ValidatorFactory = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']
>;

/** An Ajv for untrusted JSON (HTTP bodies, WebSocket frames): formats checked, no coercion, nothing stripped. */
export function createStrictAjv(): Ajv {
  return addFormats(new Ajv({ ...common, coerceTypes: false }));
}

/** Builds the per-context validator compiler; `externalSchemas` are those added with `addSchema`. */
function buildCompiler(externalSchemas: Record<string, unknown> = {}): FastifySchemaCompiler<unknown> {
  const bodyAjv = createStrictAjv();
  const textAjv = addFormats(new Ajv({ ...common, coerceTypes: 'array' }));
  for (const schema of Object.values(externalSchemas)) {
    bodyAjv.addSchema(schema as object);
    textAjv.addSchema(schema as object);
  }
  return ({ schema, httpPart }) => {
    const ajv = httpPart === 'body' ? bodyAjv : textAjv;
    const id = (schema as { $id?: string }).$id;
    const known = id ? ajv.getSchema(id) : undefined;
    return known ?? ajv.compile(schema as object);
  };
}

// fastify's factory type is declared in terms of @fastify/ajv-compiler's pool types; ours has the same call shape.
export const buildValidator = buildCompiler as unknown as ValidatorFactory;

/**
 * The path (`/a/0/b`) of the first string or key in `value` that holds U+0000, or null.
 * Schemas let any character through, but PostgreSQL text cannot store U+0000: such input is
 * refused as invalid up front instead of failing in the database as a 500. Iterative, so a
 * deeply nested body cannot overflow the stack.
 */
export function findNulCharacter(value: unknown): string | null {
  const stack: Array<[unknown, string]> = [[value, '']];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [current, path] = item;
    if (typeof current === 'string') {
      if (current.includes('\0')) return path || '/';
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) stack.push([current[i], `${path}/${i}`]);
    } else if (current !== null && typeof current === 'object' && !Buffer.isBuffer(current)) {
      for (const [key, child] of Object.entries(current)) {
        if (key.includes('\0')) return `${path}/${key.replaceAll('\0', '\\u0000')}`;
        stack.push([child, `${path}/${key}`]);
      }
    }
  }
  return null;
}

/** Refuses U+0000 in any route's params, query string or JSON body (see findNulCharacter). */
export function registerNulGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const parts = [
      ['params', request.params],
      ['querystring', request.query],
      ['body', request.body],
    ] as const;
    for (const [location, value] of parts) {
      const path = findNulCharacter(value);
      if (path === null) continue;
      const field = path.replace(/^\//, '').replaceAll('/', '.') || null;
      throw new AppError(
        'VALIDATION_FAILED',
        `${location}${field ? `.${field}` : ''} must not contain U+0000`,
        {
          location,
          field,
          rule: 'nul',
        },
      );
    }
  });
}
