/**
 * Engine port contract: one suite, run unchanged against
 * - MemoryEngine,
 * - RedisEngine on the real Redis at TEST_REDIS_URL (default 127.0.0.1:6379),
 *   under a key prefix unique to this run, whose keys are deleted afterwards.
 *
 * Then Redis-only checks (prefixing on the wire, script cache loss, readiness
 * across a Redis restart on a throwaway redis-server) and MemoryStore checks
 * that need a fake clock, plus a differential run of MemoryStore against raw
 * Redis commands.
 *
 * Timing: expiry is exercised with short TTLs and polled with generous
 * timeouts; no test asserts how long anything took.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../src/platform/engine/create-engine.js';
import type { Engine, EngineScript } from '../src/platform/engine/engine.js';
import { logKeys } from '../src/platform/engine/engine-scripts.js';
import { EngineClosedError } from '../src/platform/engine/engine-support.js';
import { MemoryEngine } from '../src/platform/engine/memory-engine.js';
import { MemoryStore } from '../src/platform/engine/memory-store.js';
import { RedisEngine } from '../src/platform/engine/redis-engine.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { deleteByPrefix, probeRedis } from './support/redis.js';

const POLL = { timeout: 10_000, interval: 20 };

/** Every Redis key this run writes starts with this; all of them are deleted at the end. */
const runPrefix = `test:${randomUUID()}:`;

// ---- scripts used by the contract ------------------------------------------------

/**
 * Takes `n` units of stock for a user if enough is left and the user stays
 * within a per-user limit. KEYS: stock counter, per-user hash. ARGV: user, n,
 * limit. Returns [status, stock left].
 */
const takeScript: EngineScript<[status: string, left: number]> = {
  name: 'test.take',
  keys: 2,
  lua: `
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[2])
local taken = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if taken + n > tonumber(ARGV[3]) then return {'limit', stock} end
if stock < n then return {'sold_out', stock} end
local left = redis.call('INCRBY', KEYS[1], -n)
redis.call('HINCRBY', KEYS[2], ARGV[1], n)
return {'ok', left}
`,
  memory(store, [stockKey, takenKey], [user, nArg, limitArg]) {
    const stock = Number(store.get(stockKey!) ?? '0');
    const n = Number(nArg);
    const taken = Number(store.hget(takenKey!, user!) ?? '0');
    if (taken + n > Number(limitArg)) return ['limit', stock];
    if (stock < n) return ['sold_out', stock];
    const left = store.incrby(stockKey!, -n);
    store.hincrby(takenKey!, user!, n);
    return ['ok', left];
  },
};

/** Sum of the values of a hash and its field count. KEYS: hash. */
const hashTotalScript: EngineScript<[sum: number, fields: number]> = {
  name: 'test.hashTotal',
  keys: 1,
  lua: `
local flat = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 2, #flat, 2 do sum = sum + tonumber(flat[i]) end
return {sum, #flat / 2}
`,
  memory(store, [key]) {
    let sum = 0;
    const all = store.hgetall(key!);
    for (const value of all.values()) sum += Number(value);
    return [sum, all.size];
  },
};

/** Returns a nested reply with a nil inside (Lua false). */
const shapesScript: EngineScript = {
  name: 'test.shapes',
  keys: 0,
  lua: `return {1, 'two', {3, false}, ARGV[1]}`,
  memory(_store, _keys, [arg]) {
    return [1, 'two', [3, null], arg!];
  },
};

/** GET on whatever is at KEYS[1]; used to see WRONGTYPE from inside a script. */
const getScript: EngineScript<string | null> = {
  name: 'test.get',
  keys: 1,
  lua: `return redis.call('GET', KEYS[1])`,
  memory(store, [key]) {
    return store.get(key!);
  },
};

// ---- the contract ------------------------------------------------------------------

interface ContractTarget {
  kind: 'memory' | 'redis';
  /** A fresh engine over its own, empty keyspace and channels. */
  open(): Engine;
  /** Another engine on the same keyspace and channels as `engine` (memory: the same instance). */
  peer(engine: Engine): Engine;
}

/** Collects messages of one subscription so a test can wait for them. */
function collector() {
  const messages: Array<{ message: string; channel: string }> = [];
  return {
    messages,
    handler: (message: string, channel: string) => {
      messages.push({ message, channel });
    },
    texts: () => messages.map((m) => m.message),
  };
}

function engineContract(name: string, target: ContractTarget): void {
  describe(`Engine contract: ${name}`, () => {
    const opened: Engine[] = [];
    const open = () => {
      const engine = target.open();
      opened.push(engine);
      return engine;
    };
    const peerOf = (engine: Engine) => {
      const peer = target.peer(engine);
      opened.push(peer);
      return peer;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((e) => e.close()));
    });

    it('reports its kind and is ready', async () => {
      const engine = open();
      expect(engine.kind).toBe(target.kind);
      await engine.check();
    });

    describe('strings', () => {
      it('gets and sets, overwriting', async () => {
        const engine = open();
        expect(await engine.get('a')).toBeNull();
        expect(await engine.set('a', 'one')).toBe(true);
        expect(await engine.get('a')).toBe('one');
        expect(await engine.set('a', 'two')).toBe(true);
        expect(await engine.get('a')).toBe('two');
        expect(await engine.set('a', '')).toBe(true);
        expect(await engine.get('a')).toBe('');
      });

      it('keeps unicode and binary-looking text intact', async () => {
        const engine = open();
        const value = 'héllo 🌍 \u0000 \n {"a":1}';
        await engine.set('u', value);
        expect(await engine.get('u')).toBe(value);
      });

      it('sets only if absent (NX)', async () => {
        const engine = open();
        expect(await engine.set('nx', 'first', { onlyIfAbsent: true })).toBe(true);
        expect(await engine.set('nx', 'second', { onlyIfAbsent: true })).toBe(false);
        expect(await engine.get('nx')).toBe('first');
        expect(await engine.set('nx-ttl', 'v', { onlyIfAbsent: true, ttlMs: 60_000 })).toBe(true);
        expect(await engine.set('nx-ttl', 'w', { onlyIfAbsent: true, ttlMs: 60_000 })).toBe(false);
        expect(await engine.get('nx-ttl')).toBe('v');
      });

      it('expires a key after its TTL', async () => {
        const engine = open();
        await engine.set('t', 'v', { ttlMs: 100 });
        const ttl = await engine.ttl('t');
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(100);
        await expect.poll(() => engine.get('t'), POLL).toBeNull();
        expect(await engine.ttl('t')).toBe(-2);
        // Expired counts as absent for NX.
        expect(await engine.set('t', 'again', { onlyIfAbsent: true })).toBe(true);
      });

      it('reports -2 for a missing key and -1 without expiry; a plain set clears a TTL', async () => {
        const engine = open();
        expect(await engine.ttl('none')).toBe(-2);
        await engine.set('p', 'v');
        expect(await engine.ttl('p')).toBe(-1);
        await engine.set('p', 'v', { ttlMs: 60_000 });
        expect(await engine.ttl('p')).toBeGreaterThan(0);
        await engine.set('p', 'w');
        expect(await engine.ttl('p')).toBe(-1);
      });

      it('rejects a TTL that is not a positive integer', async () => {
        const engine = open();
        await expect(engine.set('bad', 'v', { ttlMs: 0 })).rejects.toThrow(RangeError);
        await expect(engine.set('bad', 'v', { ttlMs: 1.5 })).rejects.toThrow(RangeError);
        expect(await engine.get('bad')).toBeNull();
      });

      it('deletes keys of any type and counts the ones that existed', async () => {
        const engine = open();
        await engine.set('d1', 'x');
        await engine.set('d2', 'y');
        await engine.zAdd('d3', [[1, 'm']]);
        expect(await engine.del('d1', 'd2', 'd3', 'missing')).toBe(3);
        expect(await engine.get('d1')).toBeNull();
        expect(await engine.zCard('d3')).toBe(0);
        expect(await engine.del('d1')).toBe(0);
        expect(await engine.del()).toBe(0);
      });

      it('answers WRONGTYPE for a key of another type', async () => {
        const engine = open();
        await engine.zAdd('z', [[1, 'm']]);
        await expect(engine.get('z')).rejects.toThrow(/^WRONGTYPE/);
        await expect(engine.incrBy('z', 1)).rejects.toThrow(/WRONGTYPE/);
      });
    });

    describe('counters', () => {
      it('increments from zero, by any integer', async () => {
        const engine = open();
        expect(await engine.incrBy('c', 1)).toBe(1);
        expect(await engine.incrBy('c', 5)).toBe(6);
        expect(await engine.incrBy('c', -10)).toBe(-4);
        expect(await engine.get('c')).toBe('-4');
        expect(await engine.ttl('c')).toBe(-1);
      });

      it('rejects a non-integer increment or a non-integer value', async () => {
        const engine = open();
        await expect(engine.incrBy('c', 1.5)).rejects.toThrow(RangeError);
        await engine.set('text', 'abc');
        await expect(engine.incrBy('text', 1)).rejects.toThrow(/not an integer/);
        await engine.set('float', '1.5');
        await expect(engine.incrBy('float', 1)).rejects.toThrow(/not an integer/);
      });

      it('uses a fixed window: the TTL set on creation is not extended by later increments', async () => {
        const engine = open();
        expect(await engine.incrBy('w', 1, 150)).toBe(1);
        const first = await engine.ttl('w');
        expect(first).toBeGreaterThan(0);
        expect(first).toBeLessThanOrEqual(150);
        expect(await engine.incrBy('w', 1, 60_000)).toBe(2);
        expect(await engine.ttl('w')).toBeLessThanOrEqual(150);
        await expect.poll(() => engine.ttl('w'), POLL).toBe(-2);
        expect(await engine.incrBy('w', 1, 60_000)).toBe(1);
        expect(await engine.ttl('w')).toBeGreaterThan(150);
      });

      it('gives a counter without expiry a window on the next increment with a TTL', async () => {
        const engine = open();
        await engine.incrBy('heal', 3);
        expect(await engine.ttl('heal')).toBe(-1);
        expect(await engine.incrBy('heal', 1, 60_000)).toBe(4);
        expect(await engine.ttl('heal')).toBeGreaterThan(0);
      });
    });

    describe('sorted sets', () => {
      it('adds, updates, scores and counts', async () => {
        const engine = open();
        await engine.zAdd('s', [
          [3, 'c'],
          [1, 'a'],
          [2, 'b'],
        ]);
        expect(await engine.zCard('s')).toBe(3);
        expect(await engine.zScore('s', 'a')).toBe(1);
        expect(await engine.zScore('s', 'nope')).toBeNull();
        expect(await engine.zScore('missing', 'a')).toBeNull();
        await engine.zAdd('s', [[10, 'a']]);
        expect(await engine.zScore('s', 'a')).toBe(10);
        expect(await engine.zCard('s')).toBe(3);
        await engine.zAdd('s', []);
        expect(await engine.zCard('s')).toBe(3);
      });

      it('keeps fractional, negative and infinite scores exactly', async () => {
        const engine = open();
        await engine.zAdd('f', [
          [0.1, 'tenth'],
          [-2.5, 'neg'],
          [Number.POSITIVE_INFINITY, 'top'],
          [Number.NEGATIVE_INFINITY, 'bottom'],
          [1_700_000_000_123, 'ms'],
          [2 ** 53, 'big'],
        ]);
        expect(await engine.zScore('f', 'tenth')).toBe(0.1);
        expect(await engine.zScore('f', 'neg')).toBe(-2.5);
        expect(await engine.zScore('f', 'top')).toBe(Number.POSITIVE_INFINITY);
        expect(await engine.zScore('f', 'ms')).toBe(1_700_000_000_123);
        expect(await engine.zScore('f', 'big')).toBe(2 ** 53);
        const all = await engine.zRangeByScore('f', Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY);
        expect(all).toEqual([
          { member: 'bottom', score: Number.NEGATIVE_INFINITY },
          { member: 'neg', score: -2.5 },
          { member: 'tenth', score: 0.1 },
          { member: 'ms', score: 1_700_000_000_123 },
          { member: 'big', score: 2 ** 53 },
          { member: 'top', score: Number.POSITIVE_INFINITY },
        ]);
        await expect(engine.zAdd('f', [[Number.NaN, 'nan']])).rejects.toThrow(RangeError);
      });

      it('ranges by score inclusively, ties by member, with a limit', async () => {
        const engine = open();
        await engine.zAdd('r', [
          [5, 'e'],
          [1, 'a'],
          [3, 'd'],
          [3, 'c'],
          [2, 'b'],
        ]);
        expect(await engine.zRangeByScore('r', 2, 3)).toEqual([
          { member: 'b', score: 2 },
          { member: 'c', score: 3 },
          { member: 'd', score: 3 },
        ]);
        expect(await engine.zRangeByScore('r', 0, 100, 2)).toEqual([
          { member: 'a', score: 1 },
          { member: 'b', score: 2 },
        ]);
        expect(await engine.zRangeByScore('r', 3, 3, 1)).toEqual([{ member: 'c', score: 3 }]);
        expect(await engine.zRangeByScore('r', 0, 100, 0)).toEqual([]);
        expect(await engine.zRangeByScore('r', 4, 2)).toEqual([]);
        expect(await engine.zRangeByScore('r', 6, Number.POSITIVE_INFINITY)).toEqual([]);
        expect(await engine.zRangeByScore('missing', 0, 10)).toEqual([]);
      });

      it('removes members and score ranges; an emptied set disappears', async () => {
        const engine = open();
        await engine.zAdd('x', [
          [1, 'a'],
          [2, 'b'],
          [3, 'c'],
          [4, 'd'],
        ]);
        expect(await engine.zRem('x', 'a', 'zz')).toBe(1);
        expect(await engine.zRem('x')).toBe(0);
        expect(await engine.zRemRangeByScore('x', 2, 3)).toBe(2);
        expect(await engine.zRangeByScore('x', Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY)).toEqual([
          { member: 'd', score: 4 },
        ]);
        expect(await engine.zRemRangeByScore('x', Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY)).toBe(
          1,
        );
        expect(await engine.zCard('x')).toBe(0);
        expect(await engine.ttl('x')).toBe(-2);
        expect(await engine.zRem('missing', 'a')).toBe(0);
        expect(await engine.zRemRangeByScore('missing', 0, 1)).toBe(0);
      });
    });

    describe('sequenced log', () => {
      const opts = { maxLen: 100, ttlMs: 60_000 };

      it('numbers entries 1, 2, 3 ... and reads them back in order', async () => {
        const engine = open();
        const seqs: number[] = [];
        for (const data of ['a', 'b:with:colons', '', '🎉 {"x":1}'])
          seqs.push(await engine.logAppend('room', data, opts));
        expect(seqs).toEqual([1, 2, 3, 4]);
        expect(await engine.logRead('room', 0, 100)).toEqual({
          entries: [
            { seq: 1, data: 'a' },
            { seq: 2, data: 'b:with:colons' },
            { seq: 3, data: '' },
            { seq: 4, data: '🎉 {"x":1}' },
          ],
          lastSeq: 4,
          truncated: false,
        });
        // Separate logs count separately.
        expect(await engine.logAppend('other', 'x', opts)).toBe(1);
      });

      it('keeps sequence numbers unique under concurrent appends', async () => {
        const engine = open();
        const seqs = await Promise.all(
          Array.from({ length: 200 }, (_, i) => engine.logAppend('busy', `m${i}`, opts)),
        );
        expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
        const read = await engine.logRead('busy', 0, 1000);
        expect(read.entries).toHaveLength(100);
        expect(read.entries.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 101));
      });

      it('reads after a sequence number, at most `limit` entries', async () => {
        const engine = open();
        for (let i = 1; i <= 5; i++) await engine.logAppend('l', `m${i}`, opts);
        const page1 = await engine.logRead('l', 0, 2);
        expect(page1.entries.map((e) => e.seq)).toEqual([1, 2]);
        expect(page1.lastSeq).toBe(5);
        const page2 = await engine.logRead('l', 2, 2);
        expect(page2.entries).toEqual([
          { seq: 3, data: 'm3' },
          { seq: 4, data: 'm4' },
        ]);
        expect((await engine.logRead('l', 4, 2)).entries.map((e) => e.seq)).toEqual([5]);
        expect(await engine.logRead('l', 5, 10)).toEqual({ entries: [], lastSeq: 5, truncated: false });
        expect(await engine.logRead('l', 0, 0)).toEqual({ entries: [], lastSeq: 5, truncated: false });
        await expect(engine.logRead('l', -1, 10)).rejects.toThrow(RangeError);
      });

      it('trims to maxLen and says when a reader missed trimmed entries', async () => {
        const engine = open();
        for (let i = 1; i <= 10; i++) await engine.logAppend('t', `m${i}`, { maxLen: 3, ttlMs: 60_000 });
        const all = await engine.logRead('t', 0, 100);
        expect(all.entries.map((e) => e.seq)).toEqual([8, 9, 10]);
        expect(all.lastSeq).toBe(10);
        expect(all.truncated).toBe(true);
        expect((await engine.logRead('t', 6, 100)).truncated).toBe(true);
        // Seq 8 is the oldest kept: a reader at 7 misses nothing.
        const caughtUp = await engine.logRead('t', 7, 100);
        expect(caughtUp.truncated).toBe(false);
        expect(caughtUp.entries.map((e) => e.seq)).toEqual([8, 9, 10]);
        expect(await engine.logRead('t', 10, 100)).toEqual({ entries: [], lastSeq: 10, truncated: false });
      });

      it('reads an absent log as empty, and a cursor beyond it as truncated', async () => {
        const engine = open();
        expect(await engine.logRead('nothing', 0, 10)).toEqual({ entries: [], lastSeq: 0, truncated: false });
        expect(await engine.logRead('nothing', 5, 10)).toEqual({ entries: [], lastSeq: 0, truncated: true });
      });

      it('expires the whole log ttlMs after the last append', async () => {
        const engine = open();
        const [seqKey, entriesKey] = logKeys('gone');
        await engine.logAppend('gone', 'a', { maxLen: 10, ttlMs: 60_000 });
        await engine.logAppend('gone', 'b', { maxLen: 10, ttlMs: 120 });
        for (const key of [seqKey, entriesKey]) {
          const ttl = await engine.ttl(key);
          expect(ttl).toBeGreaterThan(0);
          expect(ttl).toBeLessThanOrEqual(120);
        }
        await expect
          .poll(() => engine.logRead('gone', 0, 10), POLL)
          .toEqual({
            entries: [],
            lastSeq: 0,
            truncated: false,
          });
        // A reader that had seen seq 2 learns that the log restarted.
        expect((await engine.logRead('gone', 2, 10)).truncated).toBe(true);
        expect(await engine.logAppend('gone', 'c', opts)).toBe(1);
      });

      it('keeps a hash tag the key already has, otherwise makes the key the tag', () => {
        expect(logKeys('room:7')).toEqual(['{room:7}:seq', '{room:7}:log']);
        expect(logKeys('{room:7}:history')).toEqual(['{room:7}:history:seq', '{room:7}:history:log']);
        expect(logKeys('odd{}key')).toEqual(['{odd{}key}:seq', '{odd{}key}:log']);
      });

      it('rejects a maxLen or ttl that is not a positive integer', async () => {
        const engine = open();
        await expect(engine.logAppend('v', 'x', { maxLen: 0, ttlMs: 1000 })).rejects.toThrow(RangeError);
        await expect(engine.logAppend('v', 'x', { maxLen: 5, ttlMs: 0 })).rejects.toThrow(RangeError);
        expect((await engine.logRead('v', 0, 10)).lastSeq).toBe(0);
      });
    });

    describe('scripts', () => {
      const stock = '{sale:1}:stock';
      const taken = '{sale:1}:taken';

      it('takes stock within per-user limits', async () => {
        const engine = open();
        await engine.set(stock, '5');
        const take = (user: string, n: number) => engine.run(takeScript, [stock, taken], [user, n, 2]);
        expect(await take('ann', 1)).toEqual(['ok', 4]);
        expect(await take('ann', 2)).toEqual(['limit', 4]);
        expect(await take('bob', 2)).toEqual(['ok', 2]);
        expect(await take('cid', 3)).toEqual(['limit', 2]);
        expect(await take('cid', 2)).toEqual(['ok', 0]);
        expect(await take('dan', 1)).toEqual(['sold_out', 0]);
        expect(await engine.get(stock)).toBe('0');
        expect(await engine.run(hashTotalScript, [taken], [])).toEqual([5, 3]);
      });

      it('never oversells under 500 concurrent calls', async () => {
        const engine = open();
        await engine.set(stock, '250');
        const users = Array.from({ length: 100 }, (_, i) => `user${i}`);
        const calls = Array.from({ length: 500 }, (_, i) =>
          engine.run(takeScript, [stock, taken], [users[i % users.length]!, 1, 3]),
        );
        const results = await Promise.all(calls);
        const ok = results.filter(([status]) => status === 'ok');
        expect(ok).toHaveLength(250);
        // Each successful call saw a distinct stock level: the calls were serialized.
        expect(new Set(ok.map(([, left]) => left)).size).toBe(250);
        expect(Math.min(...ok.map(([, left]) => left))).toBe(0);
        // Everyone else was refused for a reason, and nobody went over the limit.
        expect(results.filter(([status]) => status === 'limit' || status === 'sold_out')).toHaveLength(250);
        const perUser = new Map<string, number>();
        results.forEach(([status], i) => {
          if (status === 'ok')
            perUser.set(users[i % users.length]!, (perUser.get(users[i % users.length]!) ?? 0) + 1);
        });
        expect(Math.max(...perUser.values())).toBeLessThanOrEqual(3);
        expect(await engine.get(stock)).toBe('0');
        expect(await engine.run(hashTotalScript, [taken], [])).toEqual([250, 100]);
      });

      it('returns nested arrays, strings, integers and nil the same way', async () => {
        const engine = open();
        expect(await engine.run(shapesScript, [], ['x:y'])).toEqual([1, 'two', [3, null], 'x:y']);
        expect(await engine.run(getScript, ['absent'], [])).toBeNull();
      });

      it('rejects a wrong number of keys, and passes on errors raised inside the script', async () => {
        const engine = open();
        await expect(engine.run(takeScript, [stock], ['u', 1, 1])).rejects.toThrow(/takes 2 key/);
        await engine.zAdd('zs', [[1, 'm']]);
        await expect(engine.run(getScript, ['zs'], [])).rejects.toThrow(/WRONGTYPE/);
      });
    });

    describe('pub/sub', () => {
      it('delivers to a subscriber on another instance with the channel name as given', async () => {
        const engine = open();
        const peer = peerOf(engine);
        const got = collector();
        await engine.subscribe('room:1', got.handler);
        await peer.publish('room:1', 'hello');
        await expect.poll(() => got.messages, POLL).toEqual([{ message: 'hello', channel: 'room:1' }]);
      });

      it('keeps publish order and reaches every handler', async () => {
        const engine = open();
        const peer = peerOf(engine);
        const a = collector();
        const b = collector();
        await engine.subscribe('ord', a.handler);
        await peer.subscribe('ord', b.handler);
        const sent = Array.from({ length: 20 }, (_, i) => `m${i}`);
        for (const m of sent) await engine.publish('ord', m);
        await expect.poll(() => a.texts(), POLL).toEqual(sent);
        await expect.poll(() => b.texts(), POLL).toEqual(sent);
      });

      it('stops delivering to an unsubscribed handler, not to the others', async () => {
        const engine = open();
        const peer = peerOf(engine);
        const gone = collector();
        const stays = collector();
        const unsubscribe = await engine.subscribe('u', gone.handler);
        await engine.subscribe('u', stays.handler);
        await peer.publish('u', 'before');
        await expect.poll(() => gone.texts(), POLL).toEqual(['before']);
        await unsubscribe();
        await unsubscribe();
        await peer.publish('u', 'after');
        await peer.publish('u', 'marker');
        // Same connection, in order: once the marker is here, 'after' would have been too.
        await expect.poll(() => stays.texts(), POLL).toEqual(['before', 'after', 'marker']);
        expect(gone.texts()).toEqual(['before']);
      });

      it('treats the same function subscribed twice as two subscriptions', async () => {
        const engine = open();
        const got = collector();
        const first = await engine.subscribe('twice', got.handler);
        await engine.subscribe('twice', got.handler);
        await engine.publish('twice', 'a');
        await expect.poll(() => got.texts(), POLL).toEqual(['a', 'a']);
        await first();
        await engine.publish('twice', 'b');
        await expect.poll(() => got.texts(), POLL).toEqual(['a', 'a', 'b']);
      });

      it('resubscribes cleanly after the last handler left', async () => {
        const engine = open();
        const got = collector();
        const off = await engine.subscribe('again', got.handler);
        await off();
        await engine.subscribe('again', got.handler);
        await engine.publish('again', 'x');
        await expect.poll(() => got.texts(), POLL).toEqual(['x']);
      });

      it('survives a handler that throws', async () => {
        const engine = open();
        const got = collector();
        await engine.subscribe('boom', () => {
          throw new Error('handler bug');
        });
        await engine.subscribe('boom', got.handler);
        await engine.publish('boom', 'still delivered');
        await expect.poll(() => got.texts(), POLL).toEqual(['still delivered']);
      });
    });

    it('isolates separate engines (separate prefixes on Redis)', async () => {
      const a = open();
      const b = open();
      await a.set('shared-name', 'from a');
      expect(await b.get('shared-name')).toBeNull();
      const gotA = collector();
      const gotB = collector();
      await a.subscribe('ch', gotA.handler);
      await b.subscribe('ch', gotB.handler);
      await b.publish('ch', 'for b');
      await expect.poll(() => gotB.texts(), POLL).toEqual(['for b']);
      await a.publish('ch', 'for a');
      await expect.poll(() => gotA.texts(), POLL).toEqual(['for a']);
      expect(gotB.texts()).toEqual(['for b']);
    });

    it('rejects every call after close, and closes idempotently', async () => {
      const engine = open();
      const off = await engine.subscribe('c', () => {});
      await engine.close();
      await engine.close();
      const calls: Array<() => Promise<unknown>> = [
        () => engine.get('k'),
        () => engine.set('k', 'v'),
        () => engine.del('k'),
        () => engine.ttl('k'),
        () => engine.incrBy('k', 1),
        () => engine.zAdd('z', [[1, 'm']]),
        () => engine.zRangeByScore('z', 0, 1),
        () => engine.logAppend('l', 'x', { maxLen: 1, ttlMs: 1000 }),
        () => engine.logRead('l', 0, 1),
        () => engine.run(getScript, ['k'], []),
        () => engine.publish('c', 'm'),
        () => engine.subscribe('c', () => {}),
        () => engine.check(),
      ];
      for (const call of calls) await expect(call()).rejects.toThrow(EngineClosedError);
      await expect(engine.get('k')).rejects.toThrow(/closed/);
      // Unsubscribing during shutdown must not throw.
      await off();
    });
  });
}

// ---- memory ------------------------------------------------------------------------

engineContract('memory', {
  kind: 'memory',
  open: () => new MemoryEngine({ keyPrefix: 'test:' }),
  peer: (engine) => engine,
});

describe('MemoryEngine specifics', () => {
  it('never delivers inside publish()', async () => {
    const engine = new MemoryEngine();
    const got = collector();
    await engine.subscribe('a', got.handler);
    const publishing = engine.publish('a', 'm');
    expect(got.messages).toEqual([]);
    await publishing;
    expect(got.messages).toEqual([]);
    await expect.poll(() => got.texts(), POLL).toEqual(['m']);
    await engine.close();
  });

  it('refuses a memory twin that returns what Redis could not', async () => {
    const engine = new MemoryEngine();
    const floaty: EngineScript<number> = {
      name: 'test.floaty',
      keys: 0,
      lua: 'return 1.5',
      memory: () => 1.5,
    };
    await expect(engine.run(floaty, [], [])).rejects.toThrow(/truncate/);
    await engine.close();
  });

  it('createEngine picks memory without a URL and Redis with one', async () => {
    const memory = createEngine({ keyPrefix: 'x:' });
    expect(memory.kind).toBe('memory');
    await memory.close();
    const redis = createEngine({ redisUrl: 'redis://127.0.0.1:1/0', keyPrefix: 'x:' });
    expect(redis.kind).toBe('redis');
    await redis.close();
  });
});

describe('MemoryStore', () => {
  function storeAt(start = 1_000_000) {
    let now = start;
    const store = new MemoryStore({ now: () => now, sweepIntervalMs: 0 });
    return { store, advance: (ms: number) => (now += ms) };
  }

  it('expires lazily against the injected clock, at the deadline and not before', () => {
    const { store, advance } = storeAt();
    expect(store.set('k', 'v', { px: 100 })).toBe('OK');
    advance(100);
    expect(store.pttl('k')).toBe(0);
    expect(store.get('k')).toBe('v');
    advance(1);
    expect(store.get('k')).toBeNull();
    expect(store.pttl('k')).toBe(-2);
    expect(store.dbsize()).toBe(0);
  });

  it('sweeps expired keys nobody reads', () => {
    const { store, advance } = storeAt();
    store.set('a', '1', { px: 10 });
    store.hset('h', 'f', 1);
    store.pexpire('h', 10);
    store.set('keep', '1');
    expect(store.dbsize()).toBe(3);
    advance(11);
    expect(store.dbsize()).toBe(3);
    expect(store.sweep()).toBe(2);
    expect(store.dbsize()).toBe(1);
  });

  it('freezes the clock inside atomic()', () => {
    let now = 0;
    const store = new MemoryStore({ now: () => now++, sweepIntervalMs: 0 });
    store.atomic((at) => {
      expect(store.now()).toBe(at);
      expect(store.now()).toBe(at);
    });
    store.stop();
  });

  it('answers like Redis for expiry edge cases', () => {
    const { store } = storeAt();
    expect(store.pexpire('none', 100)).toBe(0);
    store.set('k', 'v');
    expect(store.persist('k')).toBe(0);
    expect(store.pexpire('k', 100)).toBe(1);
    expect(store.persist('k')).toBe(1);
    expect(store.pttl('k')).toBe(-1);
    expect(store.pexpire('k', 0)).toBe(1);
    expect(store.exists('k')).toBe(0);
    store.set('k', 'v', { px: 100 });
    store.incrby('c', 1);
    store.set('k', 'w', { keepTtl: true });
    expect(store.pttl('k')).toBe(100);
    expect(() => store.set('k', 'v', { px: 0 })).toThrow("ERR invalid expire time in 'set' command");
  });

  it('has Redis type rules', () => {
    const { store } = storeAt();
    store.hset('h', 'f', 'v');
    expect(() => store.get('h')).toThrow(/^WRONGTYPE/);
    expect(() => store.zadd('h', 1, 'm')).toThrow(/^WRONGTYPE/);
    expect(store.type('h')).toBe('hash');
    expect(store.set('h', 'now a string')).toBe('OK');
    expect(store.type('h')).toBe('string');
    expect(store.hdel('missing', 'f')).toBe(0);
    store.hset('h2', 'a', 1, 'b', 2);
    expect(store.hdel('h2', 'a', 'b', 'c')).toBe(2);
    expect(store.exists('h2')).toBe(0);
  });

  it('supports ZADD options', () => {
    const { store } = storeAt();
    expect(store.zadd('z', 5, 'a')).toBe(1);
    expect(store.zadd('z', [[1, 'a']], { nx: true })).toBe(0);
    expect(store.zscore('z', 'a')).toBe(5);
    expect(store.zadd('z', [[1, 'b']], { xx: true })).toBe(0);
    expect(store.zscore('z', 'b')).toBeNull();
    expect(store.zadd('z', [[3, 'a']], { gt: true, ch: true })).toBe(0);
    expect(store.zadd('z', [[7, 'a']], { gt: true, ch: true })).toBe(1);
    expect(store.zadd('z', [[2, 'a']], { lt: true })).toBe(0);
    expect(store.zscore('z', 'a')).toBe(2);
    expect(store.zadd('nope', [[1, 'a']], { xx: true })).toBe(0);
    expect(store.exists('nope')).toBe(0);
  });
});

// ---- differential: MemoryStore against raw Redis ----------------------------------------

type Step = [command: string, ...args: Array<string | number>];

/** Applies one raw command to a MemoryStore and shapes the reply like ioredis would. */
function applyToStore(store: MemoryStore, [command, ...args]: Step): unknown {
  const s = args.map(String);
  const scored = (rows: Array<{ member: string; score: number }>) =>
    rows.flatMap((r) => [r.member, String(r.score)]);
  switch (command) {
    case 'GET':
      return store.get(s[0]!);
    case 'SET':
      return store.set(s[0]!, s[1]!, {
        nx: s.includes('NX'),
        px: s.includes('PX') ? Number(s[s.indexOf('PX') + 1]) : undefined,
      });
    case 'INCRBY':
      return store.incrby(s[0]!, Number(s[1]));
    case 'DEL':
      return store.del(...s);
    case 'EXISTS':
      return store.exists(...s);
    case 'HSET':
      return store.hset(s[0]!, s[1]!, s[2]!, ...s.slice(3));
    case 'HGET':
      return store.hget(s[0]!, s[1]!);
    case 'HINCRBY':
      return store.hincrby(s[0]!, s[1]!, Number(s[2]));
    case 'HDEL':
      return store.hdel(s[0]!, ...s.slice(1));
    case 'HLEN':
      return store.hlen(s[0]!);
    case 'HGETALL':
      return [...store.hgetall(s[0]!)].flat();
    case 'ZADD':
      return store.zadd(
        s[0]!,
        s.slice(1).flatMap((v, i, all) => (i % 2 === 0 ? [[Number(v), all[i + 1]!] as const] : [])),
      );
    case 'ZREM':
      return store.zrem(s[0]!, ...s.slice(1));
    case 'ZSCORE': {
      const score = store.zscore(s[0]!, s[1]!);
      return score === null ? null : String(score);
    }
    case 'ZCARD':
      return store.zcard(s[0]!);
    case 'ZRANGEBYSCORE': {
      const limit = s.includes('LIMIT')
        ? { offset: Number(s[s.indexOf('LIMIT') + 1]), count: Number(s[s.indexOf('LIMIT') + 2]) }
        : undefined;
      return scored(store.zrangebyscore(s[0]!, s[1]!, s[2]!, limit ? { limit } : {}));
    }
    case 'ZRANGE':
      return scored(store.zrange(s[0]!, Number(s[1]), Number(s[2])));
    case 'ZREMRANGEBYSCORE':
      return store.zremrangebyscore(s[0]!, s[1]!, s[2]!);
    case 'ZREMRANGEBYRANK':
      return store.zremrangebyrank(s[0]!, Number(s[1]), Number(s[2]));
    case 'PEXPIRE':
      return store.pexpire(s[0]!, Number(s[1]));
    case 'PTTL':
      return store.pttl(s[0]!);
    case 'PERSIST':
      return store.persist(s[0]!);
    default:
      throw new Error(`no mapping for ${command}`);
  }
}

const steps: Step[] = [
  ['SET', 's', 'v'],
  ['GET', 's'],
  ['SET', 's', 'w', 'NX'],
  ['INCRBY', 's', 1],
  ['INCRBY', 'n', 5],
  ['INCRBY', 'n', -7],
  ['SET', 'n2', '007'],
  ['INCRBY', 'n2', 1],
  ['GET', 'n'],
  ['HSET', 'h', 'a', '1', 'b', '2'],
  ['HSET', 'h', 'a', '3', 'c', '4'],
  ['HGET', 'h', 'a'],
  ['HINCRBY', 'h', 'a', 10],
  ['HINCRBY', 'h', 'new', -1],
  ['HINCRBY', 'h', 'a', 0],
  ['HSET', 'h', 'x', 'text'],
  ['HINCRBY', 'h', 'x', 1],
  ['HLEN', 'h'],
  ['HGETALL', 'h'],
  ['HDEL', 'h', 'a', 'zz'],
  ['GET', 'h'],
  ['INCRBY', 'h', 1],
  ['ZADD', 'z', 3, 'c', 1, 'a', 2, 'b', 2, 'bb', 1, 'a'],
  ['ZADD', 'z', 5, 'a'],
  ['ZSCORE', 'z', 'a'],
  ['ZSCORE', 'z', 'missing'],
  ['ZCARD', 'z'],
  ['ZRANGEBYSCORE', 'z', '-inf', '+inf', 'WITHSCORES'],
  ['ZRANGEBYSCORE', 'z', '(2', '5', 'WITHSCORES'],
  ['ZRANGEBYSCORE', 'z', '2', '(5', 'WITHSCORES', 'LIMIT', 1, 2],
  ['ZRANGEBYSCORE', 'z', '-inf', '+inf', 'WITHSCORES', 'LIMIT', 1, -1],
  ['ZRANGEBYSCORE', 'z', '-inf', '+inf', 'WITHSCORES', 'LIMIT', -1, 2],
  ['ZRANGEBYSCORE', 'z', '5', '1', 'WITHSCORES'],
  ['ZRANGEBYSCORE', 'z', 'x', '1', 'WITHSCORES'],
  ['ZRANGE', 'z', 0, 0, 'WITHSCORES'],
  ['ZRANGE', 'z', -2, -1, 'WITHSCORES'],
  ['ZRANGE', 'z', 5, 10, 'WITHSCORES'],
  ['ZRANGE', 'z', 1, 100, 'WITHSCORES'],
  ['ZRANGE', 'z', -100, 1, 'WITHSCORES'],
  ['ZRANGE', 'z', 2, 1, 'WITHSCORES'],
  ['ZREMRANGEBYRANK', 'z', 0, -3],
  ['ZRANGE', 'z', 0, -1, 'WITHSCORES'],
  ['ZREM', 'z', 'c', 'nope'],
  ['ZREMRANGEBYSCORE', 'z', '(4', '+inf'],
  ['ZREMRANGEBYSCORE', 'z', '-inf', '+inf'],
  ['EXISTS', 'z'],
  ['ZADD', 'z2', 1.5, 'x', -0.25, 'y'],
  ['ZRANGEBYSCORE', 'z2', '-inf', '+inf', 'WITHSCORES'],
  ['ZREMRANGEBYRANK', 'z2', -1, -1],
  ['ZCARD', 'z2'],
  ['PTTL', 'z2'],
  ['PTTL', 'nothing'],
  ['PEXPIRE', 'z2', 60000],
  ['PERSIST', 'z2'],
  ['PERSIST', 'z2'],
  ['PEXPIRE', 'nothing', 100],
  ['PEXPIRE', 'z2', 0],
  ['EXISTS', 'z2', 'z2', 's'],
  ['DEL', 's', 's', 'h', 'nothing'],
  ['GET', 's'],
];

/** Runs `steps` on raw Redis and on a MemoryStore; part of the Redis suite below. */
function differentialSuite(): void {
  describe('MemoryStore against raw Redis', () => {
    it('answers a command sequence exactly like Redis, errors included', async () => {
      const prefix = `${runPrefix}diff:`;
      const raw = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
      const store = new MemoryStore({ sweepIntervalMs: 0 });
      const outcome = async (run: () => unknown): Promise<unknown> => {
        try {
          return { ok: await run() };
        } catch (err) {
          // Only the error code and text; Redis may append context.
          return { err: (err as Error).message.split(/ script:|\. /)[0] };
        }
      };
      try {
        for (const step of steps) {
          const [command, key, ...rest] = step;
          // Multi-key commands name every key; prefix them all for Redis.
          const keyed = ['DEL', 'EXISTS'].includes(command) ? rest.map((k) => `${prefix}${k}`) : rest;
          const redisReply = await outcome(() => raw.call(command, `${prefix}${key}`, ...keyed));
          const storeReply = await outcome(() => applyToStore(store, step));
          expect({ step, reply: storeReply }).toEqual({ step, reply: redisReply });
        }
      } finally {
        await deleteByPrefix(TEST_REDIS_URL, prefix);
        raw.disconnect();
      }
    });
  });
}

// ---- redis -------------------------------------------------------------------------

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** A redis-server of our own, killed at will. */
async function startRedisServer(port: number, password: string): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--requirepass',
      password,
    ],
    { stdio: 'ignore' },
  );
  const client = new Redis({
    port,
    host: '127.0.0.1',
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 50,
  });
  client.on('error', () => {});
  try {
    await expect
      .poll(
        () =>
          client.ping().then(
            (r) => r,
            () => 'down',
          ),
        POLL,
      )
      .toBe('PONG');
  } finally {
    client.disconnect();
  }
  return child;
}

async function stopRedisServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

await describeWithService(
  'redis',
  () => probeRedis(TEST_REDIS_URL),
  () => {
    let counter = 0;
    const prefixes = new WeakMap<Engine, string>();
    const openRedis = (prefix: string) => {
      const engine = new RedisEngine({ url: TEST_REDIS_URL, keyPrefix: prefix });
      prefixes.set(engine, prefix);
      return engine;
    };

    afterAll(async () => {
      await deleteByPrefix(TEST_REDIS_URL, runPrefix);
    });

    differentialSuite();

    engineContract('redis', {
      kind: 'redis',
      open: () => openRedis(`${runPrefix}${++counter}:`),
      peer: (engine) => openRedis(prefixes.get(engine)!),
    });

    describe('RedisEngine specifics', () => {
      const prefix = `${runPrefix}specific:`;
      // Created in a hook: a skipped suite still runs this body, and must not connect.
      let raw: Redis;
      beforeAll(() => {
        raw = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
      });
      const engines: Engine[] = [];
      const open = (options: Partial<ConstructorParameters<typeof RedisEngine>[0]> = {}) => {
        const engine = new RedisEngine({ url: TEST_REDIS_URL, keyPrefix: prefix, ...options });
        engines.push(engine);
        return engine;
      };
      afterEach(async () => {
        await Promise.all(engines.splice(0).map((e) => e.close()));
      });
      afterAll(() => {
        raw?.disconnect();
      });

      it('prefixes keys, script keys and channels on the wire', async () => {
        const engine = open();
        await engine.set('plain', 'v');
        expect(await raw.get(`${prefix}plain`)).toBe('v');
        await engine.logAppend('room:9', 'hi', { maxLen: 5, ttlMs: 60_000 });
        expect(await raw.get(`${prefix}{room:9}:seq`)).toBe('1');
        expect(await raw.zcard(`${prefix}{room:9}:log`)).toBe(1);

        const listener = new Redis(TEST_REDIS_URL);
        try {
          const got: Array<[string, string]> = [];
          listener.on('message', (channel: string, message: string) => got.push([channel, message]));
          await listener.subscribe(`${prefix}news`);
          await engine.publish('news', 'extra');
          await expect.poll(() => got, POLL).toEqual([[`${prefix}news`, 'extra']]);
        } finally {
          listener.disconnect();
        }
      });

      it('reloads scripts after the Redis script cache was flushed', async () => {
        const engine = open();
        await engine.set('{s}:stock', '2');
        expect(await engine.run(takeScript, ['{s}:stock', '{s}:taken'], ['u', 1, 5])).toEqual(['ok', 1]);
        await raw.script('FLUSH');
        expect(await engine.run(takeScript, ['{s}:stock', '{s}:taken'], ['u', 1, 5])).toEqual(['ok', 0]);
      });

      it('refuses two different scripts under one name', async () => {
        const engine = open();
        const impostor: EngineScript = { ...getScript, lua: 'return 1' };
        await engine.run(getScript, ['k'], []);
        await expect(engine.run(impostor, ['k'], [])).rejects.toThrow(/two different scripts/);
      });

      it('goes unready when its Redis dies and recovers by itself, pub/sub included', async () => {
        const port = await freePort();
        const password = `pw-${randomUUID()}`;
        const url = `redis://:${password}@127.0.0.1:${port}/0`;
        let server = await startRedisServer(port, password);
        const warnings: string[] = [];
        const logger = {
          warn: (obj: object, msg: string) => warnings.push(`${msg} ${JSON.stringify(obj)}`),
          error: (obj: object, msg: string) => warnings.push(`${msg} ${JSON.stringify(obj)}`),
        };
        const engine = open({ url, keyPrefix: 'ready:', logger });
        const publisher = open({ url, keyPrefix: 'ready:' });
        try {
          await engine.check();
          const got = collector();
          await engine.subscribe('events', got.handler);
          await publisher.publish('events', 'before');
          await expect.poll(() => got.texts(), POLL).toEqual(['before']);

          await stopRedisServer(server);
          const outcome = () =>
            engine.check().then(
              () => 'ready',
              (err: Error) => err.message,
            );
          await expect.poll(outcome, POLL).toMatch(/unreachable/);
          const reason = await outcome();
          expect(reason).toContain(`redis at redis://:***@127.0.0.1:${port}/0 unreachable: `);
          expect(reason).toMatch(/ECONNREFUSED/);
          expect(reason).not.toContain(password);
          // Calls fail instead of hanging while Redis is away.
          await expect(engine.get('k')).rejects.toThrow();

          server = await startRedisServer(port, password);
          await expect.poll(outcome, POLL).toBe('ready');
          expect(await engine.set('k', 'back')).toBe(true);
          // The subscriber came back and re-subscribed; publish until it shows.
          await expect
            .poll(async () => {
              await publisher.publish('events', 'after');
              return got.texts().includes('after');
            }, POLL)
            .toBe(true);
          expect(warnings.some((w) => w.includes('reconnecting'))).toBe(true);
          expect(warnings.join('\n')).not.toContain(password);
        } finally {
          await Promise.all(engines.splice(0).map((e) => e.close()));
          await stopRedisServer(server);
        }
      });
    });
  },
);
