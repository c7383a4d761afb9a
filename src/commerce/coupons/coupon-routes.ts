/**
 * /v1/coupons: managed by streamers/admins, validated by any signed-in shopper.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { currentUser, requirePermission, requireUser } from '../../auth/auth-hooks.js';
import { ErrorRef } from '../../platform/http/openapi.js';
import type { CatalogService } from '../catalog/catalog-service.js';
import {
  CouponIdParams,
  CouponPageSchema,
  CouponQuoteSchema,
  CouponSchema,
  CouponUsageSchema,
  CreateCouponBody,
  ListCouponsQuery,
  UpdateCouponBody,
  ValidateCouponBody,
} from './coupon-schemas.js';
import type { CouponsService } from './coupons-service.js';

export interface CouponRoutesOptions {
  /** The coupons service the routes delegate to. */
  coupons: CouponsService;
  /** Prices the items of a validate request. */
  catalog: CatalogService;
  /** Shipping assumed by the validate endpoint when the request names none (minor units); default 0. */
  defaultShippingMinor?: number;
}

const bearer = [{ bearer: [] }];

export async function couponRoutes(fastify: FastifyInstance, opts: CouponRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { coupons, catalog } = opts;
  fastify.addSchema(CouponSchema);
  fastify.addSchema(CouponPageSchema);
  fastify.addSchema(CouponQuoteSchema);
  fastify.addSchema(CouponUsageSchema);

  app.post(
    '/v1/coupons',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['coupons'],
        summary: 'Create a coupon (streamers for their own products; admins for anything)',
        security: bearer,
        body: CreateCouponBody,
        response: {
          201: Type.Ref(CouponSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await coupons.create(currentUser(request), request.body)),
  );

  app.get(
    '/v1/coupons',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['coupons'],
        summary: 'List coupons, newest first (admins: all; streamers: their own)',
        security: bearer,
        querystring: ListCouponsQuery,
        response: { 200: Type.Ref(CouponPageSchema), 400: ErrorRef, 401: ErrorRef, 403: ErrorRef },
      },
    },
    async (request) => coupons.list(currentUser(request), request.query),
  );

  app.post(
    '/v1/coupons/validate',
    {
      preValidation: requireUser,
      schema: {
        tags: ['coupons'],
        summary: 'Quote a coupon for a cart, or explain why it does not apply',
        description:
          'Read-only: nothing is redeemed. A coupon that does not apply answers its COUPON_* code (422) with `details` saying why, e.g. `{minOrderMinor, eligibleSubtotalMinor}` for COUPON_MIN_NOT_MET or `{endsAt}` for COUPON_EXPIRED.',
        security: bearer,
        body: ValidateCouponBody,
        response: {
          200: Type.Ref(CouponQuoteSchema),
          400: ErrorRef,
          401: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
          422: ErrorRef,
        },
      },
    },
    async (request) => {
      const user = currentUser(request);
      const { code, items, streamId, shippingMinor } = request.body;
      const cart = await catalog.priceCart(items);
      const shipping = shippingMinor ?? opts.defaultShippingMinor ?? 0;
      const quote = await coupons.validate(code, {
        userId: user.id,
        streamId: streamId ?? null,
        currency: cart.currency,
        now: new Date(),
        lines: cart.lines,
        shippingMinor: shipping,
      });
      const shippingAfter = quote.freeShipping ? 0 : shipping;
      return {
        ...quote,
        currency: cart.currency,
        subtotalMinor: cart.subtotalMinor,
        shippingMinor: shippingAfter,
        totalMinor: cart.subtotalMinor - quote.discountMinor + shippingAfter,
      };
    },
  );

  app.get(
    '/v1/coupons/:id',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['coupons'],
        summary: 'A coupon (its creator or an admin)',
        security: bearer,
        params: CouponIdParams,
        response: { 200: Type.Ref(CouponSchema), 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => coupons.get(currentUser(request), request.params.id),
  );

  app.patch(
    '/v1/coupons/:id',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['coupons'],
        summary: "Change a coupon's active flag, window or limits (its creator or an admin)",
        security: bearer,
        params: CouponIdParams,
        body: UpdateCouponBody,
        response: { 200: Type.Ref(CouponSchema), 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => coupons.update(currentUser(request), request.params.id, request.body),
  );

  app.get(
    '/v1/coupons/:id/usage',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['coupons'],
        summary: 'Redemptions, discount given and revenue of a coupon (its creator or an admin)',
        security: bearer,
        params: CouponIdParams,
        response: {
          200: Type.Ref(CouponUsageSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
        },
      },
    },
    async (request) => {
      await coupons.get(currentUser(request), request.params.id);
      return coupons.usage(request.params.id);
    },
  );
}
