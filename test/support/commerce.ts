/**
 * Commerce fixtures written straight to the Db, so tests that hammer the hot
 * paths do not spend their time in registration (scrypt) or catalog routes.
 */
import { randomUUID } from 'node:crypto';
import type { Insertable, Kysely } from 'kysely';
import type { TokenService } from '../../src/auth/tokens.js';
import type { CouponsTable } from '../../src/commerce/coupons/coupon-tables.js';
import type { Database } from '../../src/database.js';

export async function insertProduct(
  db: Kysely<Database>,
  sellerId: string,
  opts: { priceMinor?: number; stock?: number; currency?: string; category?: string } = {},
): Promise<{ productId: string; skuId: string }> {
  const productId = randomUUID();
  const skuId = randomUUID();
  await db
    .insertInto('products')
    .values({
      id: productId,
      seller_id: sellerId,
      title: 'Test sneaker',
      category: opts.category ?? 'shoes',
      currency: opts.currency ?? 'USD',
    })
    .execute();
  await db
    .insertInto('skus')
    .values({
      id: skuId,
      product_id: productId,
      code: `SKU-${skuId.slice(0, 8)}`,
      name: 'Red / 42',
      price_minor: opts.priceMinor ?? 5000,
      stock: opts.stock ?? 100,
    })
    .execute();
  return { productId, skuId };
}

/** Creates `n` users directly (no password hashing) and a token for each. */
export async function insertUsers(
  db: Kysely<Database>,
  tokens: TokenService,
  n: number,
): Promise<Array<{ id: string; token: string }>> {
  const users = Array.from({ length: n }, (_, i) => ({
    id: randomUUID(),
    email: `buyer-${i}-${randomUUID()}@example.com`,
    display_name: `Buyer ${i}`,
    password_hash: 'not-a-login-account',
    roles: ['viewer' as const],
  }));
  for (let i = 0; i < users.length; i += 500)
    await db
      .insertInto('users')
      .values(users.slice(i, i + 500))
      .execute();
  return Promise.all(
    users.map(async (u) => ({
      id: u.id,
      token: (await tokens.issue({ id: u.id, roles: ['viewer'], displayName: u.display_name })).token,
    })),
  );
}

/** Runs `tasks` with at most `concurrency` in flight. */
export async function pool<T>(tasks: Array<() => Promise<T>>, concurrency: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

/** A coupon row with every optional rule off (a plain 10 % percentage coupon); override what a test needs. */
export function couponRow(
  createdBy: string,
  overrides: Partial<Insertable<CouponsTable>> = {},
): Insertable<CouponsTable> {
  return {
    id: randomUUID(),
    code: `C${randomUUID().slice(0, 8).toUpperCase()}`,
    type: 'percentage',
    percent_off: 10,
    amount_off_minor: null,
    currency: null,
    buy_quantity: null,
    get_quantity: null,
    starts_at: null,
    ends_at: null,
    usage_limit: null,
    per_user_limit: null,
    max_discount_minor: null,
    stream_id: null,
    created_by: createdBy,
    ...overrides,
  };
}
