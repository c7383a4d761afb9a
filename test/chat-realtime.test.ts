/**
 * Chat over WebSocket through the gateway: messages, notifications, typing,
 * receipts, edits and presence reach the other member — on one instance, and
 * across two instances sharing PostgreSQL and Redis.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { insertProduct } from './support/commerce.js';
import { wsCodeOf } from './support/failures.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { WsClient } from './support/ws-client.js';

interface Instance {
  t: TestApp;
  base: string;
}

async function listen(t: TestApp): Promise<Instance> {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  t.gateway.attach(t.app.server);
  return { t, base: `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}` };
}

function chatRealtimeSuite(
  makeInstances: () => Promise<{ one: Instance; two: Instance; cleanup: () => Promise<void> }>,
) {
  let one: Instance;
  let two: Instance;
  let cleanup: () => Promise<void>;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    ({ one, two, cleanup } = await makeInstances());
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await cleanup?.();
  });

  const connect = async (instance: Instance, token: string) => {
    const c = await WsClient.connect(instance.base, { token });
    clients.push(c);
    return c;
  };

  it('delivers messages, notifications, typing, receipts and edits to the other member', async () => {
    const ann = await one.t.login();
    const bob = await one.t.login();
    const created = await one.t.app.inject({
      method: 'POST',
      url: '/v1/conversations',
      payload: { kind: 'direct', userId: bob.id },
      headers: { authorization: `Bearer ${ann.token}` },
    });
    expect(created.statusCode, created.body).toBe(201);
    const conversationId = created.json().id as string;
    const room = `conv:${conversationId}`;

    const a = await connect(one, ann.token);
    const b = await connect(two, bob.token);
    await a.request('join', { room });
    await b.request('join', { room });
    await b.request('join', { room: `user:${bob.id}` });

    const sent = await a.request<{ id: string; seq: number }>('chat.send', {
      conversationId,
      type: 'text',
      body: 'Is the red one in stock?',
      clientId: 'ws-msg-1',
    });
    expect(sent.seq).toBe(1);
    const [created1] = await b.waitForEvents(room, 1, 20_000, 'message.created');
    expect(created1!.d).toMatchObject({ id: sent.id, body: 'Is the red one in stock?', senderId: ann.id });
    const [notify] = await b.waitForEvents(`user:${bob.id}`, 1, 20_000, 'notify.message');
    expect(notify!.d).toMatchObject({ conversationId, unread: 1 });

    expect(await b.request('chat.typing', { conversationId })).toMatchObject({
      expiresInMs: expect.any(Number),
    });
    const [typing] = await a.waitForEvents(room, 1, 20_000, 'typing');
    expect(typing!.d).toMatchObject({ userId: bob.id, conversationId });

    await b.request('chat.read', { conversationId, seq: 1 });
    const [read] = await a.waitForEvents(room, 1, 20_000, 'receipt.read');
    expect(read!.d).toMatchObject({ userId: bob.id, lastReadSeq: 1 });

    await a.request('chat.edit', { conversationId, messageId: sent.id, body: 'Is the blue one in stock?' });
    const [edited] = await b.waitForEvents(room, 1, 20_000, 'message.edited');
    expect(edited!.d).toMatchObject({ id: sent.id, body: 'Is the blue one in stock?' });

    const presence = await a.request<{
      tracked: boolean;
      members: Array<{ userId: string; online: boolean }>;
    }>('presence', {
      room,
    });
    expect(presence.tracked).toBe(true);
    expect(presence.members.find((u) => u.userId === bob.id)?.online).toBe(true);

    // History over HTTP agrees with what was delivered live.
    const history = await two.t.app.inject({
      url: `/v1/conversations/${conversationId}/messages`,
      headers: { authorization: `Bearer ${bob.token}` },
    });
    expect(history.json().items[0]).toMatchObject({ id: sent.id, body: 'Is the blue one in stock?' });
  });

  it("shows a flash sale's live stock to anonymous viewers of its stream, across instances", async () => {
    const seller = await one.t.login(['streamer']);
    const buyer = await one.t.login();
    const { skuId } = await insertProduct(one.t.db.db, seller.id);
    const streamId = `s-${randomUUID().slice(0, 8)}`;
    const sale = await one.t.flashSales.create(
      { id: seller.id, roles: ['streamer'], displayName: 'S' },
      {
        skuId,
        salePriceMinor: 100,
        quantity: 5,
        perUserLimit: 2,
        reservationTtlSeconds: 60,
        startsAt: new Date(Date.now() - 1000).toISOString(),
        endsAt: new Date(Date.now() + 60_000).toISOString(),
        streamId,
      },
    );
    const viewer = await WsClient.connect(two.base);
    clients.push(viewer);
    await viewer.request('join', { room: `stream:${streamId}` });
    const res = await one.t.app.inject({
      method: 'POST',
      url: `/v1/flash-sales/${sale.id}/purchase`,
      payload: { quantity: 2 },
      headers: { authorization: `Bearer ${buyer.token}`, 'idempotency-key': randomUUID() },
    });
    expect(res.statusCode, res.body).toBe(201);
    const [stock] = await viewer.waitForEvents(`stream:${streamId}`, 1, 20_000, 'flash.stock');
    expect(stock!.d).toEqual({ saleId: sale.id, remaining: 3 });
  });

  it('keeps outsiders out and answers bad chat frames with protocol errors', async () => {
    const ann = await one.t.login();
    const bob = await one.t.login();
    const eve = await one.t.login();
    const created = await one.t.app.inject({
      method: 'POST',
      url: '/v1/conversations',
      payload: { kind: 'direct', userId: bob.id },
      headers: { authorization: `Bearer ${ann.token}` },
    });
    const conversationId = created.json().id as string;
    const e = await connect(two, eve.token);
    expect(await wsCodeOf(e.request('join', { room: `conv:${conversationId}` }))).toBe('ROOM_FORBIDDEN');
    expect(await wsCodeOf(e.request('chat.send', { conversationId, type: 'text', body: 'hi' }))).toBe(
      'CHAT_CONVERSATION_NOT_FOUND',
    );
    expect(await wsCodeOf(e.request('chat.typing', { conversationId }))).toBe('CHAT_CONVERSATION_NOT_FOUND');
    const a = await connect(one, ann.token);
    expect(await wsCodeOf(a.request('chat.send', { conversationId, type: 'text' }))).toBe(
      'VALIDATION_FAILED',
    );
    expect(
      await wsCodeOf(a.request('chat.send', { conversationId, type: 'text', body: 'x', admin: true })),
    ).toBe('VALIDATION_FAILED');
    expect(await wsCodeOf(a.request('chat.send', { conversationId: 'nope', type: 'text', body: 'x' }))).toBe(
      'VALIDATION_FAILED',
    );
    expect(await wsCodeOf(a.request('chat.read', { conversationId, seq: -1 }))).toBe('VALIDATION_FAILED');
    // PostgreSQL text cannot hold U+0000: refused as input, not a database failure
    expect(await wsCodeOf(a.request('chat.send', { conversationId, type: 'text', body: 'a\u0000b' }))).toBe(
      'VALIDATION_FAILED',
    );
    // the connection survived all of it
    expect(await a.request('ping')).toMatchObject({ ts: expect.any(Number) });
    const stored = await one.t.db.db
      .selectFrom('messages')
      .select('id')
      .where('conversation_id', '=', conversationId)
      .execute();
    expect(stored).toHaveLength(0);
  });
}

describe('chat over WebSocket (one instance, embedded)', () => {
  chatRealtimeSuite(async () => {
    const inst = await listen(await createTestApp());
    return { one: inst, two: inst, cleanup: () => inst.t.close() };
  });
});

await describeWithService('chat over WebSocket (two instances, PostgreSQL + Redis)', probePostgres, () => {
  chatRealtimeSuite(async () => {
    const { url, drop } = await createTestDatabase();
    const shared = { databaseUrl: url, redisUrl: TEST_REDIS_URL, redisKeyPrefix: `test:${randomUUID()}:` };
    const one = await listen(await createTestApp({}, shared));
    const two = await listen(await createTestApp({}, shared));
    return {
      one,
      two,
      cleanup: async () => {
        await one.t.close();
        await two.t.close();
        await drop();
      },
    };
  });
});
