/**
 * The Engine on Redis (ioredis), for several instances sharing hot state and
 * messages. Every multi-step change is one Lua script (EVALSHA), so it is
 * atomic on the server.
 *
 * Connections: one command connection with auto-pipelining (concurrent calls
 * in the same tick share a round trip) and one subscriber connection, opened
 * on the first subscribe, because a connection in subscriber mode cannot run
 * other commands. Both reconnect forever with a capped backoff; the
 * subscriber re-subscribes its channels when it is back.
 *
 * Failure behaviour: a call made while Redis is down waits at most for two
 * reconnect attempts (maxRetriesPerRequest 1) and then rejects, and a call
 * that got no reply at all rejects after `commandTimeoutMs`, so requests fail
 * fast instead of hanging. Commands that were written but unanswered when a
 * connection dropped are rejected, not resent: Redis may already have run
 * them, and running a purchase script twice is worse than reporting an error.
 *
 * Key prefix: applied here, to every key (including script KEYS) and every
 * pub/sub channel, rather than through ioredis' own `keyPrefix`. ioredis
 * prefixes EVAL/EVALSHA keys but leaves PUBLISH/SUBSCRIBE channels and SCAN
 * patterns alone, so using it would have meant prefixing channels by hand
 * anyway, with two mechanisms to keep in step. MemoryEngine applies the same
 * prefix the same way, so scripts see identical KEYS on both adapters.
 */

import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Engine, EngineScript, MessageHandler, ScriptValue, SetOptions } from './engine.js';
import {
  assertNonNegativeInteger,
  assertPositiveInteger,
  assertScore,
  assertScriptKeys,
  describeError,
  type EngineLogger,
  redactUrl,
} from './engine-support.js';
import { ScriptedEngine } from './scripted-engine.js';

export interface RedisEngineOptions {
  /** Redis URL, e.g. `redis://:password@host:6379/0` or `rediss://...` for TLS. */
  url: string;
  /**
   * Prepended to every key and every pub/sub channel, so several deployments
   * (or test runs) can share one Redis without seeing each other's state or
   * messages. Use something like `lcs:`. Handlers receive channel names
   * without it. Keep `{` and `}` out of it: a hash tag in the prefix would put
   * every key into one Redis Cluster slot.
   */
  keyPrefix?: string;
  /** Told about lost and restored connections and about pub/sub handlers that throw. */
  logger?: EngineLogger;
  /** How long `check()` waits for a connection and a PING reply before rejecting. Default 1000 ms. */
  checkTimeoutMs?: number;
  /** How long one connection attempt may take before it counts as failed. Default 2000 ms. */
  connectTimeoutMs?: number;
  /**
   * How long a command may wait for its reply before it rejects. Covers a
   * Redis that is reachable but stalled, or a connection that died silently.
   * Default 5000 ms.
   */
  commandTimeoutMs?: number;
  /** Upper bound of the reconnect backoff (50 ms, 100 ms, ... up to this). Default 1000 ms. */
  maxReconnectDelayMs?: number;
}

type Role = 'command' | 'subscriber';

interface Subscription {
  handlers: Set<MessageHandler>;
  /** Settles when Redis acknowledged SUBSCRIBE for this channel. */
  ready: Promise<void>;
}

/** Redis replies with `inf`/`-inf` for infinite scores; Number() would give NaN. */
function parseScore(text: string): number {
  if (text === 'inf' || text === '+inf') return Number.POSITIVE_INFINITY;
  if (text === '-inf') return Number.NEGATIVE_INFINITY;
  return Number(text);
}

function formatScore(score: number): string {
  if (score === Number.POSITIVE_INFINITY) return '+inf';
  if (score === Number.NEGATIVE_INFINITY) return '-inf';
  return String(score);
}

export class RedisEngine extends ScriptedEngine implements Engine {
  readonly kind = 'redis' as const;
  private readonly url: string;
  /** The URL with its password replaced, the only form that reaches messages and logs. */
  private readonly safeUrl: string;
  private readonly checkTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly commandTimeoutMs: number;
  private readonly maxReconnectDelayMs: number;
  private readonly redis: Redis;
  private sub: Redis | undefined;
  private readonly subscriptions = new Map<string, Subscription>();
  /** SHA1 and source per script name, to catch two different scripts sharing a name. */
  private readonly scripts = new Map<string, { lua: string; sha: string }>();
  private readonly lastError = new Map<Role, string>();
  private readonly down = new Set<Role>();

  constructor(options: RedisEngineOptions) {
    super(options.keyPrefix ?? '', options.logger);
    this.url = options.url;
    this.safeUrl = redactUrl(options.url);
    this.checkTimeoutMs = options.checkTimeoutMs ?? 1000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 5000;
    this.maxReconnectDelayMs = options.maxReconnectDelayMs ?? 1000;
    this.redis = this.connect('command');
  }

  private connectionOptions(role: Role): RedisOptions {
    return {
      connectionName: `lcs-${role}`,
      enableAutoPipelining: role === 'command',
      // Never give up: the engine must come back by itself when Redis does.
      retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, this.maxReconnectDelayMs),
      maxRetriesPerRequest: 1,
      connectTimeout: this.connectTimeoutMs,
      // Subscriber mode has only SUBSCRIBE/UNSUBSCRIBE, which are safe to
      // resend; the command connection runs scripts, which are not.
      commandTimeout: role === 'command' ? this.commandTimeoutMs : undefined,
      autoResendUnfulfilledCommands: role === 'subscriber',
      autoResubscribe: true,
    };
  }

  private connect(role: Role): Redis {
    const conn = new Redis(this.url, this.connectionOptions(role));
    // Concurrent check() calls each wait for 'ready'.
    conn.setMaxListeners(0);
    conn.on('error', (err: unknown) => {
      const reason = describeError(err);
      this.lastError.set(role, reason);
      if (!this.down.has(role) && !this.closed) {
        this.down.add(role);
        this.logger?.warn({ url: this.safeUrl, role, reason }, 'redis connection failed; reconnecting');
      }
    });
    conn.on('close', () => {
      if (!this.down.has(role) && !this.closed) {
        this.down.add(role);
        this.logger?.warn({ url: this.safeUrl, role }, 'redis connection closed; reconnecting');
      }
    });
    conn.on('ready', () => {
      this.lastError.delete(role);
      if (this.down.delete(role) && !this.closed) {
        this.logger?.info?.({ url: this.safeUrl, role }, 'redis connection ready');
      }
    });
    return conn;
  }

  async get(key: string): Promise<string | null> {
    this.open();
    return this.redis.get(this.k(key));
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    this.open();
    const full = this.k(key);
    const { ttlMs, onlyIfAbsent } = options;
    let reply: 'OK' | null;
    if (ttlMs !== undefined) {
      assertPositiveInteger('ttlMs', ttlMs);
      reply = onlyIfAbsent
        ? await this.redis.set(full, value, 'PX', ttlMs, 'NX')
        : await this.redis.set(full, value, 'PX', ttlMs);
    } else {
      reply = onlyIfAbsent ? await this.redis.set(full, value, 'NX') : await this.redis.set(full, value);
    }
    return reply === 'OK';
  }

  async del(...keys: string[]): Promise<number> {
    this.open();
    if (keys.length === 0) return 0;
    return this.redis.del(...keys.map((key) => this.k(key)));
  }

  async ttl(key: string): Promise<number> {
    this.open();
    return this.redis.pttl(this.k(key));
  }

  async zAdd(key: string, entries: ReadonlyArray<readonly [score: number, member: string]>): Promise<void> {
    this.open();
    for (const [score] of entries) assertScore('score', score);
    if (entries.length === 0) return;
    await this.redis.zadd(this.k(key), ...entries.flatMap(([score, member]) => [formatScore(score), member]));
  }

  async zRem(key: string, ...members: string[]): Promise<number> {
    this.open();
    if (members.length === 0) return 0;
    return this.redis.zrem(this.k(key), ...members);
  }

  async zScore(key: string, member: string): Promise<number | null> {
    this.open();
    const reply = await this.redis.zscore(this.k(key), member);
    return reply === null ? null : parseScore(reply);
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
    const full = this.k(key);
    let flat: string[];
    if (limit === undefined) {
      flat = await this.redis.zrangebyscore(full, formatScore(min), formatScore(max), 'WITHSCORES');
    } else {
      assertNonNegativeInteger('limit', limit);
      flat = await this.redis.zrangebyscore(
        full,
        formatScore(min),
        formatScore(max),
        'WITHSCORES',
        'LIMIT',
        0,
        limit,
      );
    }
    const out: Array<{ member: string; score: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      out.push({ member: flat[i]!, score: parseScore(flat[i + 1]!) });
    return out;
  }

  async zRemRangeByScore(key: string, min: number, max: number): Promise<number> {
    this.open();
    assertScore('min', min);
    assertScore('max', max);
    return this.redis.zremrangebyscore(this.k(key), formatScore(min), formatScore(max));
  }

  async zCard(key: string): Promise<number> {
    this.open();
    return this.redis.zcard(this.k(key));
  }

  private sha(script: EngineScript<ScriptValue>): string {
    const known = this.scripts.get(script.name);
    if (known) {
      if (known.lua !== script.lua) throw new Error(`two different scripts are named ${script.name}`);
      return known.sha;
    }
    const sha = createHash('sha1').update(script.lua).digest('hex');
    this.scripts.set(script.name, { lua: script.lua, sha });
    return sha;
  }

  async run<R extends ScriptValue>(
    script: EngineScript<R>,
    keys: string[],
    args: Array<string | number>,
  ): Promise<R> {
    this.open();
    assertScriptKeys(script, keys);
    const sha = this.sha(script);
    const params = [...keys.map((key) => this.k(key)), ...args];
    let reply: unknown;
    try {
      reply = await this.redis.evalsha(sha, keys.length, ...params);
    } catch (err) {
      // The script cache is empty after a Redis restart or SCRIPT FLUSH: send
      // the source once; EVAL caches it again for the next EVALSHA.
      if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
      reply = await this.redis.eval(script.lua, keys.length, ...params);
    }
    // Lua replies arrive as integers, strings, null and arrays of those,
    // which is exactly ScriptValue; R is the script author's narrower promise.
    return reply as R;
  }

  async publish(channel: string, message: string): Promise<void> {
    this.open();
    await this.redis.publish(this.k(channel), message);
  }

  private subscriber(): Redis {
    if (!this.sub) {
      const sub = this.connect('subscriber');
      sub.on('message', (channel: string, message: string) => this.dispatch(channel, message));
      this.sub = sub;
    }
    return this.sub;
  }

  private dispatch(fullChannel: string, message: string): void {
    const subscription = this.subscriptions.get(fullChannel);
    if (!subscription) return;
    const channel = fullChannel.slice(this.prefix.length);
    for (const handler of [...subscription.handlers]) {
      this.deliver(handler, message, channel);
    }
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    this.open();
    const full = this.k(channel);
    let subscription = this.subscriptions.get(full);
    if (!subscription) {
      const ready = this.subscriber()
        .subscribe(full)
        .then(() => undefined);
      subscription = { handlers: new Set(), ready };
      this.subscriptions.set(full, subscription);
    }
    // Wrapped so the same function subscribed twice is two subscriptions.
    const wrapped: MessageHandler = (message, ch) => handler(message, ch);
    subscription.handlers.add(wrapped);
    try {
      await subscription.ready;
    } catch (err) {
      this.removeHandler(full, subscription, wrapped);
      throw new Error(`subscribe to ${channel} on redis at ${this.safeUrl} failed: ${describeError(err)}`);
    }
    return async () => {
      if (!this.removeHandler(full, subscription, wrapped)) return;
      if (this.closed || !this.sub) return;
      try {
        await this.sub.unsubscribe(full);
      } catch (err) {
        // The handler is gone locally, which is all the caller asked for; at
        // worst ioredis resubscribes the channel later and messages are ignored.
        this.logger?.warn({ channel, reason: describeError(err) }, 'redis unsubscribe failed');
      }
    };
  }

  /** Removes a handler; true when it was the channel's last one and the channel should be unsubscribed. */
  private removeHandler(full: string, subscription: Subscription, handler: MessageHandler): boolean {
    if (!subscription.handlers.delete(handler) || subscription.handlers.size > 0) return false;
    if (this.subscriptions.get(full) !== subscription) return false;
    this.subscriptions.delete(full);
    return true;
  }

  private unreachable(reason: string): Error {
    return new Error(`redis at ${this.safeUrl} unreachable: ${reason}`);
  }

  /** Resolves when `conn` is ready, or rejects at `deadline` with the last connection error. */
  private async waitReady(conn: Redis, role: Role, deadline: number): Promise<void> {
    if (conn.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(
        () => {
          conn.off('ready', onReady);
          const reason = this.lastError.get(role) ?? `no connection within ${this.checkTimeoutMs} ms`;
          reject(this.unreachable(role === 'command' ? reason : `subscriber connection: ${reason}`));
        },
        Math.max(0, deadline - Date.now()),
      );
      conn.once('ready', onReady);
    });
  }

  async check(): Promise<void> {
    this.open();
    const deadline = Date.now() + this.checkTimeoutMs;
    await this.waitReady(this.redis, 'command', deadline);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(this.unreachable(`no reply to PING within ${this.checkTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      await Promise.race([
        this.redis.ping().catch((err: unknown) => {
          throw this.unreachable(describeError(err));
        }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
    // Realtime delivery depends on the subscriber too, once there is one.
    if (this.sub) await this.waitReady(this.sub, 'subscriber', deadline);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscriptions.clear();
    await Promise.all([quit(this.redis), this.sub ? quit(this.sub) : undefined]);
  }
}

/** QUIT lets queued commands finish; disconnect() covers a connection that is down or slow to answer. */
async function quit(conn: Redis): Promise<void> {
  if (conn.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      conn.quit().catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 1000);
      }),
    ]);
    clearTimeout(timer);
  }
  conn.disconnect();
}
