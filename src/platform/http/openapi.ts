/**
 * The OpenAPI document is generated from the route schemas and served at
 * /docs (UI) and /docs/json. Every error answer shares one schema whose
 * `code` enumerates the error catalogue.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ERROR_CODES, type ErrorCode } from '../errors.js';

export const ErrorSchema = Type.Object(
  {
    code: Type.Unsafe<ErrorCode>({
      type: 'string',
      enum: ERROR_CODES,
      description: 'Stable machine-readable error code',
    }),
    message: Type.String({ description: 'Human-readable explanation' }),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { $id: 'Error', description: 'Every error answer has this shape' },
);

export const ErrorRef = Type.Ref(ErrorSchema);

export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  app.addSchema(ErrorSchema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Live commerce server',
        description:
          'Live streams with in-stream shopping, chat and support calls. Errors share the `Error` schema; its `code` is stable.',
        version,
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
      tags: [
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'auth', description: 'Users, sessions and roles' },
        { name: 'catalog', description: 'Products and SKUs' },
        { name: 'coupons', description: 'Coupons: rules, validation, usage' },
        { name: 'orders', description: 'In-stream checkout, payment, cancellation' },
        { name: 'flash-sales', description: 'Time-boxed sales that never oversell' },
        { name: 'analytics', description: 'Commerce figures per stream and per sale' },
        { name: 'chat', description: 'Conversations, messages, receipts and uploads' },
        { name: 'live', description: 'Live streams: keys, schedule, status, featured products, pins' },
        {
          name: 'calls',
          description: 'Video calls: start, answer, hang up, history, agent availability, analytics',
        },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true } });
}
