import type { ColumnType, Generated } from 'kysely';

export const STREAM_STATUSES = ['scheduled', 'live', 'ended'] as const;
export type StreamStatus = (typeof STREAM_STATUSES)[number];

/**
 * Why a stream ended: its publisher left and did not come back within the
 * grace period (or its ingest died), the ingest gave up on it, or the
 * streamer ended it.
 */
export const STREAM_END_REASONS = ['publisher_gone', 'ingest_error', 'ended_by_streamer'] as const;
export type StreamEndReason = (typeof STREAM_END_REASONS)[number];

export interface StreamsTable {
  id: string;
  /**
   * Short url-safe id (10 base62 characters) used in public URLs, the realtime
   * room `stream:<public_id>`, the HLS path `live/<public_id>/` and as the
   * free-text `stream_id` of flash sales, orders and coupons.
   */
  public_id: string;
  owner_id: string;
  title: string;
  description: Generated<string>;
  status: StreamStatus;
  scheduled_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
  end_reason: StreamEndReason | null;
  /** sha256 (hex) of the stream key; the key itself is never stored. */
  key_hash: string;
  /** The key's first characters ("sk_" and 4 more), to tell keys apart in the studio. */
  key_prefix: string;
  key_revoked_at: Date | null;
  recording: Generated<boolean>;
  /** Packaged with the server's ABR ladder (LIVE_ABR_LADDER) besides the source. */
  abr: Generated<boolean>;
  /** The ingest session holding the publisher right now; null after an unpublish. */
  publisher_session: string | null;
  /** Last time an ingest confirmed the publisher (heartbeat), or when it left. */
  publisher_seen_at: Date | null;
  /** Wall-clock time of media time 0 of the stream's timeline, once the ingest knows it. */
  media_origin_at: Date | null;
  /** When the VOD playlist of the recording was written (replay available). */
  replay_ready_at: Date | null;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** Featured products of a stream, in display order. */
export interface StreamProductsTable {
  stream_id: string;
  product_id: string;
  position: number;
}

export type StreamPinKind = 'product' | 'coupon';

/** Pins shown over the player; the current pin is the latest one not unpinned (at most one). */
export interface StreamPinsTable {
  id: string;
  stream_id: string;
  kind: StreamPinKind;
  product_id: string | null;
  /** Upper case, as stored in `coupons.code`. */
  coupon_code: string | null;
  /** The stream's media time at the pin, when known. */
  media_time_ms: number | null;
  pinned_by: string;
  pinned_at: Generated<Date>;
  unpinned_at: Date | null;
}

/**
 * Segments of a stream as delivered to the ObjectStore, in order: the record
 * the live playlist continues from after a reconnect (on any instance) and
 * the VOD playlist is written from.
 */
export interface StreamSegmentsTable {
  stream_id: string;
  /** The rendition's name (`source`, `480p`, …) when the stream has an ABR ladder; '' otherwise. */
  rendition: Generated<string>;
  /** From 0, across reconnects (the HLS media sequence). */
  sequence: number;
  object_key: string;
  /** fMP4 init segment the segment needs. */
  init_key: string | null;
  duration_ms: number;
  program_date_time: Date | null;
  /** First segment after a reconnect or a transmuxer restart. */
  discontinuity: boolean;
  created_at: Generated<Date>;
}

/** Seconds a viewer watched in one minute of a stream (minute 0 starts at `started_at`). */
export interface StreamWatchTable {
  stream_id: string;
  /** `u:<userId>`, or `c:<connectionId>` for an anonymous viewer. */
  viewer: string;
  minute: number;
  seconds: number;
}

/** A bigint column: read back as a string (int8), written as a number. */
type BigCount = ColumnType<string, number, number>;

/** Playback quality players reported for a stream, as running sums. */
export interface StreamPlaybackTable {
  stream_id: string;
  reports: BigCount;
  /** Sum of the bitrates of the renditions playing, over `bitrate_reports` reports. */
  bitrate_kbps_sum: BigCount;
  bitrate_reports: BigCount;
  stalls: BigCount;
  stall_ms: BigCount;
  dropped_frames: BigCount;
}

export interface LiveTables {
  streams: StreamsTable;
  stream_products: StreamProductsTable;
  stream_pins: StreamPinsTable;
  stream_segments: StreamSegmentsTable;
  stream_watch: StreamWatchTable;
  stream_playback: StreamPlaybackTable;
}
