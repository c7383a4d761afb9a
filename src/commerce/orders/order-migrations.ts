import { type Kysely, type Migration, sql } from 'kysely';

export const orderMigrations: Record<string, Migration> = {
  '0120_orders': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('orders')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
        .addColumn('status', 'text', (c) =>
          c.notNull().check(sql`status in ('pending_payment','paid','fulfilled','cancelled','expired')`),
        )
        .addColumn('currency', 'char(3)', (c) => c.notNull())
        .addColumn('subtotal_minor', 'integer', (c) => c.notNull().check(sql`subtotal_minor >= 0`))
        .addColumn('discount_minor', 'integer', (c) => c.notNull().check(sql`discount_minor >= 0`))
        .addColumn('shipping_minor', 'integer', (c) => c.notNull().check(sql`shipping_minor >= 0`))
        .addColumn('total_minor', 'integer', (c) => c.notNull().check(sql`total_minor >= 0`))
        .addColumn('coupon_id', 'uuid')
        .addColumn('stream_id', 'text')
        .addColumn('stream_media_time_ms', 'bigint')
        .addColumn('payment_ref', 'text')
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('paid_at', 'timestamptz')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('orders_user').on('orders').columns(['user_id', 'created_at']).execute();
      await db.schema.createIndex('orders_stream').on('orders').column('stream_id').execute();
      await db.schema
        .createIndex('orders_pending_expiry')
        .on('orders')
        .column('expires_at')
        .where(sql.ref('status'), '=', 'pending_payment')
        .execute();
      await db.schema
        .createTable('order_items')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('order_id', 'uuid', (c) => c.notNull().references('orders.id').onDelete('cascade'))
        .addColumn('product_id', 'uuid', (c) => c.notNull())
        .addColumn('sku_id', 'uuid', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('quantity', 'integer', (c) => c.notNull().check(sql`quantity > 0`))
        .addColumn('unit_price_minor', 'integer', (c) => c.notNull().check(sql`unit_price_minor >= 0`))
        .addColumn('flash_sale_id', 'uuid')
        .addColumn('reservation_id', 'uuid', (c) => c.unique())
        .execute();
      await db.schema.createIndex('order_items_order').on('order_items').column('order_id').execute();
      await db.schema.createIndex('order_items_sale').on('order_items').column('flash_sale_id').execute();
    },
  },
};
