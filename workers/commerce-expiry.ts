/**
 * Commerce expiry jobs, run on every instance: flash-sale reservations past
 * their time return their units; unpaid orders past their deadline return
 * stock, coupon use and reservations. Both are safe to race (each expiry is
 * handed out by one atomic step), so no leader election is needed.
 */
import type { FlashSalesService } from '../src/commerce/flash-sales/flash-sales-service.js';
import type { OrdersService } from '../src/commerce/orders/orders-service.js';
import { type JobLogger, PeriodicJob } from './periodic-job.js';

export function commerceExpiryJobs(
  flashSales: FlashSalesService,
  orders: OrdersService,
  intervalMs: number,
  logger: JobLogger,
): PeriodicJob[] {
  return [
    new PeriodicJob('flash-reservation-expiry', intervalMs, () => flashSales.sweep(), logger),
    new PeriodicJob('order-expiry', intervalMs, () => orders.expireDue(), logger),
  ];
}
