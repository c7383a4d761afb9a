/**
 * FlashSaleEngine contract: one suite, run unchanged against
 * - MemoryEngine (the TypeScript twins of the scripts),
 * - RedisEngine on the real Redis at TEST_REDIS_URL (the Lua), under a key
 *   prefix unique to this run, whose keys are deleted afterwards.
 * Plus a differential run (the same operation sequence on both adapters must
 * give the same answers) and memory-only boundary checks with a fake clock.
 *
 * Timing: expiry uses short TTLs and is awaited by polling (`expireDue`, or
 * the clock until a deadline the engine itself reported); no test asserts how
 * long anything took.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  FlashSaleEngine,
  type FlashSaleState,
  flashSaleKeys,
  type PurchaseInput,
  type PurchaseResult,
} from '../src/commerce/flash-sales/flash-sale-engine.js';
import type { Engine } from '../src/platform/engine/engine.js';
import { MemoryEngine } from '../src/platform/engine/memory-engine.js';
import { RedisEngine } from '../src/platform/engine/redis-engine.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { deleteByPrefix, probeRedis } from './support/redis.js';

const POLL = { timeout: 10_000, interval: 20 };
const HOUR = 3_600_000;
const KEY_TTL = 10 * 60_000;

/** Every Redis key this run writes starts with this; all of them are deleted at the end. */
const runPrefix = `test:fse:${randomUUID()}:`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A sale open now for an hour, with overridable fields. */
function saleState(overrides: Partial<FlashSaleState> = {}): FlashSaleState {
  const now = Date.now();
  return {
    epoch: 1,
    startsAtMs: now - 60_000,
    endsAtMs: now + HOUR,
    perUserLimit: 5,
    reservationTtlMs: 60_000,
    stock: 10,
    buyers: {},
    open: [],
    ...overrides,
  };
}

/** Small deterministic PRNG (mulberry32), so shuffles and op sequences are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `fn(i)` for i in [0, total) with at most `batch` calls in flight. */
async function inBatches<T>(total: number, batch: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let start = 0; start < total; start += batch) {
    const end = Math.min(total, start + batch);
    out.push(...(await Promise.all(Array.from({ length: end - start }, (_, j) => fn(start + j)))));
  }
  return out;
}

function expectOk(r: PurchaseResult): asserts r is Extract<PurchaseResult, { status: 'OK' | 'REPLAY' }> {
  expect(['OK', 'REPLAY']).toContain(r.status);
}

// ---- the contract ------------------------------------------------------------------------

interface ContractTarget {
  kind: 'memory' | 'redis';
  /** A fresh engine over its own keyspace. */
  open(): Engine;
}

function flashSaleContract(name: string, target: ContractTarget): void {
  describe(`FlashSaleEngine contract: ${name}`, () => {
    const opened: Engine[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((e) => e.close()));
    });

    /** An engine, a FlashSaleEngine on it, a fresh sale id and a purchase helper. */
    const setup = () => {
      const engine = target.open();
      opened.push(engine);
      const fs = new FlashSaleEngine(engine);
      const saleId = randomUUID();
      const buy = (userId: string, quantity = 1, extra: Partial<PurchaseInput> = {}) =>
        fs.purchase({
          saleId,
          userId,
          quantity,
          idempotencyKey: randomUUID(),
          reservationId: randomUUID(),
          ...extra,
        });
      const load = (overrides: Partial<FlashSaleState> = {}, keyTtlMs = KEY_TTL) =>
        fs.load(saleId, saleState(overrides), keyTtlMs);
      /**
       * Starts a probe reservation with `ttlMs` in a sale of its own; the
       * returned function resolves once the engine's clock has passed the
       * probe's deadline (the probe got swept), so anything reserved before
       * the probe with the same TTL is due too. Waits on the engine's clock,
       * never on ours, and sweeps nothing of the sale under test.
       */
      const startDeadlineProbe = async (ttlMs: number) => {
        const probeSale = randomUUID();
        await fs.load(probeSale, saleState({ reservationTtlMs: ttlMs }), KEY_TTL);
        expectOk(
          await fs.purchase({
            saleId: probeSale,
            userId: 'probe',
            quantity: 1,
            idempotencyKey: 'probe',
            reservationId: 'probe',
          }),
        );
        return () =>
          expect.poll(async () => (await fs.expireDue(probeSale, 1)).expired.length > 0, POLL).toBe(true);
      };
      return { engine, fs, saleId, buy, load, startDeadlineProbe };
    };

    describe('load', () => {
      it('loads once, reports status, and refuses to overwrite a loaded sale', async () => {
        const { fs, saleId, load } = setup();
        expect(await fs.status(saleId)).toEqual({
          loaded: false,
          stock: 0,
          epoch: 0,
          endsAtMs: 0,
          startsAtMs: 0,
        });
        const state = saleState({ epoch: 7, stock: 42 });
        expect(await fs.load(saleId, state, KEY_TTL)).toBe(true);
        expect(await fs.status(saleId)).toEqual({
          loaded: true,
          stock: 42,
          epoch: 7,
          endsAtMs: state.endsAtMs,
          startsAtMs: state.startsAtMs,
        });
        expect(await load({ epoch: 8, stock: 1 })).toBe(false);
        expect(await fs.status(saleId)).toMatchObject({ stock: 42, epoch: 7 });
      });

      it('is first-wins under concurrency', async () => {
        const { fs, saleId } = setup();
        const results = await Promise.all(
          Array.from({ length: 25 }, (_, i) =>
            fs.load(saleId, saleState({ epoch: i + 1, stock: 100 + i }), KEY_TTL),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true);
        expect(await fs.status(saleId)).toMatchObject({
          loaded: true,
          epoch: winner + 1,
          stock: 100 + winner,
        });
      });

      it('rebuilds from a Db state: held units, open reservations, paid ids and idempotency keys', async () => {
        const { fs, saleId, buy } = setup();
        const now = Date.now();
        const state = saleState({
          epoch: 3,
          stock: 5,
          perUserLimit: 3,
          buyers: { alice: 3, bob: 1, zero: 0 },
          open: [
            { id: 'r1', userId: 'alice', quantity: 2, expiresAtMs: now + HOUR },
            { id: 'r2', userId: 'bob', quantity: 1, expiresAtMs: now - 1000 },
          ],
          paid: ['p1'],
          idempotency: [
            { userId: 'alice', key: 'k1', reservationId: 'r1' },
            { userId: 'alice', key: 'k0', reservationId: 'p1' },
            { userId: 'carol', key: 'gone', reservationId: 'x-unknown' },
          ],
        });
        expect(await fs.load(saleId, state, KEY_TTL)).toBe(true);

        expect(await buy('alice')).toEqual({ status: 'LIMIT', stock: 5 });
        expect(await buy('alice', 1, { idempotencyKey: 'k1', reservationId: 'new-1' })).toEqual({
          status: 'REPLAY',
          reservationId: 'r1',
          quantity: 2,
          expiresAtMs: now + HOUR,
          stock: 5,
          epoch: 3,
          state: 'reserved',
        });
        expect(await buy('alice', 1, { idempotencyKey: 'k0' })).toMatchObject({
          status: 'REPLAY',
          reservationId: 'p1',
          state: 'paid',
        });
        const unknown = await buy('carol', 1, { idempotencyKey: 'gone' });
        expect(unknown).toEqual({
          status: 'REPLAY',
          reservationId: 'x-unknown',
          quantity: 0,
          expiresAtMs: 0,
          stock: 5,
          epoch: 3,
        });
        expect(await fs.confirm(saleId, 'p1')).toBe('ALREADY_PAID');

        // r2 was already due when loaded: the first sweep returns it.
        expect(await fs.expireDue(saleId, 10)).toEqual({
          expired: [{ id: 'r2', userId: 'bob', quantity: 1 }],
          stock: 6,
        });
        expect(await fs.confirm(saleId, 'r2')).toBe('EXPIRED');
        // Alice's held units drop with her cancel, so she can buy again.
        expect(await fs.cancel(saleId, 'r1', 'alice')).toEqual({ result: 'OK', stock: 8 });
        expect((await buy('alice', 2)).status).toBe('OK');
        expect((await buy('alice', 1)).status).toBe('LIMIT');
        expect((await buy('zero', 3)).status).toBe('OK');
      });

      it('gives every key a TTL of keyTtlMs from load, also keys created later', async () => {
        const { engine, saleId, buy, load } = setup();
        const keys = flashSaleKeys(saleId);
        await load({}, KEY_TTL);
        for (const key of [keys.meta, keys.stock]) {
          const ttl = await engine.ttl(key);
          expect(ttl).toBeGreaterThan(0);
          expect(ttl).toBeLessThanOrEqual(KEY_TTL);
        }
        // An empty sale has no buyers/res/exp/idem yet; the first purchase creates them.
        expect(await engine.ttl(keys.res)).toBe(-2);
        expectOk(
          await buy('u1', 1, { velocity: { ip: '10.0.0.1', perUserMax: 9, perIpMax: 9, windowMs: 30_000 } }),
        );
        for (const key of [keys.meta, keys.stock, keys.buyers, keys.res, keys.exp, keys.idem]) {
          const ttl = await engine.ttl(key);
          expect(ttl, key).toBeGreaterThan(0);
          expect(ttl, key).toBeLessThanOrEqual(KEY_TTL);
        }
        for (const key of [keys.velocityUser('u1'), keys.velocityIp('10.0.0.1')]) {
          const ttl = await engine.ttl(key);
          expect(ttl, key).toBeGreaterThan(0);
          expect(ttl, key).toBeLessThanOrEqual(30_000);
        }
      });

      it('re-creates emptied keys with the sale TTL', async () => {
        const { engine, fs, saleId, buy, load } = setup();
        const keys = flashSaleKeys(saleId);
        await load();
        const r = await buy('u1');
        expectOk(r);
        expect(await fs.confirm(saleId, r.reservationId)).toBe('OK');
        expect(await engine.ttl(keys.exp)).toBe(-2); // emptied, so deleted
        expectOk(await buy('u2'));
        const ttl = await engine.ttl(keys.exp);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(KEY_TTL);
      });

      it('forgets the sale when its keys expire', async () => {
        const { fs, saleId, buy, load } = setup();
        await load({}, 400);
        expectOk(await buy('u1'));
        await expect.poll(async () => (await fs.status(saleId)).loaded, POLL).toBe(false);
        expect(await buy('u1')).toEqual({ status: 'NOT_LOADED', stock: 0 });
      });

      it('unloads, after which a new load rebuilds it', async () => {
        const { engine, fs, saleId, buy, load } = setup();
        await load({ stock: 3 });
        expectOk(await buy('u1'));
        await fs.unload(saleId);
        const keys = flashSaleKeys(saleId);
        for (const key of [keys.meta, keys.stock, keys.buyers, keys.res, keys.exp, keys.idem]) {
          expect(await engine.ttl(key)).toBe(-2);
        }
        expect(await fs.status(saleId)).toMatchObject({ loaded: false });
        expect(await buy('u1')).toEqual({ status: 'NOT_LOADED', stock: 0 });
        expect(await load({ stock: 9, epoch: 2 })).toBe(true);
        expect(await fs.status(saleId)).toMatchObject({ loaded: true, stock: 9, epoch: 2 });
      });

      it('refuses invalid states and ids before touching the engine', async () => {
        const { fs, saleId, load } = setup();
        await expect(load({ stock: -1 })).rejects.toThrow(RangeError);
        await expect(load({ perUserLimit: 0 })).rejects.toThrow(RangeError);
        await expect(load({ reservationTtlMs: 1.5 })).rejects.toThrow(RangeError);
        await expect(load({ buyers: { a: -2 } })).rejects.toThrow(RangeError);
        await expect(
          load({ open: [{ id: 'x', userId: 'a', quantity: 1, expiresAtMs: 1 }], paid: ['x'] }),
        ).rejects.toThrow(/twice/);
        await expect(load({}, 0)).rejects.toThrow(RangeError);
        await expect(fs.load('a{b}', saleState(), KEY_TTL)).rejects.toThrow(RangeError);
        await expect(fs.load('', saleState(), KEY_TTL)).rejects.toThrow(RangeError);
        expect(await fs.status(saleId)).toMatchObject({ loaded: false });
      });
    });

    describe('purchase', () => {
      it('answers NOT_LOADED for every operation on a sale that is not loaded', async () => {
        const { fs, saleId, buy } = setup();
        expect(await buy('u1')).toEqual({ status: 'NOT_LOADED', stock: 0 });
        expect(await fs.confirm(saleId, 'r')).toBe('NOT_LOADED');
        expect(await fs.cancel(saleId, 'r', 'u1')).toEqual({ result: 'NOT_LOADED', stock: 0 });
        expect(await fs.expireDue(saleId, 10)).toEqual({ expired: [], stock: 0 });
        await fs.end(saleId); // no-op
        expect(await fs.status(saleId)).toMatchObject({ loaded: false });
      });

      it('reserves units with an engine-clock expiry and returns the epoch', async () => {
        const { fs, saleId, buy, load } = setup();
        await load({ epoch: 12, stock: 10, reservationTtlMs: 90_000 });
        const before = Date.now();
        const r = await buy('u1', 3, { reservationId: 'res-1' });
        const after = Date.now();
        expect(r).toMatchObject({
          status: 'OK',
          reservationId: 'res-1',
          quantity: 3,
          stock: 7,
          epoch: 12,
          state: 'reserved',
        });
        expectOk(r);
        // The engine's clock, not ours; same host, so loosely in step.
        expect(r.expiresAtMs).toBeGreaterThan(before + 90_000 - 5_000);
        expect(r.expiresAtMs).toBeLessThan(after + 90_000 + 5_000);
        expect(Number.isSafeInteger(r.expiresAtMs)).toBe(true);
        expect(await fs.status(saleId)).toMatchObject({ stock: 7 });
      });

      it('tells SOLD_OUT (nothing left) from INSUFFICIENT (some left, not enough)', async () => {
        const { buy, load } = setup();
        await load({ stock: 2, perUserLimit: 10 });
        expect(await buy('a', 3)).toEqual({ status: 'INSUFFICIENT', stock: 2 });
        expect(await buy('a', 2)).toMatchObject({ status: 'OK', stock: 0 });
        expect(await buy('b', 1)).toEqual({ status: 'SOLD_OUT', stock: 0 });
        expect(await buy('b', 5)).toEqual({ status: 'SOLD_OUT', stock: 0 });
      });

      it('enforces the per-user limit over held units, before stock', async () => {
        const { buy, load } = setup();
        await load({ stock: 3, perUserLimit: 2 });
        expect(await buy('a', 3)).toEqual({ status: 'LIMIT', stock: 3 });
        expect((await buy('a', 2)).status).toBe('OK');
        expect(await buy('a', 1)).toEqual({ status: 'LIMIT', stock: 1 });
        expect((await buy('b', 1)).status).toBe('OK');
        // Stock is 0 and a is at the limit: LIMIT comes first.
        expect(await buy('a', 1)).toEqual({ status: 'LIMIT', stock: 0 });
        expect(await buy('c', 1)).toEqual({ status: 'SOLD_OUT', stock: 0 });
      });

      it('answers NOT_STARTED before the window and ENDED after it, before LIMIT', async () => {
        const future = setup();
        const now = Date.now();
        await future.load({ startsAtMs: now + HOUR, endsAtMs: now + 2 * HOUR, stock: 0, perUserLimit: 1 });
        expect(await future.buy('a', 5)).toEqual({ status: 'NOT_STARTED', stock: 0 });

        const past = setup();
        await past.load({
          startsAtMs: now - 2 * HOUR,
          endsAtMs: now - HOUR,
          stock: 0,
          perUserLimit: 1,
          buyers: { a: 1 },
        });
        expect(await past.buy('a', 1)).toEqual({ status: 'ENDED', stock: 0 });
      });

      it('end() makes later purchases ENDED, even before the start, and pulls endsAt back', async () => {
        const running = setup();
        const state = saleState({ stock: 5 });
        await running.fs.load(running.saleId, state, KEY_TTL);
        const r = await running.buy('a');
        expectOk(r);
        await running.fs.end(running.saleId);
        expect(await running.buy('b')).toEqual({ status: 'ENDED', stock: 4 });
        const status = await running.fs.status(running.saleId);
        expect(status.endsAtMs).toBeLessThan(state.endsAtMs);
        expect(status.endsAtMs).toBeGreaterThanOrEqual(state.startsAtMs);
        // Reservations made before the stop can still be paid.
        expect(await running.fs.confirm(running.saleId, r.reservationId)).toBe('OK');
        await running.fs.end(running.saleId); // idempotent
        expect(await running.buy('b')).toEqual({ status: 'ENDED', stock: 4 });

        const early = setup();
        const now = Date.now();
        await early.load({ startsAtMs: now + HOUR, endsAtMs: now + 2 * HOUR });
        await early.fs.end(early.saleId);
        expect((await early.buy('a')).status).toBe('ENDED');
      });

      it('replays an idempotency key even after the sale sold out or ended', async () => {
        const { fs, saleId, buy, load } = setup();
        await load({ stock: 1 });
        const first = await buy('a', 1, { idempotencyKey: 'k', reservationId: 'r-first' });
        expect(first).toMatchObject({ status: 'OK', stock: 0 });
        expectOk(first);
        const replay = await buy('a', 1, { idempotencyKey: 'k', reservationId: 'r-second' });
        expect(replay).toEqual({ ...first, status: 'REPLAY' });
        // The key is per user: another user with the same key is a new attempt.
        expect(await buy('b', 1, { idempotencyKey: 'k' })).toEqual({ status: 'SOLD_OUT', stock: 0 });
        await fs.end(saleId);
        expect(await buy('a', 1, { idempotencyKey: 'k' })).toMatchObject({
          status: 'REPLAY',
          reservationId: 'r-first',
        });
        // And it reports the reservation's state as it is now.
        expect(await fs.confirm(saleId, 'r-first')).toBe('OK');
        expect(await buy('a', 1, { idempotencyKey: 'k' })).toMatchObject({ status: 'REPLAY', state: 'paid' });
      });

      it('gives 50 concurrent purchases with one key exactly one reservation', async () => {
        const { fs, saleId, buy, load } = setup();
        await load({ stock: 10, perUserLimit: 5 });
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            buy('a', 2, { idempotencyKey: 'same', reservationId: `r-${i}` }),
          ),
        );
        const statuses = results.map((r) => r.status);
        expect(statuses.filter((s) => s === 'OK')).toHaveLength(1);
        expect(statuses.filter((s) => s === 'REPLAY')).toHaveLength(49);
        const ids = new Set(results.map((r) => ('reservationId' in r ? r.reservationId : undefined)));
        expect(ids.size).toBe(1);
        expect([...ids][0]).toMatch(/^r-\d+$/);
        expect(await fs.status(saleId)).toMatchObject({ stock: 8 });
      });

      it('refuses a reservation id that is already in use, and bad input', async () => {
        const { buy, load } = setup();
        await load();
        expectOk(await buy('a', 1, { reservationId: 'dup' }));
        await expect(buy('b', 1, { reservationId: 'dup' })).rejects.toThrow(/DUPLICATE_RESERVATION/);
        await expect(buy('a', 0)).rejects.toThrow(RangeError);
        await expect(buy('a', 1.5)).rejects.toThrow(RangeError);
        await expect(buy('', 1)).rejects.toThrow(RangeError);
        await expect(buy('a', 1, { idempotencyKey: '' })).rejects.toThrow(RangeError);
        await expect(
          buy('a', 1, { velocity: { ip: 'x', perUserMax: 0, perIpMax: 1, windowMs: 1 } }),
        ).rejects.toThrow(RangeError);
      });
    });

    describe('velocity', () => {
      it('limits attempts per user and per IP, counting refused attempts too', async () => {
        const { buy, load } = setup();
        await load({ stock: 100, perUserLimit: 2 });
        const v = (ip: string) => ({ velocity: { ip, perUserMax: 3, perIpMax: 5, windowMs: 60_000 } });
        expect((await buy('alice', 1, { ...v('1.1.1.1'), idempotencyKey: 'a1' })).status).toBe('OK');
        expect((await buy('alice', 1, v('1.1.1.1'))).status).toBe('OK');
        expect((await buy('alice', 1, v('1.1.1.1'))).status).toBe('LIMIT'); // third attempt, counted
        expect(await buy('alice', 1, v('1.1.1.1'))).toEqual({ status: 'VELOCITY', stock: 98 });
        // Alice is throttled on any IP.
        expect((await buy('alice', 1, v('2.2.2.2'))).status).toBe('VELOCITY');
        // Bob shares 1.1.1.1, which has seen 4 attempts: one more is allowed.
        expect((await buy('bob', 1, v('1.1.1.1'))).status).toBe('OK');
        expect((await buy('bob', 1, v('1.1.1.1'))).status).toBe('VELOCITY');
        expect((await buy('carol', 1, v('3.3.3.3'))).status).toBe('OK');
        // A replay is answered before velocity and does not spend it.
        expect((await buy('alice', 1, { ...v('1.1.1.1'), idempotencyKey: 'a1' })).status).toBe('REPLAY');
        // Without velocity settings nothing is counted.
        expect((await buy('dave', 1)).status).toBe('OK');
      });

      it('is checked before the sale window', async () => {
        const { buy, load } = setup();
        const now = Date.now();
        await load({ startsAtMs: now + HOUR, endsAtMs: now + 2 * HOUR });
        const v = { velocity: { ip: '9.9.9.9', perUserMax: 1, perIpMax: 10, windowMs: 60_000 } };
        expect((await buy('a', 1, v)).status).toBe('NOT_STARTED');
        expect((await buy('a', 1, v)).status).toBe('VELOCITY');
      });

      it('uses a fixed window that opens again after windowMs', async () => {
        const { buy, load } = setup();
        await load({ stock: 100, perUserLimit: 100 });
        const v = { velocity: { ip: '4.4.4.4', perUserMax: 1, perIpMax: 100, windowMs: 250 } };
        expect((await buy('a', 1, v)).status).toBe('OK');
        expect((await buy('a', 1, v)).status).toBe('VELOCITY');
        await expect.poll(async () => (await buy('a', 1, v)).status, POLL).toBe('OK');
      });
    });

    describe('confirm and cancel', () => {
      it('confirms once; answers ALREADY_PAID, UNKNOWN and CANCELLED', async () => {
        const { fs, saleId, buy, load } = setup();
        await load({ stock: 5 });
        const a = await buy('a', 2);
        const b = await buy('b', 1);
        expectOk(a);
        expectOk(b);
        expect(await fs.confirm(saleId, a.reservationId)).toBe('OK');
        expect(await fs.confirm(saleId, a.reservationId)).toBe('ALREADY_PAID');
        expect(await fs.confirm(saleId, 'nope')).toBe('UNKNOWN');
        expect(await fs.cancel(saleId, b.reservationId, 'b')).toEqual({ result: 'OK', stock: 3 });
        expect(await fs.confirm(saleId, b.reservationId)).toBe('CANCELLED');
        // Paid units stay sold and held.
        expect(await fs.status(saleId)).toMatchObject({ stock: 3 });
        expect(await fs.cancel(saleId, a.reservationId, 'a')).toEqual({ result: 'NOT_RESERVED', stock: 3 });
      });

      it('cancels only the owner’s open reservation and returns its units once', async () => {
        const { fs, saleId, buy, load } = setup();
        await load({ stock: 5, perUserLimit: 3 });
        const r = await buy('a', 3);
        expectOk(r);
        expect(await buy('a', 1)).toEqual({ status: 'LIMIT', stock: 2 });
        expect(await fs.cancel(saleId, r.reservationId, 'intruder')).toEqual({ result: 'UNKNOWN', stock: 2 });
        expect(await fs.cancel(saleId, 'missing', 'a')).toEqual({ result: 'UNKNOWN', stock: 2 });
        const racing = await Promise.all(
          Array.from({ length: 10 }, () => fs.cancel(saleId, r.reservationId, 'a')),
        );
        expect(racing.filter((c) => c.result === 'OK')).toHaveLength(1);
        expect(racing.filter((c) => c.result === 'NOT_RESERVED')).toHaveLength(9);
        expect(await fs.status(saleId)).toMatchObject({ stock: 5 });
        // Held units went down with it, and the sweeper will not return them again.
        expect((await buy('a', 3)).status).toBe('OK');
        expect(await fs.expireDue(saleId, 100)).toEqual({ expired: [], stock: 2 });
      });

      it('answers EXPIRED for a late payment and returns the units exactly once', async () => {
        const { fs, saleId, buy, load, startDeadlineProbe } = setup();
        await load({ stock: 5, reservationTtlMs: 150 });
        const late = await buy('a', 2);
        const swept = await buy('b', 1);
        const deadlinePassed = await startDeadlineProbe(150);
        const paid = await buy('c', 1);
        expectOk(late);
        expectOk(swept);
        expectOk(paid);
        expect(await fs.confirm(saleId, paid.reservationId)).toBe('OK');
        expect(await fs.status(saleId)).toMatchObject({ stock: 1 });

        // Wait until the engine clock is past the deadline, without sweeping this sale.
        await deadlinePassed();
        // Late payment: the sweeper has not run, confirm expires it itself.
        expect(await fs.confirm(saleId, late.reservationId)).toBe('EXPIRED');
        expect(await fs.status(saleId)).toMatchObject({ stock: 3 });
        expect(await fs.confirm(saleId, late.reservationId)).toBe('EXPIRED');
        expect(await fs.cancel(saleId, late.reservationId, 'a')).toEqual({
          result: 'NOT_RESERVED',
          stock: 3,
        });

        // The sweeper only finds the other one; the paid one never expires.
        expect(await fs.expireDue(saleId, 100)).toEqual({
          expired: [{ id: swept.reservationId, userId: 'b', quantity: 1 }],
          stock: 4,
        });
        expect(await fs.expireDue(saleId, 100)).toEqual({ expired: [], stock: 4 });
        expect(await fs.confirm(saleId, swept.reservationId)).toBe('EXPIRED');
        expect(await fs.confirm(saleId, paid.reservationId)).toBe('ALREADY_PAID');
        expect(await buy('a', 1, { idempotencyKey: 'fresh' })).toMatchObject({ status: 'OK', stock: 3 });
      });

      it('returns units once when confirms and two sweepers race over due reservations', async () => {
        const { fs, saleId, buy, load, startDeadlineProbe } = setup();
        await load({ stock: 40, perUserLimit: 1, reservationTtlMs: 100 });
        const reservations = await Promise.all(Array.from({ length: 40 }, (_, i) => buy(`u${i}`)));
        const deadlinePassed = await startDeadlineProbe(100);
        const ids = reservations.map((r) => {
          expectOk(r);
          return r.reservationId;
        });
        await deadlinePassed();
        const sweeper = async () => {
          const got: string[] = [];
          for (;;) {
            const { expired } = await fs.expireDue(saleId, 3);
            got.push(...expired.map((e) => e.id));
            if (expired.length === 0) return got;
          }
        };
        const [confirms, s1, s2] = await Promise.all([
          Promise.all(ids.map((id) => fs.confirm(saleId, id))),
          sweeper(),
          sweeper(),
        ]);
        expect(new Set(confirms)).toEqual(new Set(['EXPIRED']));
        expect(new Set([...s1, ...s2]).size).toBe(s1.length + s2.length);
        expect(await fs.status(saleId)).toMatchObject({ stock: 40 });
      });
    });

    describe('under load', () => {
      it('sells exactly the stock to 20,000 concurrent attempts, then re-sells expired units once', async () => {
        const { fs, saleId, buy, load } = setup();
        const USERS = 2000;
        await load({ stock: 100, perUserLimit: 1, reservationTtlMs: 2000 });

        // Every user 10 times, shuffled so one user's attempts are in flight together.
        const calls = Array.from({ length: USERS * 10 }, (_, i) => `user-${i % USERS}`);
        const random = rng(42);
        for (let i = calls.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [calls[i], calls[j]] = [calls[j]!, calls[i]!];
        }

        let okSeen = 0;
        const confirmed = new Set<string>();
        const unconfirmed = new Map<string, string>(); // reservationId -> user
        const confirmAnswers: string[] = [];
        const results = await inBatches(calls.length, 1000, async (i) => {
          const user = calls[i]!;
          const r = await buy(user);
          if (r.status === 'OK') {
            // Pay every other winner right away, well before the reservation TTL.
            if (okSeen++ % 2 === 0) {
              confirmed.add(user);
              confirmAnswers.push(await fs.confirm(saleId, r.reservationId));
            } else {
              unconfirmed.set(r.reservationId, user);
            }
          }
          return { user, status: r.status };
        });

        const ok = results.filter((r) => r.status === 'OK');
        expect(ok).toHaveLength(100);
        expect(new Set(ok.map((r) => r.user)).size).toBe(100);
        expect(new Set(results.map((r) => r.status))).toEqual(new Set(['OK', 'LIMIT', 'SOLD_OUT']));
        expect(await fs.status(saleId)).toMatchObject({ stock: 0 });
        expect(confirmAnswers).toEqual(Array(50).fill('OK'));
        expect(unconfirmed.size).toBe(50);

        // Two sweepers poll until the 50 unpaid reservations have expired.
        const seen: Array<{ id: string; userId: string; quantity: number }> = [];
        const sweeper = async () => {
          while (seen.length < 50) {
            const { expired } = await fs.expireDue(saleId, 7);
            seen.push(...expired);
            if (expired.length === 0) await sleep(20);
          }
        };
        await expect(
          Promise.race([
            Promise.all([sweeper(), sweeper()]),
            sleep(POLL.timeout).then(() => {
              throw new Error(`only ${seen.length} reservations expired`);
            }),
          ]),
        ).resolves.toBeDefined();
        const [more1, more2] = await Promise.all([fs.expireDue(saleId, 100), fs.expireDue(saleId, 100)]);
        expect([...more1.expired, ...more2.expired]).toEqual([]);
        expect(seen).toHaveLength(50);
        expect(new Set(seen.map((e) => e.id))).toEqual(new Set(unconfirmed.keys()));
        for (const e of seen) {
          expect(e.userId).toBe(unconfirmed.get(e.id));
          expect(e.quantity).toBe(1);
        }
        expect(await fs.status(saleId)).toMatchObject({ stock: 50 });

        // Payers still hold their unit.
        const payers = await Promise.all([...confirmed].map((user) => buy(user)));
        expect(new Set(payers.map((r) => r.status))).toEqual(new Set(['LIMIT']));
        // Expired buyers hold nothing any more; they race 100 newcomers for 50 units.
        const contenders = [...unconfirmed.values(), ...Array.from({ length: 100 }, (_, i) => `late-${i}`)];
        const second = await Promise.all(contenders.flatMap((user) => [buy(user), buy(user)]));
        expect(second.filter((r) => r.status === 'OK')).toHaveLength(50);
        expect(await fs.status(saleId)).toMatchObject({ stock: 0 });
        for (const id of unconfirmed.keys()) expect(await fs.confirm(saleId, id)).toBe('EXPIRED');
      });
    });
  });
}

// ---- keys (no engine) ------------------------------------------------------------------------

describe('flashSaleKeys', () => {
  it('puts every key of a sale under one hash tag', () => {
    const keys = flashSaleKeys('s-1');
    const all = [
      keys.meta,
      keys.stock,
      keys.buyers,
      keys.res,
      keys.exp,
      keys.idem,
      keys.velocityUser('u:1'),
      keys.velocityIp('::1'),
    ];
    for (const key of all) expect(key.startsWith('{fs:s-1}:')).toBe(true);
    expect(new Set(all).size).toBe(all.length);
  });

  it('refuses sale ids that would break the hash tag', () => {
    expect(() => flashSaleKeys('a}b')).toThrow(RangeError);
    expect(() => flashSaleKeys('{x')).toThrow(RangeError);
    expect(() => flashSaleKeys('')).toThrow(RangeError);
  });
});

// ---- memory --------------------------------------------------------------------------------

flashSaleContract('memory', { kind: 'memory', open: () => new MemoryEngine({ keyPrefix: 'fs-test:' }) });

describe('FlashSaleEngine on a fake clock (memory)', () => {
  it('applies the window and expiry boundaries exactly: [startsAt, endsAt), due at expiresAt', async () => {
    let clock = 1_000_000;
    const engine = new MemoryEngine({ now: () => clock, sweepIntervalMs: 0 });
    const fs = new FlashSaleEngine(engine);
    try {
      await fs.load(
        's',
        {
          epoch: 1,
          startsAtMs: 1_001_000,
          endsAtMs: 1_002_000,
          perUserLimit: 10,
          reservationTtlMs: 100,
          stock: 10,
          buyers: {},
          open: [],
        },
        KEY_TTL,
      );
      const buy = (user: string) =>
        fs.purchase({
          saleId: 's',
          userId: user,
          quantity: 1,
          idempotencyKey: randomUUID(),
          reservationId: randomUUID(),
        });
      clock = 1_000_999;
      expect((await buy('a')).status).toBe('NOT_STARTED');
      clock = 1_001_000;
      const a = await buy('a');
      const b = await buy('b');
      expect(a).toMatchObject({ status: 'OK', expiresAtMs: 1_001_100 });
      expectOk(b);
      clock = 1_001_099;
      expect(await fs.expireDue('s', 10)).toEqual({ expired: [], stock: 8 });
      clock = 1_001_100;
      expect(await fs.confirm('s', b.reservationId)).toBe('EXPIRED');
      expect(await fs.expireDue('s', 10)).toEqual({
        expired: [{ id: 'reservationId' in a ? a.reservationId : '', userId: 'a', quantity: 1 }],
        stock: 10,
      });
      clock = 1_001_999;
      expect((await buy('c')).status).toBe('OK');
      clock = 1_002_000;
      expect((await buy('c')).status).toBe('ENDED');
    } finally {
      await engine.close();
    }
  });

  it('pulls endsAt back to the engine clock on end()', async () => {
    const clock = 5_000;
    const engine = new MemoryEngine({ now: () => clock, sweepIntervalMs: 0 });
    const fs = new FlashSaleEngine(engine);
    try {
      await fs.load(
        's',
        {
          epoch: 1,
          startsAtMs: 0,
          endsAtMs: 9_000,
          perUserLimit: 1,
          reservationTtlMs: 10,
          stock: 1,
          buyers: {},
          open: [],
        },
        KEY_TTL,
      );
      await fs.end('s');
      expect(await fs.status('s')).toMatchObject({ endsAtMs: 5_000, startsAtMs: 0 });
    } finally {
      await engine.close();
    }
  });
});

// ---- redis ---------------------------------------------------------------------------------

/**
 * The same seeded sequence of operations on both adapters; every answer must
 * match (expiry instants aside, as the two clocks differ). Reservation TTLs
 * and the window are long, so no answer depends on timing.
 */
async function runSequence(engine: Engine, seed: number): Promise<unknown[]> {
  const fs = new FlashSaleEngine(engine);
  const random = rng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
  const saleId = 'diff';
  const now = Date.now();
  const out: unknown[] = [];
  const known: string[] = ['never-made'];
  out.push(
    await fs.load(
      saleId,
      {
        epoch: 5,
        startsAtMs: now - HOUR,
        endsAtMs: now + HOUR,
        perUserLimit: 3,
        reservationTtlMs: HOUR,
        stock: 15,
        buyers: { u6: 2 },
        open: [{ id: 'pre', userId: 'u6', quantity: 2, expiresAtMs: now + HOUR }],
        idempotency: [{ userId: 'u6', key: 'k0', reservationId: 'pre' }],
      },
      KEY_TTL,
    ),
  );
  for (let step = 0; step < 400; step++) {
    if (step === 330) {
      await fs.end(saleId);
      out.push('end');
      continue;
    }
    const roll = random();
    if (roll < 0.6) {
      const userId = pick(users);
      const r = await fs.purchase({
        saleId,
        userId,
        quantity: 1 + Math.floor(random() * 3),
        idempotencyKey: `k${Math.floor(random() * 6)}`,
        reservationId: `r${step}`,
        velocity:
          random() < 0.5
            ? { ip: pick(['ip1', 'ip2']), perUserMax: 25, perIpMax: 60, windowMs: HOUR }
            : undefined,
      });
      if (r.status === 'OK') known.push(r.reservationId);
      const { expiresAtMs: _ignored, ...comparable } = r as PurchaseResult & { expiresAtMs?: number };
      out.push(comparable);
    } else if (roll < 0.75) {
      out.push(await fs.confirm(saleId, pick(known)));
    } else if (roll < 0.9) {
      out.push(await fs.cancel(saleId, pick(known), pick(users)));
    } else if (roll < 0.95) {
      out.push(await fs.expireDue(saleId, 5));
    } else {
      out.push(await fs.status(saleId).then(({ stock, loaded, epoch }) => ({ stock, loaded, epoch })));
    }
  }
  return out;
}

await describeWithService(
  'redis',
  () => probeRedis(TEST_REDIS_URL),
  () => {
    let counter = 0;
    afterAll(async () => {
      await deleteByPrefix(TEST_REDIS_URL, runPrefix);
    });

    flashSaleContract('redis', {
      kind: 'redis',
      open: () => new RedisEngine({ url: TEST_REDIS_URL, keyPrefix: `${runPrefix}${++counter}:` }),
    });

    describe('FlashSaleEngine: memory twins against Lua', () => {
      it('gives the same answers to the same operation sequence', async () => {
        for (const seed of [1, 2, 3]) {
          const memory = new MemoryEngine();
          const redis = new RedisEngine({ url: TEST_REDIS_URL, keyPrefix: `${runPrefix}diff-${seed}:` });
          try {
            const [a, b] = [await runSequence(memory, seed), await runSequence(redis, seed)];
            expect(a).toEqual(b);
            // The sequence exercised the interesting answers.
            const text = JSON.stringify(a);
            for (const word of [
              '"OK"',
              'REPLAY',
              'LIMIT',
              'ENDED',
              'ALREADY_PAID',
              'NOT_RESERVED',
              'UNKNOWN',
            ]) {
              expect(text, `seed ${seed}`).toContain(word);
            }
          } finally {
            await Promise.all([memory.close(), redis.close()]);
          }
        }
      });

      it('stores the same keys and values on both adapters', async () => {
        const raw = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
        const prefix = `${runPrefix}layout:`;
        const redis = new RedisEngine({ url: TEST_REDIS_URL, keyPrefix: prefix });
        try {
          const fs = new FlashSaleEngine(redis);
          await fs.load('L', saleState({ epoch: 4, stock: 3 }), KEY_TTL);
          const r = await fs.purchase({
            saleId: 'L',
            userId: 'user:with:colons',
            quantity: 2,
            idempotencyKey: 'idem',
            reservationId: 'res-L',
          });
          expectOk(r);
          expect(await raw.get(`${prefix}{fs:L}:stock`)).toBe('1');
          expect(await raw.hget(`${prefix}{fs:L}:buyers`, 'user:with:colons')).toBe('2');
          expect(await raw.hget(`${prefix}{fs:L}:res`, 'res-L')).toBe(
            `reserved:2:${r.expiresAtMs}:user:with:colons`,
          );
          expect(await raw.zscore(`${prefix}{fs:L}:exp`, 'res-L')).toBe(String(r.expiresAtMs));
          expect(await raw.hget(`${prefix}{fs:L}:idem`, '["user:with:colons","idem"]')).toBe('res-L');
          expect(await raw.hgetall(`${prefix}{fs:L}:meta`)).toMatchObject({
            epoch: '4',
            stopped: '0',
            limit: '5',
          });
        } finally {
          raw.disconnect();
          await redis.close();
        }
      });
    });
  },
);
