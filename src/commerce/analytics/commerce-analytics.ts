/**
 * Commerce figures per flash sale and per live stream, computed from the Db
 * (the system of record) on request. Sellers see their own products' figures;
 * admins see everything.
 */
import { type Kysely, sql } from 'kysely';
import { type AuthUser, can } from '../../auth/permissions.js';
import type { Database } from '../../database.js';
import { AppError } from '../../platform/errors.js';

export interface FlashSaleStats {
  saleId: string;
  quantity: number;
  reservations: { total: number; reserved: number; paid: number; expired: number; cancelled: number };
  unitsSold: number;
  revenueMinor: number;
  currency: string;
  /** Paid reservations ÷ all reservations (0 when none). */
  conversion: number;
}

export interface StreamCommerceStats {
  streamId: string;
  orders: { created: number; paid: number; cancelled: number; expired: number };
  unitsSold: number;
  /** Revenue of paid and fulfilled orders, per currency (minor units). */
  revenueMinor: Record<string, number>;
  /** Paid orders ÷ created orders (0 when none). */
  conversion: number;
  coupons: { redemptions: number; discountMinor: number };
  flashSales: FlashSaleStats[];
}

const PAID = ['paid', 'fulfilled'] as const;

export class CommerceAnalytics {
  constructor(private readonly db: Kysely<Database>) {}

  async flashSale(user: AuthUser, saleId: string): Promise<FlashSaleStats> {
    const sale = await this.db
      .selectFrom('flash_sales')
      .innerJoin('products', 'products.id', 'flash_sales.product_id')
      .select(['flash_sales.id', 'flash_sales.quantity', 'flash_sales.currency', 'products.seller_id'])
      .where('flash_sales.id', '=', saleId)
      .executeTakeFirst();
    // Other sellers' sales are "not found" rather than forbidden: ids must not be probeable.
    if (!sale || (sale.seller_id !== user.id && !can(user, 'orders:read-any')))
      throw new AppError('FLASH_SALE_NOT_FOUND');
    return this.saleStats(sale.id, sale.quantity, sale.currency);
  }

  async stream(user: AuthUser, streamId: string): Promise<StreamCommerceStats> {
    const all = can(user, 'orders:read-any');
    // Orders of this stream that contain something the caller sells (all orders for admins).
    const visibleOrders = this.db
      .selectFrom('orders')
      .select('orders.id')
      .where('orders.stream_id', '=', streamId)
      .where((eb) =>
        all
          ? eb.lit(true)
          : eb.exists(
              eb
                .selectFrom('order_items')
                .innerJoin('products', 'products.id', 'order_items.product_id')
                .select(sql.lit(1).as('one'))
                .whereRef('order_items.order_id', '=', 'orders.id')
                .where('products.seller_id', '=', user.id),
            ),
      );
    const byStatus = await this.db
      .selectFrom('orders')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('id', 'in', visibleOrders)
      .groupBy('status')
      .execute();
    const count = (s: string) => Number(byStatus.find((r) => r.status === s)?.n ?? 0);
    const created = byStatus.reduce((sum, r) => sum + Number(r.n), 0);
    const paid = count('paid') + count('fulfilled');

    const items = await this.db
      .selectFrom('order_items')
      .innerJoin('orders', 'orders.id', 'order_items.order_id')
      .innerJoin('products', 'products.id', 'order_items.product_id')
      .select([
        'orders.currency',
        (eb) => eb.fn.sum<number>('order_items.quantity').as('units'),
        (eb) =>
          eb.fn.sum<number>(sql<number>`order_items.quantity * order_items.unit_price_minor`).as('revenue'),
      ])
      .where('orders.stream_id', '=', streamId)
      .where('orders.status', 'in', PAID)
      .$if(!all, (q) => q.where('products.seller_id', '=', user.id))
      .groupBy('orders.currency')
      .execute();
    const revenueMinor: Record<string, number> = {};
    let unitsSold = 0;
    for (const r of items) {
      revenueMinor[r.currency] = Number(r.revenue ?? 0);
      unitsSold += Number(r.units ?? 0);
    }

    const coupons = await this.db
      .selectFrom('coupon_redemptions')
      .select([
        (eb) => eb.fn.countAll<number>().as('n'),
        (eb) => eb.fn.sum<number>('discount_minor').as('discount'),
      ])
      .where('order_id', 'in', visibleOrders)
      .where('released_at', 'is', null)
      .executeTakeFirstOrThrow();

    const sales = await this.db
      .selectFrom('flash_sales')
      .innerJoin('products', 'products.id', 'flash_sales.product_id')
      .select(['flash_sales.id', 'flash_sales.quantity', 'flash_sales.currency'])
      .where('flash_sales.stream_id', '=', streamId)
      .$if(!all, (q) => q.where('products.seller_id', '=', user.id))
      .orderBy('flash_sales.starts_at')
      .execute();

    return {
      streamId,
      orders: { created, paid, cancelled: count('cancelled'), expired: count('expired') },
      unitsSold,
      revenueMinor,
      conversion: created === 0 ? 0 : paid / created,
      coupons: { redemptions: Number(coupons.n ?? 0), discountMinor: Number(coupons.discount ?? 0) },
      flashSales: await Promise.all(sales.map((s) => this.saleStats(s.id, s.quantity, s.currency))),
    };
  }

  private async saleStats(saleId: string, quantity: number, currency: string): Promise<FlashSaleStats> {
    const rows = await this.db
      .selectFrom('flash_reservations')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('sale_id', '=', saleId)
      .groupBy('status')
      .execute();
    const n = (s: string) => Number(rows.find((r) => r.status === s)?.n ?? 0);
    const total = rows.reduce((sum, r) => sum + Number(r.n), 0);
    const sold = await this.db
      .selectFrom('order_items')
      .innerJoin('orders', 'orders.id', 'order_items.order_id')
      .select([
        (eb) => eb.fn.sum<number>('order_items.quantity').as('units'),
        (eb) =>
          eb.fn.sum<number>(sql<number>`order_items.quantity * order_items.unit_price_minor`).as('revenue'),
      ])
      .where('order_items.flash_sale_id', '=', saleId)
      .where('orders.status', 'in', PAID)
      .executeTakeFirstOrThrow();
    return {
      saleId,
      quantity,
      reservations: {
        total,
        reserved: n('reserved'),
        paid: n('paid'),
        expired: n('expired'),
        cancelled: n('cancelled'),
      },
      unitsSold: Number(sold.units ?? 0),
      revenueMinor: Number(sold.revenue ?? 0),
      currency,
      conversion: total === 0 ? 0 : n('paid') / total,
    };
  }
}
