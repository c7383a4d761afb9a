/**
 * Orders through the HTTP API: checkout with stock and coupons taken
 * atomically, idempotent retries, payment that never double-charges,
 * cancellation and expiry returning what the order held.
 */
import { randomUUID } from 'node:crypto';
import type { Insertable } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CouponsTable } from '../src/commerce/coupons/coupon-tables.js';
import type { TestPaymentProvider } from '../src/commerce/orders/payment-provider.js';
import { createTestApp, type TestApp } from './support/app.js';
import { couponRow, insertProduct, insertUsers, pool } from './support/commerce.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';

const ENV = { PAYMENT_TIMEOUT_MS: '300', SHIPPING_FEE_MINOR: '500' };

function ordersSuite(makeApp: () => Promise<{ t: TestApp; cleanup: () => Promise<void> }>) {
  let t: TestApp;
  let cleanup: () => Promise<void>;
  let seller: { id: string; token: string };

  beforeAll(async () => {
    ({ t, cleanup } = await makeApp());
    seller = await t.login(['streamer']);
  });
  afterAll(async () => {
    await t?.close();
    await cleanup?.();
  });

  const call = (
    method: 'GET' | 'POST',
    url: string,
    token: string | undefined,
    payload?: object,
    key?: string,
  ) =>
    t.app.inject({
      method,
      url,
      payload,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(key ? { 'idempotency-key': key } : {}),
      },
    });
  const checkout = (token: string, body: object, key: string = randomUUID()) =>
    call('POST', '/v1/orders', token, body, key);
  const stockOf = async (skuId: string) =>
    (await t.db.db.selectFrom('skus').select('stock').where('id', '=', skuId).executeTakeFirstOrThrow())
      .stock;

  async function insertCoupon(fields: Partial<Insertable<CouponsTable>>): Promise<string> {
    const row = couponRow(seller.id, fields);
    await t.db.db.insertInto('coupons').values(row).execute();
    return row.code;
  }

  it('checks out regular items: stock taken, totals computed, stream attribution kept', async () => {
    const buyer = await t.login();
    const { skuId } = await insertProduct(t.db.db, seller.id, { priceMinor: 2500, stock: 10 });
    const res = await checkout(buyer.token, {
      items: [{ skuId, quantity: 3 }],
      streamId: 'stream-7',
      streamMediaTimeMs: 61_500,
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({
      status: 'pending_payment',
      subtotalMinor: 7500,
      discountMinor: 0,
      shippingMinor: 500,
      totalMinor: 8000,
      currency: 'USD',
      streamId: 'stream-7',
      streamMediaTimeMs: 61_500,
      items: [{ skuId, quantity: 3, unitPriceMinor: 2500 }],
    });
    expect(await stockOf(skuId)).toBe(7);
  });

  it('50 concurrent retries with one Idempotency-Key create one order and take stock once', async () => {
    const buyer = await t.login();
    const { skuId } = await insertProduct(t.db.db, seller.id, { stock: 100 });
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => checkout(buyer.token, { items: [{ skuId, quantity: 2 }] }, key)),
    );
    expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(responses.every((r) => r.statusCode === 201 || r.statusCode === 200)).toBe(true);
    expect(new Set(responses.map((r) => r.json().id)).size).toBe(1);
    expect(await stockOf(skuId)).toBe(98);
    const reuse = await checkout(buyer.token, { items: [{ skuId, quantity: 3 }] }, key);
    expect(reuse.statusCode).toBe(422);
    expect(reuse.json().code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('never sells more regular stock than there is under concurrent checkouts', async () => {
    const { skuId } = await insertProduct(t.db.db, seller.id, { stock: 5 });
    const buyers = await insertUsers(t.db.db, t.tokens, 40);
    const responses = await pool(
      buyers.map((b) => () => checkout(b.token, { items: [{ skuId, quantity: 1 }] })),
      40,
    );
    expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(5);
    const refused = responses.filter((r) => r.statusCode !== 201);
    expect(refused.every((r) => r.statusCode === 409 && r.json().code === 'OUT_OF_STOCK')).toBe(true);
    expect(await stockOf(skuId)).toBe(0);
  });

  it('a coupon with 10 uses left is redeemed exactly 10 times by 200 concurrent orders', async () => {
    const { skuId } = await insertProduct(t.db.db, seller.id, { stock: 1000, priceMinor: 1000 });
    const code = await insertCoupon({ usage_limit: 10 });
    const buyers = await insertUsers(t.db.db, t.tokens, 200);
    const responses = await pool(
      buyers.map((b) => () => checkout(b.token, { items: [{ skuId, quantity: 1 }], couponCode: code })),
      100,
    );
    const ok = responses.filter((r) => r.statusCode === 201);
    expect(ok).toHaveLength(10);
    expect(ok.every((r) => r.json().discountMinor === 100 && r.json().couponCode === code)).toBe(true);
    expect(
      responses.filter((r) => r.statusCode !== 201).every((r) => r.json().code === 'COUPON_LIMIT_REACHED'),
    ).toBe(true);
    const coupon = await t.db.db
      .selectFrom('coupons')
      .select('uses')
      .where('code', '=', code)
      .executeTakeFirstOrThrow();
    expect(coupon.uses).toBe(10);
    // the failed orders gave their stock back (their transactions rolled back)
    expect(await stockOf(skuId)).toBe(990);
  });

  it('pays once: retries replay, declines keep the order payable, a hung provider times out', async () => {
    const buyer = await t.login();
    const { skuId } = await insertProduct(t.db.db, seller.id, { stock: 5 });
    const order = (await checkout(buyer.token, { items: [{ skuId, quantity: 1 }] })).json();
    const pay = (method: string) =>
      call('POST', `/v1/orders/${order.id}/pay`, buyer.token, { method }, randomUUID());

    const declined = await pay('test_card_declined');
    expect(declined.statusCode).toBe(402);
    expect(declined.json().code).toBe('PAYMENT_FAILED');
    const hung = await pay('test_card_hang');
    expect(hung.statusCode).toBe(504);
    expect(hung.json().code).toBe('PAYMENT_TIMEOUT');
    expect((await call('GET', `/v1/orders/${order.id}`, buyer.token)).json().status).toBe('pending_payment');

    const provider = t.payments as TestPaymentProvider;
    const before = provider.chargeCount;
    const paid = await Promise.all(Array.from({ length: 10 }, () => pay('test_card_ok')));
    expect(paid.every((r) => r.statusCode === 200 && r.json().status === 'paid')).toBe(true);
    expect(new Set(paid.map((r) => r.json().paymentRef)).size).toBe(1);
    expect(provider.chargeCount - before).toBe(1);

    const cancel = await call('POST', `/v1/orders/${order.id}/cancel`, buyer.token, undefined, randomUUID());
    expect(cancel.statusCode).toBe(409);
    expect(cancel.json().code).toBe('ORDER_STATE_INVALID');
    const fulfil = await call('POST', `/v1/orders/${order.id}/fulfil`, seller.token, undefined, randomUUID());
    expect(fulfil.json().status).toBe('fulfilled');
  });

  it('cancelling and expiring give back stock and the coupon use, exactly once', async () => {
    const buyer = await t.login();
    const { skuId } = await insertProduct(t.db.db, seller.id, { stock: 5 });
    const code = await insertCoupon({ usage_limit: 1 });
    const a = (await checkout(buyer.token, { items: [{ skuId, quantity: 2 }], couponCode: code })).json();
    expect(await stockOf(skuId)).toBe(3);
    await Promise.all(
      [1, 2, 3].map(() => call('POST', `/v1/orders/${a.id}/cancel`, buyer.token, undefined, randomUUID())),
    );
    expect((await call('GET', `/v1/orders/${a.id}`, buyer.token)).json().status).toBe('cancelled');
    expect(await stockOf(skuId)).toBe(5);
    const b = await checkout(buyer.token, { items: [{ skuId, quantity: 1 }], couponCode: code });
    expect(b.statusCode, b.body).toBe(201);

    await t.db.db
      .updateTable('orders')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', b.json().id)
      .execute();
    const [x, y] = await Promise.all([t.orders.expireDue(), t.orders.expireDue()]);
    expect(x + y).toBe(1);
    expect((await call('GET', `/v1/orders/${b.json().id}`, buyer.token)).json().status).toBe('expired');
    expect(await stockOf(skuId)).toBe(5);
    const coupon = await t.db.db
      .selectFrom('coupons')
      .select('uses')
      .where('code', '=', code)
      .executeTakeFirstOrThrow();
    expect(coupon.uses).toBe(0);
  });

  it('bad input and other people’s orders get clear 4xx codes', async () => {
    const buyer = await t.login();
    const other = await t.login();
    const { skuId } = await insertProduct(t.db.db, seller.id, { stock: 5 });
    const codeOf = (r: { statusCode: number; json: () => { code: string } }) => [r.statusCode, r.json().code];
    expect(codeOf(await checkout(buyer.token, { items: [{ skuId, quantity: -1 }] }))).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);
    expect(codeOf(await checkout(buyer.token, { items: [{ skuId, quantity: 1.5 }] }))).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);
    expect(codeOf(await checkout(buyer.token, { items: [] }))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await checkout(buyer.token, { items: [{ skuId: randomUUID(), quantity: 1 }] }))).toEqual([
      404,
      'SKU_NOT_FOUND',
    ]);
    expect(codeOf(await checkout(buyer.token, { items: [{ skuId, quantity: 6 }] }))).toEqual([
      409,
      'OUT_OF_STOCK',
    ]);
    expect(
      codeOf(await checkout(buyer.token, { items: [{ skuId, quantity: 1 }], couponCode: 'NOPE' })),
    ).toEqual([404, 'COUPON_NOT_FOUND']);
    expect(
      codeOf(await call('POST', '/v1/orders', buyer.token, { items: [{ skuId, quantity: 1 }] })),
    ).toEqual([400, 'IDEMPOTENCY_KEY_REQUIRED']);
    expect(codeOf(await checkout(buyer.token, { items: [{ skuId, quantity: 1 }] }, 'short'))).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);
    expect(
      codeOf(await call('POST', '/v1/orders', undefined, { items: [{ skuId, quantity: 1 }] }, randomUUID())),
    ).toEqual([401, 'UNAUTHENTICATED']);
    const order = (await checkout(buyer.token, { items: [{ skuId, quantity: 1 }] })).json();
    expect(codeOf(await call('GET', `/v1/orders/${order.id}`, other.token))).toEqual([
      404,
      'ORDER_NOT_FOUND',
    ]);
    expect(
      codeOf(
        await call(
          'POST',
          `/v1/orders/${order.id}/pay`,
          other.token,
          { method: 'test_card_ok' },
          randomUUID(),
        ),
      ),
    ).toEqual([404, 'ORDER_NOT_FOUND']);
    expect(
      codeOf(
        await call('POST', `/v1/orders/${order.id}/pay`, buyer.token, { method: 'bitcoin' }, randomUUID()),
      ),
    ).toEqual([400, 'VALIDATION_FAILED']);
    expect(
      codeOf(await call('POST', `/v1/orders/${order.id}/fulfil`, other.token, undefined, randomUUID())),
    ).toEqual([403, 'FORBIDDEN']);
    expect(
      codeOf(await call('POST', `/v1/orders/${order.id}/fulfil`, seller.token, undefined, randomUUID())),
    ).toEqual([409, 'ORDER_STATE_INVALID']);
    expect(await stockOf(skuId)).toBe(4);
  });
}

describe('orders (embedded: PGlite + memory engine)', () => {
  ordersSuite(async () => ({ t: await createTestApp(ENV), cleanup: async () => {} }));
});

await describeWithService('orders (PostgreSQL + Redis)', probePostgres, () => {
  ordersSuite(async () => {
    const { url, drop } = await createTestDatabase();
    return { t: await createTestApp(ENV, { databaseUrl: url, redisUrl: TEST_REDIS_URL }), cleanup: drop };
  });
});
