/**
 * Who is watching a live stream, and how much they like it, across every
 * instance.
 *
 * - Viewers: a viewer is a connection joined to `stream:<id>`. Each instance
 *   counts its own and reports the count every tick into the Engine under
 *   its instance id with an expiry, so an instance that dies stops counting
 *   after `reportTtlMs`; one script sums the live reports and keeps the peak.
 *   Unique viewers are the distinct users (or anonymous connections) ever
 *   joined. The instance whose id sorts first among the reporters publishes
 *   `stream.viewers` (ephemeral), so the room hears it once per tick.
 * - Likes: taps are batched by the client (`live.like` with a count), added
 *   to one Engine counter, limited per user, and published as the total in
 *   `stream.likes` at most once a second per instance (never one event per tap).
 */
import { Type } from '@sinclair/typebox';
import type { Gateway } from '../../signaling/gateway.js';
import type { AuthUser } from '../auth/permissions.js';
import type { Engine, EngineScript, ScriptValue } from '../platform/engine/engine.js';
import { AppError } from '../platform/errors.js';

export interface AudienceCounts {
  current: number;
  peak: number;
  unique: number;
}

export interface StreamAudienceOptions {
  /** How often each instance reports its viewers (and the leader publishes). Default 2 s. */
  tickMs?: number;
  /** A report not renewed within this is dropped (a dead instance). Default 3 ticks. */
  reportTtlMs?: number;
  /** Most likes one user may add per stream per 10 s. Default 300. */
  likesPerUserPer10s?: number;
  onError?: (err: unknown) => void;
}

const keys = (publicId: string) => {
  const base = `{live:${publicId}}`;
  return {
    reporters: `${base}:reporters`,
    counts: `${base}:counts`,
    peak: `${base}:peak`,
    uniques: `${base}:uniques`,
    likes: `${base}:likes`,
  };
};

/**
 * KEYS: reporters (zset instance → expiry), counts (hash instance → viewers), peak.
 * ARGV: instance, count, nowMs, ttlMs. Drops expired reports, records this
 * one (or removes it at 0), returns [total, peak, first reporter].
 */
export const reportViewersScript: EngineScript<ScriptValue[]> = {
  name: 'live.reportViewers',
  keys: 3,
  lua: `
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
for _, member in ipairs(gone) do redis.call('HDEL', KEYS[2], member) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do total = total + tonumber(v) end
local peak = tonumber(redis.call('GET', KEYS[3]) or '0')
if total > peak then
  redis.call('SET', KEYS[3], total)
  peak = total
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1] or ''
return {total, peak, first}
`,
  memory(store, [reporters, counts, peak], [instance, count, now, ttl]) {
    const nowMs = Number(now);
    for (const { member } of store.zrangebyscore(reporters!, '-inf', nowMs)) store.hdel(counts!, member);
    store.zremrangebyscore(reporters!, '-inf', nowMs);
    if (Number(count) > 0) {
      store.zadd(reporters!, nowMs + Number(ttl), String(instance));
      store.hset(counts!, String(instance), String(count));
    } else {
      store.zrem(reporters!, String(instance));
      store.hdel(counts!, String(instance));
    }
    let total = 0;
    for (const v of store.hgetall(counts!).values()) total += Number(v);
    let top = Number(store.get(peak!) ?? '0');
    if (total > top) {
      store.set(peak!, String(total));
      top = total;
    }
    const first = store.zrange(reporters!, 0, 0)[0]?.member ?? '';
    return [total, top, first];
  },
};

export class StreamAudience {
  /** Local connections per stream: connection id → viewer identity. */
  private readonly local = new Map<string, Map<string, string>>();
  /** Streams this instance reported non-zero last tick (so it reports their drop to 0). */
  private readonly reported = new Set<string>();
  private readonly likeTimers = new Map<string, { timer: NodeJS.Timeout; total: number }>();
  private timer: NodeJS.Timeout | null = null;
  private readonly tickMs: number;
  private readonly ttlMs: number;
  private readonly likeLimit: number;
  private closed = false;

  constructor(
    private readonly engine: Engine,
    private readonly gateway: Gateway,
    private readonly options: StreamAudienceOptions = {},
  ) {
    this.tickMs = options.tickMs ?? 2000;
    this.ttlMs = options.reportTtlMs ?? this.tickMs * 3;
    this.likeLimit = options.likesPerUserPer10s ?? 300;
    gateway.on('join', (conn, room) => {
      const publicId = streamOf(room);
      if (publicId) this.onJoin(publicId, conn.id, conn.user ? `u:${conn.user.id}` : `c:${conn.id}`);
    });
    gateway.on('leave', (conn, room) => {
      const publicId = streamOf(room);
      if (publicId) this.local.get(publicId)?.delete(conn.id);
    });
    gateway.on('disconnect', (conn) => {
      for (const viewers of this.local.values()) viewers.delete(conn.id);
    });
    gateway.handle(
      'live.like',
      Type.Object(
        {
          streamId: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }),
          count: Type.Integer({
            minimum: 1,
            maximum: 50,
            description: 'Taps since the last send (batch them)',
          }),
        },
        { additionalProperties: false },
      ),
      async (ctx, d) => ({ total: await this.like(ctx.requireUser(), d.streamId, d.count) }),
      { auth: true },
    );
  }

  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => {
      this.tick().catch((err: unknown) => this.options.onError?.(err));
    }, this.tickMs);
    this.timer.unref();
  }

  /** Stops reporting and withdraws this instance's counts. */
  async stop(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const { timer } of this.likeTimers.values()) clearTimeout(timer);
    this.likeTimers.clear();
    for (const viewers of this.local.values()) viewers.clear();
    await this.tick().catch(() => undefined);
  }

  /** Reports this instance's viewers of every stream it serves; the leader of each publishes. */
  async tick(): Promise<void> {
    const now = Date.now();
    for (const publicId of new Set([...this.local.keys(), ...this.reported])) {
      const { current, peak, leader } = await this.report(publicId, now);
      if (leader === this.gateway.instanceId && !this.closed) {
        const unique = await this.engine.zCard(keys(publicId).uniques);
        await this.gateway.publish(
          `stream:${publicId}`,
          'stream.viewers',
          { current, peak, unique },
          { ephemeral: true },
        );
      }
    }
  }

  private async report(
    publicId: string,
    now: number,
  ): Promise<{ current: number; peak: number; leader: string }> {
    const viewers = this.local.get(publicId)?.size ?? 0;
    const k = keys(publicId);
    const [current, peak, leader] = (await this.engine.run(
      reportViewersScript,
      [k.reporters, k.counts, k.peak],
      [this.gateway.instanceId, viewers, now, this.ttlMs],
    )) as [number, number, string];
    if (viewers > 0) this.reported.add(publicId);
    else {
      this.reported.delete(publicId);
      this.local.delete(publicId);
    }
    return { current: Number(current), peak: Number(peak), leader: String(leader) };
  }

  /** Current, peak and unique viewers and the likes of a stream (this instance's count is reported fresh). */
  async counts(publicId: string): Promise<AudienceCounts & { likes: number }> {
    const k = keys(publicId);
    const [report, unique, likes] = await Promise.all([
      this.report(publicId, Date.now()),
      this.engine.zCard(k.uniques),
      this.engine.get(k.likes),
    ]);
    return { current: report.current, peak: report.peak, unique, likes: Number(likes ?? 0) };
  }

  /** Adds a signed-in viewer's batched taps; returns the stream's total. */
  async like(user: AuthUser, publicId: string, count: number): Promise<number> {
    const k = keys(publicId);
    const mine = await this.engine.incrBy(`${k.likes}:u:${user.id}`, count, 10_000);
    if (mine > this.likeLimit) throw new AppError('RATE_LIMITED', undefined, { retryAfterMs: 10_000 });
    const total = await this.engine.incrBy(k.likes, count);
    this.publishLikes(publicId, total);
    return total;
  }

  /** At most one `stream.likes` a second per stream from this instance, carrying the latest total. */
  private publishLikes(publicId: string, total: number): void {
    const pending = this.likeTimers.get(publicId);
    if (pending) {
      pending.total = Math.max(pending.total, total);
      return;
    }
    const entry = {
      total,
      timer: setTimeout(() => {
        this.likeTimers.delete(publicId);
        this.gateway
          .publish(`stream:${publicId}`, 'stream.likes', { total: entry.total }, { ephemeral: true })
          .catch((err: unknown) => this.options.onError?.(err));
      }, 1000),
    };
    this.likeTimers.set(publicId, entry);
  }

  private onJoin(publicId: string, connectionId: string, viewer: string): void {
    let viewers = this.local.get(publicId);
    if (!viewers) {
      viewers = new Map();
      this.local.set(publicId, viewers);
    }
    viewers.set(connectionId, viewer);
    this.engine
      .zAdd(keys(publicId).uniques, [[Date.now(), viewer]])
      .catch((err: unknown) => this.options.onError?.(err));
  }
}

function streamOf(room: string): string | null {
  return room.startsWith('stream:') ? room.slice(7) : null;
}
