/**
 * /v1/analytics: commerce figures per flash sale and per live stream, for the
 * seller (their products) and admins (everything).
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { currentUser, requirePermission } from '../../auth/auth-hooks.js';
import { ErrorRef } from '../../platform/http/openapi.js';
import type { CommerceAnalytics } from './commerce-analytics.js';

const FlashSaleStatsSchema = Type.Object(
  {
    saleId: Type.String({ format: 'uuid' }),
    quantity: Type.Integer(),
    reservations: Type.Object({
      total: Type.Integer(),
      reserved: Type.Integer(),
      paid: Type.Integer(),
      expired: Type.Integer(),
      cancelled: Type.Integer(),
    }),
    unitsSold: Type.Integer(),
    revenueMinor: Type.Integer(),
    currency: Type.String(),
    conversion: Type.Number({ description: 'Paid reservations ÷ all reservations' }),
  },
  { $id: 'FlashSaleStats' },
);

const StreamCommerceStatsSchema = Type.Object(
  {
    streamId: Type.String(),
    orders: Type.Object({
      created: Type.Integer(),
      paid: Type.Integer(),
      cancelled: Type.Integer(),
      expired: Type.Integer(),
    }),
    unitsSold: Type.Integer(),
    revenueMinor: Type.Record(Type.String(), Type.Integer(), { description: 'Per currency, minor units' }),
    conversion: Type.Number({ description: 'Paid orders ÷ created orders' }),
    coupons: Type.Object({ redemptions: Type.Integer(), discountMinor: Type.Integer() }),
    flashSales: Type.Array(Type.Ref(FlashSaleStatsSchema)),
  },
  { $id: 'StreamCommerceStats' },
);

const security = [{ bearer: [] }];

export async function analyticsRoutes(
  fastify: FastifyInstance,
  opts: { analytics: CommerceAnalytics },
): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  fastify.addSchema(FlashSaleStatsSchema);
  fastify.addSchema(StreamCommerceStatsSchema);

  app.get(
    '/v1/analytics/flash-sales/:id',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['analytics'],
        summary: 'Reservations, units, revenue and conversion of a flash sale',
        security,
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false }),
        response: { 200: Type.Ref(FlashSaleStatsSchema), 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => opts.analytics.flashSale(currentUser(request), request.params.id),
  );

  app.get(
    '/v1/analytics/streams/:streamId/commerce',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['analytics'],
        summary:
          "Orders, units, revenue, conversion and coupon use of a live stream (the caller's products; admins: all)",
        security,
        params: Type.Object(
          { streamId: Type.String({ minLength: 1, maxLength: 100 }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Ref(StreamCommerceStatsSchema), 401: ErrorRef, 403: ErrorRef },
      },
    },
    async (request) => opts.analytics.stream(currentUser(request), request.params.streamId),
  );
}
