/**
 * The realtime gateway on one instance with the embedded engine: the wired
 * `/ws` endpoint of the app, authentication, rooms and their authorization,
 * sequenced fan-out (one serialization per publication), ordering when the
 * bus misbehaves, reconnect recovery, presence, protocol fuzzing, flood and
 * slow-consumer closes, heartbeats and shutdown.
 *
 * Timing: nothing asserts how long something took; waits poll with generous
 * timeouts. Gateways that need small limits run on their own HTTP server
 * (startTestGateway) so each test states the options it depends on.
 */

import { Type } from '@sinclair/typebox';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../config/schema.js';
import { Connection, type PreparedFrame } from '../signaling/connection.js';
import {
  CloseCode,
  type Gateway,
  gatewayOptionsFromConfig,
  type RoomAction,
  type RoomName,
} from '../signaling/gateway.js';
import { roomKeys } from '../signaling/gateway-scripts.js';
import type { AuthUser } from '../src/auth/permissions.js';
import { TokenService } from '../src/auth/tokens.js';
import { MemoryEngine } from '../src/platform/engine/memory-engine.js';
import { AppError } from '../src/platform/errors.js';
import { createTestApp, type TestApp } from './support/app.js';
import {
  startTestGateway,
  TEST_JWT_SECRET,
  type TestGateway,
  TestUsers,
  until,
  WsClient,
  WsRequestError,
} from './support/ws-client.js';

const users = new TestUsers();
const open: Array<{ close(): Promise<void> | void }> = [];

/** Registers something to close after the current test. */
function track<T extends { close(): Promise<void> | void }>(thing: T): T {
  open.push(thing);
  return thing;
}

afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

async function expectError(promise: Promise<unknown>, code: string): Promise<WsRequestError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, got ok`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WsRequestError);
  expect((err as WsRequestError).code).toBe(code);
  return err as WsRequestError;
}

/** Checks that a room's events are exactly seqs from..to, in order, each carrying its own number. */
function expectContiguous(events: Array<{ seq?: number; d?: unknown }>, from: number, to: number): void {
  const seqs = events.map((e) => e.seq);
  expect(seqs).toEqual(Array.from({ length: to - from + 1 }, (_, i) => from + i));
}

describe('gateway configuration', () => {
  it('refuses a presence TTL that a heartbeat could outlive, with one line', () => {
    expect(() => loadConfig({ WS_HEARTBEAT_INTERVAL_MS: '1000', WS_PRESENCE_TTL_MS: '1200' })).toThrow(
      'WS_PRESENCE_TTL_MS (1200) must be at least 1.5 x WS_HEARTBEAT_INTERVAL_MS (1000)',
    );
    expect(() => loadConfig({ WS_MAX_MESSAGE_BYTES: '70000' })).toThrow(ConfigError);
    expect(gatewayOptionsFromConfig(loadConfig({}))).toMatchObject({
      heartbeatIntervalMs: 20_000,
      historyMaxLen: 1000,
    });
  });
});

describe('gateway wired into the app', () => {
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    t = await createTestApp({ WS_HEARTBEAT_INTERVAL_MS: '1000', WS_PRESENCE_TTL_MS: '3000' });
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    t.gateway.attach(t.app.server);
    base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await t?.gateway.close();
    await t?.close();
  });

  it('serves /ws next to the REST API and authenticates with the app tokens', async () => {
    const user = await t.login(['viewer']);
    const client = track(await WsClient.connect(base, { token: user.token }));
    expect(client.hello?.d).toMatchObject({ userId: user.id, heartbeatMs: 1000 });
    expect(await client.request('ping')).toMatchObject({ ts: expect.any(Number) });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await expect(WsClient.connect(base, { path: '/not-ws' })).rejects.toThrow('404');
  });

  it('lets domain code publish to a user room through services.gateway', async () => {
    const user = await t.login(['viewer']);
    const client = track(await WsClient.connect(base, { token: user.token }));
    const room = `user:${user.id}`;
    expect(await client.request('join', { room })).toEqual({ room, lastSeq: 0 });
    await t.gateway.publish(room, 'order.paid', { orderId: 'o1' });
    const [event] = await client.waitForEvents(room, 1);
    expect(event).toEqual({ t: 'event', room, seq: 1, e: 'order.paid', d: { orderId: 'o1' } });
  });
});

describe('gateway on the embedded engine', () => {
  let engine: MemoryEngine;
  let gw: TestGateway;
  let gateway: Gateway;

  beforeAll(async () => {
    engine = new MemoryEngine();
    gw = await startTestGateway(engine, users.tokens, {
      heartbeatIntervalMs: 1000,
      presenceTtlMs: 3000,
      authTimeoutMs: 1500,
      roomLingerMs: 200,
    });
    gateway = gw.gateway;
  });
  afterAll(async () => {
    await gw?.close();
    await engine?.close();
  });

  describe('authentication', () => {
    it('accepts a token in the query and says who the connection is', async () => {
      const user = await users.make();
      const client = track(await WsClient.connect(gw.url, { token: user.token }));
      expect(client.hello?.d).toMatchObject({ userId: user.id, connectionId: expect.any(String) });
    });

    it('closes with 4001 after an error frame for an invalid token, and 4003 for an expired one', async () => {
      const bad = track(await WsClient.connect(gw.url, { token: 'not.a.token', waitHello: false }));
      expect(await bad.closed).toBe(CloseCode.AUTH_FAILED);
      expect(bad.errors()[0]).toMatchObject({ code: 'TOKEN_INVALID' });

      const expired = await new TokenService(TEST_JWT_SECRET, -10).issue({
        id: 'old',
        roles: ['viewer'],
        displayName: 'Old',
      });
      const late = track(await WsClient.connect(gw.url, { token: expired.token, waitHello: false }));
      expect(await late.closed).toBe(CloseCode.TOKEN_EXPIRED);
      expect(late.errors()[0]).toMatchObject({ code: 'TOKEN_EXPIRED' });
    });

    it('authenticates by an auth frame, and refuses to switch users', async () => {
      const [alice, bob] = [await users.make(), await users.make()];
      const client = track(await WsClient.connect(gw.url));
      expect(client.hello?.d).toMatchObject({ userId: null });
      await expectError(client.request('auth', { token: 'garbage' }), 'TOKEN_INVALID');
      expect(await client.request('auth', { token: alice.token })).toMatchObject({ userId: alice.id });
      expect(await client.request('auth', { token: alice.token })).toMatchObject({ userId: alice.id });
      await expectError(client.request('auth', { token: bob.token }), 'FORBIDDEN');
      expect(await client.request('join', { room: `user:${alice.id}` })).toMatchObject({ lastSeq: 0 });
    });

    it('closes an anonymous connection that neither authenticates nor joins in time with 4002', async () => {
      const idle = track(await WsClient.connect(gw.url));
      expect(await idle.closed).toBe(CloseCode.AUTH_TIMEOUT);
      // An anonymous viewer that joined a public room stays.
      const viewer = track(await WsClient.connect(gw.url));
      await viewer.request('join', { room: 'stream:auth-timeout' });
      await new Promise((r) => setTimeout(r, 2000));
      expect(viewer.closeCode).toBeUndefined();
      expect(await viewer.request('ping')).toBeTruthy();
    });

    it('closes with 4003 when a token expires during the session unless it was refreshed', async () => {
      // Expiry has one-second resolution: four seconds leave at least three to connect both.
      const shortLived = new TokenService(TEST_JWT_SECRET, 4);
      const user = { id: 'short-lived', roles: ['viewer'] as const, displayName: 'S' };
      const first = await shortLived.issue({ ...user, roles: [...user.roles] });
      const expiring = track(await WsClient.connect(gw.url, { token: first.token }));
      const refreshed = track(await WsClient.connect(gw.url, { token: first.token }));
      const fresh = await users.tokens.issue({ ...user, roles: [...user.roles] });
      await refreshed.request('auth', { token: fresh.token });
      expect(await expiring.closed).toBe(CloseCode.TOKEN_EXPIRED);
      expect(expiring.errors().at(-1)).toMatchObject({ code: 'TOKEN_EXPIRED' });
      expect(refreshed.closeCode).toBeUndefined();
      expect(await refreshed.request('ping')).toBeTruthy();
    });
  });

  describe('rooms', () => {
    it('lets anonymous viewers read stream rooms and nothing personal', async () => {
      const viewer = track(await WsClient.connect(gw.url));
      expect(await viewer.request('join', { room: 'stream:open' })).toEqual({
        room: 'stream:open',
        lastSeq: 0,
      });
      await expectError(viewer.request('join', { room: 'user:someone' }), 'ROOM_FORBIDDEN');
      await expectError(viewer.request('join', { room: 'conv:1' }), 'ROOM_FORBIDDEN');
      await expectError(viewer.request('presence', { users: ['someone'] }), 'UNAUTHENTICATED');
      expect(await gateway.authorize(null, 'stream:open', 'publish')).toBe(false);
      expect(
        await gateway.authorize({ id: 'u', roles: ['viewer'], displayName: '' }, 'stream:open', 'publish'),
      ).toBe(true);
    });

    it('keeps user rooms to their user, and conv/call rooms closed until a module opens them', async () => {
      const [alice, bob] = [await users.make(), await users.make()];
      const client = track(await WsClient.connect(gw.url, { token: alice.token }));
      await client.request('join', { room: `user:${alice.id}` });
      const err = await expectError(client.request('join', { room: `user:${bob.id}` }), 'ROOM_FORBIDDEN');
      expect(err.details).toEqual({ room: `user:${bob.id}` });
      await expectError(client.request('join', { room: 'call:1' }), 'ROOM_FORBIDDEN');
      await expectError(client.request('join', { room: 'nope:1' }), 'ROOM_INVALID');
      await expectError(client.request('join', { room: 'stream:' }), 'VALIDATION_FAILED');
      await expectError(client.request('join', { room: 'stream:{x}' }), 'VALIDATION_FAILED');
      await expectError(client.request('leave', { room: 'stream:never' }), 'NOT_JOINED');
      expect(client.closeCode).toBeUndefined();
    });

    it('uses authorizers registered by domain modules', async () => {
      const [alice, bob] = [await users.make(), await users.make()];
      const members = new Set([alice.id]);
      const authorize = vi.fn(
        (user: AuthUser | null, _room: RoomName, _action: RoomAction) =>
          user !== null && members.has(user.id),
      );
      gateway.rooms.register('sale', { authorize }, { presence: false });
      const a = track(await WsClient.connect(gw.url, { token: alice.token }));
      const b = track(await WsClient.connect(gw.url, { token: bob.token }));
      await a.request('join', { room: 'sale:7' });
      await expectError(b.request('join', { room: 'sale:7' }), 'ROOM_FORBIDDEN');
      expect(authorize).toHaveBeenCalledWith(
        expect.objectContaining({ id: bob.id }),
        { name: 'sale:7', type: 'sale', id: '7' },
        'join',
      );
    });

    it('limits the rooms of one connection', async () => {
      const small = track(await startTestGateway(engine, users.tokens, { maxRoomsPerConnection: 2 }));
      const client = track(await WsClient.connect(small.url));
      await client.request('join', { room: 'stream:r1' });
      await client.request('join', { room: 'stream:r2' });
      await expectError(client.request('join', { room: 'stream:r3' }), 'TOO_MANY_ROOMS');
      await client.request('leave', { room: 'stream:r1' });
      await client.request('join', { room: 'stream:r3' });
    });

    it('stops delivering after leave and unsubscribes idle rooms', async () => {
      const client = track(await WsClient.connect(gw.url));
      const room = 'stream:leave-test';
      await client.request('join', { room });
      await gateway.publish(room, 'a', 1);
      await client.waitForEvents(room, 1);
      expect(await client.request('leave', { room })).toEqual({ room });
      await gateway.publish(room, 'b', 2);
      await client.request('ping');
      await new Promise((r) => setTimeout(r, 100));
      expect(client.events(room)).toHaveLength(1);
      // A new join starts where the room is now.
      expect(await client.request('join', { room })).toEqual({ room, lastSeq: 2 });
    });
  });

  describe('publishing', () => {
    it('fans out sequenced events in order to every member, and ephemeral ones without seq', async () => {
      const room = 'stream:fanout';
      const clients = await Promise.all(Array.from({ length: 5 }, () => WsClient.connect(gw.url)));
      for (const c of clients) track(c);
      for (const c of clients) await c.request('join', { room });
      for (let i = 1; i <= 20; i++) await gateway.publish(room, 'chat.message', { n: i, text: `hello ${i}` });
      expect(await gateway.publish(room, 'typing', { userId: 'u1' }, { ephemeral: true })).toEqual({
        seq: 0,
      });
      for (const c of clients) {
        const events = await c.waitForEvents(room, 21);
        expectContiguous(events.slice(0, 20), 1, 20);
        expect(events[4]).toEqual({
          t: 'event',
          room,
          seq: 5,
          e: 'chat.message',
          d: { n: 5, text: 'hello 5' },
        });
        expect(events[20]).toEqual({ t: 'event', room, e: 'typing', d: { userId: 'u1' } });
      }
    });

    it('serializes a publication once and sends the same prepared frame to every socket', async () => {
      const room = 'stream:once';
      const clients = await Promise.all(Array.from({ length: 20 }, () => WsClient.connect(gw.url)));
      for (const c of clients) track(c);
      for (const c of clients) await c.request('join', { room });
      const sent: PreparedFrame[] = [];
      const spy = vi.spyOn(Connection.prototype, 'sendPrepared').mockImplementation(function (
        this: Connection,
        frame: PreparedFrame,
      ) {
        sent.push(frame);
      });
      const stringify = vi.spyOn(JSON, 'stringify');
      try {
        await gateway.publish(room, 'big', { items: Array.from({ length: 100 }, (_, i) => ({ i })) });
        await until(() => sent.length >= 20, 10_000, 'fan-out');
        expect(new Set(sent).size).toBe(1);
        // One stringify for the body; the envelope is concatenated, never re-serialized per socket.
        const bodyCalls = stringify.mock.calls.filter(([v]) => (v as { e?: string })?.e === 'big');
        expect(bodyCalls).toHaveLength(1);
      } finally {
        stringify.mockRestore();
        spy.mockRestore();
      }
      const framed = sent[0]!.framed();
      expect(framed?.subarray(framed.length - sent[0]!.bytes().length).equals(sent[0]!.bytes())).toBe(true);
    });

    it('rejects publications to unknown room types and bad event names', async () => {
      await expect(gateway.publish('nope:1', 'x', {})).rejects.toMatchObject({ code: 'ROOM_INVALID' });
      await expect(gateway.publish('stream:1', 'Bad Name', {})).rejects.toThrow(RangeError);
    });
  });

  describe('ordering when the bus misbehaves', () => {
    it('reorders bus messages that arrive out of sequence and fetches ones that never arrive', async () => {
      const room = 'stream:order';
      const keys = roomKeys(room);
      const client = track(await WsClient.connect(gw.url));
      await client.request('join', { room });
      const append = (n: number) =>
        engine.logAppend(keys.history, JSON.stringify({ e: 'n', d: n }), { maxLen: 1000, ttlMs: 3_600_000 });
      // Two publishers raced: 2 reaches the bus before 1.
      const s1 = await append(1);
      const s2 = await append(2);
      await engine.publish(keys.channel, `${s2}:${JSON.stringify({ e: 'n', d: 2 })}`);
      await engine.publish(keys.channel, `${s1}:${JSON.stringify({ e: 'n', d: 1 })}`);
      // A publisher died between append and publish: 3 is only in the log.
      await append(3);
      await gateway.publish(room, 'n', 4);
      const events = await client.waitForEvents(room, 4);
      expectContiguous(events, 1, 4);
      expect(events.map((e) => e.d)).toEqual([1, 2, 3, 4]);
      // Duplicates on the bus are dropped.
      await engine.publish(keys.channel, `${s2}:${JSON.stringify({ e: 'n', d: 2 })}`);
      await gateway.publish(room, 'n', 5);
      await client.waitForEvents(room, 5);
      await client.request('ping');
      expectContiguous(client.events(room), 1, 5);
    });

    it('delivers a last publication whose bus message was lost, found by the periodic history check', async () => {
      const own = track(
        await startTestGateway(engine, users.tokens, {
          heartbeatIntervalMs: 200,
          presenceTtlMs: 600,
          historyTtlMs: 3000,
        }),
      );
      const room = 'stream:lost-tail';
      const client = track(await WsClient.connect(own.url));
      await client.request('join', { room });
      await engine.logAppend(roomKeys(room).history, JSON.stringify({ e: 'lost', d: 1 }), {
        maxLen: 100,
        ttlMs: 3000,
      });
      const [event] = await client.waitForEvents(room, 1);
      expect(event).toMatchObject({ seq: 1, e: 'lost', d: 1 });
    });
  });

  describe('recovery', () => {
    it('replays exactly the 500 events a client missed, in order, then continues live', async () => {
      const room = 'stream:recover-500';
      let client = await WsClient.connect(gw.url);
      await client.request('join', { room });
      for (let i = 1; i <= 3; i++) await gateway.publish(room, 'n', { n: i });
      const seen = await client.waitForEvents(room, 3);
      const lastSeq = seen.at(-1)!.seq!;
      await client.close();

      for (let i = 4; i <= 503; i++) await gateway.publish(room, 'n', { n: i });
      client = track(await WsClient.connect(gw.url));
      const reply = await client.request<Record<string, unknown>>('join', { room, lastSeq });
      expect(reply).toEqual({ room, lastSeq: 503, recovered: true, replayed: 500 });
      const replayed = client.events(room);
      expectContiguous(replayed, 4, 503);
      expect(replayed.map((e) => (e.d as { n: number }).n)).toEqual(replayed.map((e) => e.seq));

      await gateway.publish(room, 'n', { n: 504 });
      const all = await client.waitForEvents(room, 501);
      expectContiguous(all, 4, 504);
    });

    it('loses and duplicates nothing across 100 reconnect cycles with publications racing the rejoin', async () => {
      const room = 'stream:recover-cycles';
      let published = 0;
      const publish = async (count: number) => {
        for (let i = 0; i < count; i++) {
          published++;
          await gateway.publish(room, 'n', { n: published });
        }
      };
      let client = await WsClient.connect(gw.url);
      await client.request('join', { room });
      let lastSeq = 0;
      for (let cycle = 0; cycle < 100; cycle++) {
        await client.close();
        await publish(20);
        client = await WsClient.connect(gw.url);
        const racing = publish(5);
        const joinId = client.frames.length;
        const reply = await client.request<{ lastSeq: number; recovered: boolean }>('join', {
          room,
          lastSeq,
        });
        await racing;
        expect(reply.recovered).toBe(true);
        const events = await client.waitForEvents(room, published - lastSeq);
        expectContiguous(events, lastSeq + 1, published);
        // Replayed events precede the reply; everything after it is newer than the reply's lastSeq.
        const okIndex = client.frames.findIndex((f, i) => i >= joinId && f.t === 'ok');
        for (const [i, f] of client.frames.entries()) {
          if (f.t !== 'event') continue;
          if (i < okIndex) expect(f.seq!).toBeLessThanOrEqual(reply.lastSeq);
          else expect(f.seq!).toBeGreaterThan(reply.lastSeq);
        }
        lastSeq = published;
      }
      track(client);
      expect(published).toBe(2500);
    });

    it('tells a client whose gap is older than the history to reload, then continues live', async () => {
      const small = track(await startTestGateway(engine, users.tokens, { historyMaxLen: 50 }));
      const room = 'stream:too-old';
      let client = await WsClient.connect(small.url);
      await client.request('join', { room });
      await small.gateway.publish(room, 'n', 1);
      await client.waitForEvents(room, 1);
      await client.close();
      for (let i = 2; i <= 100; i++) await small.gateway.publish(room, 'n', i);
      client = track(await WsClient.connect(small.url));
      expect(await client.request('join', { room, lastSeq: 1 })).toEqual({
        room,
        lastSeq: 100,
        recovered: false,
        reason: 'gap_too_old',
        replayed: 0,
      });
      expect(client.events(room)).toHaveLength(0);
      await small.gateway.publish(room, 'n', 101);
      const [event] = await client.waitForEvents(room, 1);
      expect(event?.seq).toBe(101);
    });

    it('treats a lastSeq from before the history restarted as too old', async () => {
      const room = 'stream:restarted';
      const client = track(await WsClient.connect(gw.url));
      expect(await client.request('join', { room, lastSeq: 77 })).toMatchObject({
        recovered: false,
        reason: 'gap_too_old',
        lastSeq: 0,
      });
    });
  });

  describe('presence', () => {
    it('keeps a user online until the last of their connections closes, with last seen', async () => {
      const [alice, bob] = [await users.make(), await users.make()];
      const changes: Array<{ userId: string; online: boolean }> = [];
      const onPresence = (c: { userId: string; online: boolean }) => {
        if (c.userId === alice.id) changes.push(c);
      };
      gateway.on('presence', onPresence);
      try {
        const watcher = track(await WsClient.connect(gw.url, { token: bob.token }));
        const tab1 = await WsClient.connect(gw.url, { token: alice.token });
        const tab2 = await WsClient.connect(gw.url, { token: alice.token });
        const status = async () =>
          (
            await watcher.request<{ users: Array<{ online: boolean; lastSeen: number | null }> }>(
              'presence',
              {
                users: [alice.id],
              },
            )
          ).users[0]!;
        await until(async () => (await status()).online, 10_000, 'online');
        await tab1.close();
        await new Promise((r) => setTimeout(r, 100));
        expect((await status()).online).toBe(true);
        await tab2.close();
        await until(async () => !(await status()).online, 10_000, 'offline');
        expect((await status()).lastSeen).toEqual(expect.any(Number));
        expect(changes.map((c) => c.online)).toEqual([true, false]);
        const never = await watcher.request<{ users: unknown[] }>('presence', { users: ['never-seen'] });
        expect(never.users).toEqual([{ userId: 'never-seen', online: false, lastSeen: null }]);
      } finally {
        gateway.off('presence', onPresence);
      }
    });

    it('publishes join and leave events in presence rooms and lists who is there', async () => {
      gateway.rooms.register('conv', { authorize: (user) => user !== null }, { presence: true });
      const [alice, bob] = [await users.make(), await users.make()];
      const room = 'conv:presence-1';
      const a = track(await WsClient.connect(gw.url, { token: alice.token }));
      await a.request('join', { room });
      const b = await WsClient.connect(gw.url, { token: bob.token });
      await b.request('join', { room });
      const joined = await a.waitFor(
        (f) => f.e === 'presence.join' && (f.d as { userId: string }).userId === bob.id,
      );
      expect(joined).toEqual({
        t: 'event',
        room,
        e: 'presence.join',
        d: { userId: bob.id, name: bob.displayName },
      });
      const list = await a.request<{ members: Array<{ userId: string; online: boolean; inRoom: boolean }> }>(
        'presence',
        { room },
      );
      expect(list.members.map((m) => m.userId).sort()).toEqual([alice.id, bob.id].sort());
      expect(list.members.every((m) => m.online && m.inRoom)).toBe(true);
      await b.close();
      await a.waitFor((f) => f.e === 'presence.leave' && (f.d as { userId: string }).userId === bob.id);
      await expectError(a.request('presence', { room: 'conv:not-joined' }), 'NOT_JOINED');
      // Rooms without presence say so.
      await a.request('join', { room: 'stream:no-presence' });
      expect(await a.request('presence', { room: 'stream:no-presence' })).toEqual({
        room: 'stream:no-presence',
        tracked: false,
        members: [],
      });
    });

    it('drops a socket that stops answering pings, and its user goes offline', async () => {
      const own = track(
        await startTestGateway(engine, users.tokens, { heartbeatIntervalMs: 200, presenceTtlMs: 600 }),
      );
      const user = await users.make();
      const evicted: string[] = [];
      own.gateway.on('evict', (_c, reason) => evicted.push(reason));
      const dead = track(
        await WsClient.connect(own.url, { token: user.token, wsOptions: { autoPong: false } }),
      );
      await until(async () => (await own.gateway.presenceOf([user.id]))[0]!.online, 10_000, 'online');
      await dead.closed;
      expect(evicted).toContain('heartbeat');
      await until(async () => !(await own.gateway.presenceOf([user.id]))[0]!.online, 10_000, 'offline');
      expect(own.gateway.stats().connections).toBe(0);
    });
  });

  describe('bad input', () => {
    let fuzzGw: TestGateway;
    beforeAll(async () => {
      fuzzGw = await startTestGateway(engine, users.tokens, {
        rateBurst: 100_000,
        ratePerSecond: 100_000,
        maxMessageBytes: 4096,
        maxPayloadBytes: 65536,
      });
    });
    afterAll(() => fuzzGw?.close());

    it('answers malformed, unknown, mistyped and oversized frames with stable codes and survives', async () => {
      const user = await users.make();
      const c = track(await WsClient.connect(fuzzGw.url, { token: user.token }));
      const cases: Array<[string | Buffer, string, boolean?]> = [
        ['{not json', 'PROTOCOL_INVALID_FRAME'],
        ['', 'PROTOCOL_INVALID_FRAME'],
        ['[1,2,3]', 'PROTOCOL_INVALID_FRAME'],
        ['42', 'PROTOCOL_INVALID_FRAME'],
        ['null', 'PROTOCOL_INVALID_FRAME'],
        ['"join"', 'PROTOCOL_INVALID_FRAME'],
        ['{"id":1}', 'PROTOCOL_INVALID_FRAME'],
        ['{"t":5,"id":1}', 'PROTOCOL_INVALID_FRAME'],
        ['{"t":"explode","id":1}', 'PROTOCOL_UNKNOWN_TYPE'],
        ['{"t":"__proto__","id":1}', 'PROTOCOL_UNKNOWN_TYPE'],
        ['{"t":"join","id":1}', 'VALIDATION_FAILED'],
        ['{"t":"join","id":1,"d":{"room":5}}', 'VALIDATION_FAILED'],
        ['{"t":"join","id":1,"d":{"room":"stream:1","lastSeq":-1}}', 'VALIDATION_FAILED'],
        ['{"t":"join","id":1,"d":{"room":"stream:1","lastSeq":"3"}}', 'VALIDATION_FAILED'],
        ['{"t":"join","id":1,"d":{"room":"stream:1","extra":true}}', 'VALIDATION_FAILED'],
        ['{"t":"join","id":{"x":1},"d":{"room":"stream:1"}}', 'VALIDATION_FAILED'],
        ['{"t":"ping","id":1,"d":[]}', 'VALIDATION_FAILED'],
        ['{"t":"presence","id":1,"d":{"users":[]}}', 'VALIDATION_FAILED'],
        ['{"t":"join","id":1,"d":{"room":"nope:1"}}', 'ROOM_INVALID'],
        [`{"t":"join","id":1,"d":{"room":"user:someone-else"}}`, 'ROOM_FORBIDDEN'],
        [`{"t":"ping","id":1,"pad":"${'x'.repeat(5000)}"}`, 'FRAME_TOO_LARGE'],
        [Buffer.from([1, 2, 3]), 'PROTOCOL_INVALID_FRAME', true],
      ];
      for (const [frame, code, binary] of cases) {
        const before = c.frames.length;
        c.sendRaw(frame, binary);
        const reply = await c.waitFor((f) => f.t === 'error' || f.t === 'ok', 5000, before);
        expect(reply, String(frame).slice(0, 80)).toMatchObject({ t: 'error', code });
      }
      expect(c.closeCode).toBeUndefined();
      expect(await c.request('ping')).toMatchObject({ ts: expect.any(Number) });
      // Nothing was written to any room's history by all that.
      for (const room of ['stream:1', 'user:someone-else']) {
        expect((await engine.logRead(roomKeys(room).history, 0, 10)).lastSeq).toBe(0);
      }
    });

    it('survives random garbage: one reply per frame, connection open, server serving', async () => {
      const c = track(await WsClient.connect(fuzzGw.url));
      // String ids, so replies to garbage never match the numeric ids of `request`.
      const valid = [
        { t: 'join', id: 'f1', d: { room: 'stream:fuzz' } },
        { t: 'leave', id: 'f2', d: { room: 'stream:fuzz' } },
        { t: 'presence', id: 'f3', d: { room: 'stream:fuzz' } },
        { t: 'auth', id: 'f4', d: { token: 'x' } },
        { t: 'ping', id: 'f5' },
      ];
      let seed = 12345;
      const rand = () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed / 0x7fffffff;
      };
      const mutate = (value: unknown, depth = 0): unknown => {
        const r = rand();
        if (depth > 3 || r < 0.15)
          return [null, 0, -1, 1.5, '', 'x'.repeat(70), [], {}, true][Math.floor(rand() * 9)];
        if (Array.isArray(value)) return value.map((v) => mutate(v, depth + 1));
        if (value && typeof value === 'object') {
          const out: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(value))
            if (rand() > 0.1) out[k] = rand() < 0.7 ? v : mutate(v, depth + 1);
          if (rand() < 0.1) out[`extra${Math.floor(rand() * 3)}`] = mutate(null, depth + 1);
          return out;
        }
        return value;
      };
      const frames: string[] = [];
      for (let i = 0; i < 400; i++) {
        const base = valid[Math.floor(rand() * valid.length)]!;
        let text = JSON.stringify(mutate(base));
        if (rand() < 0.15) {
          const cut = Math.floor(rand() * text.length);
          text = text.slice(0, cut) + String.fromCharCode(Math.floor(rand() * 128)) + text.slice(cut + 1);
        }
        frames.push(text);
      }
      const before = c.frames.length;
      for (const f of frames) c.sendRaw(f);
      await c.request('ping');
      // Every frame got exactly one reply (frames are answered in order; the ping's ok comes last).
      await until(() => c.frames.length - before >= frames.length + 1, 20_000, 'all replies');
      const replies = c.frames.slice(before).filter((f) => f.t === 'ok' || f.t === 'error');
      expect(replies.length).toBe(frames.length + 1);
      expect(c.closeCode).toBeUndefined();
      const other = track(await WsClient.connect(fuzzGw.url));
      expect(await other.request('ping')).toBeTruthy();
    });

    it('closes with 1009 when a frame exceeds the payload limit, and keeps serving others', async () => {
      const c = track(await WsClient.connect(fuzzGw.url));
      c.sendRaw(`{"t":"ping","pad":"${'x'.repeat(70_000)}"}`);
      expect(await c.closed).toBe(CloseCode.MESSAGE_TOO_BIG);
      const other = track(await WsClient.connect(fuzzGw.url));
      expect(await other.request('ping')).toBeTruthy();
    });
  });

  describe('flow control', () => {
    it('rate limits a flooding client with error frames, then closes it with 4008', async () => {
      const own = track(
        await startTestGateway(engine, users.tokens, { rateBurst: 10, ratePerSecond: 5, floodCloseAfter: 5 }),
      );
      const c = track(await WsClient.connect(own.url));
      for (let i = 0; i < 100; i++)
        if (c.ws.readyState === c.ws.OPEN) c.sendRaw(JSON.stringify({ t: 'ping', id: i }));
      expect(await c.closed).toBe(CloseCode.FLOOD);
      expect(c.errors().filter((f) => f.code === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(1);
      // A polite client of the same gateway is unaffected.
      const polite = track(await WsClient.connect(own.url));
      expect(await polite.request('ping')).toBeTruthy();
    });

    it('a rate-limited request fails at once with its own id and how long to wait', async () => {
      const own = track(
        await startTestGateway(engine, users.tokens, { rateBurst: 3, ratePerSecond: 2, floodCloseAfter: 50 }),
      );
      const c = track(await WsClient.connect(own.url));
      const answers = await Promise.all(
        Array.from({ length: 6 }, () =>
          c.request('ping', undefined, 5000).then(
            () => 'ok',
            (err: unknown) => err,
          ),
        ),
      );
      expect(answers.slice(0, 3)).toEqual(['ok', 'ok', 'ok']);
      for (const answer of answers.slice(3)) {
        expect(answer).toBeInstanceOf(WsRequestError);
        expect((answer as WsRequestError).code).toBe('RATE_LIMITED');
        const { retryAfterMs } = (answer as WsRequestError).details as { retryAfterMs: number };
        expect(retryAfterMs).toBeGreaterThan(0);
        expect(retryAfterMs).toBeLessThanOrEqual(500);
      }
      await new Promise((r) => setTimeout(r, 600));
      expect(await c.request('ping')).toBeTruthy();
    });

    it('closes a client that stops reading with 4009 instead of buffering without bound', async () => {
      const own = track(
        await startTestGateway(engine, users.tokens, {
          maxBufferedBytes: 64 * 1024,
          heartbeatIntervalMs: 60_000,
          presenceTtlMs: 120_000,
          closeGraceMs: 30_000,
        }),
      );
      const room = 'stream:slow';
      const slow = track(await WsClient.connect(own.url));
      const healthy = track(await WsClient.connect(own.url));
      await slow.request('join', { room });
      await healthy.request('join', { room });
      const evicted: string[] = [];
      own.gateway.on('evict', (_c, reason) => evicted.push(reason));
      slow.ws.pause();
      const blob = 'y'.repeat(16 * 1024);
      let n = 0;
      while (!evicted.includes('slow_consumer') && n < 5000) {
        await own.gateway.publish(room, 'blob', { n: ++n, blob });
        // Let the healthy client (same process) read.
        await new Promise((r) => setImmediate(r));
      }
      expect(evicted).toEqual(['slow_consumer']);
      slow.ws.resume();
      expect(await slow.closed).toBe(CloseCode.SLOW_CONSUMER);
      const got = await healthy.waitForEvents(room, n, 30_000);
      expectContiguous(got, 1, n);
    });
  });

  describe('extension points', () => {
    it('runs registered handlers with validation, auth and error mapping', async () => {
      const own = track(await startTestGateway(engine, users.tokens));
      own.gateway.handle(
        'echo',
        Type.Object({ text: Type.String({ maxLength: 10 }) }, { additionalProperties: false }),
        (ctx, d) => {
          if (d.text === 'boom') throw new AppError('CONFLICT', 'boom');
          if (d.text === 'crash') throw new Error('unexpected');
          return { text: d.text, user: ctx.user?.id ?? null };
        },
      );
      own.gateway.handle('whoami', Type.Optional(Type.Object({})), (ctx) => ({ id: ctx.requireUser().id }), {
        auth: true,
      });
      expect(() => own.gateway.handle('join', Type.Object({}), () => undefined)).toThrow('built in');
      expect(() => own.gateway.handle('echo', Type.Object({}), () => undefined)).toThrow('already handled');
      const user = await users.make();
      const anon = track(await WsClient.connect(own.url));
      const signed = track(await WsClient.connect(own.url, { token: user.token }));
      expect(await signed.request('echo', { text: 'hi' })).toEqual({ text: 'hi', user: user.id });
      await expectError(signed.request('echo', { text: 'far too long text' }), 'VALIDATION_FAILED');
      // U+0000 never reaches a handler (PostgreSQL text cannot hold it)
      const nul = await expectError(signed.request('echo', { text: 'a\u0000b' }), 'VALIDATION_FAILED');
      expect(nul.details).toEqual({ path: '/d/text', keyword: 'nul' });
      await expectError(signed.request('echo', { text: 'boom' }), 'CONFLICT');
      await expectError(signed.request('echo', { text: 'crash' }), 'INTERNAL');
      await expectError(anon.request('whoami'), 'UNAUTHENTICATED');
      expect(await signed.request('whoami')).toEqual({ id: user.id });
    });

    it('emits typed connection, join, leave and disconnect events', async () => {
      const own = track(await startTestGateway(engine, users.tokens));
      const seen: string[] = [];
      own.gateway.on('connection', (c) => seen.push(`connection:${c.user?.id ?? 'anon'}`));
      own.gateway.on('join', (_c, room) => seen.push(`join:${room}`));
      own.gateway.on('leave', (_c, room) => seen.push(`leave:${room}`));
      own.gateway.on('disconnect', (_c, code) => seen.push(`disconnect:${code}`));
      const c = await WsClient.connect(own.url);
      await c.request('join', { room: 'stream:ev' });
      await c.close(1000);
      await until(() => seen.length === 4, 5000, 'events');
      expect(seen).toEqual(['connection:anon', 'join:stream:ev', 'leave:stream:ev', 'disconnect:1000']);
    });
  });

  describe('shutdown', () => {
    it('closes every socket with 1001, refuses new ones, and is idempotent', async () => {
      const own = await startTestGateway(engine, users.tokens);
      const user = await users.make();
      const a = await WsClient.connect(own.url, { token: user.token });
      const b = await WsClient.connect(own.url);
      await b.request('join', { room: 'stream:shutdown' });
      await until(async () => (await own.gateway.presenceOf([user.id]))[0]!.online, 5000, 'online');
      const first = own.gateway.close();
      expect(own.gateway.close()).toBe(first);
      await first;
      expect(await a.closed).toBe(CloseCode.GOING_AWAY);
      expect(await b.closed).toBe(CloseCode.GOING_AWAY);
      expect((await own.gateway.presenceOf([user.id]))[0]!.online).toBe(false);
      expect(own.gateway.stats()).toMatchObject({ connections: 0, rooms: 0 });
      await expect(WsClient.connect(own.url)).rejects.toThrow();
      await own.close();
    });
  });
});
