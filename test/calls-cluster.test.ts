/**
 * Call signaling across two instances sharing PostgreSQL and Redis: the
 * router lives on the instance that first needed it; requests from a client
 * connected to the other instance are forwarded over the Redis bus and their
 * answers (and errors, with their codes) come back; ending the call on
 * either instance frees the router where it is; a dead owner gives a clear
 * error until its claim lapses, and then the call's media is rebuilt.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp } from './support/app.js';
import {
  CALLS_ENV,
  type CallInstance,
  listenCalls,
  probeMediasoupWorker,
  vp8RtpParameters,
} from './support/calls.js';
import { wsCodeOf } from './support/failures.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { deleteByPrefix, probeRedis } from './support/redis.js';
import { until, WsClient } from './support/ws-client.js';

const prefix = `test:calls:${randomUUID()}:`;

await describeWithService(
  'calls across instances (PostgreSQL + Redis)',
  async () => {
    await probeMediasoupWorker();
    await probePostgres();
    await probeRedis(TEST_REDIS_URL);
  },
  () => {
    let one: CallInstance;
    let two: CallInstance;
    let drop: () => Promise<void>;
    const clients: WsClient[] = [];

    beforeAll(async () => {
      const db = await createTestDatabase();
      drop = db.drop;
      const shared = { databaseUrl: db.url, redisUrl: TEST_REDIS_URL, redisKeyPrefix: prefix };
      one = await listenCalls(
        await createTestApp({ ...CALLS_ENV, CALL_SIGNALING_TIMEOUT_MS: '1500' }, shared),
      );
      two = await listenCalls(
        await createTestApp({ ...CALLS_ENV, CALL_SIGNALING_TIMEOUT_MS: '1500' }, shared),
      );
    });
    afterAll(async () => {
      for (const c of clients) c.terminate();
      await one?.t.close();
      await two?.t.close();
      await drop?.();
      await deleteByPrefix(TEST_REDIS_URL, prefix);
    });

    const connect = async (inst: CallInstance, token: string) => {
      const c = await WsClient.connect(inst.base, { token });
      clients.push(c);
      return c;
    };
    const routers = async (inst: CallInstance) => {
      let n = 0;
      for (const w of inst.t.media!.sfu.pool.list()) n += (await w.dump()).routerIds.length;
      return n;
    };
    const newCall = async () => {
      const streamer = await one.t.login(['streamer']);
      const shopper = await one.t.login();
      const res = await one.t.app.inject({
        method: 'POST',
        url: '/v1/calls',
        headers: { authorization: `Bearer ${shopper.token}` },
        payload: { type: 'sales', calleeId: streamer.id, context: { streamId: 'a7Kq2ZpX9b' } },
      });
      expect(res.statusCode, res.body).toBe(201);
      return { streamer, shopper, callId: res.json().call.id as string };
    };

    it('runs signaling from either instance against the router on one of them, and frees it when the call ends elsewhere', async () => {
      const { streamer, shopper, callId } = await newCall();
      const room = `call:${callId}`;
      // The callee's ringing reaches the other instance.
      const agent = await connect(two, streamer.token);
      const caller = await connect(one, shopper.token);
      await agent.request('join', { room });
      await caller.request('join', { room });
      const answered = await two.t.app.inject({
        method: 'POST',
        url: `/v1/calls/${callId}/answer`,
        headers: { authorization: `Bearer ${streamer.token}` },
      });
      expect(answered.json().call.status).toBe('active');
      await caller.waitFor(
        (f) =>
          f.t === 'event' &&
          f.e === 'call.updated' &&
          (f.d as { call: { status: string } }).call.status === 'active',
      );

      // The caller's instance needs the router first: it hosts the call.
      const joined = await caller.request<{ rtpCapabilities: unknown }>('call.join', { callId });
      expect(one.t.media!.sfu.callIds()).toEqual([callId]);
      expect(two.t.media!.sfu.callIds()).toEqual([]);

      // The agent is on the other instance: everything goes over the bus.
      const send = await agent.request<{ id: string }>('call.createTransport', { callId, direction: 'send' });
      const produced = await agent.request<{ id: string }>('call.produce', {
        callId,
        transportId: send.id,
        kind: 'video',
        rtpParameters: vp8RtpParameters(),
      });
      expect(one.t.media!.sfu.get(callId)!.counts()).toMatchObject({ peers: 1, transports: 1, producers: 1 });
      expect(two.t.media!.sfu.callIds()).toEqual([]);
      const [announced] = await caller.waitForEvents(room, 1, 20_000, 'call.newProducer');
      expect(announced!.d).toMatchObject({ producerId: produced.id, userId: streamer.id });
      // Errors from the owner keep their codes.
      expect(
        await wsCodeOf(
          agent.request('call.consume', {
            callId,
            transportId: randomUUID(),
            producerId: produced.id,
            rtpCapabilities: joined.rtpCapabilities,
          }),
        ),
      ).toBe('CALL_TRANSPORT_NOT_FOUND');
      const recv = await caller.request<{ id: string }>('call.createTransport', {
        callId,
        direction: 'recv',
      });
      const consumer = await caller.request<{ paused: boolean }>('call.consume', {
        callId,
        transportId: recv.id,
        producerId: produced.id,
        rtpCapabilities: joined.rtpCapabilities,
      });
      expect(consumer.paused).toBe(true);
      expect(await routers(one)).toBe(1);

      // Hanging up on the other instance frees the router where it lives.
      const hung = await two.t.app.inject({
        method: 'POST',
        url: `/v1/calls/${callId}/hangup`,
        headers: { authorization: `Bearer ${streamer.token}` },
      });
      expect(hung.json()).toMatchObject({ status: 'ended', endReason: 'hangup' });
      await until(async () => (await routers(one)) === 0 && one.t.media!.sfu.callIds().length === 0, 10_000);
      expect(await one.t.engine.get(`{call:${callId}}:media-owner`)).toBeNull();
    });

    it('answers CALL_MEDIA_UNAVAILABLE while the owner is gone, then rebuilds the media once its claim lapses', async () => {
      const { streamer, shopper, callId } = await newCall();
      // An instance claimed the call and died: its claim outlives it until the TTL.
      // The TTL leaves a loaded box seconds to connect and ask before the claim lapses.
      await one.t.engine.set(`{call:${callId}}:media-owner`, 'instance-that-died', { ttlMs: 5000 });
      const caller = await connect(two, shopper.token);
      expect(await wsCodeOf(caller.request('call.join', { callId }))).toBe('CALL_MEDIA_UNAVAILABLE');
      await until(async () => (await one.t.engine.get(`{call:${callId}}:media-owner`)) === null, 15_000);
      const joined = await caller.request<{ producers: unknown[] }>('call.join', { callId });
      expect(joined.producers).toEqual([]);
      expect(two.t.media!.sfu.callIds()).toEqual([callId]);
      await two.t.app.inject({
        method: 'POST',
        url: `/v1/calls/${callId}/reject`,
        headers: { authorization: `Bearer ${streamer.token}` },
      });
      await until(async () => (await routers(two)) === 0, 10_000);
    });
  },
);
