import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Products and their SKUs. Constraints are named so callers can recognise a
 * violation (e.g. an order that would drive `skus_stock_nonnegative` below
 * zero is OUT_OF_STOCK, not a 500).
 *
 * `seller_id` has no foreign key to `users`: sellers come from verified
 * tokens, users are never deleted, and other modules' tests create products
 * without registering a user first.
 */
export const catalogMigrations: Record<string, Migration> = {
  '0100_catalog_products_skus': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('products')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('seller_id', 'uuid', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('category', 'text', (c) => c.notNull())
        .addColumn('images', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
        .addColumn('currency', 'text', (c) => c.notNull())
        .addColumn('active', 'boolean', (c) => c.notNull().defaultTo(true))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addCheckConstraint('products_currency_iso', sql`currency ~ '^[A-Z]{3}$'`)
        .addCheckConstraint('products_images_max', sql`cardinality(images) <= 10`)
        .execute();
      await db.schema.createIndex('products_category_idx').on('products').column('category').execute();
      await db.schema.createIndex('products_seller_idx').on('products').column('seller_id').execute();
      // Listing order (newest first, id breaks ties) so cursor pages are index range scans.
      await db.schema
        .createIndex('products_page_idx')
        .on('products')
        .columns(['created_at desc', 'id desc'])
        .execute();

      await db.schema
        .createTable('skus')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('product_id', 'uuid', (c) => c.notNull().references('products.id').onDelete('cascade'))
        .addColumn('code', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('price_minor', 'integer', (c) => c.notNull())
        .addColumn('stock', 'integer', (c) => c.notNull())
        .addColumn('active', 'boolean', (c) => c.notNull().defaultTo(true))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('skus_code_unique', ['code'])
        .addCheckConstraint('skus_stock_nonnegative', sql`stock >= 0`)
        .addCheckConstraint('skus_price_nonnegative', sql`price_minor >= 0`)
        .execute();
      await db.schema.createIndex('skus_product_idx').on('skus').column('product_id').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('skus').execute();
      await db.schema.dropTable('products').execute();
    },
  },
};
