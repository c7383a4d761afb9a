/**
 * The Engine's own multi-step operations, written once as EngineScripts and
 * run by both adapters through `run()`, so the memory and Redis behaviour
 * come from the same definition (Lua next to its TypeScript twin).
 */
import type { EngineScript, LogEntry, LogReadResult, ScriptValue } from './engine.js';

// ---- fixed-window counter ---------------------------------------------------------

/**
 * INCRBY, then give the key `ttlMs` to live if it has no expiry yet.
 * KEYS: counter. ARGV: increment, ttlMs (0 = no expiry). Returns the new value.
 *
 * "No expiry yet" rather than "just created" so a counter that somehow lost
 * its TTL (written by an older version, PERSISTed by hand) heals on the next
 * increment instead of blocking a rate-limited client forever; later
 * increments never extend the window.
 */
export const incrByScript: EngineScript<number> = {
  name: 'engine.incrBy',
  keys: 1,
  lua: `
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return value
`,
  memory(store, [key], [by, ttlMs]) {
    const value = store.incrby(key!, Number(by));
    const ttl = Number(ttlMs);
    if (ttl > 0 && store.pttl(key!) === -1) store.pexpire(key!, ttl);
    return value;
  },
};

// ---- sequenced, capped log ------------------------------------------------------

/**
 * The two Redis keys behind the log at `key`: a sequence counter and a sorted
 * set of entries scored by sequence number. They must hash to one Cluster
 * slot. When `key` already carries a hash tag (`{room:7}:history`) that tag is
 * kept, so the log lives in the same slot as the caller's other keys for the
 * same thing; otherwise the whole key becomes the tag.
 */
export function logKeys(key: string): [seqKey: string, entriesKey: string] {
  const open = key.indexOf('{');
  const close = open === -1 ? -1 : key.indexOf('}', open + 1);
  const tagged = close > open + 1;
  const base = tagged ? key : `{${key}}`;
  return [`${base}:seq`, `${base}:log`];
}

/**
 * Appends one entry. KEYS: seq, entries. ARGV: data, maxLen, ttlMs.
 * Returns the entry's sequence number.
 *
 * Entries are stored as the member `<seq>:<data>` (unique even when the data
 * repeats) with score `<seq>`. `%.0f` formats the sequence number because
 * Lua's default number format switches to exponent notation past 1e14.
 */
export const logAppendScript: EngineScript<number> = {
  name: 'engine.logAppend',
  keys: 2,
  lua: `
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, string.format('%.0f', seq) .. ':' .. ARGV[1])
local maxLen = tonumber(ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(maxLen + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return seq
`,
  memory(store, [seqKey, entriesKey], [data, maxLen, ttlMs]) {
    const seq = store.incrby(seqKey!, 1);
    store.zadd(entriesKey!, seq, `${seq}:${data}`);
    store.zremrangebyrank(entriesKey!, 0, -(Number(maxLen) + 1));
    store.pexpire(seqKey!, Number(ttlMs));
    store.pexpire(entriesKey!, Number(ttlMs));
    return seq;
  },
};

/**
 * Reads entries after a sequence number. KEYS: seq, entries. ARGV: afterSeq,
 * limit. Returns `{lastSeq, truncated (0|1), member...}`.
 *
 * Truncated means the reader missed something the log no longer holds:
 * either the oldest kept entry is later than afterSeq + 1 (trimmed by maxLen),
 * or afterSeq is beyond lastSeq, which only happens when the log expired and
 * restarted numbering since the reader last looked.
 */
export const logReadScript: EngineScript<ScriptValue[]> = {
  name: 'engine.logRead',
  keys: 2,
  lua: `
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local after = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local out = {last, 0}
if after > last then
  out[2] = 1
  return out
end
local oldest = last + 1
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then oldest = tonumber(first[2]) end
if after + 1 < oldest then out[2] = 1 end
if limit > 0 then
  local rows = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'LIMIT', 0, limit)
  for i = 1, #rows do out[i + 2] = rows[i] end
end
return out
`,
  memory(store, [seqKey, entriesKey], [afterArg, limitArg]) {
    const last = Number(store.get(seqKey!) ?? '0');
    const after = Number(afterArg);
    const limit = Number(limitArg);
    const out: ScriptValue[] = [last, 0];
    if (after > last) {
      out[1] = 1;
      return out;
    }
    const first = store.zrange(entriesKey!, 0, 0)[0];
    const oldest = first ? first.score : last + 1;
    if (after + 1 < oldest) out[1] = 1;
    if (limit > 0) {
      for (const row of store.zrangebyscore(entriesKey!, `(${afterArg}`, '+inf', {
        limit: { offset: 0, count: limit },
      })) {
        out.push(row.member);
      }
    }
    return out;
  },
};

/** Turns logReadScript's flat reply into a LogReadResult. */
export function parseLogRead(reply: ScriptValue[]): LogReadResult {
  const [lastSeq, truncated, ...members] = reply;
  const entries: LogEntry[] = members.map((m) => {
    const text = String(m);
    const colon = text.indexOf(':');
    return { seq: Number(text.slice(0, colon)), data: text.slice(colon + 1) };
  });
  return { entries, lastSeq: Number(lastSeq), truncated: truncated === 1 };
}
