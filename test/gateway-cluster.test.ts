/**
 * The gateway as a cluster on the real Redis (TEST_REDIS_URL, default
 * 127.0.0.1:6379): two instances sharing one key prefix behave as one.
 * Publications cross instances in one gap-free order even with publishers on
 * both sides at once; recovery works across instances and 100 reconnect
 * cycles; presence spans instances; and when a server process is SIGKILLed
 * its users go offline on the survivor by themselves.
 *
 * Every key this run writes starts with a prefix unique to the run and is
 * deleted at the end. Nothing asserts durations; waits poll with generous
 * timeouts (the SIGKILL test logs how long going offline took).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { Gateway } from '../signaling/gateway.js';
import {
  occupancyScript,
  occupantsScript,
  roomKeys,
  roomTouchScript,
  userKeys,
  userPresenceScript,
  userStatusScript,
} from '../signaling/gateway-scripts.js';
import { createEngine } from '../src/platform/engine/create-engine.js';
import type { Engine } from '../src/platform/engine/engine.js';
import { MemoryEngine } from '../src/platform/engine/memory-engine.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { deleteByPrefix, probeRedis } from './support/redis.js';
import { type ServerProcess, startServerProcess } from './support/server-process.js';
import {
  startTestGateway,
  TEST_JWT_SECRET,
  type TestGateway,
  TestUsers,
  until,
  WsClient,
} from './support/ws-client.js';

const prefix = `test:gw:${randomUUID()}:`;
const users = new TestUsers();
const opened: Array<{ close(): Promise<void> | void }> = [];
const track = <T extends { close(): Promise<void> | void }>(thing: T): T => {
  opened.push(thing);
  return thing;
};

function expectContiguous(events: Array<{ seq?: number }>, from: number, to: number): void {
  expect(events.map((e) => e.seq)).toEqual(Array.from({ length: to - from + 1 }, (_, i) => from + i));
}

await describeWithService(
  'redis',
  () => probeRedis(TEST_REDIS_URL),
  () => {
    const engines: Engine[] = [];
    let a: TestGateway;
    let b: TestGateway;

    const newEngine = () => {
      const engine = createEngine({ redisUrl: TEST_REDIS_URL, keyPrefix: prefix });
      engines.push(engine);
      return engine;
    };

    beforeAll(async () => {
      const options = { heartbeatIntervalMs: 500, presenceTtlMs: 1500, roomLingerMs: 200 };
      a = await startTestGateway(newEngine(), users.tokens, options);
      b = await startTestGateway(newEngine(), users.tokens, options);
      for (const gw of [a, b])
        gw.gateway.rooms.register('conv', { authorize: (u) => u !== null }, { presence: true });
    });
    afterEach(async () => {
      for (const thing of opened.splice(0).reverse()) await thing.close();
    });
    afterAll(async () => {
      await a?.close();
      await b?.close();
      for (const engine of engines) await engine.close();
      await deleteByPrefix(TEST_REDIS_URL, prefix);
    });

    it('runs the presence and history scripts the same on Redis as on the in-memory engine', async () => {
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      // Entries lapse after `ttl`; the keys themselves after 3 × ttl. Each wait
      // must land between the two, and a loaded CI box can stretch a timer by
      // far more than a few hundred ms, so the window is wide (1.3 s .. 3 s).
      const ttl = 1000;
      const pastTtl = () => sleep(ttl + 300);
      const scenario = async (engine: Engine) => {
        const out: unknown[] = [];
        const u = userKeys('parity-user');
        const user = async (mode: string, inst = 'i1') => {
          const [transition, maxExpiry] = await engine.run(
            userPresenceScript,
            [u.instances, u.online, u.seen],
            [mode, inst, ttl, 60_000],
          );
          return [transition, maxExpiry > 0];
        };
        out.push(
          await user('up', 'i1'),
          await user('up', 'i2'),
          await user('down', 'i1'),
          await user('down', 'i2'),
        );
        out.push(await user('up', 'i1'));
        await pastTtl();
        out.push(await user('expire'), await user('expire'));
        const [online, seen] = await engine.run(userStatusScript, [u.instances, u.seen], []);
        out.push([online, seen > 0]);
        const r = roomKeys('conv:parity');
        const occ = async (inst: string, add: string[], remove: string[]) => {
          const res = await engine.run(
            occupancyScript,
            [r.occupancy, r.occupancyCounts],
            [inst, ttl, add.length, ...add, ...remove],
          );
          return [Number(res[0]) > 0, ...res.slice(1)];
        };
        out.push(await occ('i1', ['a', 'b'], []), await occ('i2', ['a'], []));
        out.push((await engine.run(occupantsScript, [r.occupancy], [10])).sort());
        out.push(await occ('i1', [], ['a']), await occ('i2', [], ['a']));
        await pastTtl();
        out.push(await occ('i3', [], []));
        const h = roomKeys('stream:parity');
        out.push(await engine.run(roomTouchScript, h.historyKeys, [60_000]));
        await engine.logAppend(h.history, 'x', { maxLen: 10, ttlMs: 1000 });
        out.push(
          await engine.run(roomTouchScript, h.historyKeys, [60_000]),
          (await engine.ttl(h.historyKeys[1])) > 1000,
        );
        return out;
      };
      const memory = new MemoryEngine();
      try {
        const expected = await scenario(memory);
        expect(expected).toEqual([
          [1, true],
          [0, true],
          [0, true],
          [-1, false],
          [1, true],
          [-1, false],
          [0, false],
          [0, true],
          [true, 2, 'a', 'b'],
          [true, 0],
          ['a|i1', 'a|i2', 'b|i1'],
          [true, 0],
          [true, 0, 'a'],
          [false, 0, 'b'],
          0,
          1,
          true,
        ]);
        expect(await scenario(newEngine())).toEqual(expected);
      } finally {
        await memory.close();
      }
    });

    it('delivers a publication made on one instance to clients on both', async () => {
      const room = 'stream:cross';
      const onA = track(await WsClient.connect(a.url));
      const onB = track(await WsClient.connect(b.url));
      await onA.request('join', { room });
      await onB.request('join', { room });
      for (let i = 1; i <= 50; i++) await a.gateway.publish(room, 'n', { n: i });
      for (const client of [onA, onB]) {
        const events = await client.waitForEvents(room, 50);
        expectContiguous(events, 1, 50);
        expect(events.map((e) => (e.d as { n: number }).n)).toEqual(events.map((e) => e.seq));
      }
      const instanceOf = (c: WsClient) => (c.hello?.d as { instance?: string } | undefined)?.instance;
      expect(instanceOf(onA)).not.toBe(instanceOf(onB));
    });

    it('gives every client one gap-free order while both instances publish at once', async () => {
      const room = 'stream:storm';
      const clients = [
        ...(await Promise.all([1, 2, 3].map(() => WsClient.connect(a.url)))),
        ...(await Promise.all([1, 2, 3].map(() => WsClient.connect(b.url)))),
      ];
      for (const c of clients) track(c);
      for (const c of clients) await c.request('join', { room });
      const n = 300;
      // Unawaited bursts: appends and bus publishes of the two instances interleave freely.
      const results = await Promise.all([
        ...Array.from({ length: n }, (_, i) => a.gateway.publish(room, 'n', { from: 'a', i })),
        ...Array.from({ length: n }, (_, i) => b.gateway.publish(room, 'n', { from: 'b', i })),
      ]);
      expect(new Set(results.map((r) => r.seq)).size).toBe(2 * n);
      const reference = (await clients[0]!.waitForEvents(room, 2 * n, 30_000)).map((e) => JSON.stringify(e));
      for (const c of clients) {
        const events = await c.waitForEvents(room, 2 * n, 30_000);
        expectContiguous(events, 1, 2 * n);
        expect(events.map((e) => JSON.stringify(e))).toEqual(reference);
      }
      // Per publisher, publication order is kept.
      const fromA = clients[0]!.events(room).filter((e) => (e.d as { from: string }).from === 'a');
      expect(fromA.map((e) => (e.d as { i: number }).i)).toEqual(Array.from({ length: n }, (_, i) => i));
      await clients[0]!.request('ping');
      expect(clients[0]!.events(room)).toHaveLength(2 * n);
    });

    it('recovers the 500 events a client missed when it reconnects to the other instance', async () => {
      const room = 'stream:recover-500';
      let client = await WsClient.connect(a.url);
      await client.request('join', { room });
      await b.gateway.publish(room, 'n', { n: 1 });
      const [first] = await client.waitForEvents(room, 1);
      await client.close();
      for (let i = 2; i <= 501; i++) await (i % 2 ? a : b).gateway.publish(room, 'n', { n: i });
      client = track(await WsClient.connect(b.url));
      const reply = await client.request('join', { room, lastSeq: first!.seq });
      expect(reply).toEqual({ room, lastSeq: 501, recovered: true, replayed: 500 });
      const events = client.events(room);
      expectContiguous(events, 2, 501);
      expect(events.map((e) => (e.d as { n: number }).n)).toEqual(events.map((e) => e.seq));
      await a.gateway.publish(room, 'n', { n: 502 });
      expectContiguous(await client.waitForEvents(room, 501), 2, 502);
    });

    it('loses and duplicates nothing over 100 reconnect cycles across instances', async () => {
      const room = 'stream:cycles';
      let published = 0;
      const publish = async (via: TestGateway, count: number) => {
        for (let i = 0; i < count; i++) {
          published++;
          await via.gateway.publish(room, 'n', { n: published });
        }
      };
      let client = await WsClient.connect(a.url);
      await client.request('join', { room });
      let lastSeq = 0;
      for (let cycle = 0; cycle < 100; cycle++) {
        const [here, there] = cycle % 2 ? [a, b] : [b, a];
        await client.close();
        await publish(there, 10);
        client = await WsClient.connect(here.url);
        const racing = publish(there, 3);
        const reply = await client.request<{ recovered: boolean; lastSeq: number }>('join', {
          room,
          lastSeq,
        });
        await racing;
        expect(reply.recovered).toBe(true);
        const events = await client.waitForEvents(room, published - lastSeq);
        expectContiguous(events, lastSeq + 1, published);
        expect(events.map((e) => (e.d as { n: number }).n)).toEqual(events.map((e) => e.seq));
        lastSeq = published;
      }
      track(client);
      await client.request('ping');
      expect(client.events(room)).toHaveLength(13);
    });

    it('keeps a user with tabs on both instances online until both close', async () => {
      const [alice, bob] = [await users.make(), await users.make()];
      const watcher = track(await WsClient.connect(b.url, { token: bob.token }));
      const status = async () =>
        (
          await watcher.request<{ users: Array<{ online: boolean; lastSeen: number | null }> }>('presence', {
            users: [alice.id],
          })
        ).users[0]!;
      const tabA = await WsClient.connect(a.url, { token: alice.token });
      const tabB = await WsClient.connect(b.url, { token: alice.token });
      await until(async () => (await status()).online, 10_000, 'online');
      await tabA.close();
      // Long enough for A's entry to lapse had B not kept the user online.
      await new Promise((r) => setTimeout(r, 2500));
      expect((await status()).online).toBe(true);
      await tabB.close();
      await until(async () => !(await status()).online, 10_000, 'offline');
      expect((await status()).lastSeen).toEqual(expect.any(Number));
    });

    it('publishes room presence across instances and lists members from both', async () => {
      const [alice, bob] = [await users.make(), await users.make()];
      const room = `conv:${randomUUID()}`;
      const onA = track(await WsClient.connect(a.url, { token: alice.token }));
      await onA.request('join', { room });
      const onB = await WsClient.connect(b.url, { token: bob.token });
      await onB.request('join', { room });
      expect(
        await onA.waitFor((f) => f.e === 'presence.join' && (f.d as { userId: string }).userId === bob.id),
      ).toMatchObject({ room, d: { userId: bob.id, name: bob.displayName } });
      const list = await onA.request<{ members: Array<{ userId: string; inRoom: boolean }> }>('presence', {
        room,
      });
      expect(list.members.map((m) => m.userId).sort()).toEqual([alice.id, bob.id].sort());
      await onB.close();
      await onA.waitFor((f) => f.e === 'presence.leave' && (f.d as { userId: string }).userId === bob.id);
    });

    it('takes the users of a SIGKILLed server process offline on the survivor within the presence bound', async () => {
      const dirs = [mkdtempSync(join(tmpdir(), 'lcs-gw-')), mkdtempSync(join(tmpdir(), 'lcs-gw-'))];
      const env = (dataDir: string) => ({
        DATA_DIR: dataDir,
        REDIS_URL: TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        JWT_SECRET: TEST_JWT_SECRET,
        WS_HEARTBEAT_INTERVAL_MS: '500',
        WS_PRESENCE_TTL_MS: '1000',
      });
      const procs: ServerProcess[] = [];
      const publisher = new Gateway({ engine: newEngine(), tokens: users.tokens });
      try {
        procs.push(...(await Promise.all(dirs.map((d) => startServerProcess(env(d))))));
        const [victim, survivor] = procs as [ServerProcess, ServerProcess];
        const [alice, bob] = [await users.make(), await users.make()];
        const room = 'stream:sigkill';
        const onVictim = await WsClient.connect(victim.url, { token: alice.token });
        const onSurvivor = track(await WsClient.connect(survivor.url, { token: bob.token }));
        await onVictim.request('join', { room });
        await onSurvivor.request('join', { room });
        // Fan-out through the real entry points: a publication from a third party reaches both processes.
        await publisher.publish(room, 'hello', { n: 1 });
        // (Only the publications: a stream room also carries the servers' own `stream.viewers` counts.)
        await onVictim.waitForEvents(room, 1, 20_000, 'hello');
        await onSurvivor.waitForEvents(room, 1, 20_000, 'hello');
        const status = async () =>
          (
            await onSurvivor.request<{ users: Array<{ online: boolean; lastSeen: number | null }> }>(
              'presence',
              {
                users: [alice.id],
              },
            )
          ).users[0]!;
        await until(async () => (await status()).online, 20_000, 'online');

        const killedAt = Date.now();
        expect(await victim.stop('SIGKILL')).toBeNull();
        await onVictim.closed;
        await until(async () => !(await status()).online, 20_000, 'offline after SIGKILL');
        console.log(
          `gateway: SIGKILLed instance's user offline after ${Date.now() - killedAt} ms (configured bound ${1000 + 250} ms + one round trip)`,
        );
        expect((await status()).lastSeen).toEqual(expect.any(Number));
        // The survivor keeps serving its own clients.
        await publisher.publish(room, 'hello', { n: 2 });
        expectContiguous(await onSurvivor.waitForEvents(room, 2, 20_000, 'hello'), 1, 2);
      } finally {
        await publisher.close();
        for (const p of procs)
          if (p.proc.exitCode === null && p.proc.signalCode === null) await p.stop('SIGTERM');
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
      }
    }, 120_000);
  },
);
