/**
 * Watch time and playback quality: players report the seconds they played
 * (`live.watch`, about every 15 s) with how playback went (the rendition's
 * bitrate, rebuffering, dropped frames); reports are summed in memory, per
 * viewer and minute of the stream for watch time and per stream for quality,
 * and written in one statement each per flush, so ten thousand viewers cost
 * a few writes a second, not thousands.
 */
import { Type } from '@sinclair/typebox';
import { type Kysely, sql } from 'kysely';
import type { Gateway } from '../../signaling/gateway.js';
import type { Database } from '../database.js';

type Db = Kysely<Database>;

/** Longest report accepted: a player reports at least this often. */
export const WATCH_REPORT_MAX_SECONDS = 60;

/** How playback went since the player's last report. */
export interface PlaybackQuality {
  /** Bitrate of the rendition playing now (kbit/s). */
  bitrateKbps?: number;
  /** Rebuffering events, and the seconds spent in them. */
  stalls?: number;
  stallSeconds?: number;
  droppedFrames?: number;
}

interface QualitySums {
  reports: number;
  bitrateSum: number;
  bitrateReports: number;
  stalls: number;
  stallMs: number;
  droppedFrames: number;
}

export class WatchTimeRecorder {
  /** `streamId|viewer|minute` → seconds not yet written. */
  private pending = new Map<string, number>();
  /** Stream id → quality sums not yet written. */
  private pendingQuality = new Map<string, QualitySums>();
  private readonly starts = new Map<string, { id: string; startedAt: Date | null; at: number }>();

  constructor(private readonly db: Db) {}

  /** Adds `seconds` watched up to now by `viewer` on the live stream `publicId`; false when it is not live. */
  async record(
    publicId: string,
    viewer: string,
    seconds: number,
    quality?: PlaybackQuality,
  ): Promise<boolean> {
    const stream = await this.stream(publicId);
    if (!stream?.startedAt) return false;
    if (quality) this.addQuality(stream.id, quality);
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
    await this.flushQuality();
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

  private addQuality(streamId: string, quality: PlaybackQuality): void {
    const sums = this.pendingQuality.get(streamId) ?? {
      reports: 0,
      bitrateSum: 0,
      bitrateReports: 0,
      stalls: 0,
      stallMs: 0,
      droppedFrames: 0,
    };
    sums.reports += 1;
    if (quality.bitrateKbps !== undefined) {
      sums.bitrateSum += Math.round(quality.bitrateKbps);
      sums.bitrateReports += 1;
    }
    sums.stalls += quality.stalls ?? 0;
    sums.stallMs += Math.round((quality.stallSeconds ?? 0) * 1000);
    sums.droppedFrames += quality.droppedFrames ?? 0;
    this.pendingQuality.set(streamId, sums);
  }

  private async flushQuality(): Promise<void> {
    if (this.pendingQuality.size === 0) return;
    const batch = [...this.pendingQuality];
    this.pendingQuality = new Map();
    const column = (pick: (s: QualitySums) => number) => batch.map(([, s]) => pick(s));
    await sql`
      insert into stream_playback (stream_id, reports, bitrate_kbps_sum, bitrate_reports, stalls, stall_ms, dropped_frames)
      select * from unnest(
        ${batch.map(([id]) => id)}::uuid[], ${column((s) => s.reports)}::int8[],
        ${column((s) => s.bitrateSum)}::int8[], ${column((s) => s.bitrateReports)}::int8[],
        ${column((s) => s.stalls)}::int8[], ${column((s) => s.stallMs)}::int8[],
        ${column((s) => s.droppedFrames)}::int8[])
      on conflict (stream_id) do update set
        reports = stream_playback.reports + excluded.reports,
        bitrate_kbps_sum = stream_playback.bitrate_kbps_sum + excluded.bitrate_kbps_sum,
        bitrate_reports = stream_playback.bitrate_reports + excluded.bitrate_reports,
        stalls = stream_playback.stalls + excluded.stalls,
        stall_ms = stream_playback.stall_ms + excluded.stall_ms,
        dropped_frames = stream_playback.dropped_frames + excluded.dropped_frames
    `.execute(this.db);
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

/** `live.watch`: `{ streamId, seconds, quality? }` from a viewer's player. */
export function registerWatchTimeOnGateway(gateway: Gateway, recorder: WatchTimeRecorder): void {
  gateway.handle(
    'live.watch',
    Type.Object(
      {
        streamId: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }),
        seconds: Type.Number({ minimum: 0.1, maximum: WATCH_REPORT_MAX_SECONDS }),
        quality: Type.Optional(
          Type.Object(
            {
              bitrateKbps: Type.Optional(Type.Number({ minimum: 0, maximum: 200_000 })),
              stalls: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
              stallSeconds: Type.Optional(
                Type.Number({ minimum: 0, maximum: WATCH_REPORT_MAX_SECONDS * 10 }),
              ),
              droppedFrames: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    async (ctx, d) => {
      const viewer = ctx.user ? `u:${ctx.user.id}` : `c:${ctx.connection.id}`;
      return { recorded: await recorder.record(d.streamId, viewer, Math.round(d.seconds), d.quality) };
    },
  );
}
