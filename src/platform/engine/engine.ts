/**
 * The Engine port: hot state and messaging shared by every server instance.
 *
 * Two adapters implement it: `MemoryEngine` (embedded default, one process)
 * and `RedisEngine` (ioredis; Lua for every multi-step atomic change). The
 * contract suite in `test/engine.test.ts` runs unchanged against both, so a
 * rule that holds in one holds in the other.
 *
 * Keys are plain strings chosen by the caller. Keys touched by one script
 * must share a Redis Cluster hash tag, e.g. `{sale:42}:stock` and
 * `{sale:42}:buyers`, so the Redis adapter also works on a cluster.
 */
import type { MemoryStore } from './memory-store.js';

/** A value a script can return: what Redis can answer from Lua. */
export type ScriptValue = number | string | null | ScriptValue[];

/**
 * A multi-step atomic change, written twice: once in Lua for Redis and once in
 * TypeScript against the in-memory store. Both must give the same answer for
 * the same state; the contract suite checks the ones defined in the platform,
 * and each domain module checks its own.
 *
 * Lua conventions: numbers returned from Lua are integers (Redis truncates
 * floats), `false`/nil become `null`; return strings for non-integers.
 */
export interface EngineScript<Result extends ScriptValue = ScriptValue> {
  /** Unique name; used for EVALSHA caching and in error messages. */
  readonly name: string;
  /** Number of leading arguments that are keys. */
  readonly keys: number;
  /** The Lua source run by Redis. KEYS and ARGV as usual. */
  readonly lua: string;
  /**
   * The same logic against the in-memory store. Runs synchronously, so it is
   * atomic by construction. `now` is the engine clock in ms (Redis: TIME).
   */
  readonly memory: (store: MemoryStore, keys: string[], args: string[], now: number) => Result;
}

export interface SetOptions {
  /** Expire the key after this many milliseconds. */
  ttlMs?: number;
  /** Only set when the key does not exist (SET NX). */
  onlyIfAbsent?: boolean;
}

/** One entry of a sequenced log (room history). */
export interface LogEntry {
  seq: number;
  data: string;
}

export interface LogReadResult {
  /** Entries with seq > afterSeq, in order, at most `limit`. */
  entries: LogEntry[];
  /** Highest sequence number ever assigned in this log (0 if none). */
  lastSeq: number;
  /**
   * True when entries after `afterSeq` were already trimmed away, so the
   * reader cannot be brought up to date from the log alone.
   */
  truncated: boolean;
}

export type MessageHandler = (message: string, channel: string) => void;

export interface Engine {
  /** `memory` or `redis`; shown in /readyz. */
  readonly kind: 'memory' | 'redis';

  get(key: string): Promise<string | null>;
  /** Returns false when `onlyIfAbsent` was set and the key existed. */
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  /** Deletes keys; returns how many existed. */
  del(...keys: string[]): Promise<number>;
  /** Remaining time to live in ms; -1 without expiry, -2 if the key does not exist. */
  ttl(key: string): Promise<number>;
  /**
   * Adds `by` to an integer counter and returns the new value. When the call
   * creates the key and `ttlMs` is given, the key expires after `ttlMs`
   * (a fixed window: later increments do not extend it).
   */
  incrBy(key: string, by: number, ttlMs?: number): Promise<number>;

  /** Adds or updates members of a sorted set. */
  zAdd(key: string, entries: ReadonlyArray<readonly [score: number, member: string]>): Promise<void>;
  zRem(key: string, ...members: string[]): Promise<number>;
  zScore(key: string, member: string): Promise<number | null>;
  /** Members with min <= score <= max, ascending, with their scores. */
  zRangeByScore(
    key: string,
    min: number,
    max: number,
    limit?: number,
  ): Promise<Array<{ member: string; score: number }>>;
  /** Removes members with min <= score <= max; returns how many. */
  zRemRangeByScore(key: string, min: number, max: number): Promise<number>;
  zCard(key: string): Promise<number>;

  /**
   * Appends to a sequenced, capped log and returns the entry's sequence number
   * (1, 2, 3, ... per key, never reused). Keeps at most `maxLen` entries; the
   * whole log expires `ttlMs` after the last append.
   */
  logAppend(key: string, data: string, options: { maxLen: number; ttlMs: number }): Promise<number>;
  /** Reads entries after `afterSeq`. */
  logRead(key: string, afterSeq: number, limit: number): Promise<LogReadResult>;

  /** Runs an atomic script. Key arguments come first, as declared by `script.keys`. */
  run<R extends ScriptValue>(
    script: EngineScript<R>,
    keys: string[],
    args: Array<string | number>,
  ): Promise<R>;

  /** Publishes to every subscriber of `channel` on every instance. */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Subscribes to a channel; resolves once the subscription is active.
   * Returns a function that removes this handler.
   */
  subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>>;

  /** Resolves when the engine can serve requests; rejects with the reason otherwise. */
  check(): Promise<void>;
  /** Closes connections; further calls reject. Idempotent. */
  close(): Promise<void>;
}
