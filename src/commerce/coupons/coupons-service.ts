/**
 * Coupons: creation and editing with type-specific validation, read-only
 * quotes, and redemption/release inside the caller's order transaction.
 *
 * Atomicity (DESIGN §7): `redeemInTransaction` locks the coupon row
 * (`select ... for update`) before counting and evaluating, then increments
 * `uses` and writes the redemption in the same transaction as the order. Two
 * concurrent orders therefore queue on the row lock, and the second one sees
 * the first one's use, so neither the global nor the per-user limit can be
 * overrun (and `coupons_uses_within_limit` backs that up in the database).
 * Callers must use the default READ COMMITTED isolation: a stricter level
 * would turn the queueing into serialization failures.
 *
 * Who may manage coupons: `catalog:write`. Streamers manage the coupons they
 * created, and those must be restricted to products they sell (otherwise a
 * seller could discount everyone else's products); admins manage all coupons
 * and may create site-wide ones.
 */
import { randomUUID } from 'node:crypto';
import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import { type AuthUser, assertCan, assertOwnerOr, can } from '../../auth/permissions.js';
import { AppError } from '../../platform/errors.js';
import type { CatalogTables } from '../catalog/catalog-tables.js';
import {
  afterCursor,
  cursorTimestamp,
  decodeCursor,
  isUuid,
  type Page,
  pageLimit,
  toPage,
} from '../catalog/paging.js';
import { type CouponContext, type CouponQuote, evaluateCoupon } from './coupon-rules.js';
import type { CouponsTable, CouponTables, CouponType } from './coupon-tables.js';

export const COUPON_TYPES: readonly CouponType[] = ['percentage', 'fixed', 'free_shipping', 'bogo'];
export const COUPON_CODE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]{2,39}$';
const MAX_INT32 = 2_147_483_647;

export interface Coupon {
  id: string;
  code: string;
  type: CouponType;
  percentOff: number | null;
  amountOffMinor: number | null;
  currency: string | null;
  buyQuantity: number | null;
  getQuantity: number | null;
  startsAt: string | null;
  endsAt: string | null;
  usageLimit: number | null;
  perUserLimit: number | null;
  minOrderMinor: number;
  maxDiscountMinor: number | null;
  productIds: string[];
  categories: string[];
  streamId: string | null;
  active: boolean;
  uses: number;
  createdBy: string;
  createdAt: string;
}

export interface NewCoupon {
  /** 3..40 letters, digits, `_` or `-`; stored upper case and matched case-insensitively. */
  code: string;
  type: CouponType;
  /** percentage (required): 1..100. */
  percentOff?: number;
  /** fixed (required): amount in minor units of `currency`, >= 1. */
  amountOffMinor?: number;
  /** Required for fixed; optional otherwise: the coupon then only applies to carts in this currency. */
  currency?: string;
  /** bogo (required): buy this many units of an eligible SKU... */
  buyQuantity?: number;
  /** bogo (required): ...and get this many more of it free. */
  getQuantity?: number;
  /** Valid from this instant (inclusive); null/absent = already valid. */
  startsAt?: Date | string | null;
  /** Valid until this instant (exclusive); null/absent = never expires. */
  endsAt?: Date | string | null;
  /** Total redemptions allowed; null/absent = unlimited. */
  usageLimit?: number | null;
  /** Redemptions per user; null/absent = unlimited. */
  perUserLimit?: number | null;
  /** Minimum eligible subtotal in minor units; default 0. */
  minOrderMinor?: number;
  /** Cap on the discount in minor units; null/absent = none. */
  maxDiscountMinor?: number | null;
  /** Only these products (empty = any; streamers must list their own products). */
  productIds?: string[];
  /** Only these categories (empty = any; compared lower-cased). */
  categories?: string[];
  /** Only for orders placed in this live stream. */
  streamId?: string | null;
  /** Default true. */
  active?: boolean;
}

export interface CouponPatch {
  active?: boolean;
  startsAt?: Date | string | null;
  endsAt?: Date | string | null;
  /** May not drop below the current `uses`. */
  usageLimit?: number | null;
  perUserLimit?: number | null;
  minOrderMinor?: number;
  maxDiscountMinor?: number | null;
}

export interface CouponListQuery {
  cursor?: string;
  /** 1..100, default 20. */
  limit?: number;
  active?: boolean;
}

export interface CouponUsage {
  couponId: string;
  /** Redemptions that still hold a use (orders not cancelled or expired). */
  redemptions: number;
  /** Redemptions given back by cancelled or expired orders. */
  released: number;
  /** Discount granted by the unreleased redemptions, in minor units. */
  discountGivenMinor: number;
  /** Sum of `total_minor` of the paid or fulfilled orders that used the coupon. */
  revenueMinor: number;
}

type CouponRow = Selectable<CouponsTable>;
type CouponDb = CouponTables & CatalogTables;

function toCoupon(row: CouponRow): Coupon {
  return {
    id: row.id,
    code: row.code,
    type: row.type,
    percentOff: row.percent_off,
    amountOffMinor: row.amount_off_minor,
    currency: row.currency,
    buyQuantity: row.buy_quantity,
    getQuantity: row.get_quantity,
    startsAt: row.starts_at?.toISOString() ?? null,
    endsAt: row.ends_at?.toISOString() ?? null,
    usageLimit: row.usage_limit,
    perUserLimit: row.per_user_limit,
    minOrderMinor: row.min_order_minor,
    maxDiscountMinor: row.max_discount_minor,
    productIds: row.product_ids,
    categories: row.categories,
    streamId: row.stream_id,
    active: row.active,
    uses: row.uses,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
  };
}

export function normalizeCouponCode(code: string): string {
  return code.trim().toUpperCase();
}

function invalid(field: string, message: string, extra: Record<string, unknown> = {}): AppError {
  return new AppError('VALIDATION_FAILED', `${field} ${message}`, { field, ...extra });
}

function checkInt(value: number | null | undefined, field: string, min: number): void {
  if (value === undefined || value === null) return;
  if (!Number.isInteger(value) || value < min || value > MAX_INT32)
    throw invalid(field, `must be an integer from ${min} to ${MAX_INT32}`);
}

function toDate(value: Date | string | null | undefined, field: string): Date | null | undefined {
  if (value === undefined || value === null) return value;
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) throw invalid(field, 'must be a date-time');
  return d;
}

function checkWindow(startsAt: Date | null | undefined, endsAt: Date | null | undefined): void {
  if (startsAt && endsAt && startsAt.getTime() >= endsAt.getTime())
    throw invalid('endsAt', 'must be after startsAt', {
      startsAt: startsAt.toISOString(),
      endsAt: endsAt.toISOString(),
    });
}

/** Fields that only some types use: present on another type is a mistake worth reporting. */
const TYPE_FIELDS: Record<CouponType, Array<keyof NewCoupon>> = {
  percentage: ['percentOff'],
  fixed: ['amountOffMinor'],
  free_shipping: [],
  bogo: ['buyQuantity', 'getQuantity'],
};
const TYPED_FIELDS: Array<keyof NewCoupon> = ['percentOff', 'amountOffMinor', 'buyQuantity', 'getQuantity'];

function checkNewCoupon(input: NewCoupon): void {
  if (!new RegExp(COUPON_CODE_PATTERN).test(input.code.trim()))
    throw invalid('code', 'must be 3 to 40 letters, digits, "_" or "-"');
  if (!COUPON_TYPES.includes(input.type)) throw invalid('type', `must be one of ${COUPON_TYPES.join(', ')}`);
  const required = TYPE_FIELDS[input.type];
  for (const field of TYPED_FIELDS) {
    const present = input[field] !== undefined && input[field] !== null;
    if (required.includes(field) && !present) throw invalid(field, `is required for ${input.type} coupons`);
    if (!required.includes(field) && present) throw invalid(field, `does not apply to ${input.type} coupons`);
  }
  if (input.type === 'percentage') {
    const p = input.percentOff;
    if (p === undefined || !Number.isInteger(p) || p < 1 || p > 100)
      throw invalid('percentOff', 'must be an integer from 1 to 100');
  }
  checkInt(input.amountOffMinor, 'amountOffMinor', 1);
  checkInt(input.buyQuantity, 'buyQuantity', 1);
  checkInt(input.getQuantity, 'getQuantity', 1);
  if (input.type === 'fixed' && !input.currency)
    throw invalid('currency', 'is required for fixed coupons (the amount is in it)');
  if (input.currency !== undefined && !/^[A-Z]{3}$/.test(input.currency))
    throw invalid('currency', 'must be an upper-case ISO 4217 code');
  checkInt(input.usageLimit, 'usageLimit', 0);
  checkInt(input.perUserLimit, 'perUserLimit', 1);
  checkInt(input.minOrderMinor, 'minOrderMinor', 0);
  checkInt(input.maxDiscountMinor, 'maxDiscountMinor', 0);
  (input.productIds ?? []).forEach((id, i) => {
    if (!isUuid(id)) throw invalid(`productIds.${i}`, 'must be a uuid');
  });
  (input.categories ?? []).forEach((c, i) => {
    if (c.trim().length === 0 || c.length > 64)
      throw invalid(`categories.${i}`, 'must be 1 to 64 characters');
  });
  if (
    input.streamId !== undefined &&
    input.streamId !== null &&
    (input.streamId.length === 0 || input.streamId.length > 100)
  )
    throw invalid('streamId', 'must be 1 to 100 characters');
}

/**
 * Kysely<DB> is invariant in DB, so a wider database or transaction is not
 * assignable to the coupon tables' view of it. Only coupon (and catalog)
 * tables are touched, so the narrower view is sound.
 */
function narrow<DB extends CouponTables>(db: Kysely<DB>): Kysely<CouponDb> {
  return db as unknown as Kysely<CouponDb>;
}

async function countUserRedemptions(db: Kysely<CouponDb>, couponId: string, userId: string): Promise<number> {
  const { n } = await db
    .selectFrom('coupon_redemptions')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('coupon_id', '=', couponId)
    .where('user_id', '=', userId)
    .where('released_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(n);
}

export class CouponsService<DB extends CouponDb = CouponDb> {
  private readonly db: Kysely<CouponDb>;

  /** @param db any database that includes the coupon and catalog tables. */
  constructor(db: Kysely<DB>) {
    this.db = narrow(db);
  }

  /**
   * Creates a coupon. Needs `catalog:write`; a non-admin must restrict it to
   * products they sell (FORBIDDEN with `details.field = 'productIds'`).
   * Throws VALIDATION_FAILED (`details.field`) for type-specific mistakes,
   * PRODUCT_NOT_FOUND for unknown product ids and COUPON_CODE_TAKEN.
   */
  async create(actor: AuthUser, input: NewCoupon): Promise<Coupon> {
    assertCan(actor, 'catalog:write');
    checkNewCoupon(input);
    const startsAt = toDate(input.startsAt, 'startsAt') ?? null;
    const endsAt = toDate(input.endsAt, 'endsAt') ?? null;
    checkWindow(startsAt, endsAt);
    const productIds = [...new Set(input.productIds ?? [])];
    const categories = [...new Set((input.categories ?? []).map((c) => c.trim().toLowerCase()))];
    await this.checkProducts(actor, productIds);

    const row = await this.db
      .insertInto('coupons')
      .values({
        id: randomUUID(),
        code: normalizeCouponCode(input.code),
        type: input.type,
        percent_off: input.percentOff ?? null,
        amount_off_minor: input.amountOffMinor ?? null,
        currency: input.currency ?? null,
        buy_quantity: input.buyQuantity ?? null,
        get_quantity: input.getQuantity ?? null,
        starts_at: startsAt,
        ends_at: endsAt,
        usage_limit: input.usageLimit ?? null,
        per_user_limit: input.perUserLimit ?? null,
        min_order_minor: input.minOrderMinor ?? 0,
        max_discount_minor: input.maxDiscountMinor ?? null,
        product_ids: productIds,
        categories,
        stream_id: input.streamId ?? null,
        active: input.active ?? true,
        created_by: actor.id,
      })
      .onConflict((oc) => oc.column('code').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new AppError('COUPON_CODE_TAKEN', undefined, { code: normalizeCouponCode(input.code) });
    return toCoupon(row);
  }

  /**
   * Changes the active flag, the window or the limits. The row is locked so
   * a concurrent redemption cannot slip past a lowered `usageLimit`.
   */
  async update(actor: AuthUser, id: string, patch: CouponPatch): Promise<Coupon> {
    checkInt(patch.usageLimit, 'usageLimit', 0);
    checkInt(patch.perUserLimit, 'perUserLimit', 1);
    checkInt(patch.minOrderMinor, 'minOrderMinor', 0);
    checkInt(patch.maxDiscountMinor, 'maxDiscountMinor', 0);
    const startsAt = toDate(patch.startsAt, 'startsAt');
    const endsAt = toDate(patch.endsAt, 'endsAt');
    return this.db.transaction().execute(async (trx) => {
      const current = await this.rowById(trx, id, true);
      this.assertManager(actor, current);
      checkWindow(
        startsAt === undefined ? current.starts_at : startsAt,
        endsAt === undefined ? current.ends_at : endsAt,
      );
      if (patch.usageLimit !== undefined && patch.usageLimit !== null && patch.usageLimit < current.uses)
        throw invalid('usageLimit', `must be at least the ${current.uses} uses already taken`, {
          uses: current.uses,
        });
      const row = await trx
        .updateTable('coupons')
        .set({
          ...(patch.active !== undefined ? { active: patch.active } : {}),
          ...(startsAt !== undefined ? { starts_at: startsAt } : {}),
          ...(endsAt !== undefined ? { ends_at: endsAt } : {}),
          ...(patch.usageLimit !== undefined ? { usage_limit: patch.usageLimit } : {}),
          ...(patch.perUserLimit !== undefined ? { per_user_limit: patch.perUserLimit } : {}),
          ...(patch.minOrderMinor !== undefined ? { min_order_minor: patch.minOrderMinor } : {}),
          ...(patch.maxDiscountMinor !== undefined ? { max_discount_minor: patch.maxDiscountMinor } : {}),
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return toCoupon(row);
    });
  }

  /** A coupon, for its creator or an admin (COUPON_NOT_FOUND, FORBIDDEN). */
  async get(actor: AuthUser, id: string): Promise<Coupon> {
    const row = await this.rowById(this.db, id, false);
    this.assertManager(actor, row);
    return toCoupon(row);
  }

  /** A coupon by code (any case), without permission checks: for other modules. */
  async getByCode(code: string): Promise<Coupon> {
    return toCoupon(await this.rowByCode(this.db, code, false));
  }

  /** Coupons newest first: an admin sees all, a streamer their own. */
  async list(actor: AuthUser, query: CouponListQuery = {}): Promise<Page<Coupon>> {
    assertCan(actor, 'catalog:write');
    const limit = pageLimit(query.limit);
    const cursor = query.cursor ? decodeCursor(query.cursor) : undefined;
    const rows = await this.db
      .selectFrom('coupons as c')
      .selectAll('c')
      .select(cursorTimestamp('c').as('cursor_ts'))
      .$if(!can(actor, 'users:manage'), (qb) => qb.where('c.created_by', '=', actor.id))
      .$if(query.active !== undefined, (qb) => qb.where('c.active', '=', query.active === true))
      .$if(cursor !== undefined, (qb) => qb.where(afterCursor('c', cursor ?? { createdAt: '', id: '' })))
      .orderBy('c.created_at', 'desc')
      .orderBy('c.id', 'desc')
      .limit(limit + 1)
      .execute();
    return toPage(rows, limit, toCoupon);
  }

  /**
   * Read-only quote: what `code` would take off this cart for `ctx.userId`
   * right now. Throws COUPON_NOT_FOUND or the rule's COUPON_* error.
   */
  async validate(code: string, ctx: CouponContext): Promise<CouponQuote> {
    const coupon = await this.rowByCode(this.db, code, false);
    return evaluateCoupon(coupon, ctx, await countUserRedemptions(this.db, coupon.id, ctx.userId));
  }

  /**
   * Redeems `code` for `orderId` inside the caller's order transaction (see
   * the module comment for why this cannot overrun a limit). On any throw the
   * caller's transaction must roll back, which undoes the use as well.
   * Throws COUPON_NOT_FOUND, the rule's COUPON_* error, or CONFLICT if the
   * order already has a redemption.
   */
  async redeemInTransaction<T extends CouponTables>(
    trx: Transaction<T>,
    code: string,
    ctx: CouponContext,
    orderId: string,
  ): Promise<CouponQuote> {
    if (!isUuid(orderId)) throw invalid('orderId', 'must be a uuid');
    const db = narrow(trx);
    const coupon = await this.rowByCode(db, code, true);
    const quote = evaluateCoupon(coupon, ctx, await countUserRedemptions(db, coupon.id, ctx.userId));
    await db
      .updateTable('coupons')
      .set((eb) => ({ uses: eb('uses', '+', 1) }))
      .where('id', '=', coupon.id)
      .execute();
    const inserted = await db
      .insertInto('coupon_redemptions')
      .values({
        id: randomUUID(),
        coupon_id: coupon.id,
        order_id: orderId,
        user_id: ctx.userId,
        discount_minor: quote.discountMinor,
      })
      .onConflict((oc) => oc.column('order_id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) throw new AppError('CONFLICT', 'This order already has a coupon', { orderId });
    return quote;
  }

  /**
   * Gives the order's coupon use back (order cancelled or expired). Idempotent:
   * the conditional UPDATE marks the redemption released at most once, even
   * when two releases race, and only that one decrements `uses`.
   * @returns whether a use was returned now.
   */
  async releaseInTransaction<T extends CouponTables>(trx: Transaction<T>, orderId: string): Promise<boolean> {
    if (!isUuid(orderId)) return false;
    const db = narrow(trx);
    const released = await db
      .updateTable('coupon_redemptions')
      .set({ released_at: new Date() })
      .where('order_id', '=', orderId)
      .where('released_at', 'is', null)
      .returning('coupon_id')
      .executeTakeFirst();
    if (!released) return false;
    await db
      .updateTable('coupons')
      .set((eb) => ({ uses: eb('uses', '-', 1) }))
      .where('id', '=', released.coupon_id)
      .execute();
    return true;
  }

  /** Redemption counts, discount given and revenue of the orders that used the coupon. */
  async usage(couponId: string): Promise<CouponUsage> {
    await this.rowById(this.db, couponId, false);
    const counts = await this.db
      .selectFrom('coupon_redemptions')
      .select((eb) => [
        eb.fn.countAll<number>().filterWhere('released_at', 'is', null).as('redemptions'),
        eb.fn.countAll<number>().filterWhere('released_at', 'is not', null).as('released'),
        eb.fn
          .coalesce(
            eb.fn.sum<number>('discount_minor').filterWhere('released_at', 'is', null),
            sql<number>`0`,
          )
          .as('discount'),
      ])
      .where('coupon_id', '=', couponId)
      .executeTakeFirstOrThrow();
    return {
      couponId,
      redemptions: Number(counts.redemptions),
      released: Number(counts.released),
      discountGivenMinor: Number(counts.discount),
      revenueMinor: await this.revenue(couponId),
    };
  }

  /**
   * Orders live in another module (migration 0120_orders), so they are read
   * with plain SQL. Until that module is installed there are no orders, and
   * so no revenue.
   */
  private async revenue(couponId: string): Promise<number> {
    const exists = await sql<{
      present: boolean;
    }>`select to_regclass('orders') is not null as present`.execute(this.db);
    if (!exists.rows[0]?.present) return 0;
    const result = await sql<{ revenue: number | string }>`
      select coalesce(sum(o.total_minor), 0) as revenue
      from coupon_redemptions r
      join orders o on o.id = r.order_id
      where r.coupon_id = ${couponId}
        and r.released_at is null
        and o.status in ('paid', 'fulfilled')`.execute(this.db);
    return Number(result.rows[0]?.revenue ?? 0);
  }

  /** Creator (still holding catalog:write) or admin. */
  private assertManager(actor: AuthUser, coupon: CouponRow): void {
    assertCan(actor, 'catalog:write');
    assertOwnerOr(actor, coupon.created_by, 'users:manage');
  }

  private async checkProducts(actor: AuthUser, productIds: string[]): Promise<void> {
    const admin = can(actor, 'users:manage');
    if (!admin && productIds.length === 0)
      throw new AppError(
        'FORBIDDEN',
        'Only admins may create coupons for every product; list your productIds',
        {
          field: 'productIds',
        },
      );
    if (productIds.length === 0) return;
    const rows = await this.db
      .selectFrom('products')
      .select(['id', 'seller_id'])
      .where('id', 'in', productIds)
      .execute();
    const found = new Set(rows.map((r) => r.id));
    const missing = productIds.filter((id) => !found.has(id));
    if (missing.length > 0) throw new AppError('PRODUCT_NOT_FOUND', undefined, { productIds: missing });
    const foreign = rows.filter((r) => r.seller_id !== actor.id).map((r) => r.id);
    if (!admin && foreign.length > 0)
      throw new AppError('FORBIDDEN', 'A coupon may only discount products you sell', {
        field: 'productIds',
        productIds: foreign,
      });
  }

  private async rowById(db: Kysely<CouponDb>, id: string, lock: boolean): Promise<CouponRow> {
    if (!isUuid(id)) throw new AppError('COUPON_NOT_FOUND', undefined, { couponId: id });
    const row = await db
      .selectFrom('coupons')
      .selectAll()
      .where('id', '=', id)
      .$if(lock, (qb) => qb.forUpdate())
      .executeTakeFirst();
    if (!row) throw new AppError('COUPON_NOT_FOUND', undefined, { couponId: id });
    return row;
  }

  private async rowByCode(db: Kysely<CouponDb>, code: string, lock: boolean): Promise<CouponRow> {
    const normalized = normalizeCouponCode(code);
    const row = await db
      .selectFrom('coupons')
      .selectAll()
      .where('code', '=', normalized)
      .$if(lock, (qb) => qb.forUpdate())
      .executeTakeFirst();
    if (!row) throw new AppError('COUPON_NOT_FOUND', undefined, { code: normalized });
    return row;
  }
}
