import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Coupons and their redemptions. The database enforces what must hold even if
 * a bug slipped past the service: a known type with its required fields, sane
 * ranges, and `uses <= usage_limit` (the last line of defence against handing
 * out one use too many).
 *
 * `coupon_redemptions.order_id` has no foreign key: orders are created in a
 * later migration (0120_orders), and the redemption is written in the same
 * transaction as its order anyway.
 */
export const couponMigrations: Record<string, Migration> = {
  '0110_coupons_redemptions': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('coupons')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('code', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('percent_off', 'integer')
        .addColumn('amount_off_minor', 'integer')
        .addColumn('currency', 'text')
        .addColumn('buy_quantity', 'integer')
        .addColumn('get_quantity', 'integer')
        .addColumn('starts_at', 'timestamptz')
        .addColumn('ends_at', 'timestamptz')
        .addColumn('usage_limit', 'integer')
        .addColumn('per_user_limit', 'integer')
        .addColumn('min_order_minor', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('max_discount_minor', 'integer')
        // text[] rather than uuid[]: compared with product ids as text, and parsed identically by both adapters.
        .addColumn('product_ids', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
        .addColumn('categories', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
        .addColumn('stream_id', 'text')
        .addColumn('active', 'boolean', (c) => c.notNull().defaultTo(true))
        .addColumn('uses', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_by', 'uuid', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('coupons_code_unique', ['code'])
        .addCheckConstraint('coupons_code_upper', sql`code = upper(code)`)
        .addCheckConstraint(
          'coupons_type_known',
          sql`type in ('percentage', 'fixed', 'free_shipping', 'bogo')`,
        )
        .addCheckConstraint('coupons_percent_off_range', sql`percent_off between 1 and 100`)
        .addCheckConstraint('coupons_amount_off_positive', sql`amount_off_minor >= 1`)
        .addCheckConstraint('coupons_currency_iso', sql`currency ~ '^[A-Z]{3}$'`)
        .addCheckConstraint('coupons_bogo_quantities', sql`buy_quantity >= 1 and get_quantity >= 1`)
        .addCheckConstraint(
          'coupons_type_fields',
          sql`(type <> 'percentage' or percent_off is not null)
            and (type <> 'fixed' or (amount_off_minor is not null and currency is not null))
            and (type <> 'bogo' or (buy_quantity is not null and get_quantity is not null))`,
        )
        .addCheckConstraint(
          'coupons_window',
          sql`starts_at is null or ends_at is null or starts_at < ends_at`,
        )
        .addCheckConstraint('coupons_usage_limit_nonnegative', sql`usage_limit >= 0`)
        .addCheckConstraint('coupons_per_user_limit_positive', sql`per_user_limit >= 1`)
        .addCheckConstraint('coupons_min_order_nonnegative', sql`min_order_minor >= 0`)
        .addCheckConstraint('coupons_max_discount_nonnegative', sql`max_discount_minor >= 0`)
        .addCheckConstraint('coupons_uses_nonnegative', sql`uses >= 0`)
        .addCheckConstraint('coupons_uses_within_limit', sql`usage_limit is null or uses <= usage_limit`)
        .execute();
      await db.schema
        .createIndex('coupons_page_idx')
        .on('coupons')
        .columns(['created_at desc', 'id desc'])
        .execute();
      await db.schema.createIndex('coupons_created_by_idx').on('coupons').column('created_by').execute();

      await db.schema
        .createTable('coupon_redemptions')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('coupon_id', 'uuid', (c) => c.notNull().references('coupons.id'))
        .addColumn('order_id', 'uuid', (c) => c.notNull())
        .addColumn('user_id', 'uuid', (c) => c.notNull())
        .addColumn('discount_minor', 'integer', (c) => c.notNull())
        .addColumn('released_at', 'timestamptz')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('coupon_redemptions_order_unique', ['order_id'])
        .addCheckConstraint('coupon_redemptions_discount_nonnegative', sql`discount_minor >= 0`)
        .execute();
      // Per-user limit counts and usage reports look redemptions up by coupon (and user).
      await db.schema
        .createIndex('coupon_redemptions_coupon_user_idx')
        .on('coupon_redemptions')
        .columns(['coupon_id', 'user_id'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('coupon_redemptions').execute();
      await db.schema.dropTable('coupons').execute();
    },
  },
};
