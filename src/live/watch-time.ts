/**
 * Watch time: players report the seconds they played (`live.watch`, about
 * every 15 s); reports are summed per viewer and minute of the stream in
 * memory and written in one statement per flush, so ten thousand viewers
 * cost a few writes a second, not thousands.
 */
import { Type } from '@sinclair/typebox';
import { type Kysely, sql } from 'kysely';
import type { Gateway } from '../../signaling/gateway.js';
import type { Database } from '../database.js';

type Db = Kysely<Database>;

/** Longest report accepted: a player reports at least this often. */
export const WATCH_REPORT_MAX_SECONDS = 60;

export class WatchTimeRecorder {
  /** `streamId|viewer|minute` → seconds not yet written. */
  private pending = new Map<string, number>();
  private readonly starts = new Map<string, { id: string; startedAt: Date | null; at: number }>();

  constructor(private readonly db: Db) {}

  /** Adds `seconds` watched up to now by `viewer` on the live stream `publicId`; false when it is not live. */
  async record(publicId: string, viewer: string, seconds: number): Promise<boolean> {
    const stream = await this.stream(publicId);
    if (!stream?.startedAt) return false;
    const now = Date.now();
    // Attribute the seconds to the minutes they were watched in, ending now.
    let end = now;
    let left = seconds;
    while (left > 0) {
      const minute = Math.max(0, Math.floor((end - stream.startedAt.getTime()) / 60_000));
      const minuteStart = stream.startedAt.getTime() + minute * 60_000;
      const part = Math.min(left, Math.max(1, Math.round((end - minuteStart) / 1000)));
      const key = `${stream.id}|${viewer}|${minute}`;
      this.pending.set(key, Math.min(60, (this.pending.get(key) ?? 0) + part));
      left -= part;
      end = minuteStart - 1;
      if (minute === 0) break;
    }
    return true;
  }

  /** Writes what was recorded since the last flush (adding to earlier rows, capped at 60 s a minute). */
  async flush(): Promise<number> {
    if (this.pending.size === 0) return 0;
    const batch = this.pending;
    this.pending = new Map();
    const streams: string[] = [];
    const viewers: string[] = [];
    const minutes: number[] = [];
    const seconds: number[] = [];
    for (const [key, value] of batch) {
      const [stream, viewer, minute] = key.split('|') as [string, string, string];
      streams.push(stream);
      viewers.push(viewer);
      minutes.push(Number(minute));
      seconds.push(value);
    }
    await sql`
      insert into stream_watch (stream_id, viewer, minute, seconds)
      select * from unnest(${streams}::uuid[], ${viewers}::text[], ${minutes}::int[], ${seconds}::int[])
      on conflict (stream_id, viewer, minute)
      do update set seconds = least(60, stream_watch.seconds + excluded.seconds)
    `.execute(this.db);
    return batch.size;
  }

  /** Stream ids and start times, cached for a minute (the start never changes once live). */
  private async stream(publicId: string): Promise<{ id: string; startedAt: Date | null } | null> {
    const cached = this.starts.get(publicId);
    if (cached && (cached.startedAt || Date.now() - cached.at < 5_000)) return cached;
    const row = await this.db
      .selectFrom('streams')
      .select(['id', 'started_at', 'status'])
      .where('public_id', '=', publicId)
      .executeTakeFirst();
    if (!row) return null;
    const entry = { id: row.id, startedAt: row.status === 'live' ? row.started_at : null, at: Date.now() };
    this.starts.set(publicId, entry);
    return entry;
  }
}

/** `live.watch`: `{ streamId, seconds }` from a viewer's player. */
export function registerWatchTimeOnGateway(gateway: Gateway, recorder: WatchTimeRecorder): void {
  gateway.handle(
    'live.watch',
    Type.Object(
      {
        streamId: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }),
        seconds: Type.Number({ minimum: 0.1, maximum: WATCH_REPORT_MAX_SECONDS }),
      },
      { additionalProperties: false },
    ),
    async (ctx, d) => {
      const viewer = ctx.user ? `u:${ctx.user.id}` : `c:${ctx.connection.id}`;
      return { recorded: await recorder.record(d.streamId, viewer, Math.round(d.seconds)) };
    },
  );
}
