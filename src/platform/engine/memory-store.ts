/**
 * The in-memory data model behind `MemoryEngine`: just the Redis types and
 * commands that engine scripts use, with Redis semantics, so that the memory
 * twin of a Lua script can be a line-by-line translation of it.
 *
 * Conventions, so a twin reads like its Lua:
 * - Method names are the Redis command names in lower case (`zadd`, `hincrby`).
 * - Return values are what Redis returns: counts for `del`/`zadd`/`zrem`,
 *   `'OK'`/`null` for `set`, `-2`/`-1`/ms for `pttl`, `null` for a missing
 *   value. Where Redis answers a float as a string (ZSCORE, WITHSCORES), this
 *   store returns a JS number; in Lua call `tonumber()` on it.
 * - Errors carry the Redis message (`WRONGTYPE ...`, `ERR value is not an
 *   integer or out of range`), so callers can match either adapter's errors
 *   with the same pattern.
 * - Empty hashes and sorted sets disappear, as in Redis.
 * - Expiry is lazy (checked on every access against the injected clock) plus
 *   a periodic sweep so that keys nobody reads again do not pile up.
 *
 * Known differences from Redis, none of which engine scripts should rely on:
 * integers are JS numbers, so counters beyond +-2^53 are refused as "out of
 * range" (Redis allows 64-bit); members with equal scores are ordered by
 * UTF-16 code units rather than bytes, which differs only between
 * astral-plane characters and U+E000..U+FFFF.
 */

/** An error with Redis's reply text. */
export class StoreReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreReplyError';
  }
}

const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';
const NOT_INTEGER = 'ERR value is not an integer or out of range';
const NOT_FLOAT = 'ERR value is not a valid float';
const BAD_RANGE = 'ERR min or max is not a float';

/** A score bound as Redis takes it: a number, `'-inf'`, `'+inf'`, or `'(5'` for exclusive. */
export type ScoreBound = number | string;

export interface StoreSetOptions {
  /** Expire after this many milliseconds (SET PX). Must be a positive integer. */
  px?: number;
  /** Only set if the key does not exist (SET NX). */
  nx?: boolean;
  /** Only set if the key already exists (SET XX). */
  xx?: boolean;
  /** Keep the key's current expiry instead of clearing it (SET KEEPTTL). */
  keepTtl?: boolean;
}

export interface ZAddOptions {
  /** Only add new members, never update scores (ZADD NX). */
  nx?: boolean;
  /** Only update existing members, never add (ZADD XX). */
  xx?: boolean;
  /** Only update when the new score is greater (ZADD GT). */
  gt?: boolean;
  /** Only update when the new score is lower (ZADD LT). */
  lt?: boolean;
  /** Return added + changed instead of only added (ZADD CH). */
  ch?: boolean;
}

export interface ZRangeByScoreOptions {
  /** ZRANGEBYSCORE ... LIMIT offset count; a negative count means "all after offset". */
  limit?: { offset: number; count: number };
}

/** A sorted-set member with its score, as ZRANGE ... WITHSCORES gives them. */
export interface ScoredMember {
  member: string;
  score: number;
}

export interface MemoryStoreOptions {
  /** Clock in ms since the epoch; inject a fake one in tests. Default `Date.now`. */
  now?: () => number;
  /**
   * How often expired keys are swept, in ms. 0 disables the sweep (expiry is
   * then purely lazy). Default 1000. The timer is unref'd, so it never keeps
   * the process alive; `stop()` clears it.
   */
  sweepIntervalMs?: number;
}

interface Ordered {
  score: number;
  member: string;
}

function compareOrdered(a: Ordered, b: Ordered): number {
  if (a.score !== b.score) return a.score < b.score ? -1 : 1;
  return a.member < b.member ? -1 : a.member > b.member ? 1 : 0;
}

/**
 * Members kept in a map (score lookup) and in an array ordered by (score,
 * member) for ranges. Inserts are a binary search plus a splice: O(n) moves
 * but tiny constants, plenty for the sizes hot state has (reservations,
 * capped history); a skip list would only pay off far beyond that.
 */
class SortedSet {
  readonly scores = new Map<string, number>();
  readonly order: Ordered[] = [];

  get size(): number {
    return this.order.length;
  }

  /** Index of the first element not less than `probe`. */
  private lowerBound(probe: Ordered): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareOrdered(this.order[mid]!, probe) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first element whose score is above (or, inclusive, at least) `score`. */
  firstIndexFrom(score: number, exclusive: boolean): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.order[mid]!.score;
      if (exclusive ? s <= score : s < score) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index one past the last element whose score is below (or, inclusive, at most) `score`. */
  endIndexTo(score: number, exclusive: boolean): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.order[mid]!.score;
      if (exclusive ? s < score : s <= score) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  set(member: string, score: number): void {
    const old = this.scores.get(member);
    if (old !== undefined) {
      if (old === score) return;
      this.order.splice(this.lowerBound({ score: old, member }), 1);
    }
    this.scores.set(member, score);
    const entry = { score, member };
    this.order.splice(this.lowerBound(entry), 0, entry);
  }

  delete(member: string): boolean {
    const score = this.scores.get(member);
    if (score === undefined) return false;
    this.scores.delete(member);
    this.order.splice(this.lowerBound({ score, member }), 1);
    return true;
  }

  /** Removes order[start, end) and returns how many. */
  deleteIndexRange(start: number, end: number): number {
    if (end <= start) return 0;
    const removed = this.order.splice(start, end - start);
    for (const { member } of removed) this.scores.delete(member);
    return removed.length;
  }
}

type Entry =
  | { type: 'string'; value: string; expiresAt: number | undefined }
  | { type: 'hash'; value: Map<string, string>; expiresAt: number | undefined }
  | { type: 'zset'; value: SortedSet; expiresAt: number | undefined };

type EntryType = Entry['type'];
type EntryOf<T extends EntryType> = Extract<Entry, { type: T }>;

/** Redis's string2ll: optional '-', no '+', no leading zeros, no spaces, no "-0". */
const INTEGER_RE = /^(?:0|-?[1-9][0-9]*)$/;

function parseInteger(text: string, message = NOT_INTEGER): number {
  if (!INTEGER_RE.test(text)) throw new StoreReplyError(message);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new StoreReplyError(message);
  return n;
}

function checkIntegerArg(n: number): number {
  if (!Number.isSafeInteger(n)) throw new StoreReplyError(NOT_INTEGER);
  return n;
}

/** Redis stores -0 as 0; keep it that way so scores compare and print alike. */
function normalizeScore(score: number): number {
  if (typeof score !== 'number' || Number.isNaN(score)) throw new StoreReplyError(NOT_FLOAT);
  return score === 0 ? 0 : score;
}

const FLOAT_RE = /^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;

function parseBound(bound: ScoreBound): { score: number; exclusive: boolean } {
  if (typeof bound === 'number') {
    if (Number.isNaN(bound)) throw new StoreReplyError(BAD_RANGE);
    return { score: bound, exclusive: false };
  }
  let text = bound;
  let exclusive = false;
  if (text.startsWith('(')) {
    exclusive = true;
    text = text.slice(1);
  }
  const lower = text.toLowerCase();
  if (lower === '-inf') return { score: Number.NEGATIVE_INFINITY, exclusive };
  if (lower === '+inf' || lower === 'inf') return { score: Number.POSITIVE_INFINITY, exclusive };
  if (!FLOAT_RE.test(text)) throw new StoreReplyError(BAD_RANGE);
  const score = Number(text);
  if (!Number.isFinite(score)) throw new StoreReplyError(BAD_RANGE);
  return { score, exclusive };
}

/** Redis rank semantics: negative counts from the end, out-of-range clamps. Returns [start, end). */
function rankRange(size: number, start: number, stop: number): [number, number] {
  checkIntegerArg(start);
  checkIntegerArg(stop);
  let from = start < 0 ? size + start : start;
  let to = stop < 0 ? size + stop : stop;
  if (from < 0) from = 0;
  if (from > to || from >= size) return [0, 0];
  if (to >= size) to = size - 1;
  return [from, to + 1];
}

/**
 * Synchronous in-memory keyspace with Redis semantics. Every method is one
 * Redis command; a script twin composes them and, because nothing here
 * yields, a whole twin runs atomically.
 */
export class MemoryStore {
  private readonly data = new Map<string, Entry>();
  /** Keys that have an expiry, so the sweep never walks persistent keys. */
  private readonly volatile = new Set<string>();
  private readonly clock: () => number;
  private frozenNow: number | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.clock = options.now ?? Date.now;
    const interval = options.sweepIntervalMs ?? 1000;
    if (interval > 0) {
      this.sweeper = setInterval(() => this.sweep(), interval);
      this.sweeper.unref();
    }
  }

  /** The store clock in ms; frozen for the duration of `atomic()`. */
  now(): number {
    return this.frozenNow ?? this.clock();
  }

  /**
   * Runs `fn` with the clock frozen at one instant, like Redis does for a
   * script: a key cannot expire between two commands of the same script.
   */
  atomic<T>(fn: (now: number) => T): T {
    if (this.frozenNow !== undefined) return fn(this.frozenNow);
    this.frozenNow = this.clock();
    try {
      return fn(this.frozenNow);
    } finally {
      this.frozenNow = undefined;
    }
  }

  /** Removes every expired key now; returns how many. Called by the periodic sweep. */
  sweep(): number {
    const now = this.now();
    let removed = 0;
    for (const key of this.volatile) {
      const entry = this.data.get(key);
      if (entry?.expiresAt !== undefined && now > entry.expiresAt) {
        this.remove(key);
        removed++;
      }
    }
    return removed;
  }

  /** Stops the periodic sweep. The store keeps working with lazy expiry. */
  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** DBSIZE: number of keys, including expired ones not yet swept (as in Redis). */
  dbsize(): number {
    return this.data.size;
  }

  // ---- internals -------------------------------------------------------------

  private remove(key: string): boolean {
    this.volatile.delete(key);
    return this.data.delete(key);
  }

  /** The live entry at `key`, deleting it first if it has expired. */
  private lookup(key: string): Entry | undefined {
    const entry = this.data.get(key);
    if (entry === undefined) return undefined;
    // Redis treats a key as expired only once the clock is past its deadline.
    if (entry.expiresAt !== undefined && this.now() > entry.expiresAt) {
      this.remove(key);
      return undefined;
    }
    return entry;
  }

  private read<T extends EntryType>(key: string, type: T): EntryOf<T> | undefined {
    const entry = this.lookup(key);
    if (entry === undefined) return undefined;
    if (entry.type !== type) throw new StoreReplyError(WRONGTYPE);
    return entry as EntryOf<T>;
  }

  private readOrCreate<T extends EntryType>(key: string, type: T, create: () => EntryOf<T>): EntryOf<T> {
    const existing = this.read(key, type);
    if (existing) return existing;
    const entry = create();
    this.data.set(key, entry);
    return entry;
  }

  /** Aggregates that became empty are deleted, as Redis does. */
  private dropIfEmpty(key: string, size: number): void {
    if (size === 0) this.remove(key);
  }

  // ---- keys ------------------------------------------------------------------

  /** DEL: removes keys; returns how many existed. */
  del(...keys: string[]): number {
    let n = 0;
    for (const key of keys) {
      if (this.lookup(key) !== undefined) {
        this.remove(key);
        n++;
      }
    }
    return n;
  }

  /** EXISTS: how many of `keys` exist (a key named twice counts twice). */
  exists(...keys: string[]): number {
    let n = 0;
    for (const key of keys) if (this.lookup(key) !== undefined) n++;
    return n;
  }

  /** TYPE: `'string'`, `'hash'`, `'zset'` or `'none'`. */
  type(key: string): EntryType | 'none' {
    return this.lookup(key)?.type ?? 'none';
  }

  /**
   * PEXPIRE: sets a time to live in ms; returns 1, or 0 when the key does not
   * exist. A non-positive ttl deletes the key (and returns 1), as in Redis.
   */
  pexpire(key: string, ms: number): 0 | 1 {
    checkIntegerArg(ms);
    const entry = this.lookup(key);
    if (entry === undefined) return 0;
    if (ms <= 0) {
      this.remove(key);
      return 1;
    }
    entry.expiresAt = this.now() + ms;
    this.volatile.add(key);
    return 1;
  }

  /** PTTL: remaining ms; -1 when the key has no expiry; -2 when it does not exist. */
  pttl(key: string): number {
    const entry = this.lookup(key);
    if (entry === undefined) return -2;
    if (entry.expiresAt === undefined) return -1;
    return Math.max(0, entry.expiresAt - this.now());
  }

  /** PERSIST: removes the expiry; returns 1 if there was one, else 0. */
  persist(key: string): 0 | 1 {
    const entry = this.lookup(key);
    if (entry?.expiresAt === undefined) return 0;
    entry.expiresAt = undefined;
    this.volatile.delete(key);
    return 1;
  }

  // ---- strings and counters -----------------------------------------------------

  /** GET: the string value, or null. WRONGTYPE for a hash or sorted set. */
  get(key: string): string | null {
    return this.read(key, 'string')?.value ?? null;
  }

  /**
   * SET: stores a string (replacing a value of any type). Returns 'OK', or
   * null when NX/XX prevented the write. Clears an existing expiry unless
   * `keepTtl`.
   */
  set(key: string, value: string | number, options: StoreSetOptions = {}): 'OK' | null {
    if ((options.nx && options.xx) || (options.px !== undefined && options.keepTtl)) {
      throw new StoreReplyError('ERR syntax error');
    }
    if (options.px !== undefined) {
      checkIntegerArg(options.px);
      if (options.px <= 0) throw new StoreReplyError("ERR invalid expire time in 'set' command");
    }
    const current = this.lookup(key);
    if (options.nx && current !== undefined) return null;
    if (options.xx && current === undefined) return null;
    let expiresAt: number | undefined;
    if (options.px !== undefined) expiresAt = this.now() + options.px;
    else if (options.keepTtl) expiresAt = current?.expiresAt;
    this.data.set(key, { type: 'string', value: String(value), expiresAt });
    if (expiresAt === undefined) this.volatile.delete(key);
    else this.volatile.add(key);
    return 'OK';
  }

  /**
   * INCRBY: adds `increment` to the integer stored at `key` (missing counts
   * as 0) and returns the new value. Keeps the key's expiry.
   */
  incrby(key: string, increment: number): number {
    checkIntegerArg(increment);
    const entry = this.read(key, 'string');
    const current = entry ? parseInteger(entry.value) : 0;
    const next = current + increment;
    if (!Number.isSafeInteger(next)) throw new StoreReplyError('ERR increment or decrement would overflow');
    if (entry) entry.value = String(next);
    else this.data.set(key, { type: 'string', value: String(next), expiresAt: undefined });
    return next;
  }

  // ---- hashes ----------------------------------------------------------------

  /** HGET: a field's value, or null. */
  hget(key: string, field: string): string | null {
    return this.read(key, 'hash')?.value.get(field) ?? null;
  }

  /** HSET: sets one or more field/value pairs; returns how many fields were new. */
  hset(key: string, field: string, value: string | number, ...more: Array<string | number>): number {
    if (more.length % 2 !== 0) throw new StoreReplyError("ERR wrong number of arguments for 'hset' command");
    const hash = this.readOrCreate(key, 'hash', () => ({
      type: 'hash',
      value: new Map(),
      expiresAt: undefined,
    }));
    let added = 0;
    const pairs: Array<string | number> = [field, value, ...more];
    for (let i = 0; i < pairs.length; i += 2) {
      const f = String(pairs[i]);
      if (!hash.value.has(f)) added++;
      hash.value.set(f, String(pairs[i + 1]));
    }
    return added;
  }

  /** HINCRBY: adds to an integer field (missing counts as 0); returns the new value. */
  hincrby(key: string, field: string, increment: number): number {
    checkIntegerArg(increment);
    const existing = this.read(key, 'hash');
    const raw = existing?.value.get(field);
    const current = raw === undefined ? 0 : parseInteger(raw, 'ERR hash value is not an integer');
    const next = current + increment;
    if (!Number.isSafeInteger(next)) throw new StoreReplyError('ERR increment or decrement would overflow');
    const hash =
      existing ??
      this.readOrCreate(key, 'hash', () => ({ type: 'hash', value: new Map(), expiresAt: undefined }));
    hash.value.set(field, String(next));
    return next;
  }

  /**
   * HGETALL: a copy of the hash as a Map in insertion order (empty when the
   * key does not exist). Lua gets a flat field/value array instead.
   */
  hgetall(key: string): Map<string, string> {
    return new Map(this.read(key, 'hash')?.value);
  }

  /** HDEL: removes fields; returns how many existed. */
  hdel(key: string, ...fields: string[]): number {
    const hash = this.read(key, 'hash');
    if (!hash) return 0;
    let n = 0;
    for (const f of fields) if (hash.value.delete(f)) n++;
    this.dropIfEmpty(key, hash.value.size);
    return n;
  }

  /** HLEN: number of fields (0 when the key does not exist). */
  hlen(key: string): number {
    return this.read(key, 'hash')?.value.size ?? 0;
  }

  // ---- sorted sets -------------------------------------------------------------

  /** ZADD key score member: returns 1 if the member is new, else 0. */
  zadd(key: string, score: number, member: string): number;
  /**
   * ZADD with several members and options. Returns the number of new members
   * (with `ch`: new plus changed).
   */
  zadd(
    key: string,
    entries: ReadonlyArray<readonly [score: number, member: string]>,
    options?: ZAddOptions,
  ): number;
  zadd(
    key: string,
    scoreOrEntries: number | ReadonlyArray<readonly [score: number, member: string]>,
    memberOrOptions?: string | ZAddOptions,
  ): number {
    const entries: ReadonlyArray<readonly [number, string]> =
      typeof scoreOrEntries === 'number' ? [[scoreOrEntries, String(memberOrOptions)]] : scoreOrEntries;
    const options: ZAddOptions = typeof memberOrOptions === 'object' ? memberOrOptions : {};
    if (options.nx && options.xx) {
      throw new StoreReplyError('ERR XX and NX options at the same time are not compatible');
    }
    if ((options.gt && options.lt) || (options.nx && (options.gt || options.lt))) {
      throw new StoreReplyError('ERR GT, LT, and/or NX options at the same time are not compatible');
    }
    if (entries.length === 0) throw new StoreReplyError("ERR wrong number of arguments for 'zadd' command");
    // Validate every score before touching the set: Redis rejects the whole command.
    const scores = entries.map(([score]) => normalizeScore(score));
    const existing = this.read(key, 'zset');
    if (!existing && options.xx) return 0;
    const zset =
      existing ??
      this.readOrCreate(key, 'zset', () => ({ type: 'zset', value: new SortedSet(), expiresAt: undefined }));
    let added = 0;
    let changed = 0;
    entries.forEach(([, member], i) => {
      const score = scores[i]!;
      const old = zset.value.scores.get(member);
      if (old === undefined) {
        if (options.xx) return;
        zset.value.set(member, score);
        added++;
        return;
      }
      if (options.nx || old === score) return;
      if ((options.gt && score <= old) || (options.lt && score >= old)) return;
      zset.value.set(member, score);
      changed++;
    });
    this.dropIfEmpty(key, zset.value.size);
    return options.ch ? added + changed : added;
  }

  /** ZREM: removes members; returns how many existed. */
  zrem(key: string, ...members: string[]): number {
    const zset = this.read(key, 'zset');
    if (!zset) return 0;
    let n = 0;
    for (const m of members) if (zset.value.delete(m)) n++;
    this.dropIfEmpty(key, zset.value.size);
    return n;
  }

  /** ZSCORE: the member's score, or null. (Redis replies with a string; Lua needs `tonumber`.) */
  zscore(key: string, member: string): number | null {
    return this.read(key, 'zset')?.value.scores.get(member) ?? null;
  }

  /** ZCARD: number of members (0 when the key does not exist). */
  zcard(key: string): number {
    return this.read(key, 'zset')?.value.size ?? 0;
  }

  private scoreRange(zset: SortedSet, min: ScoreBound, max: ScoreBound): [number, number] {
    const lo = parseBound(min);
    const hi = parseBound(max);
    const start = zset.firstIndexFrom(lo.score, lo.exclusive);
    const end = zset.endIndexTo(hi.score, hi.exclusive);
    return [start, Math.max(start, end)];
  }

  /**
   * ZRANGEBYSCORE ... WITHSCORES: members with min <= score <= max (bounds
   * may be `'(x'` for exclusive, `'-inf'`, `'+inf'`), ascending by score and
   * then member.
   */
  zrangebyscore(
    key: string,
    min: ScoreBound,
    max: ScoreBound,
    options: ZRangeByScoreOptions = {},
  ): ScoredMember[] {
    const zset = this.read(key, 'zset');
    // Parse bounds even for a missing key: Redis validates arguments first.
    const empty = new SortedSet();
    let [start, end] = this.scoreRange(zset?.value ?? empty, min, max);
    if (!zset) return [];
    if (options.limit) {
      const offset = checkIntegerArg(options.limit.offset);
      const count = checkIntegerArg(options.limit.count);
      if (offset < 0) return [];
      start += offset;
      if (count >= 0) end = Math.min(end, start + count);
    }
    return zset.value.order
      .slice(start, Math.max(start, end))
      .map(({ member, score }) => ({ member, score }));
  }

  /** ZRANGE key start stop WITHSCORES: by rank, negative ranks count from the end. */
  zrange(key: string, start: number, stop: number): ScoredMember[] {
    const zset = this.read(key, 'zset');
    if (!zset) return [];
    const [from, to] = rankRange(zset.value.size, start, stop);
    return zset.value.order.slice(from, to).map(({ member, score }) => ({ member, score }));
  }

  /** ZREMRANGEBYSCORE: removes members with scores in range; returns how many. */
  zremrangebyscore(key: string, min: ScoreBound, max: ScoreBound): number {
    const zset = this.read(key, 'zset');
    const [start, end] = this.scoreRange(zset?.value ?? new SortedSet(), min, max);
    if (!zset) return 0;
    const n = zset.value.deleteIndexRange(start, end);
    this.dropIfEmpty(key, zset.value.size);
    return n;
  }

  /** ZREMRANGEBYRANK: removes members by rank (negative counts from the end); returns how many. */
  zremrangebyrank(key: string, start: number, stop: number): number {
    const zset = this.read(key, 'zset');
    if (!zset) return 0;
    const [from, to] = rankRange(zset.value.size, start, stop);
    const n = zset.value.deleteIndexRange(from, to);
    this.dropIfEmpty(key, zset.value.size);
    return n;
  }
}
