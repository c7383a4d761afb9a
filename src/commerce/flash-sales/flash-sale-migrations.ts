import { type Kysely, type Migration, sql } from 'kysely';

export const flashSaleMigrations: Record<string, Migration> = {
  '0130_flash_sales': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('flash_sales')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('product_id', 'uuid', (c) => c.notNull())
        .addColumn('sku_id', 'uuid', (c) => c.notNull())
        .addColumn('stream_id', 'text')
        .addColumn('sale_price_minor', 'integer', (c) => c.notNull().check(sql`sale_price_minor >= 0`))
        .addColumn('currency', 'char(3)', (c) => c.notNull())
        .addColumn('quantity', 'integer', (c) => c.notNull().check(sql`quantity > 0`))
        .addColumn('per_user_limit', 'integer', (c) => c.notNull().check(sql`per_user_limit > 0`))
        .addColumn('reservation_ttl_seconds', 'integer', (c) =>
          c.notNull().check(sql`reservation_ttl_seconds > 0`),
        )
        .addColumn('starts_at', 'timestamptz', (c) => c.notNull())
        .addColumn('ends_at', 'timestamptz', (c) => c.notNull())
        .addColumn('stopped_at', 'timestamptz')
        .addColumn('engine_epoch', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_by', 'uuid', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addCheckConstraint('flash_sales_window', sql`ends_at > starts_at`)
        .execute();
      await db.schema.createIndex('flash_sales_ends').on('flash_sales').column('ends_at').execute();
      await db.schema.createIndex('flash_sales_stream').on('flash_sales').column('stream_id').execute();
      await db.schema
        .createTable('flash_reservations')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('sale_id', 'uuid', (c) => c.notNull().references('flash_sales.id'))
        .addColumn('user_id', 'uuid', (c) => c.notNull())
        .addColumn('quantity', 'integer', (c) => c.notNull().check(sql`quantity > 0`))
        .addColumn('status', 'text', (c) =>
          c.notNull().check(sql`status in ('reserved','paid','expired','cancelled')`),
        )
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('idempotency_key', 'text', (c) => c.notNull())
        .addColumn('order_id', 'uuid')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('flash_reservations_idem', ['sale_id', 'user_id', 'idempotency_key'])
        .execute();
      await db.schema
        .createIndex('flash_reservations_sale_status')
        .on('flash_reservations')
        .columns(['sale_id', 'status'])
        .execute();
    },
  },
};
