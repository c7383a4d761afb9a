/**
 * /v1/flash-sales: create, read, stop, and the purchase hot path; and the
 * shortcut that answers taps on a sold-out sale before Fastify routes them.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { currentUser, requirePermission, requireUser } from '../../auth/auth-hooks.js';
import { ErrorCatalogue } from '../../platform/errors.js';
import { ErrorRef } from '../../platform/http/openapi.js';
import { parseIdempotencyKey } from '../../platform/idempotency/idempotency.js';
import { IdempotencyHeaders } from '../orders/order-schemas.js';
import {
  CreateFlashSaleBody,
  FlashSaleSchema,
  PurchaseBody,
  ReservationParams,
  ReservationSchema,
  SaleIdParams,
} from './flash-sale-schemas.js';
import type { FlashSalesService } from './flash-sales-service.js';

const security = [{ bearer: [] }];

/** The answer to every purchase of a sold-out sale, serialised once. */
const SOLD_OUT_BODY = JSON.stringify({
  code: 'FLASH_SOLD_OUT',
  message: ErrorCatalogue.FLASH_SOLD_OUT.message,
  details: { remaining: 0 },
});
const SOLD_OUT_LENGTH = String(Buffer.byteLength(SOLD_OUT_BODY));
const PURCHASE_PATH = /^\/v1\/flash-sales\/([^/?#]+)\/purchase\/?(?:\?|$)/;

/**
 * In the seconds after a sale sells out almost every request is a late tap on Buy. This
 * answers them from the HTTP server's request handler, before Fastify builds a request,
 * routes, parses or authenticates anything: the same 409 `FLASH_SOLD_OUT` the route gives,
 * for less than a trivial route costs. Returns true when it answered. (Without CORS only:
 * with CORS_ORIGINS set the route's own `onRequest` answers, with the CORS headers.)
 */
export function soldOutShortcut(
  flashSales: Pick<FlashSalesService, 'isKnownSoldOut'>,
  onAnswer?: () => void,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'POST' || !req.url) return false;
    const saleId = PURCHASE_PATH.exec(req.url)?.[1];
    // Sale ids are UUIDs: an encoded one is not a sale this knows, and Fastify answers it
    // (decoding here would throw on a malformed escape, outside any error handler).
    if (!saleId || !flashSales.isKnownSoldOut(saleId)) return false;
    const requestId = req.headers['x-request-id'];
    res.writeHead(409, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': SOLD_OUT_LENGTH,
      'x-request-id': typeof requestId === 'string' ? requestId : randomUUID(),
    });
    res.end(SOLD_OUT_BODY);
    onAnswer?.();
    return true;
  };
}

export async function flashSaleRoutes(
  fastify: FastifyInstance,
  opts: { flashSales: FlashSalesService },
): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { flashSales } = opts;
  fastify.addSchema(FlashSaleSchema);
  fastify.addSchema(ReservationSchema);
  const SaleRef = Type.Ref(FlashSaleSchema);
  const ReservationRef = Type.Ref(ReservationSchema);

  app.post(
    '/v1/flash-sales',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['flash-sales'],
        summary: 'Start or schedule a flash sale of one SKU',
        security,
        body: CreateFlashSaleBody,
        response: { 201: SaleRef, 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await flashSales.create(currentUser(request), request.body)),
  );

  app.get(
    '/v1/flash-sales/:id',
    {
      schema: {
        tags: ['flash-sales'],
        summary: 'A flash sale with its live state and remaining units',
        params: SaleIdParams,
        response: { 200: SaleRef, 404: ErrorRef },
      },
    },
    async (request) => flashSales.get(request.params.id),
  );

  app.post(
    '/v1/flash-sales/:id/stop',
    {
      preValidation: requirePermission('catalog:write'),
      schema: {
        tags: ['flash-sales'],
        summary: 'End a flash sale now',
        security,
        params: SaleIdParams,
        response: { 200: SaleRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => flashSales.stopSale(currentUser(request), request.params.id),
  );

  app.post(
    '/v1/flash-sales/:id/purchase',
    {
      // A sold-out sale is answered before the body is parsed or validated: in the seconds after a
      // sale sells out almost every request is a late tap on Buy, and they must cost next to nothing.
      onRequest: async (request, reply) => {
        const { id } = request.params as { id?: string };
        if (id && flashSales.isKnownSoldOut(id))
          return (reply as FastifyReply)
            .status(409)
            .type('application/json; charset=utf-8')
            .send(SOLD_OUT_BODY);
      },
      preValidation: requirePermission('shop:buy'),
      schema: {
        tags: ['flash-sales'],
        summary: 'Reserve units of a flash sale',
        description:
          'One atomic decision (window, per-buyer limit, stock). Success holds the units for `reservationTtlSeconds`: check out with the reservation id and pay before `expiresAt`, or they go back to the sale. Retrying with the same Idempotency-Key returns the same reservation (200). Errors: FLASH_SOLD_OUT, FLASH_LIMIT_REACHED, FLASH_NOT_STARTED, FLASH_ENDED, VELOCITY_LIMITED.',
        security,
        headers: IdempotencyHeaders,
        params: SaleIdParams,
        body: PurchaseBody,
        response: {
          200: ReservationRef,
          201: ReservationRef,
          400: ErrorRef,
          401: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
          429: ErrorRef,
        },
      },
    },
    async (request, reply) => {
      const key = parseIdempotencyKey(request.headers['idempotency-key']);
      const { reservation, replayed } = await flashSales.purchase(
        currentUser(request),
        request.ip,
        request.params.id,
        request.body.quantity,
        key,
      );
      return reply.status(replayed ? 200 : 201).send(reservation);
    },
  );

  app.delete(
    '/v1/flash-sales/:id/reservations/:reservationId',
    {
      preValidation: requireUser,
      schema: {
        tags: ['flash-sales'],
        summary: 'Give back a reservation that is not in an order',
        security,
        params: ReservationParams,
        response: { 204: Type.Null(), 401: ErrorRef, 404: ErrorRef, 409: ErrorRef },
      },
    },
    async (request, reply) => {
      await flashSales.cancelReservation(
        currentUser(request),
        request.params.id,
        request.params.reservationId,
      );
      return reply.status(204).send(null);
    },
  );
}
