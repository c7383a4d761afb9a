/**
 * Viewers and likes of a live stream: counted across instances (two apps
 * sharing Redis, as two servers would), unique per user, kept in the peak,
 * dropped when an instance stops reporting, and likes aggregated into one
 * total with a per-user limit. Also on the embedded engine.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { wsCodeOf } from './support/failures.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { deleteByPrefix, probeRedis } from './support/redis.js';
import { waitFor } from './support/server-process.js';
import { WsClient } from './support/ws-client.js';

async function listening(t: TestApp): Promise<string> {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  t.gateway.attach(t.app.server);
  return `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
}

function audienceSuite(
  makeApps: () => Promise<{ a: TestApp; b: TestApp; cleanup: () => Promise<void> }>,
  twoInstances: boolean,
) {
  let a: TestApp;
  let b: TestApp;
  let baseA: string;
  let baseB: string;
  let cleanup: () => Promise<void>;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    ({ a, b, cleanup } = await makeApps());
    baseA = await listening(a);
    baseB = a === b ? baseA : await listening(b);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cleanup();
  });

  const connect = async (base: string, token?: string) => {
    const c = await WsClient.connect(base, token ? { token } : {});
    clients.push(c);
    return c;
  };
  const page = async (t: TestApp, id: string) =>
    (await t.app.inject({ method: 'GET', url: `/v1/streams/${id}` })).json() as {
      audience: { current: number; peak: number; unique: number; likes: number };
    };
  const newStream = async (t: TestApp) => {
    const streamer = await t.login(['streamer']);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/streams',
      headers: { authorization: `Bearer ${streamer.token}` },
      payload: { title: 'Audience test' },
    });
    return (res.json() as { stream: { id: string } }).stream.id;
  };

  it('counts viewers on both instances, unique per user, and keeps the peak after they leave', async () => {
    const id = await newStream(a);
    const room = `stream:${id}`;
    const ann = await a.login();
    const onA = [await connect(baseA, ann.token), await connect(baseA, ann.token), await connect(baseA)];
    const onB = [await connect(baseB), await connect(baseB)];
    for (const c of [...onA, ...onB]) await c.request('join', { room });
    await a.audience.tick();
    await b.audience.tick();
    // Ann's two tabs are two viewers now but one unique viewer; anonymous connections count one each.
    expect((await page(a, id)).audience).toMatchObject({ current: 5, peak: 5, unique: 4 });
    expect((await page(b, id)).audience).toMatchObject({ current: 5, peak: 5, unique: 4 });

    // One reporter publishes the count to the room, which every instance's clients hear.
    await onB[0]?.waitForEvents(room, 1, 10_000, 'stream.viewers');
    await onA[2]?.waitForEvents(room, 1, 10_000, 'stream.viewers');

    await onA[0]?.close();
    await onB[1]?.request('leave', { room });
    await waitFor(async () => {
      await a.audience.tick();
      await b.audience.tick();
      return (await page(a, id)).audience.current === 3;
    }, 10_000);
    expect((await page(b, id)).audience).toMatchObject({ current: 3, peak: 5, unique: 4 });
  });

  // Needs a second instance to go silent.
  if (twoInstances)
    it('an instance that stops reporting stops counting after the report expiry', async () => {
      const id = await newStream(a);
      const room = `stream:${id}`;
      for (const c of [await connect(baseA), await connect(baseB), await connect(baseB)])
        await c.request('join', { room });
      await a.audience.tick();
      await b.audience.tick();
      expect((await page(a, id)).audience.current).toBe(3);
      // b goes silent (as if it died): its report expires after its TTL (3 ticks of 2 s by default).
      await new Promise((r) => setTimeout(r, 6500));
      await a.audience.tick();
      expect((await page(a, id)).audience.current).toBe(1);
    });

  it('aggregates batched likes from both instances into one total, with a per-user limit', async () => {
    const id = await newStream(a);
    const room = `stream:${id}`;
    const ann = await a.login();
    const bob = await b.login();
    const annWs = await connect(baseA, ann.token);
    const bobWs = await connect(baseB, bob.token);
    await annWs.request('join', { room });
    await bobWs.request('join', { room });
    const sends = [];
    for (let i = 0; i < 10; i++) {
      sends.push(annWs.request('live.like', { streamId: id, count: 5 }));
      sends.push(bobWs.request('live.like', { streamId: id, count: 3 }));
    }
    await Promise.all(sends);
    expect((await page(b, id)).audience.likes).toBe(80);
    // A few events carry the running total, not one per tap; the last one says 80.
    await waitFor(async () => {
      const totals = annWs.frames
        .filter((f) => f.t === 'event' && f.e === 'stream.likes')
        .map((f) => (f.d as { total: number }).total);
      return totals.includes(80);
    }, 10_000);
    const events = annWs.frames.filter((f) => f.t === 'event' && f.e === 'stream.likes');
    expect(events.length).toBeLessThan(20);

    // 300 per user per 10 s.
    for (let i = 0; i < 5; i++) await annWs.request('live.like', { streamId: id, count: 50 });
    expect(await wsCodeOf(annWs.request('live.like', { streamId: id, count: 50 }))).toBe('RATE_LIMITED');
    expect(await wsCodeOf(annWs.request('live.like', { streamId: id, count: 0 }))).toBe('VALIDATION_FAILED');
    const anonymous = await connect(baseA);
    expect(await wsCodeOf(anonymous.request('live.like', { streamId: id, count: 1 }))).toBe(
      'UNAUTHENTICATED',
    );
  });
}

describe('stream audience (embedded engine: one instance, two apps on it)', () => {
  audienceSuite(async () => {
    // Two apps on one in-memory engine would not share it; on the embedded engine both "instances" are one app.
    const a = await createTestApp();
    return { a, b: a, cleanup: () => a.close() };
  }, false);
});

await describeWithService(
  'stream audience (two instances sharing PostgreSQL and Redis)',
  async () => {
    await probeRedis(TEST_REDIS_URL);
    await probePostgres();
  },
  () => {
    audienceSuite(async () => {
      const prefix = `test:${randomUUID()}:`;
      const database = await createTestDatabase();
      const shared = { databaseUrl: database.url, redisUrl: TEST_REDIS_URL, redisKeyPrefix: prefix };
      const a = await createTestApp({}, shared);
      const b = await createTestApp({}, shared);
      return {
        a,
        b,
        cleanup: async () => {
          await a.close();
          await b.close();
          await database.drop();
          await deleteByPrefix(TEST_REDIS_URL, prefix);
        },
      };
    }, true);
  },
);
