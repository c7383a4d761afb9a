/**
 * The catalog: products, their SKUs (what is actually bought), prices and
 * stock. Holds the rules (who may edit what, what shoppers may see); routes
 * stay thin.
 *
 * Visibility: an inactive product, and an inactive SKU, is hidden from
 * everyone except its seller and admins (reads answer PRODUCT_NOT_FOUND, as
 * if it did not exist). Editing needs `catalog:write` and ownership, or admin.
 */
import { randomUUID } from 'node:crypto';
import { type Kysely, type Selectable, sql } from 'kysely';
import { type AuthUser, assertCan, assertOwnerOr, can } from '../../auth/permissions.js';
import { AppError } from '../../platform/errors.js';
import { type BuildCartOptions, buildCartLines, type CartItem, type PricedCart } from './cart.js';
import type { CatalogTables, ProductsTable, SkusTable } from './catalog-tables.js';
import {
  afterCursor,
  cursorTimestamp,
  decodeCursor,
  isUuid,
  type Page,
  pageLimit,
  toPage,
} from './paging.js';

/** Largest value of a Postgres `integer`; prices and stock are stored as one. */
export const MAX_INT32 = 2_147_483_647;
export const MAX_IMAGES = 10;
export const SKU_CODE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const CURRENCY_PATTERN = '^[A-Z]{3}$';

export interface Sku {
  id: string;
  productId: string;
  code: string;
  name: string;
  priceMinor: number;
  stock: number;
  active: boolean;
  createdAt: string;
}

export interface Product {
  id: string;
  sellerId: string;
  title: string;
  description: string;
  category: string;
  images: string[];
  currency: string;
  active: boolean;
  createdAt: string;
  updatedAt: string;
  /** Active SKUs for shoppers; all of them for the seller and admins. */
  skus: Sku[];
}

export interface NewSku {
  /** Merchant code, unique across the catalog (`SKU_CODE_PATTERN`). */
  code: string;
  /** Variant label, e.g. "Red / M". */
  name: string;
  /** Price in minor units of the product currency, 0..MAX_INT32. */
  priceMinor: number;
  /** Units on hand, 0..MAX_INT32. */
  stock: number;
  /** Default true. */
  active?: boolean;
}

export interface NewProduct {
  title: string;
  description?: string;
  /** Stored trimmed and lower-cased, so filters and coupon restrictions match regardless of case. */
  category: string;
  /** http(s) image URLs, at most MAX_IMAGES. */
  images?: string[];
  /** ISO 4217, upper case; every SKU is priced in it. Fixed once created. */
  currency: string;
  /** At least one; created in the same transaction as the product. */
  skus: NewSku[];
}

export interface ProductPatch {
  title?: string;
  description?: string;
  category?: string;
  images?: string[];
  /** false deactivates (hides from shoppers, refuses new orders); true reactivates. */
  active?: boolean;
}

export interface SkuPatch {
  name?: string;
  priceMinor?: number;
  /** Sets stock to this absolute value. Races with concurrent orders; prefer `stockDelta` while selling. */
  stock?: number;
  /** Adds (restock) or removes units atomically; refused if stock would go below zero. */
  stockDelta?: number;
  active?: boolean;
}

export interface ProductListQuery {
  /** From the previous page's `nextCursor`. */
  cursor?: string;
  /** 1..100, default 20. */
  limit?: number;
  category?: string;
  sellerId?: string;
  /** Filter by active flag; shoppers only ever see active products (plus their own as sellers). */
  active?: boolean;
  /** Case-insensitive substring of the title. */
  q?: string;
  /** Products with at least one active SKU priced at or above this. */
  minPriceMinor?: number;
  /** Products with at least one active SKU priced at or below this (together with min: one SKU in range). */
  maxPriceMinor?: number;
}

type ProductRow = Selectable<ProductsTable>;
type SkuRow = Selectable<SkusTable>;

export function toSku(row: SkuRow): Sku {
  return {
    id: row.id,
    productId: row.product_id,
    code: row.code,
    name: row.name,
    priceMinor: row.price_minor,
    stock: row.stock,
    active: row.active,
    createdAt: row.created_at.toISOString(),
  };
}

function toProduct(row: ProductRow, skus: SkuRow[]): Product {
  return {
    id: row.id,
    sellerId: row.seller_id,
    title: row.title,
    description: row.description,
    category: row.category,
    images: row.images,
    currency: row.currency,
    active: row.active,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    skus: skus.map(toSku),
  };
}

export function normalizeCategory(category: string): string {
  return category.trim().toLowerCase();
}

function invalid(field: string, message: string, extra: Record<string, unknown> = {}): AppError {
  return new AppError('VALIDATION_FAILED', `${field} ${message}`, { field, ...extra });
}

function checkInt(value: number | undefined, field: string, min: number, max = MAX_INT32): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max)
    throw invalid(field, `must be an integer from ${min} to ${max}`);
}

function checkText(value: string | undefined, field: string, max: number, min = 1): void {
  if (value === undefined) return;
  const len = value.trim().length;
  if (len < min || len > max) throw invalid(field, `must be ${min} to ${max} characters`);
}

function checkImages(images: string[] | undefined): void {
  if (images === undefined) return;
  if (images.length > MAX_IMAGES) throw invalid('images', `must have at most ${MAX_IMAGES} items`);
  images.forEach((url, i) => {
    if (!/^https?:\/\/\S+$/.test(url) || url.length > 2048)
      throw invalid(`images.${i}`, 'must be an http(s) URL');
  });
}

/**
 * The HTTP schemas already enforce all of this; the service repeats the checks
 * that would otherwise surface as a constraint violation (a 500) when another
 * module calls it directly.
 */
function checkNewSku(sku: NewSku, field: string): void {
  if (!new RegExp(SKU_CODE_PATTERN).test(sku.code)) throw invalid(`${field}.code`, 'is not a valid SKU code');
  checkText(sku.name, `${field}.name`, 100);
  checkInt(sku.priceMinor, `${field}.priceMinor`, 0);
  checkInt(sku.stock, `${field}.stock`, 0);
}

/** Inactive rows are visible to their seller and to admins only. */
function seesHidden(viewer: AuthUser | null | undefined, sellerId: string): boolean {
  return !!viewer && (viewer.id === sellerId || can(viewer, 'users:manage'));
}

/** Editing needs the catalog permission and ownership; admins may edit anything. */
function assertCanEdit(actor: AuthUser, sellerId: string): void {
  assertCan(actor, 'catalog:write');
  assertOwnerOr(actor, sellerId, 'users:manage');
}

/** Escapes LIKE metacharacters so a search for "50%" means the text "50%". */
function likeContains(text: string): string {
  return `%${text.replace(/[\\%_]/g, '\\$&')}%`;
}

/**
 * Kysely<DB> is invariant in DB, so a database with more tables is not
 * assignable to Kysely<CatalogTables>. The service only touches its own
 * tables, so viewing any wider database as just those is sound.
 */
export function asCatalogDb<DB extends CatalogTables>(db: Kysely<DB>): Kysely<CatalogTables> {
  return db as unknown as Kysely<CatalogTables>;
}

export class CatalogService<DB extends CatalogTables = CatalogTables> {
  private readonly db: Kysely<CatalogTables>;

  /** @param db any database that includes the catalog tables (`catalogMigrations` applied). */
  constructor(db: Kysely<DB>) {
    this.db = asCatalogDb(db);
  }

  /** Creates a product with its SKUs in one transaction; the caller becomes the seller. */
  async createProduct(actor: AuthUser, input: NewProduct): Promise<Product> {
    assertCan(actor, 'catalog:write');
    checkText(input.title, 'title', 200);
    checkText(input.description, 'description', 5000, 0);
    checkText(input.category, 'category', 64);
    checkImages(input.images);
    if (!new RegExp(CURRENCY_PATTERN).test(input.currency))
      throw invalid('currency', 'must be an upper-case ISO 4217 code');
    if (input.skus.length === 0) throw invalid('skus', 'must have at least one SKU');
    input.skus.forEach((sku, i) => {
      checkNewSku(sku, `skus.${i}`);
    });
    const codes = input.skus.map((s) => s.code);
    const dupes = codes.filter((c, i) => codes.indexOf(c) !== i);
    if (dupes.length > 0)
      throw new AppError('SKU_CODE_TAKEN', 'SKU codes must be unique', { codes: [...new Set(dupes)] });

    return this.db.transaction().execute(async (trx) => {
      const product = await trx
        .insertInto('products')
        .values({
          id: randomUUID(),
          seller_id: actor.id,
          title: input.title.trim(),
          description: input.description?.trim() ?? '',
          category: normalizeCategory(input.category),
          images: input.images ?? [],
          currency: input.currency,
          updated_at: new Date(),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      const skus = await trx
        .insertInto('skus')
        .values(
          input.skus.map((s) => ({
            id: randomUUID(),
            product_id: product.id,
            code: s.code,
            name: s.name.trim(),
            price_minor: s.priceMinor,
            stock: s.stock,
            active: s.active ?? true,
          })),
        )
        // A taken code inserts nothing instead of aborting the statement, so we can name it.
        .onConflict((oc) => oc.column('code').doNothing())
        .returningAll()
        .execute();
      if (skus.length < input.skus.length) {
        const inserted = new Set(skus.map((s) => s.code));
        throw new AppError('SKU_CODE_TAKEN', undefined, { codes: codes.filter((c) => !inserted.has(c)) });
      }
      // The same order every later read uses (see skuRows).
      skus.sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
      return toProduct(product, skus);
    });
  }

  /** Updates product fields. Owner (with catalog:write) or admin. */
  async updateProduct(actor: AuthUser, id: string, patch: ProductPatch): Promise<Product> {
    const current = await this.productRow(id);
    assertCanEdit(actor, current.seller_id);
    checkText(patch.title, 'title', 200);
    checkText(patch.description, 'description', 5000, 0);
    checkText(patch.category, 'category', 64);
    checkImages(patch.images);
    const row = await this.db
      .updateTable('products')
      .set({
        ...(patch.title !== undefined ? { title: patch.title.trim() } : {}),
        ...(patch.description !== undefined ? { description: patch.description.trim() } : {}),
        ...(patch.category !== undefined ? { category: normalizeCategory(patch.category) } : {}),
        ...(patch.images !== undefined ? { images: patch.images } : {}),
        ...(patch.active !== undefined ? { active: patch.active } : {}),
        updated_at: new Date(),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return toProduct(row, await this.skuRows([id]));
  }

  /** Hides the product from shoppers and refuses new orders for it; idempotent. */
  async deactivateProduct(actor: AuthUser, id: string): Promise<Product> {
    return this.updateProduct(actor, id, { active: false });
  }

  /** Adds a SKU to a product. Owner (with catalog:write) or admin. */
  async addSku(actor: AuthUser, productId: string, input: NewSku): Promise<Sku> {
    const product = await this.productRow(productId);
    assertCanEdit(actor, product.seller_id);
    checkNewSku(input, 'sku');
    const row = await this.db
      .insertInto('skus')
      .values({
        id: randomUUID(),
        product_id: productId,
        code: input.code,
        name: input.name.trim(),
        price_minor: input.priceMinor,
        stock: input.stock,
        active: input.active ?? true,
      })
      .onConflict((oc) => oc.column('code').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new AppError('SKU_CODE_TAKEN', undefined, { codes: [input.code] });
    return toSku(row);
  }

  /**
   * Changes a SKU's name, price, stock or active flag. `stockDelta` is applied
   * in the UPDATE itself (`stock = stock + delta`), so a restock during a live
   * sale never overwrites units concurrently taken by orders.
   */
  async updateSku(actor: AuthUser, skuId: string, patch: SkuPatch): Promise<Sku> {
    if (!isUuid(skuId)) throw new AppError('SKU_NOT_FOUND', undefined, { skuId });
    const current = await this.db
      .selectFrom('skus as s')
      .innerJoin('products as p', 'p.id', 's.product_id')
      .select(['s.id', 's.stock', 'p.seller_id'])
      .where('s.id', '=', skuId)
      .executeTakeFirst();
    if (!current) throw new AppError('SKU_NOT_FOUND', undefined, { skuId });
    assertCanEdit(actor, current.seller_id);
    checkText(patch.name, 'name', 100);
    checkInt(patch.priceMinor, 'priceMinor', 0);
    checkInt(patch.stock, 'stock', 0);
    checkInt(patch.stockDelta, 'stockDelta', -MAX_INT32);
    if (patch.stock !== undefined && patch.stockDelta !== undefined)
      throw invalid('stockDelta', 'cannot be combined with stock');
    const delta = patch.stockDelta;
    const row = await this.db
      .updateTable('skus')
      .set((eb) => ({
        ...(patch.name !== undefined ? { name: patch.name.trim() } : {}),
        ...(patch.priceMinor !== undefined ? { price_minor: patch.priceMinor } : {}),
        ...(patch.stock !== undefined ? { stock: patch.stock } : {}),
        ...(delta !== undefined ? { stock: eb('stock', '+', delta) } : {}),
        ...(patch.active !== undefined ? { active: patch.active } : {}),
      }))
      .where('id', '=', skuId)
      .$if(delta !== undefined, (qb) =>
        qb
          .where((eb) => eb(eb('stock', '+', delta ?? 0), '>=', 0))
          .where((eb) => eb(eb('stock', '+', delta ?? 0), '<=', MAX_INT32)),
      )
      .returningAll()
      .executeTakeFirst();
    if (!row) {
      const now = await this.db.selectFrom('skus').select('stock').where('id', '=', skuId).executeTakeFirst();
      throw invalid('stockDelta', 'would take stock out of range', { stock: now?.stock ?? current.stock });
    }
    return toSku(row);
  }

  /** A product as `viewer` may see it; hidden (inactive) products are PRODUCT_NOT_FOUND to others. */
  async getProduct(id: string, viewer?: AuthUser | null): Promise<Product> {
    const row = await this.productRow(id);
    const hidden = seesHidden(viewer, row.seller_id);
    if (!row.active && !hidden) throw new AppError('PRODUCT_NOT_FOUND', undefined, { productId: id });
    const skus = await this.skuRows([id]);
    return toProduct(row, hidden ? skus : skus.filter((s) => s.active));
  }

  /** Prices a cart of `{skuId, quantity}` items; see `buildCartLines` for what it refuses. */
  async priceCart(items: readonly CartItem[], options: BuildCartOptions = {}): Promise<PricedCart> {
    return buildCartLines(this.db, items, options);
  }

  /** A SKU by id regardless of visibility (for other modules: orders, flash sales). */
  async getSku(id: string): Promise<Sku> {
    if (!isUuid(id)) throw new AppError('SKU_NOT_FOUND', undefined, { skuId: id });
    const row = await this.db.selectFrom('skus').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new AppError('SKU_NOT_FOUND', undefined, { skuId: id });
    return toSku(row);
  }

  /**
   * One page of products, newest first. Shoppers see active products only;
   * a seller additionally sees their own inactive ones; admins see all.
   */
  async listProducts(query: ProductListQuery, viewer?: AuthUser | null): Promise<Page<Product>> {
    const limit = pageLimit(query.limit);
    const cursor = query.cursor ? decodeCursor(query.cursor) : undefined;
    if (query.sellerId !== undefined && !isUuid(query.sellerId)) throw invalid('sellerId', 'must be a uuid');
    const { minPriceMinor: min, maxPriceMinor: max } = query;
    checkInt(min, 'minPriceMinor', 0);
    checkInt(max, 'maxPriceMinor', 0);
    const admin = can(viewer, 'users:manage');

    const rows = await this.db
      .selectFrom('products as p')
      .selectAll('p')
      .select(cursorTimestamp('p').as('cursor_ts'))
      .$if(!admin, (qb) =>
        qb.where((eb) =>
          viewer
            ? eb.or([eb('p.active', '=', true), eb('p.seller_id', '=', viewer.id)])
            : eb('p.active', '=', true),
        ),
      )
      .$if(query.active !== undefined, (qb) => qb.where('p.active', '=', query.active === true))
      .$if(query.category !== undefined, (qb) =>
        qb.where('p.category', '=', normalizeCategory(query.category ?? '')),
      )
      .$if(query.sellerId !== undefined, (qb) => qb.where('p.seller_id', '=', query.sellerId ?? ''))
      .$if(!!query.q?.trim(), (qb) => qb.where('p.title', 'ilike', likeContains(query.q?.trim() ?? '')))
      .$if(min !== undefined || max !== undefined, (qb) =>
        qb.where((eb) =>
          eb.exists(
            eb
              .selectFrom('skus as s')
              .select('s.id')
              .whereRef('s.product_id', '=', 'p.id')
              .where('s.active', '=', true)
              .$if(min !== undefined, (sq) => sq.where('s.price_minor', '>=', min ?? 0))
              .$if(max !== undefined, (sq) => sq.where('s.price_minor', '<=', max ?? 0)),
          ),
        ),
      )
      .$if(cursor !== undefined, (qb) => qb.where(afterCursor('p', cursor ?? { createdAt: '', id: '' })))
      .orderBy('p.created_at', 'desc')
      .orderBy('p.id', 'desc')
      .limit(limit + 1)
      .execute();

    const page = rows.slice(0, limit);
    const skus = await this.skuRows(page.map((r) => r.id));
    const byProduct = new Map<string, SkuRow[]>();
    for (const s of skus) {
      const list = byProduct.get(s.product_id) ?? [];
      list.push(s);
      byProduct.set(s.product_id, list);
    }
    return toPage(rows, limit, (row) => {
      const own = byProduct.get(row.id) ?? [];
      return toProduct(row, seesHidden(viewer, row.seller_id) ? own : own.filter((s) => s.active));
    });
  }

  private async productRow(id: string): Promise<ProductRow> {
    if (!isUuid(id)) throw new AppError('PRODUCT_NOT_FOUND', undefined, { productId: id });
    const row = await this.db.selectFrom('products').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new AppError('PRODUCT_NOT_FOUND', undefined, { productId: id });
    return row;
  }

  private async skuRows(productIds: string[]): Promise<SkuRow[]> {
    if (productIds.length === 0) return [];
    return (
      this.db
        .selectFrom('skus')
        .selectAll()
        .where('product_id', 'in', productIds)
        .orderBy('created_at')
        // Byte order, so SKUs created together sort the same here and in JS.
        .orderBy(sql`code collate "C"`)
        .execute()
    );
  }
}
