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
import type { FastifySchemaCompiler, FastifyServerOptions } from 'fastify';

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
