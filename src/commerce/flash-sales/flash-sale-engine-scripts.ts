/**
 * The Engine side of a flash sale: key layout, the reservation record format
 * and the EngineScripts (Lua for Redis + TypeScript twin for MemoryStore)
 * that change a sale's hot state atomically. `FlashSaleEngine` is the typed
 * face of these; nothing else should run them.
 *
 * Each twin is a line-by-line translation of its Lua, command for command, so
 * that a reviewer can hold one next to the other; the contract suite in
 * `test/flash-sale-engine.test.ts` runs both and compares them.
 *
 * Time: every rule that depends on time (sale window, reservation expiry)
 * reads the engine clock: `TIME` in Lua, the `now` argument in the twin.
 * Never the caller's clock, so several app instances with skewed clocks agree.
 *
 * Numbers: all integers (ms timestamps, units, counters). Lua numbers are
 * doubles, exact for integers below 2^53, and replies are truncated to
 * integers by Redis anyway, so nothing fractional may appear.
 */
import type { EngineScript, ScriptValue } from '../../platform/engine/engine.js';
import type { MemoryStore } from '../../platform/engine/memory-store.js';
import { StoreReplyError } from '../../platform/engine/memory-store.js';

// ---- keys -------------------------------------------------------------------------

/**
 * The Engine keys of one sale. All share the hash tag `{fs:<saleId>}` so every
 * script touches one Redis Cluster slot.
 *
 * - `meta`   hash: epoch, startsAt, endsAt, limit (per user), resTtl, stopped (0|1).
 *            Its existence is what "loaded" means.
 * - `stock`  string counter: units still available.
 * - `buyers` hash: userId -> units held (open reservations + paid).
 * - `res`    hash: reservationId -> record `<state>:<qty>:<expiresAt>:<userId>`.
 * - `exp`    sorted set: open reservationId scored by expiresAt (the expiry index).
 * - `idem`   hash: JSON `[userId, idempotencyKey]` -> reservationId.
 * - `vu:<userId>`, `vi:<ip>`  fixed-window attempt counters for velocity limits.
 */
export interface FlashSaleKeys {
  meta: string;
  stock: string;
  buyers: string;
  res: string;
  exp: string;
  idem: string;
  /** Velocity counter of one user in this sale. */
  velocityUser(userId: string): string;
  /** Velocity counter of one client IP in this sale. */
  velocityIp(ip: string): string;
}

/**
 * Builds the key names of a sale. Braces are refused in the id: a `}` would
 * end the hash tag early and a `{` would make the tag ambiguous, so two sales
 * could end up sharing key names or a slot by accident.
 */
export function flashSaleKeys(saleId: string): FlashSaleKeys {
  if (typeof saleId !== 'string' || saleId.length === 0 || /[{}]/.test(saleId)) {
    throw new RangeError(`saleId must be a non-empty string without braces, got ${JSON.stringify(saleId)}`);
  }
  const tag = `{fs:${saleId}}`;
  return {
    meta: `${tag}:meta`,
    stock: `${tag}:stock`,
    buyers: `${tag}:buyers`,
    res: `${tag}:res`,
    exp: `${tag}:exp`,
    idem: `${tag}:idem`,
    velocityUser: (userId) => `${tag}:vu:${userId}`,
    velocityIp: (ip) => `${tag}:vi:${ip}`,
  };
}

/** The fixed keys of a sale in the order the scripts take them (velocity keys come after). */
export function coreKeys(keys: FlashSaleKeys): [string, string, string, string, string, string] {
  return [keys.meta, keys.stock, keys.buyers, keys.res, keys.exp, keys.idem];
}

/**
 * The `idem` hash field for a user's idempotency key. Built here, once, and
 * passed to both twins as an argument, so Lua and TypeScript never have to
 * agree on string handling (Lua counts bytes, JS counts UTF-16 units). JSON
 * keeps it unambiguous whatever characters the two parts contain.
 */
export function idempotencyField(userId: string, key: string): string {
  return JSON.stringify([userId, key]);
}

// ---- reservation records ------------------------------------------------------------

/** Lifecycle of a reservation record. Only `reserved` holds stock that can still come back. */
export type ReservationState = 'reserved' | 'paid' | 'expired' | 'cancelled';

/** A decoded `res` record. */
export interface ReservationRecord {
  state: ReservationState;
  quantity: number;
  expiresAtMs: number;
  userId: string;
}

/**
 * Encodes a record. The user id goes last so it may contain `:` (the parsers
 * take everything after the third colon). Must match `record()` in LUA_LIB.
 */
export function encodeRecord(state: ReservationState, quantity: number, expiresAtMs: number, userId: string) {
  return `${state}:${quantity}:${expiresAtMs}:${userId}`;
}

const RECORD_RE = /^([A-Za-z]+):(\d+):(\d+):([\s\S]*)$/;

/** Decodes a record; null for anything malformed. Must match `parse()` in LUA_LIB. */
export function decodeRecord(value: string | null): ReservationRecord | null {
  if (value === null) return null;
  const m = RECORD_RE.exec(value);
  if (!m) return null;
  return {
    state: m[1] as ReservationState,
    quantity: Number(m[2]),
    expiresAtMs: Number(m[3]),
    userId: m[4]!,
  };
}

// ---- shared pieces: Lua and their TypeScript twins -------------------------------------

/**
 * Helpers prepended to every script. Local functions only, so scripts stay
 * self-contained (Redis forbids globals) and each EVALSHA carries them.
 *
 * - now_ms: the Redis clock in ms (TIME is seconds + microseconds).
 * - parse/record: the reservation record format (see encodeRecord).
 * - release: closes a reserved record as expired/cancelled and gives its units
 *   back, the one place where stock returns, so "exactly once" is argued once:
 *   callers only call it for a record whose state is still `reserved`, and it
 *   changes that state in the same atomic step.
 * - ensure_ttl: gives a key created after load the remaining life of `meta`,
 *   so every key of a sale expires together (hashes and sorted sets vanish
 *   when emptied and may be re-created later without a TTL).
 */
const LUA_LIB = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse(v)
  if not v then return nil end
  local st, q, e, u = string.match(v, '^(%a+):(%d+):(%d+):(.*)$')
  if not st then return nil end
  return {state = st, qty = tonumber(q), exp = tonumber(e), user = u}
end
local function record(st, q, e, u)
  return st .. ':' .. string.format('%.0f', q) .. ':' .. string.format('%.0f', e) .. ':' .. u
end
local function release(stockKey, buyersKey, resKey, expKey, id, r, newState)
  redis.call('HSET', resKey, id, record(newState, r.qty, r.exp, r.user))
  redis.call('ZREM', expKey, id)
  redis.call('INCRBY', stockKey, r.qty)
  if redis.call('HINCRBY', buyersKey, r.user, -r.qty) <= 0 then
    redis.call('HDEL', buyersKey, r.user)
  end
end
local function ensure_ttl(key, ttl)
  if ttl > 0 and redis.call('PTTL', key) == -1 then
    redis.call('PEXPIRE', key, ttl)
  end
end
`;

/** Twin of `release` in LUA_LIB. */
function release(
  store: MemoryStore,
  stockKey: string,
  buyersKey: string,
  resKey: string,
  expKey: string,
  id: string,
  r: ReservationRecord,
  newState: 'expired' | 'cancelled',
): void {
  store.hset(resKey, id, encodeRecord(newState, r.quantity, r.expiresAtMs, r.userId));
  store.zrem(expKey, id);
  store.incrby(stockKey, r.quantity);
  if (store.hincrby(buyersKey, r.userId, -r.quantity) <= 0) {
    store.hdel(buyersKey, r.userId);
  }
}

/** Twin of `ensure_ttl` in LUA_LIB. */
function ensureTtl(store: MemoryStore, key: string, ttl: number): void {
  if (ttl > 0 && store.pttl(key) === -1) {
    store.pexpire(key, ttl);
  }
}

/** Parses an integer argument the way Lua's tonumber would for the integers we send. */
function int(arg: string | undefined): number {
  return Number(arg);
}

// ---- load ------------------------------------------------------------------------------

/**
 * Loads a sale unless `meta` exists (first loader wins; a concurrent second
 * loader sees meta and backs off, so it cannot overwrite stock that purchases
 * already took from the first load).
 *
 * KEYS: meta stock buyers res exp idem.
 * ARGV: keyTtlMs epoch startsAt endsAt limit resTtl stock,
 *       nBuyers {userId held}*, nOpen {id record expiresAt}*,
 *       nPaid {id record}*, nIdem {field reservationId}*.
 * Records are encoded by the caller (encodeRecord), so the format has one
 * writer at load time. Returns 1 if loaded, 0 if it was already loaded.
 *
 * Leftover non-meta keys (meta deleted by hand, or a half-expired sale) are
 * deleted first so a load never merges with stale state.
 */
export const loadScript: EngineScript<number> = {
  name: 'flashSale.load',
  keys: 6,
  lua: `${LUA_LIB}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
local ttl = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'startsAt', ARGV[3], 'endsAt', ARGV[4],
  'limit', ARGV[5], 'resTtl', ARGV[6], 'stopped', '0')
redis.call('SET', KEYS[2], ARGV[7])
local i = 8
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]); i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[5], ARGV[i + 2], ARGV[i]); i = i + 3
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]); i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1]); i = i + 2
end
for k = 1, 6 do redis.call('PEXPIRE', KEYS[k], ttl) end
return 1
`,
  memory(store, keys, args) {
    const [meta, stock, buyers, res, exp, idem] = keys as [string, string, string, string, string, string];
    if (store.exists(meta) === 1) return 0;
    store.del(stock, buyers, res, exp, idem);
    const ttl = int(args[0]);
    store.hset(
      meta,
      'epoch',
      args[1]!,
      'startsAt',
      args[2]!,
      'endsAt',
      args[3]!,
      'limit',
      args[4]!,
      'resTtl',
      args[5]!,
      'stopped',
      '0',
    );
    store.set(stock, args[6]!);
    let i = 7;
    let n = int(args[i++]);
    for (let j = 0; j < n; j++, i += 2) store.hset(buyers, args[i]!, args[i + 1]!);
    n = int(args[i++]);
    for (let j = 0; j < n; j++, i += 3) {
      store.hset(res, args[i]!, args[i + 1]!);
      store.zadd(exp, int(args[i + 2]), args[i]!);
    }
    n = int(args[i++]);
    for (let j = 0; j < n; j++, i += 2) store.hset(res, args[i]!, args[i + 1]!);
    n = int(args[i++]);
    for (let j = 0; j < n; j++, i += 2) store.hset(idem, args[i]!, args[i + 1]!);
    for (const key of keys) store.pexpire(key, ttl);
    return 1;
  },
};

// ---- purchase ----------------------------------------------------------------------------

/**
 * One purchase attempt, every rule in one atomic step.
 *
 * KEYS: meta stock buyers res exp idem vu vi (vu/vi are the velocity counters;
 *       passed even when velocity is off, because a script's key count is
 *       fixed, and passed at all so Redis Cluster can route them).
 * ARGV: userId quantity idemField reservationId velocity(0|1) perUserMax perIpMax windowMs.
 *
 * Check order: NOT_LOADED, REPLAY, VELOCITY, ENDED by manual stop, NOT_STARTED,
 * ENDED by time, LIMIT, SOLD_OUT, INSUFFICIENT, OK.
 * - REPLAY before everything else that can say no: a client retrying a
 *   purchase that succeeded must get its reservation back even after the sale
 *   sold out or ended, and a retry must not spend its velocity budget.
 * - VELOCITY counts every other attempt (rejected ones too) before any stock
 *   check, so hammering a sold-out sale is throttled like any other.
 * - A manual stop (`end`) outranks NOT_STARTED: an operator who stops a sale
 *   before it opened means "no sales", which is ENDED.
 * - The window is [startsAt, endsAt): open at startsAt, closed at endsAt.
 *
 * Replies: `{status, stock}` for refusals; `{status, stock, epoch,
 * reservationId, quantity, expiresAt, state}` for OK and REPLAY (state ''
 * when a replayed reservation has no record, which only a hand-edited or
 * partially rebuilt state can produce).
 *
 * A reservationId that already has a record is a caller bug (ids must be
 * fresh UUIDs); it is refused with an error rather than overwriting a record.
 *
 * It runs for every tap on Buy, so its calls are counted (13 for a purchase
 * with velocity limits, from 22): `meta` is read once (HMGET: loaded, epoch,
 * window, limits); a velocity counter gets its window when the attempt that
 * creates it makes it 1 (the script is atomic, so no counter is left without
 * one); and the TTL upkeep of buyers/res/exp/idem runs only when one of them
 * does not exist yet (one EXISTS in the steady state instead of five PTTLs).
 */
export const purchaseScript: EngineScript<ScriptValue[]> = {
  name: 'flashSale.purchase',
  keys: 8,
  lua: `${LUA_LIB}
local m = redis.call('HMGET', KEYS[1], 'epoch', 'startsAt', 'endsAt', 'limit', 'resTtl', 'stopped')
if not m[1] then return {'NOT_LOADED', 0} end
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = tonumber(m[1])
local prior = redis.call('HGET', KEYS[6], ARGV[3])
if prior then
  local r = parse(redis.call('HGET', KEYS[4], prior))
  if r then return {'REPLAY', stock, epoch, prior, r.qty, r.exp, r.state} end
  return {'REPLAY', stock, epoch, prior, 0, 0, ''}
end
local user = ARGV[1]
local qty = tonumber(ARGV[2])
if ARGV[5] == '1' then
  local window = tonumber(ARGV[8])
  local byUser = redis.call('INCR', KEYS[7])
  if byUser == 1 then redis.call('PEXPIRE', KEYS[7], window) end
  local byIp = redis.call('INCR', KEYS[8])
  if byIp == 1 then redis.call('PEXPIRE', KEYS[8], window) end
  if byUser > tonumber(ARGV[6]) or byIp > tonumber(ARGV[7]) then return {'VELOCITY', stock} end
end
local now = now_ms()
if m[6] == '1' then return {'ENDED', stock} end
if now < tonumber(m[2]) then return {'NOT_STARTED', stock} end
if now >= tonumber(m[3]) then return {'ENDED', stock} end
local held = tonumber(redis.call('HGET', KEYS[3], user) or '0')
if held + qty > tonumber(m[4]) then return {'LIMIT', stock} end
if stock <= 0 then return {'SOLD_OUT', stock} end
if stock < qty then return {'INSUFFICIENT', stock} end
local id = ARGV[4]
if redis.call('HEXISTS', KEYS[4], id) == 1 then
  return redis.error_reply('DUPLICATE_RESERVATION reservation id ' .. id .. ' already exists')
end
local expiresAt = now + tonumber(m[5])
local created = redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5], KEYS[6]) < 4
stock = redis.call('DECRBY', KEYS[2], qty)
redis.call('HINCRBY', KEYS[3], user, qty)
redis.call('HSET', KEYS[4], id, record('reserved', qty, expiresAt, user))
redis.call('ZADD', KEYS[5], expiresAt, id)
redis.call('HSET', KEYS[6], ARGV[3], id)
if created then
  local ttl = redis.call('PTTL', KEYS[1])
  for k = 3, 6 do ensure_ttl(KEYS[k], ttl) end
end
return {'OK', stock, epoch, id, qty, expiresAt, 'reserved'}
`,
  memory(store, keys, args, now) {
    const [meta, stockKey, buyers, res, exp, idem, vu, vi] = keys as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const [user, qtyArg, field, id, velocity, perUserMax, perIpMax, windowArg] = args as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const epochField = store.hget(meta, 'epoch');
    if (epochField === null) return ['NOT_LOADED', 0];
    let stock = int(store.get(stockKey) ?? '0');
    const epoch = int(epochField);
    const prior = store.hget(idem, field);
    if (prior !== null) {
      const r = decodeRecord(store.hget(res, prior));
      if (r) return ['REPLAY', stock, epoch, prior, r.quantity, r.expiresAtMs, r.state];
      return ['REPLAY', stock, epoch, prior, 0, 0, ''];
    }
    const qty = int(qtyArg);
    if (velocity === '1') {
      const window = int(windowArg);
      const byUser = store.incrby(vu, 1);
      if (byUser === 1) store.pexpire(vu, window);
      const byIp = store.incrby(vi, 1);
      if (byIp === 1) store.pexpire(vi, window);
      if (byUser > int(perUserMax) || byIp > int(perIpMax)) return ['VELOCITY', stock];
    }
    if (store.hget(meta, 'stopped') === '1') return ['ENDED', stock];
    if (now < int(store.hget(meta, 'startsAt')!)) return ['NOT_STARTED', stock];
    if (now >= int(store.hget(meta, 'endsAt')!)) return ['ENDED', stock];
    const held = int(store.hget(buyers, user) ?? '0');
    if (held + qty > int(store.hget(meta, 'limit')!)) return ['LIMIT', stock];
    if (stock <= 0) return ['SOLD_OUT', stock];
    if (stock < qty) return ['INSUFFICIENT', stock];
    if (store.hget(res, id) !== null) {
      throw new StoreReplyError(`DUPLICATE_RESERVATION reservation id ${id} already exists`);
    }
    const expiresAt = now + int(store.hget(meta, 'resTtl')!);
    const created = store.exists(buyers, res, exp, idem) < 4;
    stock = store.incrby(stockKey, -qty);
    store.hincrby(buyers, user, qty);
    store.hset(res, id, encodeRecord('reserved', qty, expiresAt, user));
    store.zadd(exp, expiresAt, id);
    store.hset(idem, field, id);
    if (created) {
      const ttl = store.pttl(meta);
      for (const key of [buyers, res, exp, idem]) ensureTtl(store, key, ttl);
    }
    return ['OK', stock, epoch, id, qty, expiresAt, 'reserved'];
  },
};

// ---- confirm -------------------------------------------------------------------------------

/**
 * Marks a reservation paid.
 *
 * KEYS: meta stock buyers res exp. ARGV: reservationId.
 * Returns `{status, stock}` with status OK | ALREADY_PAID | EXPIRED |
 * CANCELLED | UNKNOWN | NOT_LOADED.
 *
 * A reservation still `reserved` whose expiresAt has passed (expiresAt <= now,
 * the same rule as the sweeper) is expired here and now, units back to stock,
 * and answered EXPIRED: otherwise a payment arriving after the deadline but
 * before the sweeper could succeed for units that are about to be sold again.
 * The sale window is deliberately not checked: a reservation made before the
 * end may be paid until its own expiry.
 */
export const confirmScript: EngineScript<ScriptValue[]> = {
  name: 'flashSale.confirm',
  keys: 5,
  lua: `${LUA_LIB}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED', 0} end
local id = ARGV[1]
local r = parse(redis.call('HGET', KEYS[4], id))
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
if not r then return {'UNKNOWN', stock} end
if r.state == 'paid' then return {'ALREADY_PAID', stock} end
if r.state == 'expired' then return {'EXPIRED', stock} end
if r.state == 'cancelled' then return {'CANCELLED', stock} end
if r.exp <= now_ms() then
  release(KEYS[2], KEYS[3], KEYS[4], KEYS[5], id, r, 'expired')
  return {'EXPIRED', tonumber(redis.call('GET', KEYS[2]))}
end
redis.call('HSET', KEYS[4], id, record('paid', r.qty, r.exp, r.user))
redis.call('ZREM', KEYS[5], id)
return {'OK', stock}
`,
  memory(store, keys, args, now) {
    const [meta, stockKey, buyers, res, exp] = keys as [string, string, string, string, string];
    const id = args[0]!;
    if (store.exists(meta) === 0) return ['NOT_LOADED', 0];
    const r = decodeRecord(store.hget(res, id));
    const stock = int(store.get(stockKey) ?? '0');
    if (!r) return ['UNKNOWN', stock];
    if (r.state === 'paid') return ['ALREADY_PAID', stock];
    if (r.state === 'expired') return ['EXPIRED', stock];
    if (r.state === 'cancelled') return ['CANCELLED', stock];
    if (r.expiresAtMs <= now) {
      release(store, stockKey, buyers, res, exp, id, r, 'expired');
      return ['EXPIRED', int(store.get(stockKey)!)];
    }
    store.hset(res, id, encodeRecord('paid', r.quantity, r.expiresAtMs, r.userId));
    store.zrem(exp, id);
    return ['OK', stock];
  },
};

// ---- cancel ----------------------------------------------------------------------------------

/**
 * Cancels a user's own reservation and returns its units.
 *
 * KEYS: meta stock buyers res exp. ARGV: reservationId userId.
 * Returns `{result, stock}` with result OK | UNKNOWN | NOT_RESERVED | NOT_LOADED.
 *
 * Another user's reservation answers UNKNOWN, not NOT_RESERVED, so ids cannot
 * be probed. A `reserved` record past its expiry that the sweeper has not
 * reached yet is cancelled like any other: the units come back exactly once
 * either way, and the caller gets the outcome it asked for.
 */
export const cancelScript: EngineScript<ScriptValue[]> = {
  name: 'flashSale.cancel',
  keys: 5,
  lua: `${LUA_LIB}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'NOT_LOADED', 0} end
local id = ARGV[1]
local r = parse(redis.call('HGET', KEYS[4], id))
if not r or r.user ~= ARGV[2] then
  return {'UNKNOWN', tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if r.state ~= 'reserved' then
  return {'NOT_RESERVED', tonumber(redis.call('GET', KEYS[2]) or '0')}
end
release(KEYS[2], KEYS[3], KEYS[4], KEYS[5], id, r, 'cancelled')
return {'OK', tonumber(redis.call('GET', KEYS[2]))}
`,
  memory(store, keys, args) {
    const [meta, stockKey, buyers, res, exp] = keys as [string, string, string, string, string];
    const [id, user] = args as [string, string];
    if (store.exists(meta) === 0) return ['NOT_LOADED', 0];
    const r = decodeRecord(store.hget(res, id));
    if (!r || r.userId !== user) return ['UNKNOWN', int(store.get(stockKey) ?? '0')];
    if (r.state !== 'reserved') return ['NOT_RESERVED', int(store.get(stockKey) ?? '0')];
    release(store, stockKey, buyers, res, exp, id, r, 'cancelled');
    return ['OK', int(store.get(stockKey)!)];
  },
};

// ---- expiry sweep ------------------------------------------------------------------------------

/**
 * Expires up to `limit` reservations with expiresAt <= now, oldest first.
 *
 * KEYS: meta stock buyers res exp. ARGV: limit.
 * Returns `{stock, id1, user1, qty1, id2, ...}`; `{0}` when not loaded.
 *
 * Racing sweepers are safe because each call is atomic and removes what it
 * expires from the index: a reservation is in at most one reply, and its
 * units come back once (release() only runs on a `reserved` record). Index
 * entries whose record is no longer `reserved` (cannot happen through these
 * scripts, but a hand edit could leave one) are dropped without effect.
 */
export const expireDueScript: EngineScript<ScriptValue[]> = {
  name: 'flashSale.expireDue',
  keys: 5,
  lua: `${LUA_LIB}
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
local out = {0}
for _, id in ipairs(ids) do
  local r = parse(redis.call('HGET', KEYS[4], id))
  if r and r.state == 'reserved' then
    release(KEYS[2], KEYS[3], KEYS[4], KEYS[5], id, r, 'expired')
    out[#out + 1] = id
    out[#out + 1] = r.user
    out[#out + 1] = r.qty
  else
    redis.call('ZREM', KEYS[5], id)
  end
end
out[1] = tonumber(redis.call('GET', KEYS[2]) or '0')
return out
`,
  memory(store, keys, args, now) {
    const [meta, stockKey, buyers, res, exp] = keys as [string, string, string, string, string];
    if (store.exists(meta) === 0) return [0];
    const due = store.zrangebyscore(exp, '-inf', now, { limit: { offset: 0, count: int(args[0]) } });
    const out: ScriptValue[] = [0];
    for (const { member: id } of due) {
      const r = decodeRecord(store.hget(res, id));
      if (r && r.state === 'reserved') {
        release(store, stockKey, buyers, res, exp, id, r, 'expired');
        out.push(id, r.userId, r.quantity);
      } else {
        store.zrem(exp, id);
      }
    }
    out[0] = int(store.get(stockKey) ?? '0');
    return out;
  },
};

// ---- status and end -------------------------------------------------------------------------------

/**
 * Reads the summary of a sale. KEYS: meta stock.
 * Returns `{loaded (0|1), stock, epoch, endsAt, startsAt}`; zeros when not loaded.
 * A script rather than separate reads so the answer is one consistent snapshot.
 */
export const statusScript: EngineScript<number[]> = {
  name: 'flashSale.status',
  keys: 2,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, 0, 0, 0} end
local m = redis.call('HMGET', KEYS[1], 'epoch', 'endsAt', 'startsAt')
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
return {1, stock, tonumber(m[1]), tonumber(m[2]), tonumber(m[3])}
`,
  memory(store, [meta, stockKey]) {
    if (store.exists(meta!) === 0) return [0, 0, 0, 0, 0];
    const stock = int(store.get(stockKey!) ?? '0');
    return [
      1,
      stock,
      int(store.hget(meta!, 'epoch')!),
      int(store.hget(meta!, 'endsAt')!),
      int(store.hget(meta!, 'startsAt')!),
    ];
  },
};

/**
 * Stops a sale now. KEYS: meta. Returns 1, or 0 when not loaded.
 * Sets the `stopped` flag (which purchase checks before the window) and pulls
 * endsAt back to the engine's now, so `status` shows when it really ended.
 */
export const endScript: EngineScript<number> = {
  name: 'flashSale.end',
  keys: 1,
  lua: `${LUA_LIB}
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now = now_ms()
if now < tonumber(redis.call('HGET', KEYS[1], 'endsAt')) then
  redis.call('HSET', KEYS[1], 'endsAt', string.format('%.0f', now))
end
redis.call('HSET', KEYS[1], 'stopped', '1')
return 1
`,
  memory(store, [meta], _args, now) {
    if (store.exists(meta!) === 0) return 0;
    if (now < int(store.hget(meta!, 'endsAt')!)) {
      store.hset(meta!, 'endsAt', String(now));
    }
    store.hset(meta!, 'stopped', '1');
    return 1;
  },
};
