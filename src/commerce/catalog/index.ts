/** The catalog module's public surface. */
export * from './cart.js';
export * from './catalog-migrations.js';
export * from './catalog-routes.js';
export * from './catalog-service.js';
export type { CatalogTables, ProductsTable, SkusTable } from './catalog-tables.js';
export * from './paging.js';
