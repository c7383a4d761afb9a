import type { ColumnType, Generated } from 'kysely';

export type CouponType = 'percentage' | 'fixed' | 'free_shipping' | 'bogo';

export interface CouponsTable {
  id: string;
  /** Upper case, unique. */
  code: string;
  type: CouponType;
  /** percentage: 1..100. */
  percent_off: number | null;
  /** fixed: amount in minor units of `currency`. */
  amount_off_minor: number | null;
  /** fixed (required) and optional for the others: the coupon only applies to orders in this currency. */
  currency: string | null;
  /** bogo: buy `buy_quantity` units of an eligible SKU, get `get_quantity` more of it free. */
  buy_quantity: number | null;
  get_quantity: number | null;
  starts_at: Date | null;
  ends_at: Date | null;
  /** Total redemptions allowed; null = unlimited. */
  usage_limit: number | null;
  /** Redemptions allowed per user; null = unlimited. */
  per_user_limit: number | null;
  /** Minimum eligible subtotal in minor units. */
  min_order_minor: Generated<number>;
  /** Cap on the discount in minor units; null = none. */
  max_discount_minor: number | null;
  /** Restrict to these products (empty = any). */
  product_ids: ColumnType<string[], string[] | undefined, string[]>;
  /** Restrict to these categories (empty = any). */
  categories: ColumnType<string[], string[] | undefined, string[]>;
  /** Only valid for orders placed in this live stream. */
  stream_id: string | null;
  active: Generated<boolean>;
  /** Live redemptions (released ones are subtracted); never exceeds usage_limit. */
  uses: Generated<number>;
  created_by: string;
  created_at: Generated<Date>;
}

export interface CouponRedemptionsTable {
  id: string;
  coupon_id: string;
  /** One redemption per order. */
  order_id: string;
  user_id: string;
  discount_minor: number;
  /** Set when the order is cancelled or expires; the use is returned to the coupon. */
  released_at: Date | null;
  created_at: Generated<Date>;
}

export interface CouponTables {
  coupons: CouponsTable;
  coupon_redemptions: CouponRedemptionsTable;
}
