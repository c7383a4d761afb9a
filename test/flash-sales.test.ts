/**
 * Flash sales through HTTP: exact stock under a storm of attempts, expiry
 * returning units exactly once, idempotent retries, Engine data loss and
 * rebuild from the Db, bad input. Runs on the embedded adapters and on real
 * PostgreSQL + Redis.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlashSaleEngine } from '../src/commerce/flash-sales/flash-sale-engine.js';
import { FLASH_STOCK_CHANNEL } from '../src/commerce/flash-sales/flash-sales-service.js';
import type { TestPaymentProvider } from '../src/commerce/orders/payment-provider.js';
import { createTestApp, type TestApp } from './support/app.js';
import { insertProduct, insertUsers, pool } from './support/commerce.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { waitFor } from './support/server-process.js';

const ENV = { FLASH_VELOCITY_PER_IP: '100000000', FLASH_VELOCITY_PER_USER: '1000' };

interface Scale {
  /** Reservation TTL of the storm's sale: long enough for winners to pay under load. */
  ttlSeconds: number;
  users: number;
  attempts: number;
  concurrency: number;
}

function flashSaleSuite(makeApp: () => Promise<{ t: TestApp; cleanup: () => Promise<void> }>, scale: Scale) {
  let t: TestApp;
  let cleanup: () => Promise<void>;
  let base: string;
  let seller: { id: string; token: string };

  beforeAll(async () => {
    ({ t, cleanup } = await makeApp());
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const addr = t.app.server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
    seller = await t.login(['streamer']);
  });
  afterAll(async () => {
    await t?.close();
    await cleanup?.();
  });

  const api = (
    method: string,
    path: string,
    token: string | undefined,
    body?: unknown,
    headers: Record<string, string> = {},
  ) =>
    fetch(`${base}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  async function createSale(opts: {
    quantity: number;
    perUserLimit?: number;
    ttlSeconds?: number;
    startsInMs?: number;
  }) {
    const { skuId } = await insertProduct(t.db.db, seller.id);
    const start = Date.now() + (opts.startsInMs ?? -1000);
    const res = await api('POST', '/v1/flash-sales', seller.token, {
      skuId,
      salePriceMinor: 3000,
      quantity: opts.quantity,
      perUserLimit: opts.perUserLimit ?? 1,
      reservationTtlSeconds: opts.ttlSeconds ?? 300,
      startsAt: new Date(start).toISOString(),
      endsAt: new Date(start + 3600_000).toISOString(),
      streamId: 'stream-1',
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return (await res.json()) as { id: string; remaining: number; state: string };
  }

  const purchase = (saleId: string, token: string, key: string = randomUUID(), quantity = 1) =>
    api('POST', `/v1/flash-sales/${saleId}/purchase`, token, { quantity }, { 'idempotency-key': key });

  const remainingOf = async (saleId: string) =>
    ((await (await api('GET', `/v1/flash-sales/${saleId}`, undefined)).json()) as { remaining: number })
      .remaining;
  const codeOfRes = async (res: Response) => ((await res.json()) as { code: string }).code;

  async function heldInDb(saleId: string): Promise<{ reserved: number; paid: number; expired: number }> {
    const c = await t.flashSales.reservationCounts(saleId);
    return { reserved: c.reserved.units, paid: c.paid.units, expired: c.expired.units };
  }

  it('creates a live sale visible to anyone with its remaining units', async () => {
    const sale = await createSale({ quantity: 10 });
    expect(sale).toMatchObject({ remaining: 10, state: 'live' });
    const res = await api('GET', `/v1/flash-sales/${sale.id}`, undefined);
    expect(await res.json()).toMatchObject({
      id: sale.id,
      remaining: 10,
      salePriceMinor: 3000,
      currency: 'USD',
    });
  });

  it(`sells exactly 100 of 100 to ${scale.attempts} attempts from ${scale.users} users; expired units come back exactly once`, {
    timeout: 180_000,
  }, async () => {
    const sale = await createSale({ quantity: 100, ttlSeconds: scale.ttlSeconds });
    const buyers = await insertUsers(t.db.db, t.tokens, scale.users);
    const codes = new Map<string, number>();
    const won: string[] = [];
    let paid = 0;
    // Half of the winners check out and pay at once; the other half walk away.
    const payNow = async (token: string, reservationId: string) => {
      const order = await api(
        'POST',
        '/v1/orders',
        token,
        { reservations: [reservationId], streamId: 'stream-1' },
        { 'idempotency-key': randomUUID() },
      );
      expect(order.status, await order.clone().text()).toBe(201);
      const { id } = (await order.json()) as { id: string };
      const res = await api(
        'POST',
        `/v1/orders/${id}/pay`,
        token,
        { method: 'test_card_ok' },
        { 'idempotency-key': randomUUID() },
      );
      expect(res.status, await res.clone().text()).toBe(200);
      paid++;
    };
    const tasks = Array.from({ length: scale.attempts }, (_, i) => async () => {
      const token = buyers[i % buyers.length]!.token;
      const res = await purchase(sale.id, token);
      const body = (await res.json()) as { code?: string; reservationId?: string };
      const key = res.status === 201 ? 'created' : (body.code ?? String(res.status));
      codes.set(key, (codes.get(key) ?? 0) + 1);
      if (res.status === 201) {
        won.push(body.reservationId!);
        if (won.length % 2 === 1) await payNow(token, body.reservationId!);
      }
    });
    await pool(tasks, scale.concurrency);
    expect(codes.get('created')).toBe(100);
    expect([...codes.keys()].sort()).toEqual(
      ['FLASH_LIMIT_REACHED', 'FLASH_SOLD_OUT', 'created'].filter((k) => codes.has(k)),
    );
    expect(new Set(won).size).toBe(100);
    expect(paid).toBe(50);
    expect(await heldInDb(sale.id)).toMatchObject({ reserved: 50, paid: 50 });

    // Two sweeps racing (as two instances would) return the 50 unpaid units once in total.
    let expired = 0;
    await waitFor(async () => {
      const [a, b] = await Promise.all([t.flashSales.sweep(), t.flashSales.sweep()]);
      expired += a + b;
      return expired >= 50;
    }, 90_000);
    expect(expired).toBe(50);
    expect(await heldInDb(sale.id)).toEqual({ reserved: 0, paid: 50, expired: 50 });
    expect(await remainingOf(sale.id)).toBe(50);

    // Exactly those 50 are buyable again, by people who have not bought yet.
    const fresh = await insertUsers(t.db.db, t.tokens, 200);
    const again = await pool(
      fresh.map((u) => () => purchase(sale.id, u.token)),
      scale.concurrency,
    );
    expect(again.filter((r) => r.status === 201)).toHaveLength(50);
    const final = await heldInDb(sale.id);
    expect(final.reserved + final.paid).toBe(100);
    expect(final.paid).toBe(50);
  });

  it('answers taps on a sold-out sale with 409 FLASH_SOLD_OUT before routing them, counted in /metrics', async () => {
    const sale = await createSale({ quantity: 1 });
    const buyer = await t.login();
    expect((await purchase(sale.id, buyer.token)).status).toBe(201);
    // Sold out is public knowledge: the answer needs no sign-in, body or key.
    const late = await api('POST', `/v1/flash-sales/${sale.id}/purchase`, undefined, undefined, {
      'x-request-id': 'late-tap-1',
    });
    expect(late.status).toBe(409);
    expect(late.headers.get('x-request-id')).toBe('late-tap-1');
    expect(late.headers.get('content-type')).toContain('application/json');
    expect(await late.json()).toEqual({
      code: 'FLASH_SOLD_OUT',
      message: expect.any(String),
      details: { remaining: 0 },
    });
    const metrics = await (await api('GET', '/metrics', undefined)).text();
    expect(metrics).toMatch(/^flash_sale_sold_out_shortcut_total [1-9]/m);
    // A malformed escape in the sale id is a client error from Fastify, not a crash of the shortcut.
    const malformed = await api('POST', '/v1/flash-sales/%E0%A4%A/purchase', undefined, { quantity: 1 });
    expect(malformed.status).toBe(400);
    expect((await api('GET', `/v1/flash-sales/${sale.id}`, undefined)).status).toBe(200);
    // Any other route, and a sale that is not sold out, go through Fastify as before.
    expect(
      (await api('POST', `/v1/flash-sales/${randomUUID()}/purchase`, undefined, { quantity: 1 })).status,
    ).toBe(401);
  });

  it('publishes remaining stock on the Engine bus as units are taken and returned', async () => {
    const sale = await createSale({ quantity: 3, perUserLimit: 3 });
    const seen: number[] = [];
    const unsubscribe = await t.engine.subscribe(FLASH_STOCK_CHANNEL, (message) => {
      const event = JSON.parse(message) as { saleId: string; stock: number };
      if (event.saleId === sale.id) seen.push(event.stock);
    });
    try {
      const [buyer] = await insertUsers(t.db.db, t.tokens, 1);
      const r = (await (await purchase(sale.id, buyer!.token, randomUUID(), 3)).json()) as {
        reservationId: string;
      };
      await waitFor(async () => seen.includes(0));
      expect((await purchase(sale.id, buyer!.token)).status).toBe(409);
      const cancel = await api(
        'DELETE',
        `/v1/flash-sales/${sale.id}/reservations/${r.reservationId}`,
        buyer!.token,
      );
      expect(cancel.status).toBe(204);
      await waitFor(async () => seen.at(-1) === 3);
      // units came back: the sold-out flag cleared and buying works again
      expect((await purchase(sale.id, buyer!.token)).status).toBe(201);
    } finally {
      await unsubscribe();
    }
  });

  it('answers 50 concurrent retries of one purchase with one reservation', async () => {
    const sale = await createSale({ quantity: 10, perUserLimit: 5 });
    const [buyer] = await insertUsers(t.db.db, t.tokens, 1);
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => purchase(sale.id, buyer!.token, key)),
    );
    const bodies = (await Promise.all(responses.map((r) => r.json()))) as Array<{ reservationId: string }>;
    expect(responses.filter((r) => r.status === 201)).toHaveLength(1);
    expect(responses.every((r) => r.status === 201 || r.status === 200)).toBe(true);
    expect(new Set(bodies.map((b) => b.reservationId)).size).toBe(1);
    expect(await heldInDb(sale.id)).toMatchObject({ reserved: 1 });
    expect(await remainingOf(sale.id)).toBe(9);
  });

  it('rebuilds from the Db after the Engine loses the sale, without overselling', async () => {
    const sale = await createSale({ quantity: 60 });
    const buyers = await insertUsers(t.db.db, t.tokens, 300);
    const first = await pool(
      buyers.slice(0, 40).map((u) => () => purchase(sale.id, u.token)),
      20,
    );
    expect(first.filter((r) => r.status === 201)).toHaveLength(40);
    // The Engine forgets everything about the sale (a Redis restart without persistence).
    await new FlashSaleEngine(t.engine).unload(sale.id);
    // A buyer retrying an earlier purchase gets the same reservation back, not a second one.
    const retry = await purchase(sale.id, buyers[0]!.token, 'never-used-key-1');
    expect(retry.status).toBe(409);
    expect(await codeOfRes(retry)).toBe('FLASH_LIMIT_REACHED');
    const rest = await pool(
      buyers.slice(40).map((u) => () => purchase(sale.id, u.token)),
      scale.concurrency,
    );
    expect(rest.filter((r) => r.status === 201)).toHaveLength(20);
    expect(await heldInDb(sale.id)).toMatchObject({ reserved: 60 });
  });

  it('refuses a payment that arrives after the reservation expired, and refunds it', async () => {
    // Two seconds: enough to reserve and order on a loaded box before the reservation lapses.
    const sale = await createSale({ quantity: 5, ttlSeconds: 2 });
    const [buyer] = await insertUsers(t.db.db, t.tokens, 1);
    const r = (await (await purchase(sale.id, buyer!.token)).json()) as { reservationId: string };
    const order = await api(
      'POST',
      '/v1/orders',
      buyer!.token,
      { reservations: [r.reservationId] },
      { 'idempotency-key': randomUUID() },
    );
    const { id } = (await order.json()) as { id: string };
    await new Promise((res) => setTimeout(res, 2200));
    const pay = await api(
      'POST',
      `/v1/orders/${id}/pay`,
      buyer!.token,
      { method: 'test_card_ok' },
      { 'idempotency-key': randomUUID() },
    );
    expect(pay.status).toBe(409);
    expect(['RESERVATION_EXPIRED', 'ORDER_STATE_INVALID']).toContain(await codeOfRes(pay));
    const after = await api('GET', `/v1/orders/${id}`, buyer!.token);
    expect(((await after.json()) as { status: string }).status).toBe('expired');
    expect(await remainingOf(sale.id)).toBe(5);
    expect(await (t.payments as TestPaymentProvider).chargeState(`order:${id}`)).not.toBe('charged');
  });

  it('gives clear errors for bad input and closed sales', async () => {
    const viewer = await t.login();
    const { skuId } = await insertProduct(t.db.db, seller.id);
    const valid = {
      skuId,
      salePriceMinor: 100,
      quantity: 5,
      perUserLimit: 1,
      reservationTtlSeconds: 60,
      startsAt: new Date().toISOString(),
      endsAt: new Date(Date.now() + 60_000).toISOString(),
    };
    const code = async (res: Response) => [res.status, ((await res.json()) as { code: string }).code];
    expect(await code(await api('POST', '/v1/flash-sales', viewer.token, valid))).toEqual([403, 'FORBIDDEN']);
    expect(
      await code(await api('POST', '/v1/flash-sales', seller.token, { ...valid, quantity: -1 })),
    ).toEqual([400, 'VALIDATION_FAILED']);
    expect(
      await code(await api('POST', '/v1/flash-sales', seller.token, { ...valid, skuId: randomUUID() })),
    ).toEqual([404, 'SKU_NOT_FOUND']);
    expect(
      await code(await api('POST', '/v1/flash-sales', seller.token, { ...valid, endsAt: valid.startsAt })),
    ).toEqual([400, 'VALIDATION_FAILED']);
    const sale = await createSale({ quantity: 5 });
    expect(
      await code(await api('POST', `/v1/flash-sales/${sale.id}/purchase`, viewer.token, { quantity: 1 })),
    ).toEqual([400, 'IDEMPOTENCY_KEY_REQUIRED']);
    expect(await code(await purchase(sale.id, viewer.token, 'bad key!'))).toEqual([400, 'VALIDATION_FAILED']);
    expect(await code(await purchase(sale.id, viewer.token, randomUUID(), 0))).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);
    expect(await code(await purchase(randomUUID(), viewer.token))).toEqual([404, 'FLASH_SALE_NOT_FOUND']);
    expect(await code(await purchase(sale.id, viewer.token, randomUUID(), 6))).toEqual([
      409,
      'FLASH_LIMIT_REACHED',
    ]);
    expect(
      await code(
        await api(
          'POST',
          `/v1/flash-sales/${sale.id}/purchase`,
          undefined,
          { quantity: 1 },
          { 'idempotency-key': randomUUID() },
        ),
      ),
    ).toEqual([401, 'UNAUTHENTICATED']);
    const later = await createSale({ quantity: 5, startsInMs: 60_000 });
    expect(later.state).toBe('scheduled');
    expect(await code(await purchase(later.id, viewer.token))).toEqual([409, 'FLASH_NOT_STARTED']);
    expect((await api('POST', `/v1/flash-sales/${sale.id}/stop`, seller.token)).status).toBe(200);
    expect(await code(await purchase(sale.id, viewer.token))).toEqual([409, 'FLASH_ENDED']);
    // someone else's reservation cannot be cancelled or checked out
    const other = await createSale({ quantity: 5 });
    const mine = (await (await purchase(other.id, viewer.token)).json()) as { reservationId: string };
    const stranger = await t.login();
    expect(
      (await api('DELETE', `/v1/flash-sales/${other.id}/reservations/${mine.reservationId}`, stranger.token))
        .status,
    ).toBe(404);
    const theft = await api(
      'POST',
      '/v1/orders',
      stranger.token,
      { reservations: [mine.reservationId] },
      { 'idempotency-key': randomUUID() },
    );
    expect(await code(theft)).toEqual([404, 'RESERVATION_NOT_FOUND']);
    expect(
      (await api('DELETE', `/v1/flash-sales/${other.id}/reservations/${mine.reservationId}`, viewer.token))
        .status,
    ).toBe(204);
    expect(await remainingOf(other.id)).toBe(5);
  });

  it('limits purchase velocity per user', async () => {
    const sale = await createSale({ quantity: 2000, perUserLimit: 1000 });
    const [buyer] = await insertUsers(t.db.db, t.tokens, 1);
    const results = await pool(
      Array.from({ length: 1100 }, () => () => purchase(sale.id, buyer!.token)),
      50,
    );
    const limited = results.filter((r) => r.status === 429);
    // attempts 1001..1100 are over the velocity limit (checked before the per-buyer limit)
    const statuses = new Map<number, number>();
    for (const r of results) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    expect(Object.fromEntries(statuses)).toEqual({ 201: 1000, 429: 100 });
    expect(((await limited[0]!.json()) as { code: string }).code).toBe('VELOCITY_LIMITED');
  });
}

describe('flash sales (embedded: PGlite + memory engine)', () => {
  flashSaleSuite(async () => ({ t: await createTestApp(ENV), cleanup: async () => {} }), {
    ttlSeconds: 20,
    users: 400,
    attempts: 4000,
    concurrency: 100,
  });
});

await describeWithService('flash sales (PostgreSQL + Redis)', probePostgres, () => {
  flashSaleSuite(
    async () => {
      const { url, drop } = await createTestDatabase();
      return { t: await createTestApp(ENV, { databaseUrl: url, redisUrl: TEST_REDIS_URL }), cleanup: drop };
    },
    { ttlSeconds: 30, users: 2000, attempts: 20000, concurrency: 200 },
  );
});
