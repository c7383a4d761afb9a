/**
 * Stream analytics from known inputs: watch reports split across the minutes
 * they cover, retention per minute, average view duration, likes, chat
 * messages, orders and revenue per minute, and a pin's conversion; access
 * for the owner only; `live.watch` validation.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { insertProduct } from './support/commerce.js';
import { wsCodeOf } from './support/failures.js';
import { WsClient } from './support/ws-client.js';

describe('stream analytics', () => {
  let t: TestApp;
  let base: string;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    t = await createTestApp();
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    t.gateway.attach(t.app.server);
    base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await t?.close();
  });

  const inject = (
    method: 'GET' | 'POST',
    url: string,
    token?: string,
    payload?: object,
    headers: object = {},
  ) =>
    t.app.inject({
      method,
      url,
      payload,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    });

  it('adds up watch time, retention, likes, chat, revenue per minute and pin conversion', async () => {
    const streamer = await t.login(['streamer']);
    const buyer = await t.login();
    const product = await insertProduct(t.db.db, streamer.id, { priceMinor: 2000, stock: 10 });
    const created = await inject('POST', '/v1/streams', streamer.token, {
      title: 'Numbers',
      productIds: [product.productId],
    });
    const { stream, streamKey } = created.json() as { stream: { id: string }; streamKey: string };
    const auth = await t.liveStreams.authenticatePublish(streamKey);
    await t.liveStreams.markLive((auth as { streamId: string }).streamId);
    // The show started 10.5 minutes ago.
    await t.db.db
      .updateTable('streams')
      .set({ started_at: sql<Date>`now() - interval '630 seconds'` })
      .where('public_id', '=', stream.id)
      .execute();

    // Viewer 1 reports a whole minute (30 s in minute 9, 30 s in minute 10); viewer 2 twenty seconds.
    expect(await t.watchTime.record(stream.id, 'u:viewer-1', 60)).toBe(true);
    expect(
      await t.watchTime.record(stream.id, 'c:viewer-2', 20, {
        bitrateKbps: 1000,
        stalls: 2,
        stallSeconds: 4,
      }),
    ).toBe(true);
    await t.watchTime.flush();
    // Quality sums add up across flushes.
    expect(
      await t.watchTime.record(stream.id, 'u:viewer-1', 0, { bitrateKbps: 3000, droppedFrames: 7 }),
    ).toBe(true);
    await t.watchTime.flush();
    const rows = await t.db.db
      .selectFrom('stream_watch')
      .select(['viewer', 'minute', 'seconds'])
      .orderBy('viewer')
      .orderBy('minute')
      .execute();
    expect(rows.map((r) => [r.viewer, r.minute])).toEqual([
      ['c:viewer-2', 10],
      ['u:viewer-1', 9],
      ['u:viewer-1', 10],
    ]);
    expect(rows.reduce((sum, r) => sum + r.seconds, 0)).toBe(80);

    await t.audience.like({ id: buyer.id, roles: ['viewer'], displayName: 'B' }, stream.id, 7);
    const chatter = await WsClient.connect(base, { token: buyer.token });
    clients.push(chatter);
    await chatter.request('live.chat.send', { streamId: stream.id, body: 'hi' });
    await chatter.request('live.chat.send', { streamId: stream.id, body: 'love it' });

    const pin = await inject('POST', `/v1/streams/${stream.id}/pins`, streamer.token, {
      kind: 'product',
      productId: product.productId,
    });
    expect(pin.statusCode, pin.body).toBe(201);
    const order = await inject(
      'POST',
      '/v1/orders',
      buyer.token,
      { items: [{ skuId: product.skuId, quantity: 1 }], streamId: stream.id },
      { 'idempotency-key': 'analytics-order-1' },
    );
    expect(order.statusCode, order.body).toBe(201);
    const orderId = (order.json() as { id: string }).id;
    const paid = await inject(
      'POST',
      `/v1/orders/${orderId}/pay`,
      buyer.token,
      { method: 'test_card_ok' },
      {
        'idempotency-key': `pay-${orderId}`,
      },
    );
    expect(paid.statusCode, paid.body).toBe(200);

    const res = await inject('GET', `/v1/streams/${stream.id}/analytics`, streamer.token);
    expect(res.statusCode, res.body).toBe(200);
    const a = res.json();
    expect(a.watch).toEqual({
      totalSeconds: 80,
      averageViewSeconds: 40,
      retention: [
        { minute: 9, viewers: 1 },
        { minute: 10, viewers: 2 },
      ],
    });
    // 4 s of rebuffering against 80 s watched; two reports with a bitrate.
    expect(a.playback).toEqual({
      reports: 2,
      averageBitrateKbps: 2000,
      stalls: 2,
      rebufferingRatio: Math.round((4 / 84) * 10_000) / 10_000,
      droppedFrames: 7,
    });
    expect(a.viewers.unique).toBeGreaterThanOrEqual(2);
    expect(a.likes).toBe(7);
    expect(a.chatMessages).toBe(2);
    expect(a.commerce.orders.paid).toBe(1);
    const revenue = a.commerce.revenueMinor.USD as number;
    expect(revenue).toBeGreaterThanOrEqual(2000);
    expect(a.durationSeconds).toBeGreaterThanOrEqual(630);
    expect(a.revenuePerMinuteMinor.USD).toBe(Math.round(revenue / (a.durationSeconds / 60)));
    expect(a.pins).toHaveLength(1);
    expect(a.pins[0]).toMatchObject({ productId: product.productId, orders: 1, viewers: 2, conversion: 0.5 });
  });

  it('is for the owner and admins; unknown streams are 404', async () => {
    const streamer = await t.login(['streamer']);
    const other = await t.login(['streamer']);
    const admin = await t.login(['admin']);
    const created = await inject('POST', '/v1/streams', streamer.token, { title: 'Private numbers' });
    const id = (created.json() as { stream: { id: string } }).stream.id;
    expect((await inject('GET', `/v1/streams/${id}/analytics`)).statusCode).toBe(401);
    expect((await inject('GET', `/v1/streams/${id}/analytics`, other.token)).json().code).toBe('FORBIDDEN');
    expect((await inject('GET', `/v1/streams/${id}/analytics`, admin.token)).statusCode).toBe(200);
    expect((await inject('GET', '/v1/streams/NoSuchOne1/analytics', admin.token)).json().code).toBe(
      'STREAM_NOT_FOUND',
    );
  });

  it('live.watch validates reports and records nothing for a stream that is not live', async () => {
    const streamer = await t.login(['streamer']);
    const created = await inject('POST', '/v1/streams', streamer.token, { title: 'Not yet' });
    const id = (created.json() as { stream: { id: string } }).stream.id;
    const ws = await WsClient.connect(base);
    clients.push(ws);
    expect(await ws.request('live.watch', { streamId: id, seconds: 15 })).toEqual({ recorded: false });
    expect(await wsCodeOf(ws.request('live.watch', { streamId: id, seconds: 61 }))).toBe('VALIDATION_FAILED');
    expect(await wsCodeOf(ws.request('live.watch', { streamId: id, seconds: 0 }))).toBe('VALIDATION_FAILED');
    expect(await wsCodeOf(ws.request('live.watch', { streamId: id }))).toBe('VALIDATION_FAILED');
    expect(
      await wsCodeOf(ws.request('live.watch', { streamId: id, seconds: 15, quality: { stalls: -1 } })),
    ).toBe('VALIDATION_FAILED');
    expect(
      await wsCodeOf(ws.request('live.watch', { streamId: id, seconds: 15, quality: { fps: 30 } })),
    ).toBe('VALIDATION_FAILED');
  });
});
