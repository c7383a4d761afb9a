/**
 * The embedded Engine: hot state in a MemoryStore, pub/sub between handlers
 * of this one process. Right for a single instance; several instances need
 * RedisEngine to share state and messages.
 *
 * Every method is async even though the store is synchronous, so callers
 * cannot come to depend on timing that Redis would not give them, and so a
 * thrown store error becomes a rejection exactly like a Redis error reply.
 */
import type { Engine, EngineScript, MessageHandler, ScriptValue, SetOptions } from './engine.js';
import {
  assertNonNegativeInteger,
  assertPositiveInteger,
  assertScore,
  assertScriptKeys,
  type EngineLogger,
} from './engine-support.js';
import { MemoryStore } from './memory-store.js';
import { ScriptedEngine } from './scripted-engine.js';

export interface MemoryEngineOptions {
  /**
   * Prepended to every key and channel, as RedisEngine does. It changes
   * nothing for isolation (the store is private to this instance) but makes
   * scripts see the same KEYS on both adapters.
   */
  keyPrefix?: string;
  /** Clock in ms since the epoch for expiry and for scripts' `now`. Default `Date.now`. */
  now?: () => number;
  /** Interval of the expired-key sweep in ms; 0 disables it. Default 1000. */
  sweepIntervalMs?: number;
  /** Receives errors thrown by pub/sub handlers. Without one they are dropped. */
  logger?: EngineLogger;
}

interface Delivery {
  channel: string;
  message: string;
  handlers: MessageHandler[];
}

export class MemoryEngine extends ScriptedEngine implements Engine {
  readonly kind = 'memory' as const;
  private readonly store: MemoryStore;
  /** Handlers by full (prefixed) channel. */
  private readonly channels = new Map<string, Set<MessageHandler>>();
  private readonly queue: Delivery[] = [];
  private flushScheduled = false;

  constructor(options: MemoryEngineOptions = {}) {
    super(options.keyPrefix ?? '', options.logger);
    this.store = new MemoryStore({ now: options.now, sweepIntervalMs: options.sweepIntervalMs });
  }

  async get(key: string): Promise<string | null> {
    this.open();
    return this.store.get(this.k(key));
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    this.open();
    if (options.ttlMs !== undefined) assertPositiveInteger('ttlMs', options.ttlMs);
    return this.store.set(this.k(key), value, { px: options.ttlMs, nx: options.onlyIfAbsent }) === 'OK';
  }

  async del(...keys: string[]): Promise<number> {
    this.open();
    return this.store.del(...keys.map((key) => this.k(key)));
  }

  async ttl(key: string): Promise<number> {
    this.open();
    return this.store.pttl(this.k(key));
  }

  async zAdd(key: string, entries: ReadonlyArray<readonly [score: number, member: string]>): Promise<void> {
    this.open();
    for (const [score] of entries) assertScore('score', score);
    if (entries.length > 0) this.store.zadd(this.k(key), entries);
  }

  async zRem(key: string, ...members: string[]): Promise<number> {
    this.open();
    return this.store.zrem(this.k(key), ...members);
  }

  async zScore(key: string, member: string): Promise<number | null> {
    this.open();
    return this.store.zscore(this.k(key), member);
  }

  async zRangeByScore(
    key: string,
    min: number,
    max: number,
    limit?: number,
  ): Promise<Array<{ member: string; score: number }>> {
    this.open();
    assertScore('min', min);
    assertScore('max', max);
    if (limit !== undefined) assertNonNegativeInteger('limit', limit);
    return this.store.zrangebyscore(
      this.k(key),
      min,
      max,
      limit === undefined ? {} : { limit: { offset: 0, count: limit } },
    );
  }

  async zRemRangeByScore(key: string, min: number, max: number): Promise<number> {
    this.open();
    assertScore('min', min);
    assertScore('max', max);
    return this.store.zremrangebyscore(this.k(key), min, max);
  }

  async zCard(key: string): Promise<number> {
    this.open();
    return this.store.zcard(this.k(key));
  }

  async run<R extends ScriptValue>(
    script: EngineScript<R>,
    keys: string[],
    args: Array<string | number>,
  ): Promise<R> {
    this.open();
    assertScriptKeys(script, keys);
    const fullKeys = keys.map((key) => this.k(key));
    const strArgs = args.map(String);
    const result = this.store.atomic((now) => script.memory(this.store, fullKeys, strArgs, now));
    assertRedisShaped(script.name, result);
    return result;
  }

  async publish(channel: string, message: string): Promise<void> {
    this.open();
    const handlers = this.channels.get(this.k(channel));
    if (!handlers || handlers.size === 0) return;
    // Snapshot now: like Redis, a message goes to whoever was subscribed when
    // it was published, and is delivered later, never inside publish().
    this.queue.push({ channel, message, handlers: [...handlers] });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // setImmediate rather than a microtask: a handler that publishes in a
      // loop must not starve I/O.
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue.splice(0);
    for (const { channel, message, handlers } of batch) {
      if (this.closed) return;
      const current = this.channels.get(this.k(channel));
      for (const handler of handlers) {
        // Unsubscribed between publish and delivery: that handler is gone.
        if (!current?.has(handler)) continue;
        this.deliver(handler, message, channel);
      }
    }
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    this.open();
    const full = this.k(channel);
    let handlers = this.channels.get(full);
    if (!handlers) {
      handlers = new Set();
      this.channels.set(full, handlers);
    }
    // Wrapped so that subscribing the same function twice gives two
    // independent subscriptions, each removed by its own unsubscribe.
    const wrapped: MessageHandler = (message, ch) => handler(message, ch);
    handlers.add(wrapped);
    return async () => {
      const set = this.channels.get(full);
      if (!set) return;
      set.delete(wrapped);
      if (set.size === 0) this.channels.delete(full);
    };
  }

  async check(): Promise<void> {
    this.open();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.store.stop();
    this.queue.length = 0;
    this.channels.clear();
  }
}

/**
 * Fails a memory twin that returns something Redis could not: Lua numbers
 * reach the client truncated to integers and booleans turn into 1/null, so a
 * twin returning 1.5 or true would pass here and differ on Redis.
 */
function assertRedisShaped(name: string, value: unknown): void {
  if (value === null || typeof value === 'string') return;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(
        `script ${name} returned ${value}; Redis would truncate it: return integers or strings`,
      );
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) assertRedisShaped(name, item);
    return;
  }
  throw new TypeError(
    `script ${name} returned a ${typeof value}; scripts return integers, strings, null or arrays`,
  );
}
