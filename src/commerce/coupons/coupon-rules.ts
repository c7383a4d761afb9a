/**
 * The one place coupon rules live (DESIGN §7): pure functions of a coupon row,
 * a cart and a clock, so validation, checkout and tests all agree.
 *
 * Checks run in a fixed order and the first failure wins, so a client always
 * gets the most specific reason a coupon does not apply:
 *
 *  1. COUPON_INACTIVE            switched off
 *  2. COUPON_NOT_STARTED         now < starts_at            (starts_at itself is valid)
 *  3. COUPON_EXPIRED             now >= ends_at             (the window is [starts_at, ends_at))
 *  4. COUPON_STREAM_MISMATCH     restricted to another stream (or bought outside any)
 *  5. COUPON_CURRENCY_MISMATCH   coupon has a currency and the cart another
 *  6. COUPON_LIMIT_REACHED       uses >= usage_limit
 *  7. COUPON_USER_LIMIT_REACHED  the user's unreleased redemptions >= per_user_limit
 *  8. COUPON_NOT_APPLICABLE      no line passes the product/category restrictions
 *                                (or, for BOGO, no eligible line holds buy+get units)
 *  9. COUPON_MIN_NOT_MET         eligible subtotal < min_order_minor
 *
 * Amounts are integer minor units throughout; nothing is rounded up in the
 * shopper's favour beyond what the rule says (percentages floor).
 */
import type { Selectable } from 'kysely';
import { AppError, type ErrorCode } from '../../platform/errors.js';
import type { CartLine } from '../catalog/cart.js';
import type { CouponsTable, CouponType } from './coupon-tables.js';

export type { CartLine } from '../catalog/cart.js';

export interface CouponContext {
  userId: string;
  /** The live stream the order is placed in, or null outside a stream. */
  streamId: string | null;
  /** The cart's currency (ISO 4217). */
  currency: string;
  now: Date;
  /** The lines the coupon may discount (checkout leaves flash-sale lines out). */
  lines: CartLine[];
  /** Shipping the order would charge; a free-shipping coupon removes it. */
  shippingMinor: number;
}

export interface CouponQuote {
  couponId: string;
  code: string;
  type: CouponType;
  /** Taken off the items; never more than `eligibleSubtotalMinor`. Shipping is separate. */
  discountMinor: number;
  /** The order charges no shipping. */
  freeShipping: boolean;
  /** Sum of the lines that pass the coupon's product/category restrictions. */
  eligibleSubtotalMinor: number;
}

export type CouponRow = Selectable<CouponsTable>;

/** A line is eligible if it passes both restrictions; an empty restriction allows everything. */
export function isLineEligible(coupon: CouponRow, line: CartLine): boolean {
  const productOk = coupon.product_ids.length === 0 || coupon.product_ids.includes(line.productId);
  const categoryOk = coupon.categories.length === 0 || coupon.categories.includes(line.category);
  return productOk && categoryOk;
}

/**
 * Free units of one BOGO line: every complete group of `buy + get` units
 * earns `get` free units. The rule works per line, i.e. per SKU (the table's
 * "get more of it free"), so all units of a group cost the same and there is
 * no cheapest-item choice to make; units of different SKUs never combine
 * into a group.
 */
export function bogoFreeUnits(quantity: number, buy: number, get: number): number {
  return Math.floor(quantity / (buy + get)) * get;
}

function fail(code: ErrorCode, details: Record<string, unknown>): never {
  throw new AppError(code, undefined, details);
}

/**
 * Quotes `coupon` for the cart in `ctx`, or throws the AppError that says
 * most specifically why it does not apply (order above; `details` explain).
 *
 * @param userRedemptions the user's unreleased redemptions of this coupon.
 */
export function evaluateCoupon(coupon: CouponRow, ctx: CouponContext, userRedemptions: number): CouponQuote {
  const now = ctx.now.getTime();
  if (!coupon.active) fail('COUPON_INACTIVE', { code: coupon.code });
  if (coupon.starts_at && now < coupon.starts_at.getTime())
    fail('COUPON_NOT_STARTED', { startsAt: coupon.starts_at.toISOString() });
  if (coupon.ends_at && now >= coupon.ends_at.getTime())
    fail('COUPON_EXPIRED', { endsAt: coupon.ends_at.toISOString() });
  if (coupon.stream_id !== null && ctx.streamId !== coupon.stream_id)
    fail('COUPON_STREAM_MISMATCH', { requiredStreamId: coupon.stream_id, streamId: ctx.streamId });
  if (coupon.currency !== null && coupon.currency !== ctx.currency)
    fail('COUPON_CURRENCY_MISMATCH', { couponCurrency: coupon.currency, orderCurrency: ctx.currency });
  if (coupon.usage_limit !== null && coupon.uses >= coupon.usage_limit)
    fail('COUPON_LIMIT_REACHED', { usageLimit: coupon.usage_limit });
  if (coupon.per_user_limit !== null && userRedemptions >= coupon.per_user_limit)
    fail('COUPON_USER_LIMIT_REACHED', { perUserLimit: coupon.per_user_limit, userRedemptions });

  const eligible = ctx.lines.filter((line) => line.quantity > 0 && isLineEligible(coupon, line));
  const restrictions = { productIds: coupon.product_ids, categories: coupon.categories };
  if (eligible.length === 0) fail('COUPON_NOT_APPLICABLE', { reason: 'no_eligible_items', ...restrictions });
  const eligibleSubtotalMinor = eligible.reduce((sum, l) => sum + l.quantity * l.unitPriceMinor, 0);

  let discount = 0;
  let freeShipping = false;
  switch (coupon.type) {
    case 'percentage':
      discount = Math.floor((eligibleSubtotalMinor * (coupon.percent_off ?? 0)) / 100);
      break;
    case 'fixed':
      discount = Math.min(coupon.amount_off_minor ?? 0, eligibleSubtotalMinor);
      break;
    case 'free_shipping':
      freeShipping = true;
      break;
    case 'bogo': {
      const buy = coupon.buy_quantity ?? 1;
      const get = coupon.get_quantity ?? 1;
      // A BOGO that would give nothing is refused rather than redeemed for 0: it would burn a use.
      if (!eligible.some((l) => bogoFreeUnits(l.quantity, buy, get) > 0))
        fail('COUPON_NOT_APPLICABLE', {
          reason: 'bogo_quantity',
          buyQuantity: buy,
          getQuantity: get,
          ...restrictions,
        });
      discount = eligible.reduce((sum, l) => sum + bogoFreeUnits(l.quantity, buy, get) * l.unitPriceMinor, 0);
      break;
    }
  }
  if (eligibleSubtotalMinor < coupon.min_order_minor)
    fail('COUPON_MIN_NOT_MET', { minOrderMinor: coupon.min_order_minor, eligibleSubtotalMinor });

  if (coupon.max_discount_minor !== null) discount = Math.min(discount, coupon.max_discount_minor);
  discount = Math.max(0, Math.min(discount, eligibleSubtotalMinor));
  return {
    couponId: coupon.id,
    code: coupon.code,
    type: coupon.type,
    discountMinor: discount,
    freeShipping,
    eligibleSubtotalMinor,
  };
}
