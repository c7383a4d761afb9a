import type { ColumnType, Generated } from 'kysely';

/** A product as shown to shoppers; what is actually bought is one of its SKUs. */
export interface ProductsTable {
  id: string;
  /** The streamer/admin who owns it. */
  seller_id: string;
  title: string;
  description: Generated<string>;
  category: string;
  /** Image URLs. */
  images: ColumnType<string[], string[] | undefined, string[]>;
  /** ISO 4217, upper case; every SKU of the product is priced in it. */
  currency: string;
  active: Generated<boolean>;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** A purchasable variant: own code, price and stock (stock >= 0 enforced by the database). */
export interface SkusTable {
  id: string;
  product_id: string;
  /** Merchant code, unique across the catalog. */
  code: string;
  /** Variant label, e.g. "Red / M". */
  name: string;
  /** Price in minor units of the product currency. */
  price_minor: number;
  stock: number;
  active: Generated<boolean>;
  created_at: Generated<Date>;
}

export interface CatalogTables {
  products: ProductsTable;
  skus: SkusTable;
}
