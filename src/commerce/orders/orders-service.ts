/**
 * Orders: checkout from a cart (regular SKUs and flash-sale reservations,
 * optionally a coupon), payment, cancellation, expiry and fulfilment.
 *
 * Atomicity lives in the Db transaction that creates an order: regular stock
 * is decremented (`stock >= n` checked under row locks), the coupon use is
 * taken (coupon row locked), reservations are bound to the order, and the
 * Idempotency-Key is claimed, all or nothing.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { type AuthUser, can } from '../../auth/permissions.js';
import type { Database } from '../../database.js';
import { AppError } from '../../platform/errors.js';
import { hashRequest, runIdempotent } from '../../platform/idempotency/idempotency.js';
import type { CartLine } from '../coupons/coupon-rules.js';
import type { CouponsService } from '../coupons/coupons-service.js';
import type { FlashSalesService } from '../flash-sales/flash-sales-service.js';
import type { OrderItemsTable, OrderStatus, OrdersTable } from './order-tables.js';
import type { PaymentMethod, PaymentProvider } from './payment-provider.js';

export interface CheckoutInput {
  items?: Array<{ skuId: string; quantity: number }>;
  reservations?: string[];
  couponCode?: string;
  streamId?: string;
  streamMediaTimeMs?: number;
}

export interface OrderView {
  id: string;
  userId: string;
  status: OrderStatus;
  currency: string;
  subtotalMinor: number;
  discountMinor: number;
  shippingMinor: number;
  totalMinor: number;
  couponCode: string | null;
  streamId: string | null;
  streamMediaTimeMs: number | null;
  paymentRef: string | null;
  expiresAt: string;
  paidAt: string | null;
  createdAt: string;
  items: Array<{
    skuId: string;
    productId: string;
    title: string;
    quantity: number;
    unitPriceMinor: number;
    flashSaleId: string | null;
    reservationId: string | null;
  }>;
}

export interface OrdersServiceOptions {
  /** How long an unpaid order holds stock and coupon. */
  paymentTtlSeconds: number;
  /** How long a payment call may take. */
  paymentTimeoutMs: number;
  /** Flat shipping fee per order, minor units. */
  shippingFeeMinor: number;
}

interface Line {
  productId: string;
  skuId: string;
  title: string;
  category: string;
  quantity: number;
  unitPriceMinor: number;
  currency: string;
  flashSaleId: string | null;
  reservationId: string | null;
  reservationExpiresAt: Date | null;
}

export class OrdersService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly coupons: CouponsService,
    private readonly flashSales: FlashSalesService,
    private readonly payments: PaymentProvider,
    private readonly options: OrdersServiceOptions,
  ) {}

  async checkout(
    user: AuthUser,
    input: CheckoutInput,
    idempotencyKey: string,
  ): Promise<{ order: OrderView; replayed: boolean }> {
    const items = input.items ?? [];
    const reservations = [...new Set(input.reservations ?? [])];
    if (items.length === 0 && reservations.length === 0)
      throw new AppError('VALIDATION_FAILED', 'An order needs items or reservations', {
        location: 'body',
        field: 'items',
      });
    const outcome = await runIdempotent(
      this.db,
      { scope: 'orders.create', userId: user.id, key: idempotencyKey, requestHash: hashRequest(input) },
      async (trx) => ({
        statusCode: 201,
        body: await this.createInTransaction(trx, user, { ...input, items, reservations }),
      }),
    );
    return { order: outcome.body, replayed: outcome.replayed };
  }

  private async createInTransaction(
    trx: Transaction<Database>,
    user: AuthUser,
    input: CheckoutInput & { items: Array<{ skuId: string; quantity: number }>; reservations: string[] },
  ): Promise<OrderView> {
    const orderId = randomUUID();
    const lines: Line[] = [];

    // Regular items: lock SKU rows in a fixed order (no deadlocks), check and take stock.
    const wanted = new Map<string, number>();
    for (const it of input.items) wanted.set(it.skuId, (wanted.get(it.skuId) ?? 0) + it.quantity);
    if (wanted.size > 0) {
      const ids = [...wanted.keys()].sort();
      const skus = await trx
        .selectFrom('skus')
        .innerJoin('products', 'products.id', 'skus.product_id')
        .select([
          'skus.id',
          'skus.product_id',
          'skus.name',
          'skus.price_minor',
          'skus.stock',
          'skus.active as sku_active',
          'products.title',
          'products.category',
          'products.currency',
          'products.active as product_active',
        ])
        .where('skus.id', 'in', ids)
        .orderBy('skus.id')
        .forUpdate('skus')
        .execute();
      for (const id of ids) {
        const sku = skus.find((s) => s.id === id);
        if (!sku) throw new AppError('SKU_NOT_FOUND', undefined, { skuId: id });
        if (!sku.sku_active || !sku.product_active)
          throw new AppError('PRODUCT_INACTIVE', undefined, { skuId: id });
        const quantity = wanted.get(id) ?? 0;
        if (sku.stock < quantity)
          throw new AppError('OUT_OF_STOCK', undefined, { skuId: id, available: sku.stock });
        await trx
          .updateTable('skus')
          .set({ stock: sku.stock - quantity })
          .where('id', '=', id)
          .execute();
        lines.push({
          productId: sku.product_id,
          skuId: sku.id,
          title: `${sku.title} (${sku.name})`,
          category: sku.category,
          quantity,
          unitPriceMinor: sku.price_minor,
          currency: sku.currency,
          flashSaleId: null,
          reservationId: null,
          reservationExpiresAt: null,
        });
      }
    }

    // Flash-sale reservations: the buyer's own, still open, not in another order.
    if (input.reservations.length > 0) {
      const rows = await trx
        .selectFrom('flash_reservations')
        .innerJoin('flash_sales', 'flash_sales.id', 'flash_reservations.sale_id')
        .innerJoin('products', 'products.id', 'flash_sales.product_id')
        .innerJoin('skus', 'skus.id', 'flash_sales.sku_id')
        .select([
          'flash_reservations.id',
          'flash_reservations.user_id',
          'flash_reservations.quantity',
          'flash_reservations.status',
          'flash_reservations.expires_at',
          'flash_reservations.order_id',
          'flash_sales.id as sale_id',
          'flash_sales.sale_price_minor',
          'flash_sales.currency',
          'flash_sales.product_id',
          'flash_sales.sku_id',
          'products.title',
          'products.category',
          'skus.name',
        ])
        .where('flash_reservations.id', 'in', input.reservations)
        .forUpdate('flash_reservations')
        .execute();
      const now = new Date();
      for (const id of input.reservations) {
        const r = rows.find((x) => x.id === id);
        if (!r || r.user_id !== user.id)
          throw new AppError('RESERVATION_NOT_FOUND', undefined, { reservationId: id });
        if (r.status !== 'reserved' || r.expires_at <= now)
          throw new AppError('RESERVATION_EXPIRED', undefined, { reservationId: id, status: r.status });
        if (r.order_id)
          throw new AppError('ORDER_STATE_INVALID', 'This reservation is already in an order', {
            reservationId: id,
          });
        await trx
          .updateTable('flash_reservations')
          .set({ order_id: orderId, updated_at: now })
          .where('id', '=', id)
          .execute();
        lines.push({
          productId: r.product_id,
          skuId: r.sku_id,
          title: `${r.title} (${r.name}) — flash sale`,
          category: r.category,
          quantity: r.quantity,
          unitPriceMinor: r.sale_price_minor,
          currency: r.currency,
          flashSaleId: r.sale_id,
          reservationId: r.id,
          reservationExpiresAt: r.expires_at,
        });
      }
    }

    const currency = lines[0]?.currency ?? 'USD';
    if (lines.some((l) => l.currency !== currency)) throw new AppError('CURRENCY_MISMATCH');
    const subtotal = lines.reduce((sum, l) => sum + l.quantity * l.unitPriceMinor, 0);
    let discount = 0;
    let shipping = this.options.shippingFeeMinor;
    let couponId: string | null = null;
    if (input.couponCode) {
      // Flash-sale lines are already discounted: coupons apply to regular lines only.
      const cartLines: CartLine[] = lines
        .filter((l) => l.flashSaleId === null)
        .map((l) => ({
          productId: l.productId,
          skuId: l.skuId,
          category: l.category,
          quantity: l.quantity,
          unitPriceMinor: l.unitPriceMinor,
        }));
      const quote = await this.coupons.redeemInTransaction(
        trx,
        input.couponCode,
        {
          userId: user.id,
          streamId: input.streamId ?? null,
          currency,
          now: new Date(),
          lines: cartLines,
          shippingMinor: shipping,
        },
        orderId,
      );
      couponId = quote.couponId;
      discount = Math.min(quote.discountMinor, subtotal);
      if (quote.freeShipping) shipping = 0;
    }
    const paymentDeadline = Date.now() + this.options.paymentTtlSeconds * 1000;
    const reservationDeadline = Math.min(
      ...lines.map((l) => l.reservationExpiresAt?.getTime() ?? Number.POSITIVE_INFINITY),
    );
    const expiresAt = new Date(Math.min(paymentDeadline, reservationDeadline));
    await trx
      .insertInto('orders')
      .values({
        id: orderId,
        user_id: user.id,
        status: 'pending_payment',
        currency,
        subtotal_minor: subtotal,
        discount_minor: discount,
        shipping_minor: shipping,
        total_minor: subtotal - discount + shipping,
        coupon_id: couponId,
        stream_id: input.streamId ?? null,
        stream_media_time_ms: input.streamMediaTimeMs ?? null,
        payment_ref: null,
        expires_at: expiresAt,
        paid_at: null,
      })
      .execute();
    await trx
      .insertInto('order_items')
      .values(
        lines.map((l) => ({
          id: randomUUID(),
          order_id: orderId,
          product_id: l.productId,
          sku_id: l.skuId,
          title: l.title,
          quantity: l.quantity,
          unit_price_minor: l.unitPriceMinor,
          flash_sale_id: l.flashSaleId,
          reservation_id: l.reservationId,
        })),
      )
      .execute();
    return this.view(trx, orderId);
  }

  async get(user: AuthUser, orderId: string): Promise<OrderView> {
    const order = await this.db
      .selectFrom('orders')
      .select('user_id')
      .where('id', '=', orderId)
      .executeTakeFirst();
    // Someone else's order is "not found", not "forbidden": ids must not be probeable.
    if (!order || (order.user_id !== user.id && !can(user, 'orders:read-any')))
      throw new AppError('ORDER_NOT_FOUND');
    return this.view(this.db, orderId);
  }

  async listMine(user: AuthUser, limit: number, before?: string): Promise<OrderView[]> {
    let q = this.db.selectFrom('orders').select('id').where('user_id', '=', user.id);
    if (before) q = q.where('created_at', '<', new Date(before));
    const rows = await q.orderBy('created_at', 'desc').limit(limit).execute();
    return Promise.all(rows.map((r) => this.view(this.db, r.id)));
  }

  /**
   * Charges the order once (the provider is idempotent on the order id, so
   * retries and concurrent attempts cannot double-charge) and marks it paid.
   */
  async pay(user: AuthUser, orderId: string, method: PaymentMethod): Promise<OrderView> {
    const order = await this.ownOrder(user, orderId);
    if (order.status === 'paid' || order.status === 'fulfilled') return this.view(this.db, orderId);
    if (order.status !== 'pending_payment')
      throw new AppError('ORDER_STATE_INVALID', `The order is ${order.status}`);
    if (order.expires_at <= new Date()) {
      await this.close(orderId, 'expired');
      throw new AppError('ORDER_STATE_INVALID', 'The order expired before payment');
    }
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new AppError('PAYMENT_TIMEOUT')),
      this.options.paymentTimeoutMs,
    );
    let charge: Awaited<ReturnType<PaymentProvider['charge']>>;
    try {
      charge = await this.payments.charge(
        {
          idempotencyKey: `order:${orderId}`,
          amountMinor: order.total_minor,
          currency: order.currency,
          method,
        },
        abort.signal,
      );
    } catch (err) {
      throw err instanceof AppError ? err : new AppError('PAYMENT_TIMEOUT');
    } finally {
      clearTimeout(timer);
    }
    if (charge.status === 'declined')
      throw new AppError('PAYMENT_FAILED', undefined, { reason: charge.reason });

    const flashLines = await this.db
      .selectFrom('order_items')
      .select(['flash_sale_id', 'reservation_id'])
      .where('order_id', '=', orderId)
      .where('reservation_id', 'is not', null)
      .execute();
    for (const line of flashLines) {
      const ok = await this.flashSales.confirmForPayment(line.flash_sale_id!, line.reservation_id!);
      if (!ok) {
        // Paid too late: the units went back to the sale. Return the money, close the order.
        await this.payments.refund(charge.ref);
        await this.close(orderId, 'expired');
        throw new AppError(
          'RESERVATION_EXPIRED',
          'A flash-sale reservation expired before payment; the charge was refunded',
        );
      }
    }
    await this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable('orders')
        .set({ status: 'paid', payment_ref: charge.ref, paid_at: new Date(), updated_at: new Date() })
        .where('id', '=', orderId)
        .where('status', '=', 'pending_payment')
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0) return; // a concurrent attempt with the same charge won
      const reservationIds = flashLines.map((l) => l.reservation_id!);
      if (reservationIds.length > 0)
        await trx
          .updateTable('flash_reservations')
          .set({ status: 'paid', updated_at: new Date() })
          .where('id', 'in', reservationIds)
          .execute();
    });
    return this.view(this.db, orderId);
  }

  async cancel(user: AuthUser, orderId: string): Promise<OrderView> {
    const order = await this.ownOrder(user, orderId);
    if (order.status === 'cancelled') return this.view(this.db, orderId);
    if (order.status !== 'pending_payment')
      throw new AppError('ORDER_STATE_INVALID', `The order is ${order.status}`);
    await this.close(orderId, 'cancelled');
    return this.view(this.db, orderId);
  }

  /** Paid → fulfilled, by an admin or a seller of something in the order. */
  async fulfil(user: AuthUser, orderId: string): Promise<OrderView> {
    const order = await this.db.selectFrom('orders').selectAll().where('id', '=', orderId).executeTakeFirst();
    if (!order) throw new AppError('ORDER_NOT_FOUND');
    if (!can(user, 'orders:read-any')) {
      const sells = await this.db
        .selectFrom('order_items')
        .innerJoin('products', 'products.id', 'order_items.product_id')
        .select('products.seller_id')
        .where('order_items.order_id', '=', orderId)
        .where('products.seller_id', '=', user.id)
        .executeTakeFirst();
      if (!sells || !can(user, 'catalog:write')) throw new AppError('ORDER_NOT_FOUND');
    }
    if (order.status === 'fulfilled') return this.view(this.db, orderId);
    const updated = await this.db
      .updateTable('orders')
      .set({ status: 'fulfilled', updated_at: new Date() })
      .where('id', '=', orderId)
      .where('status', '=', 'paid')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0)
      throw new AppError('ORDER_STATE_INVALID', `The order is ${order.status}`);
    return this.view(this.db, orderId);
  }

  /** Expires unpaid orders past their deadline; safe on several instances at once. */
  async expireDue(limit = 200): Promise<number> {
    const due = await this.db
      .selectFrom('orders')
      .select('id')
      .where('status', '=', 'pending_payment')
      .where('expires_at', '<=', new Date())
      .limit(limit)
      .execute();
    let n = 0;
    for (const { id } of due) if (await this.close(id, 'expired')) n++;
    return n;
  }

  /**
   * Ends an unpaid order and returns what it held: regular stock, the coupon
   * use, flash reservations. The status change is conditional, so when two
   * instances race only one returns anything.
   */
  private async close(orderId: string, status: 'cancelled' | 'expired'): Promise<boolean> {
    const released = await this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable('orders')
        .set({ status, updated_at: new Date() })
        .where('id', '=', orderId)
        .where('status', '=', 'pending_payment')
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 0) return undefined;
      const items = await trx
        .selectFrom('order_items')
        .selectAll()
        .where('order_id', '=', orderId)
        .orderBy('sku_id')
        .execute();
      for (const item of items.filter((i) => i.reservation_id === null)) {
        await trx
          .updateTable('skus')
          .set((eb) => ({ stock: eb('stock', '+', item.quantity) }))
          .where('id', '=', item.sku_id)
          .execute();
      }
      await this.coupons.releaseInTransaction(trx, orderId);
      return items.filter((i) => i.reservation_id !== null);
    });
    if (!released) return false;
    const order = await this.db
      .selectFrom('orders')
      .select('user_id')
      .where('id', '=', orderId)
      .executeTakeFirstOrThrow();
    for (const item of released)
      await this.flashSales.release(item.flash_sale_id!, item.reservation_id!, order.user_id);
    return true;
  }

  private async ownOrder(user: AuthUser, orderId: string): Promise<Selectable<OrdersTable>> {
    const order = await this.db.selectFrom('orders').selectAll().where('id', '=', orderId).executeTakeFirst();
    if (!order || order.user_id !== user.id) throw new AppError('ORDER_NOT_FOUND');
    return order;
  }

  private async view(db: Kysely<Database>, orderId: string): Promise<OrderView> {
    const order = await db
      .selectFrom('orders')
      .selectAll()
      .where('id', '=', orderId)
      .executeTakeFirstOrThrow();
    const items: Array<Selectable<OrderItemsTable>> = await db
      .selectFrom('order_items')
      .selectAll()
      .where('order_id', '=', orderId)
      .orderBy('title')
      .execute();
    const coupon = order.coupon_id
      ? await db.selectFrom('coupons').select('code').where('id', '=', order.coupon_id).executeTakeFirst()
      : undefined;
    return {
      id: order.id,
      userId: order.user_id,
      status: order.status,
      currency: order.currency,
      subtotalMinor: order.subtotal_minor,
      discountMinor: order.discount_minor,
      shippingMinor: order.shipping_minor,
      totalMinor: order.total_minor,
      couponCode: coupon?.code ?? null,
      streamId: order.stream_id,
      streamMediaTimeMs: order.stream_media_time_ms,
      paymentRef: order.payment_ref,
      expiresAt: order.expires_at.toISOString(),
      paidAt: order.paid_at?.toISOString() ?? null,
      createdAt: order.created_at.toISOString(),
      items: items.map((i) => ({
        skuId: i.sku_id,
        productId: i.product_id,
        title: i.title,
        quantity: i.quantity,
        unitPriceMinor: i.unit_price_minor,
        flashSaleId: i.flash_sale_id,
        reservationId: i.reservation_id,
      })),
    };
  }
}
