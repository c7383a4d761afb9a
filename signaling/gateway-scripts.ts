/**
 * The gateway's Engine keys and atomic scripts (Lua for Redis, a line-by-line
 * TypeScript twin for the in-memory engine). Time inside scripts is the
 * engine clock (`TIME` in Lua, `now` in the twin), never an instance's clock,
 * so instances with skewed clocks agree on what has expired.
 *
 * Key layout (every multi-key script touches one hash tag):
 *
 * - room history   `{r:<room>}:h` via `engine.logAppend` (its own `:seq` and `:log` keys)
 * - room occupancy `{r:<room>}:occ`  sorted set `<userId>|<instanceId>` -> expiry
 *                  `{r:<room>}:occn` hash userId -> number of live occupancy entries
 * - user presence  `{u:<userId>}:inst` sorted set instanceId -> expiry
 *                  `{u:<userId>}:on`   "1" while the user counts as online
 *                  `{u:<userId>}:seen` last time the user was seen connected (ms)
 * - sweep indexes  `gw:userdue` (userId -> latest expiry), `gw:occdue` (room -> latest expiry),
 *                  single keys read with ZRANGEBYSCORE by every instance's sweeper
 * - bus channel    `r:<room>` per room, subscribed by instances with local members
 */
import type { EngineScript, ScriptValue } from '../src/platform/engine/engine.js';
import { logKeys } from '../src/platform/engine/engine-scripts.js';

export const roomKeys = (room: string) => {
  const history = `{r:${room}}:h`;
  return {
    history,
    /** The two keys behind the history log, as the engine lays them out. */
    historyKeys: logKeys(history),
    occupancy: `{r:${room}}:occ`,
    occupancyCounts: `{r:${room}}:occn`,
    channel: `r:${room}`,
  };
};

export const userKeys = (userId: string) => ({
  instances: `{u:${userId}}:inst`,
  online: `{u:${userId}}:on`,
  seen: `{u:${userId}}:seen`,
});

export const USER_DUE_KEY = 'gw:userdue';
export const ROOM_DUE_KEY = 'gw:occdue';

const NOW_MS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

const int = (v: string | undefined) => Number.parseInt(v ?? '0', 10);

// ---- room history ----------------------------------------------------------------

/**
 * Keeps a room's history alive while an instance has clients in it, and
 * tells the instance the room's last sequence number. KEYS: the history's
 * seq and log keys. ARGV: ttlMs. Returns lastSeq (0 when there is no history).
 *
 * Without this, a room that is quiet for longer than the history TTL would
 * restart its numbering at 1 under the feet of connected clients.
 */
export const roomTouchScript: EngineScript<number> = {
  name: 'gateway.roomTouch',
  keys: 2,
  lua: `
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return last
`,
  memory(store, [seqKey, logKey], [ttl]) {
    const last = int(store.get(seqKey!) ?? '0');
    if (last > 0) {
      store.pexpire(seqKey!, int(ttl));
      store.pexpire(logKey!, int(ttl));
    }
    return last;
  },
};

// ---- user presence --------------------------------------------------------------

/**
 * One step of a user's presence. KEYS: inst, on, seen. ARGV: mode, instanceId,
 * ttlMs, seenTtlMs. Modes: `up` (this instance has the user: add or refresh
 * its entry), `down` (it no longer has the user), `expire` (only drop expired
 * entries; used by sweepers).
 *
 * Returns `{transition, maxExpiry, now}`: transition 1 = went online, -1 =
 * went offline, 0 = no change; maxExpiry = latest entry expiry (0 if none).
 * Because the `on` flag flips inside the script, exactly one caller sees each
 * transition however many instances race.
 */
export const userPresenceScript: EngineScript<[number, number, number]> = {
  name: 'gateway.userPresence',
  keys: 3,
  lua: `${NOW_MS}
local mode = ARGV[1]
local ttl = tonumber(ARGV[3])
if mode == 'up' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
  redis.call('SET', KEYS[3], now, 'PX', ARGV[4])
elseif mode == 'down' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[3], now, 'PX', ARGV[4])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local was = redis.call('EXISTS', KEYS[2])
if top[2] then
  redis.call('PEXPIRE', KEYS[1], ttl * 3)
  redis.call('SET', KEYS[2], '1', 'PX', ttl * 3)
  if was == 0 then return {1, tonumber(top[2]), now} end
  return {0, tonumber(top[2]), now}
end
if was == 1 then
  redis.call('DEL', KEYS[2])
  return {-1, 0, now}
end
return {0, 0, now}
`,
  memory(store, [inst, on, seen], [mode, instanceId, ttlArg, seenTtl], now) {
    const ttl = int(ttlArg);
    if (mode === 'up') {
      store.zadd(inst!, now + ttl, instanceId!);
      store.set(seen!, now, { px: int(seenTtl) });
    } else if (mode === 'down') {
      store.zrem(inst!, instanceId!);
      store.set(seen!, now, { px: int(seenTtl) });
    }
    store.zremrangebyscore(inst!, '-inf', now);
    const top = store.zrange(inst!, -1, -1)[0];
    const was = store.exists(on!);
    if (top) {
      store.pexpire(inst!, ttl * 3);
      store.set(on!, '1', { px: ttl * 3 });
      return [was === 0 ? 1 : 0, top.score, now];
    }
    if (was === 1) {
      store.del(on!);
      return [-1, 0, now];
    }
    return [0, 0, now];
  },
};

/** KEYS: inst, seen. Returns `{online (0|1), lastSeen ms (0 = never), now}`. */
export const userStatusScript: EngineScript<[number, number, number]> = {
  name: 'gateway.userStatus',
  keys: 2,
  lua: `${NOW_MS}
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, 1)
local online = 0
if #live > 0 then online = 1 end
return {online, tonumber(redis.call('GET', KEYS[2]) or '0'), now}
`,
  memory(store, [inst, seen], _args, now) {
    const live = store.zrangebyscore(inst!, `(${now}`, '+inf', { limit: { offset: 0, count: 1 } });
    return [live.length > 0 ? 1 : 0, int(store.get(seen!) ?? '0'), now];
  },
};

// ---- room occupancy ---------------------------------------------------------------

/**
 * Adds, refreshes and removes this instance's occupancy entries of a room,
 * then drops every expired entry (those of crashed instances). KEYS: occ,
 * occn. ARGV: instanceId, ttlMs, nAdd, add users (nAdd), remove users (rest).
 *
 * Returns `{maxExpiry, nJoined, joined..., left...}`: users whose first entry
 * appeared (joined) or whose last entry went away (left), across all instances.
 */
export const occupancyScript: EngineScript<ScriptValue[]> = {
  name: 'gateway.occupancy',
  keys: 2,
  lua: `${NOW_MS}
local inst = ARGV[1]
local ttl = tonumber(ARGV[2])
local nAdd = tonumber(ARGV[3])
local joined = {}
local left = {}
local function drop(member)
  local u = string.match(member, '^(.*)|[^|]*$')
  if redis.call('HINCRBY', KEYS[2], u, -1) <= 0 then
    redis.call('HDEL', KEYS[2], u)
    left[#left + 1] = u
  end
end
for i = 4, 3 + nAdd do
  if redis.call('ZADD', KEYS[1], now + ttl, ARGV[i] .. '|' .. inst) == 1 then
    if redis.call('HINCRBY', KEYS[2], ARGV[i], 1) == 1 then joined[#joined + 1] = ARGV[i] end
  end
end
for i = 4 + nAdd, #ARGV do
  local m = ARGV[i] .. '|' .. inst
  if redis.call('ZREM', KEYS[1], m) == 1 then drop(m) end
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, m in ipairs(dead) do
  redis.call('ZREM', KEYS[1], m)
  drop(m)
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local out = {0, #joined}
if top[2] then
  out[1] = tonumber(top[2])
  redis.call('PEXPIRE', KEYS[1], ttl * 3)
  redis.call('PEXPIRE', KEYS[2], ttl * 3)
else
  redis.call('DEL', KEYS[2])
end
for _, u in ipairs(joined) do out[#out + 1] = u end
for _, u in ipairs(left) do out[#out + 1] = u end
return out
`,
  memory(store, [occ, counts], args, now) {
    const [inst, ttlArg, nAddArg] = args as [string, string, string];
    const ttl = int(ttlArg);
    const nAdd = int(nAddArg);
    const joined: string[] = [];
    const left: string[] = [];
    const drop = (member: string) => {
      const u = member.slice(0, member.lastIndexOf('|'));
      if (store.hincrby(counts!, u, -1) <= 0) {
        store.hdel(counts!, u);
        left.push(u);
      }
    };
    for (let i = 3; i < 3 + nAdd; i++) {
      if (store.zadd(occ!, now + ttl, `${args[i]}|${inst}`) === 1) {
        if (store.hincrby(counts!, args[i]!, 1) === 1) joined.push(args[i]!);
      }
    }
    for (let i = 3 + nAdd; i < args.length; i++) {
      const m = `${args[i]}|${inst}`;
      if (store.zrem(occ!, m) === 1) drop(m);
    }
    for (const { member } of store.zrangebyscore(occ!, '-inf', now)) {
      store.zrem(occ!, member);
      drop(member);
    }
    const top = store.zrange(occ!, -1, -1)[0];
    const out: ScriptValue[] = [0, joined.length];
    if (top) {
      out[0] = top.score;
      store.pexpire(occ!, ttl * 3);
      store.pexpire(counts!, ttl * 3);
    } else {
      store.del(counts!);
    }
    out.push(...joined, ...left);
    return out;
  },
};

/** Live occupancy entries of a room. KEYS: occ. ARGV: limit. Returns `<userId>|<instanceId>` members. */
export const occupantsScript: EngineScript<string[]> = {
  name: 'gateway.occupants',
  keys: 1,
  lua: `${NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[1]))
`,
  memory(store, [occ], [limit], now) {
    return store
      .zrangebyscore(occ!, `(${now}`, '+inf', { limit: { offset: 0, count: int(limit) } })
      .map((r) => r.member);
  },
};
