/**
 * The whole relational schema, composed from each domain module's tables, and
 * every module's migrations in the order they apply.
 */
import type { Migration } from 'kysely';
import { authMigrations } from './auth/auth-migrations.js';
import type { AuthTables } from './auth/auth-tables.js';
import { callMigrations } from './calls/call-migrations.js';
import type { CallTables } from './calls/call-tables.js';
import { chatMigrations } from './chat/chat-migrations.js';
import type { ChatTables } from './chat/chat-tables.js';
import { catalogMigrations } from './commerce/catalog/catalog-migrations.js';
import type { CatalogTables } from './commerce/catalog/catalog-tables.js';
import { couponMigrations } from './commerce/coupons/coupon-migrations.js';
import type { CouponTables } from './commerce/coupons/coupon-tables.js';
import { flashSaleMigrations } from './commerce/flash-sales/flash-sale-migrations.js';
import type { FlashSaleTables } from './commerce/flash-sales/flash-sale-tables.js';
import { orderMigrations } from './commerce/orders/order-migrations.js';
import type { OrderTables } from './commerce/orders/order-tables.js';
import { liveMigrations } from './live/live-migrations.js';
import type { LiveTables } from './live/live-tables.js';
import { type IdempotencyTables, idempotencyMigrations } from './platform/idempotency/idempotency.js';

export type Database = AuthTables &
  IdempotencyTables &
  CatalogTables &
  CouponTables &
  OrderTables &
  FlashSaleTables &
  ChatTables &
  LiveTables &
  CallTables;

/** Names are globally ordered by their numeric prefix; a module never reuses another's number. */
export const migrations: Record<string, Migration> = {
  ...authMigrations,
  ...idempotencyMigrations,
  ...catalogMigrations,
  ...couponMigrations,
  ...orderMigrations,
  ...flashSaleMigrations,
  ...chatMigrations,
  ...liveMigrations,
  ...callMigrations,
};
