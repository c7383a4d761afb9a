/**
 * Turns what a shopper asks for (`{skuId, quantity}` items) into priced cart
 * lines from the catalog. Shared by coupon validation and checkout, so both
 * see the same prices, categories and refusals.
 */
import { type Kysely, sql, type Transaction } from 'kysely';
import { AppError } from '../../platform/errors.js';
import type { CatalogTables } from './catalog-tables.js';
import { isUuid } from './paging.js';

/** One line of a cart, as coupon rules see it. */
export interface CartLine {
  productId: string;
  skuId: string;
  category: string;
  quantity: number;
  /** Current SKU price in minor units of the cart currency. */
  unitPriceMinor: number;
}

export interface CartItem {
  skuId: string;
  /** Integer >= 1. */
  quantity: number;
}

/** A cart line with what an order needs to snapshot. */
export interface PricedCartLine extends CartLine {
  skuCode: string;
  skuName: string;
  productTitle: string;
  sellerId: string;
  /** Stock at read time (locked when `lock` was set). */
  stock: number;
  lineTotalMinor: number;
}

export interface PricedCart {
  /** The one currency every line is priced in. */
  currency: string;
  /** In the order the items were given; repeated SKUs are merged into their first line. */
  lines: PricedCartLine[];
  subtotalMinor: number;
}

export interface BuildCartOptions {
  /**
   * Lock the SKU rows (`select ... for update`, in id order so concurrent
   * checkouts of overlapping carts cannot deadlock). Only meaningful inside a
   * transaction, e.g. before decrementing stock.
   */
  lock?: boolean;
}

/**
 * Prices `items` against the catalog. Throws VALIDATION_FAILED (no items, or a
 * quantity that is not an integer >= 1; `details.field` names it),
 * SKU_NOT_FOUND (`details.skuId`), PRODUCT_INACTIVE (SKU or product switched
 * off; `details.skuId`, `details.productId`) or CURRENCY_MISMATCH
 * (`details.currencies`). Stock is not checked: validation of a coupon does
 * not need it, and checkout decrements it atomically.
 */
export async function buildCartLines<DB extends CatalogTables>(
  /** The database, or the caller's transaction (needed for `lock`). */
  db: Kysely<DB> | Transaction<DB>,
  items: readonly CartItem[],
  options: BuildCartOptions = {},
): Promise<PricedCart> {
  if (items.length === 0)
    throw new AppError('VALIDATION_FAILED', 'items must not be empty', { field: 'items' });
  const quantities = new Map<string, number>();
  items.forEach((item, i) => {
    if (!Number.isInteger(item.quantity) || item.quantity < 1)
      throw new AppError('VALIDATION_FAILED', `items.${i}.quantity must be an integer >= 1`, {
        field: `items.${i}.quantity`,
      });
    if (!isUuid(item.skuId)) throw new AppError('SKU_NOT_FOUND', undefined, { skuId: item.skuId });
    // Merged so a BOGO counts all units of one SKU together however the client split them.
    quantities.set(item.skuId, (quantities.get(item.skuId) ?? 0) + item.quantity);
  });

  // Kysely<DB> is invariant in DB; only catalog tables are touched, so the narrower view is sound.
  const rows = await (db as unknown as Kysely<CatalogTables>)
    .selectFrom('skus as s')
    .innerJoin('products as p', 'p.id', 's.product_id')
    .select([
      's.id as sku_id',
      's.code',
      's.name',
      's.price_minor',
      's.stock',
      's.active as sku_active',
      'p.id as product_id',
      'p.title',
      'p.category',
      'p.currency',
      'p.seller_id',
      'p.active as product_active',
    ])
    .where('s.id', 'in', [...quantities.keys()])
    .orderBy('s.id')
    .$if(options.lock === true, (qb) => qb.modifyEnd(sql`for update of s`))
    .execute();
  const byId = new Map(rows.map((r) => [r.sku_id, r]));

  const lines: PricedCartLine[] = [];
  for (const [skuId, quantity] of quantities) {
    const row = byId.get(skuId);
    if (!row) throw new AppError('SKU_NOT_FOUND', undefined, { skuId });
    if (!row.sku_active || !row.product_active)
      throw new AppError('PRODUCT_INACTIVE', undefined, { skuId, productId: row.product_id });
    lines.push({
      productId: row.product_id,
      skuId,
      category: row.category,
      quantity,
      unitPriceMinor: row.price_minor,
      skuCode: row.code,
      skuName: row.name,
      productTitle: row.title,
      sellerId: row.seller_id,
      stock: row.stock,
      lineTotalMinor: row.price_minor * quantity,
    });
  }
  const currencies = [...new Set(lines.map((l) => byId.get(l.skuId)?.currency ?? ''))];
  if (currencies.length > 1) throw new AppError('CURRENCY_MISMATCH', undefined, { currencies });
  return {
    currency: currencies[0] ?? '',
    lines,
    subtotalMinor: lines.reduce((sum, l) => sum + l.lineTotalMinor, 0),
  };
}
