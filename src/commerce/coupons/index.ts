/** The coupons module's public surface. */
export * from './coupon-migrations.js';
export * from './coupon-routes.js';
export * from './coupon-rules.js';
export type { CouponRedemptionsTable, CouponsTable, CouponTables, CouponType } from './coupon-tables.js';
export * from './coupons-service.js';
