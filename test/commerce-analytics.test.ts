/**
 * Commerce analytics per flash sale and per stream, from real flows.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { couponRow, insertProduct } from './support/commerce.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService } from './support/real-services.js';

function analyticsSuite(makeApp: () => Promise<{ t: TestApp; cleanup: () => Promise<void> }>) {
  let t: TestApp;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ t, cleanup } = await makeApp());
  });
  afterAll(async () => {
    await t?.close();
    await cleanup?.();
  });

  const call = (method: 'GET' | 'POST', url: string, token: string, payload?: object) =>
    t.app.inject({
      method,
      url,
      payload,
      headers: { authorization: `Bearer ${token}`, 'idempotency-key': randomUUID() },
    });

  it('counts orders, units, revenue, conversion, coupon use and flash-sale figures per stream and sale', async () => {
    const seller = await t.login(['streamer']);
    const rival = await t.login(['streamer']);
    const admin = await t.login(['admin']);
    const streamId = `stream-${randomUUID()}`;
    const { skuId } = await insertProduct(t.db.db, seller.id, { priceMinor: 1000, stock: 50 });
    const { skuId: rivalSku } = await insertProduct(t.db.db, rival.id, { priceMinor: 7000, stock: 50 });
    const code = `A${randomUUID().slice(0, 6).toUpperCase()}`;
    await t.db.db
      .insertInto('coupons')
      .values(
        couponRow(admin.id, {
          code,
          type: 'fixed',
          percent_off: null,
          amount_off_minor: 200,
          currency: 'USD',
        }),
      )
      .execute();
    const sale = (
      await call('POST', '/v1/flash-sales', seller.token, {
        skuId,
        salePriceMinor: 500,
        quantity: 10,
        perUserLimit: 2,
        reservationTtlSeconds: 600,
        startsAt: new Date(Date.now() - 1000).toISOString(),
        endsAt: new Date(Date.now() + 600_000).toISOString(),
        streamId,
      })
    ).json();

    const buy = async (body: object, pay: boolean) => {
      const buyer = await t.login();
      const order = await call('POST', '/v1/orders', buyer.token, { ...body, streamId });
      expect(order.statusCode, order.body).toBe(201);
      if (pay)
        expect(
          (await call('POST', `/v1/orders/${order.json().id}/pay`, buyer.token, { method: 'test_card_ok' }))
            .statusCode,
        ).toBe(200);
      return { buyer, order: order.json() };
    };
    await buy({ items: [{ skuId, quantity: 2 }], couponCode: code }, true); // 2000 - 200
    await buy({ items: [{ skuId, quantity: 1 }] }, false); // created, unpaid
    await buy({ items: [{ skuId: rivalSku, quantity: 1 }] }, true); // the rival's sale in the same stream
    // flash sale: two reservations, one paid through an order
    const flashBuyer = await t.login();
    const r1 = (
      await call('POST', `/v1/flash-sales/${sale.id}/purchase`, flashBuyer.token, { quantity: 2 })
    ).json();
    const other = await t.login();
    expect(
      (await call('POST', `/v1/flash-sales/${sale.id}/purchase`, other.token, { quantity: 1 })).statusCode,
    ).toBe(201);
    const flashOrder = (
      await call('POST', '/v1/orders', flashBuyer.token, { reservations: [r1.reservationId], streamId })
    ).json();
    expect(
      (await call('POST', `/v1/orders/${flashOrder.id}/pay`, flashBuyer.token, { method: 'test_card_ok' }))
        .statusCode,
    ).toBe(200);

    const saleStats = (await call('GET', `/v1/analytics/flash-sales/${sale.id}`, seller.token)).json();
    expect(saleStats).toMatchObject({
      quantity: 10,
      reservations: { total: 2, reserved: 1, paid: 1, expired: 0, cancelled: 0 },
      unitsSold: 2,
      revenueMinor: 1000,
      conversion: 0.5,
    });
    expect((await call('GET', `/v1/analytics/flash-sales/${sale.id}`, rival.token)).statusCode).toBe(404);

    const mine = (await call('GET', `/v1/analytics/streams/${streamId}/commerce`, seller.token)).json();
    expect(mine).toMatchObject({
      orders: { created: 3, paid: 2, cancelled: 0, expired: 0 },
      unitsSold: 4,
      revenueMinor: { USD: 3000 },
      coupons: { redemptions: 1, discountMinor: 200 },
    });
    expect(mine.conversion).toBeCloseTo(2 / 3);
    expect(mine.flashSales).toHaveLength(1);
    const everything = (await call('GET', `/v1/analytics/streams/${streamId}/commerce`, admin.token)).json();
    expect(everything).toMatchObject({
      orders: { created: 4, paid: 3 },
      unitsSold: 5,
      revenueMinor: { USD: 10000 },
    });
    const viewer = await t.login();
    expect((await call('GET', `/v1/analytics/streams/${streamId}/commerce`, viewer.token)).statusCode).toBe(
      403,
    );
  });
}

describe('commerce analytics (embedded)', () => {
  analyticsSuite(async () => ({ t: await createTestApp(), cleanup: async () => {} }));
});

await describeWithService('commerce analytics (PostgreSQL)', probePostgres, () => {
  analyticsSuite(async () => {
    const { url, drop } = await createTestDatabase();
    return { t: await createTestApp({}, { databaseUrl: url }), cleanup: drop };
  });
});
