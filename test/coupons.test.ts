/**
 * Coupons: service contract (creation rules, quotes, atomic redemption under
 * concurrency, release, usage) against embedded PGlite and real PostgreSQL,
 * then the HTTP API through the app.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely, Migration } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authMigrations } from '../src/auth/auth-migrations.js';
import type { AuthTables } from '../src/auth/auth-tables.js';
import { catalogMigrations } from '../src/commerce/catalog/catalog-migrations.js';
import { CatalogService, type Product } from '../src/commerce/catalog/catalog-service.js';
import type { CatalogTables } from '../src/commerce/catalog/catalog-tables.js';
import { couponMigrations } from '../src/commerce/coupons/coupon-migrations.js';
import type { CouponContext } from '../src/commerce/coupons/coupon-rules.js';
import type { CouponTables } from '../src/commerce/coupons/coupon-tables.js';
import { CouponsService, type NewCoupon } from '../src/commerce/coupons/coupons-service.js';
import { type DbHandle, openDb } from '../src/platform/db/db.js';
import type { AppError } from '../src/platform/errors.js';
import { createTestApp, type TestApp } from './support/app.js';
import { couponRow } from './support/commerce.js';
import { actor, failure } from './support/failures.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService } from './support/real-services.js';

interface TestOrdersTable {
  orders: { id: string; status: string; total_minor: number };
}
type TestDb = AuthTables & CatalogTables & CouponTables & TestOrdersTable;

/** The real orders table arrives with the orders module; usage() only needs these three columns. */
const testMigrations: Record<string, Migration> = {
  ...authMigrations,
  ...catalogMigrations,
  ...couponMigrations,
  '9990_test_orders': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('orders')
        .ifNotExists()
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('total_minor', 'integer', (c) => c.notNull())
        .execute();
    },
  },
};

let seq = 0;
const code = (prefix = 'C') => `${prefix}${++seq}_${randomUUID().slice(0, 6)}`.toUpperCase();

interface Target {
  open: () => Promise<DbHandle<TestDb>>;
  cleanup: () => Promise<void>;
}

function couponContract(makeTarget: () => Promise<Target>) {
  let target: Target;
  let handle: DbHandle<TestDb>;
  let catalog: CatalogService;
  let coupons: CouponsService;
  const seller = actor('streamer');
  const rival = actor('streamer');
  const admin = actor('admin');
  let tee: Product;
  let mug: Product;

  /** A context for `lines` built from the catalog, the way checkout and validate build it. */
  const ctxFor = async (
    items: Array<{ skuId: string; quantity: number }>,
    over: Partial<CouponContext> = {},
  ): Promise<CouponContext> => {
    const cart = await catalog.priceCart(items);
    return {
      userId: randomUUID(),
      streamId: null,
      currency: cart.currency,
      now: new Date(),
      lines: cart.lines,
      shippingMinor: 490,
      ...over,
    };
  };
  const redeem = (couponCode: string, ctx: CouponContext, orderId = randomUUID()) =>
    handle.db.transaction().execute((trx) => coupons.redeemInTransaction(trx, couponCode, ctx, orderId));
  const release = (orderId: string) =>
    handle.db.transaction().execute((trx) => coupons.releaseInTransaction(trx, orderId));
  const siteWide = (over: Partial<NewCoupon> = {}): NewCoupon => ({
    code: code(),
    type: 'percentage',
    percentOff: 10,
    ...over,
  });

  beforeAll(async () => {
    target = await makeTarget();
    handle = await target.open();
    catalog = new CatalogService(handle.db);
    coupons = new CouponsService(handle.db);
    tee = await catalog.createProduct(seller, {
      title: 'Tee',
      category: 'Apparel',
      currency: 'EUR',
      skus: [{ code: `TEE-${randomUUID().slice(0, 8)}`, name: 'M', priceMinor: 2000, stock: 100 }],
    });
    mug = await catalog.createProduct(rival, {
      title: 'Mug',
      category: 'kitchen',
      currency: 'EUR',
      skus: [{ code: `MUG-${randomUUID().slice(0, 8)}`, name: 'White', priceMinor: 800, stock: 100 }],
    });
  });
  afterAll(async () => {
    await handle?.close();
    await target?.cleanup();
  });

  describe('creation', () => {
    it('normalises the code to upper case and keeps it unique in any case', async () => {
      const c = await coupons.create(admin, siteWide({ code: 'live-Ten_1' }));
      expect(c).toMatchObject({
        code: 'LIVE-TEN_1',
        type: 'percentage',
        percentOff: 10,
        uses: 0,
        active: true,
        minOrderMinor: 0,
        productIds: [],
        categories: [],
        createdBy: admin.id,
      });
      expect(await failure(coupons.create(admin, siteWide({ code: 'LIVE-ten_1' })))).toEqual({
        code: 'COUPON_CODE_TAKEN',
        details: { code: 'LIVE-TEN_1' },
      });
      expect((await coupons.getByCode(' live-ten_1 ')).id).toBe(c.id);
      expect((await coupons.get(admin, c.id)).code).toBe('LIVE-TEN_1');
    });

    it('validates type-specific fields with VALIDATION_FAILED naming the field', async () => {
      const bad: Array<[Partial<NewCoupon>, string]> = [
        [{ type: 'percentage', percentOff: undefined }, 'percentOff'],
        [{ type: 'percentage', percentOff: 0 }, 'percentOff'],
        [{ type: 'percentage', percentOff: 101 }, 'percentOff'],
        [{ type: 'percentage', percentOff: 10, amountOffMinor: 5 }, 'amountOffMinor'],
        [{ type: 'fixed', percentOff: undefined }, 'amountOffMinor'],
        [{ type: 'fixed', percentOff: undefined, amountOffMinor: 500 }, 'currency'],
        [{ type: 'fixed', percentOff: undefined, amountOffMinor: 0, currency: 'EUR' }, 'amountOffMinor'],
        [{ type: 'free_shipping', percentOff: 10 }, 'percentOff'],
        [{ type: 'bogo', percentOff: undefined, buyQuantity: 1 }, 'getQuantity'],
        [{ type: 'bogo', percentOff: undefined, getQuantity: 1 }, 'buyQuantity'],
        [{ type: 'bogo', percentOff: undefined, buyQuantity: 0, getQuantity: 1 }, 'buyQuantity'],
        [{ currency: 'eur' }, 'currency'],
        [{ code: 'ab' }, 'code'],
        [{ code: 'has space' }, 'code'],
        [{ startsAt: '2030-01-02T00:00:00Z', endsAt: '2030-01-01T00:00:00Z' }, 'endsAt'],
        [{ startsAt: '2030-01-01T00:00:00Z', endsAt: '2030-01-01T00:00:00Z' }, 'endsAt'],
        [{ startsAt: 'yesterday-ish' }, 'startsAt'],
        [{ usageLimit: -1 }, 'usageLimit'],
        [{ perUserLimit: 0 }, 'perUserLimit'],
        [{ minOrderMinor: -1 }, 'minOrderMinor'],
        [{ maxDiscountMinor: 1.5 }, 'maxDiscountMinor'],
        [{ productIds: ['nope'] }, 'productIds.0'],
      ];
      for (const [over, field] of bad) {
        const err = await failure(coupons.create(admin, siteWide(over)));
        expect(err.code, field).toBe('VALIDATION_FAILED');
        expect(err.details.field, JSON.stringify(over)).toBe(field);
      }
      const all = await Promise.all([
        coupons.create(
          admin,
          siteWide({ type: 'fixed', percentOff: undefined, amountOffMinor: 500, currency: 'EUR' }),
        ),
        coupons.create(admin, siteWide({ type: 'free_shipping', percentOff: undefined, currency: 'EUR' })),
        coupons.create(
          admin,
          siteWide({ type: 'bogo', percentOff: undefined, buyQuantity: 2, getQuantity: 1 }),
        ),
      ]);
      expect(all.map((c) => c.type)).toEqual(['fixed', 'free_shipping', 'bogo']);
    });

    it('streamers may only discount their own products; admins anything', async () => {
      const viewerErr = await failure(coupons.create(actor('viewer'), siteWide({ productIds: [tee.id] })));
      expect(viewerErr.code).toBe('FORBIDDEN');
      expect(await failure(coupons.create(seller, siteWide()))).toMatchObject({
        code: 'FORBIDDEN',
        details: { field: 'productIds' },
      });
      expect(await failure(coupons.create(seller, siteWide({ productIds: [tee.id, mug.id] })))).toEqual({
        code: 'FORBIDDEN',
        details: { field: 'productIds', productIds: [mug.id] },
      });
      const ghost = randomUUID();
      expect(await failure(coupons.create(seller, siteWide({ productIds: [ghost] })))).toEqual({
        code: 'PRODUCT_NOT_FOUND',
        details: { productIds: [ghost] },
      });
      const own = await coupons.create(
        seller,
        siteWide({ productIds: [tee.id, tee.id], categories: [' Apparel ', 'apparel'] }),
      );
      expect(own).toMatchObject({ productIds: [tee.id], categories: ['apparel'], createdBy: seller.id });
      expect((await coupons.create(admin, siteWide({ productIds: [mug.id] }))).productIds).toEqual([mug.id]);
    });

    it('the database refuses rows that break the rules even without the service', async () => {
      const base = couponRow(admin.id, { code: code() });
      const insert = (over: Record<string, unknown>) =>
        handle.db
          .insertInto('coupons')
          .values({ ...base, id: randomUUID(), code: code(), ...over })
          .execute();
      await expect(insert({ type: 'mystery' })).rejects.toThrow(/coupons_type_known/);
      await expect(insert({ percent_off: 0 })).rejects.toThrow(/coupons_percent_off_range/);
      await expect(insert({ percent_off: 101 })).rejects.toThrow(/coupons_percent_off_range/);
      await expect(insert({ percent_off: null })).rejects.toThrow(/coupons_type_fields/);
      await expect(insert({ uses: -1 })).rejects.toThrow(/coupons_uses_nonnegative/);
      await expect(insert({ usage_limit: 1, uses: 2 })).rejects.toThrow(/coupons_uses_within_limit/);
      await expect(insert({ code: 'lower' })).rejects.toThrow(/coupons_code_upper/);
    });
  });

  describe('management', () => {
    it('updates active flag, window and limits; only the creator or an admin', async () => {
      const c = await coupons.create(seller, siteWide({ productIds: [tee.id], usageLimit: 5 }));
      expect((await failure(coupons.update(rival, c.id, { active: false }))).code).toBe('FORBIDDEN');
      expect((await failure(coupons.get(rival, c.id))).code).toBe('FORBIDDEN');
      const updated = await coupons.update(seller, c.id, {
        active: false,
        startsAt: '2030-01-01T00:00:00.000Z',
        endsAt: new Date('2030-02-01T00:00:00.000Z'),
        usageLimit: 10,
        perUserLimit: 2,
        minOrderMinor: 100,
        maxDiscountMinor: 50,
      });
      expect(updated).toMatchObject({
        active: false,
        startsAt: '2030-01-01T00:00:00.000Z',
        endsAt: '2030-02-01T00:00:00.000Z',
        usageLimit: 10,
        perUserLimit: 2,
        minOrderMinor: 100,
        maxDiscountMinor: 50,
      });
      expect(
        (await failure(coupons.update(seller, c.id, { endsAt: '2029-12-31T00:00:00Z' }))).details.field,
      ).toBe('endsAt');
      const cleared = await coupons.update(admin, c.id, {
        startsAt: null,
        endsAt: null,
        usageLimit: null,
        active: true,
      });
      expect(cleared).toMatchObject({ startsAt: null, endsAt: null, usageLimit: null, active: true });
      expect((await failure(coupons.update(admin, randomUUID(), { active: true }))).code).toBe(
        'COUPON_NOT_FOUND',
      );
    });

    it('refuses a usage limit below the uses already taken', async () => {
      const c = await coupons.create(admin, siteWide({ usageLimit: 5 }));
      for (let i = 0; i < 3; i++)
        await redeem(c.code, await ctxFor([{ skuId: tee.skus[0]!.id, quantity: 1 }]));
      expect(await failure(coupons.update(admin, c.id, { usageLimit: 2 }))).toMatchObject({
        code: 'VALIDATION_FAILED',
        details: { field: 'usageLimit', uses: 3 },
      });
      expect((await coupons.update(admin, c.id, { usageLimit: 3 })).usageLimit).toBe(3);
    });

    it('lists newest first with paging: admins see all, streamers their own', async () => {
      const lister = actor('streamer');
      const own = await catalog.createProduct(lister, {
        title: 'L',
        category: 'x',
        currency: 'EUR',
        skus: [{ code: `L-${randomUUID().slice(0, 8)}`, name: 'x', priceMinor: 1, stock: 1 }],
      });
      const made = [];
      for (let i = 0; i < 5; i++)
        made.push(await coupons.create(lister, siteWide({ productIds: [own.id], active: i !== 2 })));
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await coupons.list(lister, { limit: 2, ...(cursor ? { cursor } : {}) });
        seen.push(...page.items.map((c) => c.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(made.map((c) => c.id).reverse());
      expect((await coupons.list(lister, { active: false })).items.map((c) => c.id)).toEqual([made[2]!.id]);
      const adminView = await coupons.list(admin, { limit: 100 });
      expect(adminView.items.some((c) => c.createdBy === admin.id)).toBe(true);
      expect(adminView.items.some((c) => c.createdBy === lister.id)).toBe(true);
      expect((await coupons.list(rival, { limit: 100 })).items.every((c) => c.createdBy === rival.id)).toBe(
        true,
      );
      expect((await failure(coupons.list(actor('viewer')))).code).toBe('FORBIDDEN');
    });
  });

  describe('validate and redeem', () => {
    it('quotes from catalog lines without taking a use', async () => {
      const c = await coupons.create(
        seller,
        siteWide({ productIds: [tee.id], percentOff: 25, maxDiscountMinor: 700 }),
      );
      const ctx = await ctxFor([
        { skuId: tee.skus[0]!.id, quantity: 2 },
        { skuId: mug.skus[0]!.id, quantity: 1 },
      ]);
      const quote = await coupons.validate(c.code.toLowerCase(), ctx);
      expect(quote).toEqual({
        couponId: c.id,
        code: c.code,
        type: 'percentage',
        discountMinor: 700,
        freeShipping: false,
        eligibleSubtotalMinor: 4000,
      });
      expect((await coupons.getByCode(c.code)).uses).toBe(0);
      expect((await failure(coupons.validate('NO-SUCH-CODE', ctx))).code).toBe('COUPON_NOT_FOUND');
      const mugOnly = await ctxFor([{ skuId: mug.skus[0]!.id, quantity: 1 }]);
      expect((await failure(coupons.validate(c.code, mugOnly))).code).toBe('COUPON_NOT_APPLICABLE');
    });

    it('redeems: takes a use, records the redemption and its discount', async () => {
      const c = await coupons.create(
        admin,
        siteWide({ type: 'fixed', percentOff: undefined, amountOffMinor: 300, currency: 'EUR' }),
      );
      const orderId = randomUUID();
      const ctx = await ctxFor([{ skuId: tee.skus[0]!.id, quantity: 1 }]);
      const q = await redeem(c.code, ctx, orderId);
      expect(q.discountMinor).toBe(300);
      expect((await coupons.getByCode(c.code)).uses).toBe(1);
      const row = await handle.db
        .selectFrom('coupon_redemptions')
        .selectAll()
        .where('order_id', '=', orderId)
        .executeTakeFirstOrThrow();
      expect(row).toMatchObject({
        coupon_id: c.id,
        user_id: ctx.userId,
        discount_minor: 300,
        released_at: null,
      });
      // one coupon per order
      expect((await failure(redeem(c.code, ctx, orderId))).code).toBe('CONFLICT');
      expect((await coupons.getByCode(c.code)).uses).toBe(1);
    });

    it('a refused redemption changes nothing', async () => {
      const c = await coupons.create(admin, siteWide({ minOrderMinor: 1_000_000 }));
      const err = await failure(redeem(c.code, await ctxFor([{ skuId: tee.skus[0]!.id, quantity: 1 }])));
      expect(err).toEqual({
        code: 'COUPON_MIN_NOT_MET',
        details: { minOrderMinor: 1_000_000, eligibleSubtotalMinor: 2000 },
      });
      expect((await coupons.getByCode(c.code)).uses).toBe(0);
      expect((await coupons.usage(c.id)).redemptions).toBe(0);
    });

    it('a rolled-back order gives the use back with it', async () => {
      const c = await coupons.create(admin, siteWide({ usageLimit: 1 }));
      const ctx = await ctxFor([{ skuId: tee.skus[0]!.id, quantity: 1 }]);
      await expect(
        handle.db.transaction().execute(async (trx) => {
          await coupons.redeemInTransaction(trx, c.code, ctx, randomUUID());
          throw new Error('payment step blew up');
        }),
      ).rejects.toThrow('payment step blew up');
      expect((await coupons.getByCode(c.code)).uses).toBe(0);
      await redeem(c.code, ctx);
      expect((await coupons.getByCode(c.code)).uses).toBe(1);
    });

    it('200 concurrent orders for a coupon with 10 uses left: exactly 10 redemptions', async () => {
      const c = await coupons.create(admin, siteWide({ usageLimit: 12 }));
      const line = [{ skuId: tee.skus[0]!.id, quantity: 1 }];
      await redeem(c.code, await ctxFor(line));
      await redeem(c.code, await ctxFor(line));
      const base = await ctxFor(line);
      const results = await Promise.allSettled(
        Array.from({ length: 200 }, () => redeem(c.code, { ...base, userId: randomUUID() })),
      );
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(ok).toHaveLength(10);
      expect(new Set(refused.map((r) => (r.reason as AppError).code))).toEqual(
        new Set(['COUPON_LIMIT_REACHED']),
      );
      const after = await coupons.getByCode(c.code);
      expect(after.uses).toBe(12);
      expect(after.uses).toBe(after.usageLimit);
      const { n } = await handle.db
        .selectFrom('coupon_redemptions')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('coupon_id', '=', c.id)
        .executeTakeFirstOrThrow();
      expect(Number(n)).toBe(12);
    });

    it('per-user limit 1 and 20 concurrent orders by one user: exactly 1', async () => {
      const c = await coupons.create(admin, siteWide({ perUserLimit: 1 }));
      const ctx = await ctxFor([{ skuId: tee.skus[0]!.id, quantity: 1 }]);
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => redeem(c.code, ctx)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const codes = results
        .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
        .map((r) => (r.reason as AppError).code);
      expect(new Set(codes)).toEqual(new Set(['COUPON_USER_LIMIT_REACHED']));
      expect((await coupons.getByCode(c.code)).uses).toBe(1);
      // another user is unaffected
      await redeem(c.code, { ...ctx, userId: randomUUID() });
      expect((await coupons.getByCode(c.code)).uses).toBe(2);
    });

    it('release returns the use exactly once, even when called twice or concurrently', async () => {
      const c = await coupons.create(admin, siteWide({ usageLimit: 1, perUserLimit: 1 }));
      const ctx = await ctxFor([{ skuId: tee.skus[0]!.id, quantity: 1 }]);
      const orderId = randomUUID();
      await redeem(c.code, ctx, orderId);
      expect((await failure(redeem(c.code, { ...ctx, userId: randomUUID() }))).code).toBe(
        'COUPON_LIMIT_REACHED',
      );
      expect(await release(orderId)).toBe(true);
      expect(await release(orderId)).toBe(false);
      expect((await coupons.getByCode(c.code)).uses).toBe(0);
      // the released redemption no longer counts against the user either
      const second = randomUUID();
      await redeem(c.code, ctx, second);
      const both = await Promise.all([release(second), release(second), release(second)]);
      expect(both.filter(Boolean)).toHaveLength(1);
      expect((await coupons.getByCode(c.code)).uses).toBe(0);
      expect(await release(randomUUID())).toBe(false);
      expect(await release('not-a-uuid')).toBe(false);
    });
  });

  describe('usage', () => {
    it('counts redemptions, releases, discount given and revenue of paid orders', async () => {
      const c = await coupons.create(
        admin,
        siteWide({ type: 'fixed', percentOff: undefined, amountOffMinor: 500, currency: 'EUR' }),
      );
      const ctx = await ctxFor([{ skuId: tee.skus[0]!.id, quantity: 2 }]);
      const orders: Array<[string, number]> = [
        ['paid', 3500],
        ['fulfilled', 4000],
        ['pending_payment', 3500],
        ['cancelled', 3500],
      ];
      const ids: string[] = [];
      for (const [status, total] of orders) {
        const id = randomUUID();
        ids.push(id);
        await redeem(c.code, { ...ctx, userId: randomUUID() }, id);
        await handle.db.insertInto('orders').values({ id, status, total_minor: total }).execute();
      }
      await release(ids[3]!);
      expect(await coupons.usage(c.id)).toEqual({
        couponId: c.id,
        redemptions: 3,
        released: 1,
        discountGivenMinor: 1500,
        revenueMinor: 7500,
      });
      const fresh = await coupons.create(admin, siteWide());
      expect(await coupons.usage(fresh.id)).toEqual({
        couponId: fresh.id,
        redemptions: 0,
        released: 0,
        discountGivenMinor: 0,
        revenueMinor: 0,
      });
      expect((await failure(coupons.usage(randomUUID()))).code).toBe('COUPON_NOT_FOUND');
    });
  });
}

describe('coupons service (pglite)', () => {
  couponContract(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lcs-coupons-'));
    return {
      open: () => openDb<TestDb>({ dataDir: dir, migrations: testMigrations }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  });
});

await describeWithService('coupons service (postgres)', probePostgres, () => {
  couponContract(async () => {
    const { url, drop } = await createTestDatabase();
    return {
      // A pool as small as production's default, so 200 orders really queue for connections and the row lock.
      open: () => openDb<TestDb>({ url, dataDir: '/nonexistent', poolSize: 10, migrations: testMigrations }),
      cleanup: drop,
    };
  });
});

describe('coupons API', () => {
  let t: TestApp;
  let streamer: { id: string; token: string };
  let rival: { id: string; token: string };
  let admin: { id: string; token: string };
  let viewer: { id: string; token: string };
  let product: Product;
  let usdProduct: Product;

  const req = (method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown, token?: string) =>
    t.app.inject({
      method,
      url,
      ...(body === undefined ? {} : { payload: body as object }),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  beforeAll(async () => {
    t = await createTestApp();
    [streamer, rival, admin, viewer] = [
      await t.login(['streamer']),
      await t.login(['streamer']),
      await t.login(['admin']),
      await t.login(['viewer']),
    ];
    const mk = async (currency: string) =>
      (
        await req(
          'POST',
          '/v1/products',
          {
            title: 'Coupon tee',
            category: 'apparel',
            currency,
            skus: [{ code: `CT-${randomUUID().slice(0, 8)}`, name: 'M', priceMinor: 2000, stock: 50 }],
          },
          streamer.token,
        )
      ).json() as Product;
    product = await mk('EUR');
    usdProduct = await mk('USD');
  });
  afterAll(async () => t?.close());

  const newCoupon = (over: Record<string, unknown> = {}) => ({
    code: code('API'),
    type: 'percentage',
    percentOff: 10,
    productIds: [product.id],
    ...over,
  });

  it('streamers create coupons for their products; viewers and strangers cannot', async () => {
    const created = await req('POST', '/v1/coupons', newCoupon({ code: 'live-api-1' }), streamer.token);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ code: 'LIVE-API-1', createdBy: streamer.id, uses: 0 });
    const dup = await req('POST', '/v1/coupons', newCoupon({ code: 'LIVE-API-1' }), admin.token);
    expect(dup.statusCode).toBe(409);
    expect(dup.json().code).toBe('COUPON_CODE_TAKEN');
    expect((await req('POST', '/v1/coupons', newCoupon(), viewer.token)).statusCode).toBe(403);
    expect((await req('POST', '/v1/coupons', newCoupon())).statusCode).toBe(401);
    const foreign = await req('POST', '/v1/coupons', newCoupon(), rival.token);
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().details).toMatchObject({ field: 'productIds', productIds: [product.id] });
    const id = created.json().id;
    expect((await req('GET', `/v1/coupons/${id}`, undefined, rival.token)).statusCode).toBe(403);
    expect((await req('PATCH', `/v1/coupons/${id}`, { active: false }, rival.token)).statusCode).toBe(403);
    expect((await req('GET', `/v1/coupons/${id}/usage`, undefined, rival.token)).statusCode).toBe(403);
    expect((await req('GET', `/v1/coupons/${id}`, undefined, viewer.token)).statusCode).toBe(403);
    expect((await req('GET', `/v1/coupons/${id}`, undefined, admin.token)).statusCode).toBe(200);
    const listed = await req('GET', '/v1/coupons?limit=5', undefined, streamer.token);
    expect(listed.json().items.map((c: { id: string }) => c.id)).toContain(id);
    expect((await req('GET', '/v1/coupons', undefined, viewer.token)).statusCode).toBe(403);
  });

  it('rejects malformed coupons with 400 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [newCoupon({ percentOff: 0 }), 'percentOff'],
      [newCoupon({ percentOff: 101 }), 'percentOff'],
      [newCoupon({ type: 'fixed', percentOff: undefined, currency: 'EUR' }), 'amountOffMinor'],
      [newCoupon({ type: 'fixed', percentOff: undefined, amountOffMinor: 100 }), 'currency'],
      [newCoupon({ type: 'bogo', percentOff: undefined, buyQuantity: 1 }), 'getQuantity'],
      [newCoupon({ type: 'lottery' }), 'type'],
      [newCoupon({ usageLimit: -1 }), 'usageLimit'],
      [newCoupon({ minOrderMinor: -5 }), 'minOrderMinor'],
      [newCoupon({ currency: 'usd' }), 'currency'],
      [newCoupon({ surprise: true }), 'surprise'],
      [newCoupon({ endsAt: 'tomorrow' }), 'endsAt'],
      [newCoupon({ startsAt: '2030-01-02T00:00:00Z', endsAt: '2030-01-01T00:00:00Z' }), 'endsAt'],
    ];
    for (const [payload, field] of cases) {
      const res = await req('POST', '/v1/coupons', payload, streamer.token);
      expect(res.statusCode, field).toBe(400);
      expect(res.json().code, field).toBe('VALIDATION_FAILED');
      expect(res.json().details.field, JSON.stringify(res.json())).toBe(field);
    }
    const c = (await req('POST', '/v1/coupons', newCoupon(), streamer.token)).json();
    expect(
      (await req('PATCH', `/v1/coupons/${c.id}`, { code: 'NEW' }, streamer.token)).json().details.field,
    ).toBe('code');
    expect((await req('PATCH', `/v1/coupons/${c.id}`, {}, streamer.token)).statusCode).toBe(400);
    expect((await req('GET', '/v1/coupons/not-a-uuid', undefined, streamer.token)).statusCode).toBe(400);
    const ghost = await req('GET', `/v1/coupons/${randomUUID()}`, undefined, streamer.token);
    expect(ghost.statusCode).toBe(404);
    expect(ghost.json().code).toBe('COUPON_NOT_FOUND');
  });

  it('validate quotes a cart, and explains refusals with stable codes and details', async () => {
    const c = (
      await req('POST', '/v1/coupons', newCoupon({ percentOff: 20, minOrderMinor: 3000 }), streamer.token)
    ).json();
    const skuId = product.skus[0]!.id;
    const ok = await req(
      'POST',
      '/v1/coupons/validate',
      { code: c.code.toLowerCase(), items: [{ skuId, quantity: 2 }], shippingMinor: 490 },
      viewer.token,
    );
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({
      couponId: c.id,
      code: c.code,
      type: 'percentage',
      discountMinor: 800,
      freeShipping: false,
      eligibleSubtotalMinor: 4000,
      currency: 'EUR',
      subtotalMinor: 4000,
      shippingMinor: 490,
      totalMinor: 3690,
    });
    const tooSmall = await req(
      'POST',
      '/v1/coupons/validate',
      { code: c.code, items: [{ skuId, quantity: 1 }] },
      viewer.token,
    );
    expect(tooSmall.statusCode).toBe(422);
    expect(tooSmall.json()).toMatchObject({
      code: 'COUPON_MIN_NOT_MET',
      details: { minOrderMinor: 3000, eligibleSubtotalMinor: 2000 },
    });
    await req(
      'PATCH',
      `/v1/coupons/${c.id}`,
      { endsAt: '2020-01-01T00:00:00.000Z', startsAt: null },
      streamer.token,
    );
    const expired = await req(
      'POST',
      '/v1/coupons/validate',
      { code: c.code, items: [{ skuId, quantity: 2 }] },
      viewer.token,
    );
    expect(expired.statusCode).toBe(422);
    expect(expired.json()).toMatchObject({
      code: 'COUPON_EXPIRED',
      details: { endsAt: '2020-01-01T00:00:00.000Z' },
    });

    const ship = (
      await req(
        'POST',
        '/v1/coupons',
        newCoupon({ type: 'free_shipping', percentOff: undefined, currency: 'EUR' }),
        streamer.token,
      )
    ).json();
    const free = await req(
      'POST',
      '/v1/coupons/validate',
      { code: ship.code, items: [{ skuId, quantity: 1 }], shippingMinor: 490 },
      viewer.token,
    );
    expect(free.json()).toMatchObject({
      freeShipping: true,
      discountMinor: 0,
      shippingMinor: 0,
      totalMinor: 2000,
    });
    const wrongCurrency = await req(
      'POST',
      '/v1/coupons/validate',
      { code: ship.code, items: [{ skuId: usdProduct.skus[0]!.id, quantity: 1 }] },
      viewer.token,
    );
    expect(wrongCurrency.json()).toMatchObject({
      code: 'COUPON_CURRENCY_MISMATCH',
      details: { couponCurrency: 'EUR', orderCurrency: 'USD' },
    });
    const stream = (
      await req('POST', '/v1/coupons', newCoupon({ streamId: 'stream-42' }), streamer.token)
    ).json();
    const elsewhere = await req(
      'POST',
      '/v1/coupons/validate',
      { code: stream.code, items: [{ skuId, quantity: 1 }], streamId: 'stream-7' },
      viewer.token,
    );
    expect(elsewhere.json().code).toBe('COUPON_STREAM_MISMATCH');
    const inStream = await req(
      'POST',
      '/v1/coupons/validate',
      { code: stream.code, items: [{ skuId, quantity: 1 }], streamId: 'stream-42' },
      viewer.token,
    );
    expect(inStream.statusCode).toBe(200);
  });

  it('validate refuses bad carts and unknown codes with clear 4xx codes', async () => {
    const c = (await req('POST', '/v1/coupons', newCoupon(), streamer.token)).json();
    const skuId = product.skus[0]!.id;
    const v = (payload: unknown) => req('POST', '/v1/coupons/validate', payload, viewer.token);
    const anonymous = await req('POST', '/v1/coupons/validate', {
      code: c.code,
      items: [{ skuId, quantity: 1 }],
    });
    expect(anonymous.statusCode).toBe(401);
    const unknownSku = await v({ code: c.code, items: [{ skuId: randomUUID(), quantity: 1 }] });
    expect(unknownSku.statusCode).toBe(404);
    expect(unknownSku.json().code).toBe('SKU_NOT_FOUND');
    const zero = await v({ code: c.code, items: [{ skuId, quantity: 0 }] });
    expect(zero.statusCode).toBe(400);
    expect(zero.json().details.field).toBe('items.0.quantity');
    expect((await v({ code: c.code, items: [{ skuId, quantity: -2 }] })).statusCode).toBe(400);
    expect((await v({ code: c.code, items: [] })).statusCode).toBe(400);
    expect((await v({ code: c.code, items: [{ skuId, quantity: 1 }], extra: 1 })).json().details.field).toBe(
      'extra',
    );
    const mixed = await v({
      code: c.code,
      items: [
        { skuId, quantity: 1 },
        { skuId: usdProduct.skus[0]!.id, quantity: 1 },
      ],
    });
    expect(mixed.statusCode).toBe(400);
    expect(mixed.json().code).toBe('CURRENCY_MISMATCH');
    const unknownCode = await v({ code: 'NOPE-NOPE', items: [{ skuId, quantity: 1 }] });
    expect(unknownCode.statusCode).toBe(404);
    expect(unknownCode.json().code).toBe('COUPON_NOT_FOUND');
    await req('PATCH', `/v1/coupons/${c.id}`, { active: false }, admin.token);
    expect((await v({ code: c.code, items: [{ skuId, quantity: 1 }] })).json().code).toBe('COUPON_INACTIVE');
  });

  it('reports usage to the creator', async () => {
    const c = (await req('POST', '/v1/coupons', newCoupon(), streamer.token)).json();
    const res = await req('GET', `/v1/coupons/${c.id}/usage`, undefined, streamer.token);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      couponId: c.id,
      redemptions: 0,
      released: 0,
      discountGivenMinor: 0,
      revenueMinor: 0,
    });
  });

  it('documents every coupon route in OpenAPI', async () => {
    const doc = (await t.app.inject('/docs/json')).json();
    const routes: Array<[string, string]> = [
      ['/v1/coupons', 'post'],
      ['/v1/coupons', 'get'],
      ['/v1/coupons/{id}', 'get'],
      ['/v1/coupons/{id}', 'patch'],
      ['/v1/coupons/{id}/usage', 'get'],
      ['/v1/coupons/validate', 'post'],
    ];
    for (const [path, method] of routes) {
      const op = doc.paths[path]?.[method];
      expect(op, `${method} ${path}`).toBeDefined();
      expect(op.tags).toEqual(['coupons']);
    }
    expect(Object.keys(doc.paths['/v1/coupons/validate'].post.responses)).toEqual(
      expect.arrayContaining(['200', '400', '401', '404', '422']),
    );
    expect(doc.components.schemas.CouponQuote.examples).toBeDefined();
  });
});
