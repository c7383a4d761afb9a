/**
 * Unit tests of the pure coupon rules: every type, every rule in its order,
 * and the boundaries (exactly at start/end, exactly the minimum, the cap).
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../platform/errors.js';
import {
  bogoFreeUnits,
  type CartLine,
  type CouponContext,
  type CouponRow,
  evaluateCoupon,
  isLineEligible,
} from './coupon-rules.js';

const P1 = '00000000-0000-4000-8000-000000000001';
const P2 = '00000000-0000-4000-8000-000000000002';
const NOW = new Date('2025-05-01T12:00:00.000Z');

function coupon(over: Partial<CouponRow> = {}): CouponRow {
  return {
    id: 'c1',
    code: 'TEST',
    type: 'percentage',
    percent_off: 10,
    amount_off_minor: null,
    currency: null,
    buy_quantity: null,
    get_quantity: null,
    starts_at: null,
    ends_at: null,
    usage_limit: null,
    per_user_limit: null,
    min_order_minor: 0,
    max_discount_minor: null,
    product_ids: [],
    categories: [],
    stream_id: null,
    active: true,
    uses: 0,
    created_by: 'u0',
    created_at: NOW,
    ...over,
  };
}

function line(over: Partial<CartLine> = {}): CartLine {
  return { productId: P1, skuId: 's1', category: 'apparel', quantity: 1, unitPriceMinor: 1000, ...over };
}

function ctx(over: Partial<CouponContext> = {}): CouponContext {
  return {
    userId: 'u1',
    streamId: null,
    currency: 'EUR',
    now: NOW,
    lines: [line()],
    shippingMinor: 500,
    ...over,
  };
}

/** The error a call throws, with its details; fails the test if it does not throw an AppError. */
function errorOf(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

const at = (iso: string) => new Date(iso);

describe('coupon rules: discount by type', () => {
  it('percentage floors the discount', () => {
    const q = evaluateCoupon(
      coupon({ percent_off: 15 }),
      ctx({ lines: [line({ quantity: 3, unitPriceMinor: 333 })] }),
      0,
    );
    // 999 * 15% = 149.85 -> 149
    expect(q).toEqual({
      couponId: 'c1',
      code: 'TEST',
      type: 'percentage',
      discountMinor: 149,
      freeShipping: false,
      eligibleSubtotalMinor: 999,
    });
  });

  it('percentage 100 takes the whole eligible subtotal, 1 takes 1%', () => {
    expect(evaluateCoupon(coupon({ percent_off: 100 }), ctx(), 0).discountMinor).toBe(1000);
    expect(evaluateCoupon(coupon({ percent_off: 1 }), ctx(), 0).discountMinor).toBe(10);
  });

  it('percentage of a tiny subtotal can be 0 and is still a valid quote', () => {
    const q = evaluateCoupon(coupon({ percent_off: 10 }), ctx({ lines: [line({ unitPriceMinor: 9 })] }), 0);
    expect(q.discountMinor).toBe(0);
  });

  it('fixed takes the amount, but never more than the eligible subtotal', () => {
    const fixed = coupon({ type: 'fixed', percent_off: null, amount_off_minor: 300, currency: 'EUR' });
    expect(evaluateCoupon(fixed, ctx(), 0).discountMinor).toBe(300);
    const big = { ...fixed, amount_off_minor: 5000 };
    expect(evaluateCoupon(big, ctx(), 0).discountMinor).toBe(1000);
    const exact = { ...fixed, amount_off_minor: 1000 };
    expect(evaluateCoupon(exact, ctx(), 0).discountMinor).toBe(1000);
  });

  it('free shipping discounts nothing on items and flags free shipping', () => {
    const q = evaluateCoupon(coupon({ type: 'free_shipping', percent_off: null }), ctx(), 0);
    expect(q).toMatchObject({ discountMinor: 0, freeShipping: true, eligibleSubtotalMinor: 1000 });
  });

  it('free shipping is not affected by the cap', () => {
    const q = evaluateCoupon(
      coupon({ type: 'free_shipping', percent_off: null, max_discount_minor: 0 }),
      ctx(),
      0,
    );
    expect(q.freeShipping).toBe(true);
  });

  describe('bogo', () => {
    const bogo = (buy: number, get: number, over: Partial<CouponRow> = {}) =>
      coupon({ type: 'bogo', percent_off: null, buy_quantity: buy, get_quantity: get, ...over });

    it('free units = floor(qty / (buy + get)) * get', () => {
      expect(bogoFreeUnits(1, 1, 1)).toBe(0);
      expect(bogoFreeUnits(2, 1, 1)).toBe(1);
      expect(bogoFreeUnits(3, 1, 1)).toBe(1);
      expect(bogoFreeUnits(4, 1, 1)).toBe(2);
      expect(bogoFreeUnits(5, 2, 1)).toBe(1);
      expect(bogoFreeUnits(6, 2, 1)).toBe(2);
      expect(bogoFreeUnits(5, 3, 2)).toBe(2);
      expect(bogoFreeUnits(9, 3, 2)).toBe(2);
      expect(bogoFreeUnits(10, 3, 2)).toBe(4);
    });

    it('buy 1 get 1: two units, one free', () => {
      const q = evaluateCoupon(bogo(1, 1), ctx({ lines: [line({ quantity: 2, unitPriceMinor: 700 })] }), 0);
      expect(q).toMatchObject({ type: 'bogo', discountMinor: 700, eligibleSubtotalMinor: 1400 });
    });

    it('works per line: units of different SKUs never combine', () => {
      const q = evaluateCoupon(
        bogo(2, 1),
        ctx({
          lines: [
            line({ skuId: 'a', quantity: 3, unitPriceMinor: 1000 }), // 1 free
            line({ skuId: 'b', quantity: 2, unitPriceMinor: 500 }), // none
            line({ skuId: 'c', quantity: 7, unitPriceMinor: 100 }), // 2 free
          ],
        }),
        0,
      );
      expect(q.discountMinor).toBe(1000 + 200);
      expect(q.eligibleSubtotalMinor).toBe(3000 + 1000 + 700);
    });

    it('a cart with no complete group is NOT_APPLICABLE (would burn a use for nothing)', () => {
      const e = errorOf(() => evaluateCoupon(bogo(2, 1), ctx({ lines: [line({ quantity: 2 })] }), 0));
      expect(e.code).toBe('COUPON_NOT_APPLICABLE');
      expect(e.details).toMatchObject({ reason: 'bogo_quantity', buyQuantity: 2, getQuantity: 1 });
    });

    it('only eligible lines earn free units', () => {
      const q = evaluateCoupon(
        bogo(1, 1, { categories: ['shoes'] }),
        ctx({
          lines: [
            line({ skuId: 'a', category: 'apparel', quantity: 4, unitPriceMinor: 1000 }),
            line({ skuId: 'b', category: 'shoes', quantity: 2, unitPriceMinor: 3000 }),
          ],
        }),
        0,
      );
      expect(q).toMatchObject({ discountMinor: 3000, eligibleSubtotalMinor: 6000 });
    });

    it('is capped by max_discount_minor', () => {
      const q = evaluateCoupon(
        bogo(1, 1, { max_discount_minor: 250 }),
        ctx({ lines: [line({ quantity: 2, unitPriceMinor: 700 })] }),
        0,
      );
      expect(q.discountMinor).toBe(250);
    });
  });
});

describe('coupon rules: cap and ceiling', () => {
  it('caps at max_discount_minor, and exactly at the cap is unchanged', () => {
    expect(evaluateCoupon(coupon({ percent_off: 50, max_discount_minor: 300 }), ctx(), 0).discountMinor).toBe(
      300,
    );
    expect(evaluateCoupon(coupon({ percent_off: 50, max_discount_minor: 500 }), ctx(), 0).discountMinor).toBe(
      500,
    );
    expect(evaluateCoupon(coupon({ percent_off: 50, max_discount_minor: 501 }), ctx(), 0).discountMinor).toBe(
      500,
    );
  });

  it('a cap of 0 quotes 0', () => {
    expect(evaluateCoupon(coupon({ percent_off: 50, max_discount_minor: 0 }), ctx(), 0).discountMinor).toBe(
      0,
    );
  });

  it('the discount never exceeds the eligible subtotal (only eligible lines count)', () => {
    const q = evaluateCoupon(
      coupon({
        type: 'fixed',
        percent_off: null,
        amount_off_minor: 10_000,
        currency: 'EUR',
        product_ids: [P2],
      }),
      ctx({
        lines: [
          line({ productId: P1, quantity: 5, unitPriceMinor: 1000 }),
          line({ productId: P2, skuId: 's2', quantity: 1, unitPriceMinor: 800 }),
        ],
      }),
      0,
    );
    expect(q).toMatchObject({ discountMinor: 800, eligibleSubtotalMinor: 800 });
  });
});

describe('coupon rules: each rule and its boundary', () => {
  it('COUPON_INACTIVE', () => {
    expect(errorOf(() => evaluateCoupon(coupon({ active: false }), ctx(), 0)).code).toBe('COUPON_INACTIVE');
  });

  it('COUPON_NOT_STARTED before starts_at; valid exactly at starts_at', () => {
    const startsAt = at('2025-05-01T12:00:00.000Z');
    const e = errorOf(() =>
      evaluateCoupon(coupon({ starts_at: startsAt }), ctx({ now: at('2025-05-01T11:59:59.999Z') }), 0),
    );
    expect(e.code).toBe('COUPON_NOT_STARTED');
    expect(e.statusCode).toBe(422);
    expect(e.details).toEqual({ startsAt: '2025-05-01T12:00:00.000Z' });
    expect(evaluateCoupon(coupon({ starts_at: startsAt }), ctx({ now: startsAt }), 0).discountMinor).toBe(
      100,
    );
  });

  it('COUPON_EXPIRED exactly at ends_at; valid one millisecond before', () => {
    const endsAt = at('2025-05-01T13:00:00.000Z');
    const e = errorOf(() => evaluateCoupon(coupon({ ends_at: endsAt }), ctx({ now: endsAt }), 0));
    expect(e.code).toBe('COUPON_EXPIRED');
    expect(e.details).toEqual({ endsAt: '2025-05-01T13:00:00.000Z' });
    expect(
      evaluateCoupon(coupon({ ends_at: endsAt }), ctx({ now: at('2025-05-01T12:59:59.999Z') }), 0)
        .discountMinor,
    ).toBe(100);
  });

  it('COUPON_STREAM_MISMATCH in another stream or outside any stream', () => {
    const c = coupon({ stream_id: 'stream-a' });
    const other = errorOf(() => evaluateCoupon(c, ctx({ streamId: 'stream-b' }), 0));
    expect(other.code).toBe('COUPON_STREAM_MISMATCH');
    expect(other.details).toEqual({ requiredStreamId: 'stream-a', streamId: 'stream-b' });
    expect(errorOf(() => evaluateCoupon(c, ctx({ streamId: null }), 0)).code).toBe('COUPON_STREAM_MISMATCH');
    expect(evaluateCoupon(c, ctx({ streamId: 'stream-a' }), 0).discountMinor).toBe(100);
    // an unrestricted coupon works in any stream
    expect(evaluateCoupon(coupon(), ctx({ streamId: 'stream-b' }), 0).discountMinor).toBe(100);
  });

  it('COUPON_CURRENCY_MISMATCH when the coupon names another currency', () => {
    const e = errorOf(() => evaluateCoupon(coupon({ currency: 'USD' }), ctx({ currency: 'EUR' }), 0));
    expect(e.code).toBe('COUPON_CURRENCY_MISMATCH');
    expect(e.details).toEqual({ couponCurrency: 'USD', orderCurrency: 'EUR' });
    expect(evaluateCoupon(coupon({ currency: 'EUR' }), ctx(), 0).discountMinor).toBe(100);
  });

  it('COUPON_LIMIT_REACHED at uses == usage_limit; one use left is fine', () => {
    const e = errorOf(() => evaluateCoupon(coupon({ usage_limit: 5, uses: 5 }), ctx(), 0));
    expect(e.code).toBe('COUPON_LIMIT_REACHED');
    expect(e.details).toEqual({ usageLimit: 5 });
    expect(evaluateCoupon(coupon({ usage_limit: 5, uses: 4 }), ctx(), 0).discountMinor).toBe(100);
    expect(errorOf(() => evaluateCoupon(coupon({ usage_limit: 0, uses: 0 }), ctx(), 0)).code).toBe(
      'COUPON_LIMIT_REACHED',
    );
  });

  it('COUPON_USER_LIMIT_REACHED at the per-user limit', () => {
    const c = coupon({ per_user_limit: 2 });
    const e = errorOf(() => evaluateCoupon(c, ctx(), 2));
    expect(e.code).toBe('COUPON_USER_LIMIT_REACHED');
    expect(e.details).toEqual({ perUserLimit: 2, userRedemptions: 2 });
    expect(evaluateCoupon(c, ctx(), 1).discountMinor).toBe(100);
  });

  it('COUPON_NOT_APPLICABLE with zero eligible lines, naming the restrictions', () => {
    const byProduct = errorOf(() => evaluateCoupon(coupon({ product_ids: [P2] }), ctx(), 0));
    expect(byProduct.code).toBe('COUPON_NOT_APPLICABLE');
    expect(byProduct.details).toEqual({ reason: 'no_eligible_items', productIds: [P2], categories: [] });
    const byCategory = errorOf(() => evaluateCoupon(coupon({ categories: ['shoes'] }), ctx(), 0));
    expect(byCategory.details).toMatchObject({ categories: ['shoes'] });
    expect(errorOf(() => evaluateCoupon(coupon(), ctx({ lines: [] }), 0)).code).toBe('COUPON_NOT_APPLICABLE');
  });

  it('COUPON_MIN_NOT_MET below the minimum; exactly the minimum is fine', () => {
    const c = coupon({ min_order_minor: 1001 });
    const e = errorOf(() => evaluateCoupon(c, ctx(), 0));
    expect(e.code).toBe('COUPON_MIN_NOT_MET');
    expect(e.details).toEqual({ minOrderMinor: 1001, eligibleSubtotalMinor: 1000 });
    expect(evaluateCoupon(coupon({ min_order_minor: 1000 }), ctx(), 0).discountMinor).toBe(100);
  });

  it('the minimum counts the eligible subtotal only, not the whole cart', () => {
    const c = coupon({ min_order_minor: 1500, categories: ['shoes'] });
    const lines = [
      line({ category: 'apparel', quantity: 10, unitPriceMinor: 1000 }),
      line({ skuId: 's2', category: 'shoes', quantity: 1, unitPriceMinor: 1200 }),
    ];
    const e = errorOf(() => evaluateCoupon(c, ctx({ lines }), 0));
    expect(e.code).toBe('COUPON_MIN_NOT_MET');
    expect(e.details).toEqual({ minOrderMinor: 1500, eligibleSubtotalMinor: 1200 });
  });
});

describe('coupon rules: restrictions combine', () => {
  const c = coupon({ product_ids: [P1, P2], categories: ['shoes'] });
  it('a line must pass both the product and the category restriction', () => {
    expect(isLineEligible(c, line({ productId: P1, category: 'shoes' }))).toBe(true);
    expect(isLineEligible(c, line({ productId: P1, category: 'apparel' }))).toBe(false);
    expect(isLineEligible(c, line({ productId: 'other', category: 'shoes' }))).toBe(false);
  });
  it('an empty restriction allows everything', () => {
    expect(isLineEligible(coupon(), line({ productId: 'x', category: 'y' }))).toBe(true);
    expect(
      isLineEligible(coupon({ categories: ['shoes'] }), line({ productId: 'x', category: 'shoes' })),
    ).toBe(true);
    expect(isLineEligible(coupon({ product_ids: [P2] }), line({ productId: P2, category: 'any' }))).toBe(
      true,
    );
  });
  it('only eligible lines are discounted', () => {
    const q = evaluateCoupon(
      coupon({ percent_off: 50, categories: ['shoes'] }),
      ctx({
        lines: [
          line({ category: 'shoes', quantity: 2, unitPriceMinor: 1000 }),
          line({ skuId: 's2', category: 'apparel', quantity: 1, unitPriceMinor: 9999 }),
        ],
      }),
      0,
    );
    expect(q).toMatchObject({ discountMinor: 1000, eligibleSubtotalMinor: 2000 });
  });
});

describe('coupon rules: the order of checks', () => {
  // A coupon failing every rule at once; switching rules off one by one must reveal them in order.
  const everything: Partial<CouponRow> = {
    active: false,
    starts_at: at('2025-06-01T00:00:00Z'),
    ends_at: at('2025-04-01T00:00:00Z'),
    stream_id: 'other-stream',
    currency: 'USD',
    usage_limit: 1,
    uses: 1,
    per_user_limit: 1,
    product_ids: [P2],
    min_order_minor: 1_000_000,
  };
  const fixes: Array<[string, Partial<CouponRow>]> = [
    ['COUPON_INACTIVE', { active: true }],
    ['COUPON_NOT_STARTED', { starts_at: null }],
    ['COUPON_EXPIRED', { ends_at: null }],
    ['COUPON_STREAM_MISMATCH', { stream_id: null }],
    ['COUPON_CURRENCY_MISMATCH', { currency: null }],
    ['COUPON_LIMIT_REACHED', { usage_limit: null }],
    ['COUPON_USER_LIMIT_REACHED', { per_user_limit: null }],
    ['COUPON_NOT_APPLICABLE', { product_ids: [] }],
    ['COUPON_MIN_NOT_MET', { min_order_minor: 0 }],
  ];
  it('reports the most specific failure first', () => {
    let current = coupon(everything);
    for (const [code, fix] of fixes) {
      expect(errorOf(() => evaluateCoupon(current, ctx(), 1)).code).toBe(code);
      current = { ...current, ...fix };
    }
    expect(evaluateCoupon(current, ctx(), 1).discountMinor).toBe(100);
  });
  it('every failure is a 422 with a message from the catalogue', () => {
    const e = errorOf(() => evaluateCoupon(coupon(everything), ctx(), 1));
    expect(e.statusCode).toBe(422);
    expect(e.toJSON()).toMatchObject({ code: 'COUPON_INACTIVE', message: 'This coupon is disabled' });
  });
});
