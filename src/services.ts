/**
 * Builds every domain service from already-open adapters. Shared by the
 * composition root (src/server.ts) and the tests, so both run the same graph.
 */
import type { Config } from '../config/schema.js';
import { commerceExpiryJobs } from '../workers/commerce-expiry.js';
import type { JobLogger, PeriodicJob } from '../workers/periodic-job.js';
import { TokenService } from './auth/tokens.js';
import { UsersService } from './auth/users-service.js';
import { CommerceAnalytics } from './commerce/analytics/commerce-analytics.js';
import { CatalogService } from './commerce/catalog/catalog-service.js';
import { CouponsService } from './commerce/coupons/coupons-service.js';
import { FlashSalesService } from './commerce/flash-sales/flash-sales-service.js';
import { OrdersService } from './commerce/orders/orders-service.js';
import { type PaymentProvider, TestPaymentProvider } from './commerce/orders/payment-provider.js';
import type { Database } from './database.js';
import type { DbHandle } from './platform/db/db.js';
import type { Engine } from './platform/engine/engine.js';
import type { ObjectStore } from './platform/object-store/object-store.js';

export interface Adapters {
  db: DbHandle<Database>;
  engine: Engine;
  objectStore: ObjectStore;
}

export interface Services extends Adapters {
  config: Config;
  tokens: TokenService;
  users: UsersService;
  catalog: CatalogService;
  coupons: CouponsService;
  flashSales: FlashSalesService;
  orders: OrdersService;
  payments: PaymentProvider;
  analytics: CommerceAnalytics;
  /** Background jobs of this instance (reservation and order expiry). */
  jobs: PeriodicJob[];
}

export interface CreateServicesOptions {
  /** HS256 secret for access tokens. */
  jwtSecret: string;
  /** Replaces the built-in test payment provider. */
  payments?: PaymentProvider;
  logger: JobLogger;
}

export function createServices(config: Config, adapters: Adapters, options: CreateServicesOptions): Services {
  const db = adapters.db.db;
  const tokens = new TokenService(options.jwtSecret, config.JWT_TTL_SECONDS);
  const users = new UsersService(db, tokens);
  const catalog = new CatalogService(db);
  const coupons = new CouponsService(db);
  const flashSales = new FlashSalesService(db, adapters.engine, {
    windowMs: config.FLASH_VELOCITY_WINDOW_MS,
    perUserMax: config.FLASH_VELOCITY_PER_USER,
    perIpMax: config.FLASH_VELOCITY_PER_IP,
  });
  const payments = options.payments ?? new TestPaymentProvider();
  const orders = new OrdersService(db, coupons, flashSales, payments, {
    paymentTtlSeconds: config.ORDER_PAYMENT_TTL_SECONDS,
    paymentTimeoutMs: config.PAYMENT_TIMEOUT_MS,
    shippingFeeMinor: config.SHIPPING_FEE_MINOR,
  });
  const jobs = commerceExpiryJobs(flashSales, orders, config.SWEEP_INTERVAL_MS, options.logger);
  const analytics = new CommerceAnalytics(db);
  return {
    ...adapters,
    config,
    tokens,
    users,
    catalog,
    coupons,
    flashSales,
    orders,
    payments,
    analytics,
    jobs,
  };
}

/** Starts subscriptions and background jobs. */
export async function startServices(services: Services): Promise<void> {
  await services.flashSales.start();
  for (const job of services.jobs) job.start();
}

/** Stops jobs and flushes pending writes; adapters stay open (the caller closes them). */
export async function stopServices(services: Services): Promise<void> {
  await Promise.all(services.jobs.map((j) => j.stop()));
  await services.flashSales.stop();
}
