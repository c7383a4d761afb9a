/**
 * /v1/orders: checkout, read, pay, cancel, fulfil. Every mutating route takes
 * an Idempotency-Key header.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { currentUser, requirePermission, requireUser } from '../../auth/auth-hooks.js';
import { ErrorRef } from '../../platform/http/openapi.js';
import { parseIdempotencyKey } from '../../platform/idempotency/idempotency.js';
import {
  CheckoutBody,
  IdempotencyHeaders,
  ListOrdersQuery,
  OrderIdParams,
  OrderSchema,
  PayBody,
} from './order-schemas.js';
import type { OrdersService } from './orders-service.js';

const security = [{ bearer: [] }];

export async function orderRoutes(fastify: FastifyInstance, opts: { orders: OrdersService }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { orders } = opts;
  fastify.addSchema(OrderSchema);
  const OrderRef = Type.Ref(OrderSchema);

  app.post(
    '/v1/orders',
    {
      preValidation: requirePermission('shop:buy'),
      schema: {
        tags: ['orders'],
        summary: 'Check out a cart (regular items and/or flash-sale reservations, optional coupon)',
        description:
          'Stock is taken and the coupon redeemed atomically with the order. The order waits in `pending_payment` until paid, cancelled or expired. A retry with the same Idempotency-Key returns the same order (200 instead of 201).',
        security,
        headers: IdempotencyHeaders,
        body: CheckoutBody,
        response: {
          200: OrderRef,
          201: OrderRef,
          400: ErrorRef,
          401: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
          422: ErrorRef,
        },
      },
    },
    async (request, reply) => {
      const key = parseIdempotencyKey(request.headers['idempotency-key']);
      const { order, replayed } = await orders.checkout(currentUser(request), request.body, key);
      return reply.status(replayed ? 200 : 201).send(order);
    },
  );

  app.get(
    '/v1/orders',
    {
      preValidation: requireUser,
      schema: {
        tags: ['orders'],
        summary: 'My orders, newest first',
        security,
        querystring: ListOrdersQuery,
        response: { 200: Type.Array(OrderRef), 401: ErrorRef },
      },
    },
    async (request) => orders.listMine(currentUser(request), request.query.limit, request.query.before),
  );

  app.get(
    '/v1/orders/:id',
    {
      preValidation: requireUser,
      schema: {
        tags: ['orders'],
        summary: 'One of my orders (admins: any)',
        security,
        params: OrderIdParams,
        response: { 200: OrderRef, 401: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => orders.get(currentUser(request), request.params.id),
  );

  app.post(
    '/v1/orders/:id/pay',
    {
      preValidation: requireUser,
      schema: {
        tags: ['orders'],
        summary: 'Pay an order',
        description:
          'Charges at most once per order whatever the retries: the payment provider is idempotent on the order. Declined → 402 PAYMENT_FAILED (the order stays payable); no answer in time → 504 PAYMENT_TIMEOUT (retry).',
        security,
        headers: IdempotencyHeaders,
        params: OrderIdParams,
        body: PayBody,
        response: {
          200: OrderRef,
          400: ErrorRef,
          401: ErrorRef,
          402: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
          504: ErrorRef,
        },
      },
    },
    async (request) => {
      parseIdempotencyKey(request.headers['idempotency-key']);
      return orders.pay(currentUser(request), request.params.id, request.body.method);
    },
  );

  app.post(
    '/v1/orders/:id/cancel',
    {
      preValidation: requireUser,
      schema: {
        tags: ['orders'],
        summary: 'Cancel an unpaid order (returns stock, coupon use and reservations)',
        security,
        headers: IdempotencyHeaders,
        params: OrderIdParams,
        response: { 200: OrderRef, 401: ErrorRef, 404: ErrorRef, 409: ErrorRef },
      },
    },
    async (request) => {
      parseIdempotencyKey(request.headers['idempotency-key']);
      return orders.cancel(currentUser(request), request.params.id);
    },
  );

  app.post(
    '/v1/orders/:id/fulfil',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['orders'],
        summary: 'Mark a paid order fulfilled (its seller or an admin)',
        security,
        headers: IdempotencyHeaders,
        params: OrderIdParams,
        response: { 200: OrderRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef, 409: ErrorRef },
      },
    },
    async (request) => {
      parseIdempotencyKey(request.headers['idempotency-key']);
      return orders.fulfil(currentUser(request), request.params.id);
    },
  );
}
