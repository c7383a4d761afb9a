/**
 * Delivers one live stream's HLS to the ObjectStore while it runs.
 *
 * Order is the guarantee: a segment (and its fMP4 init segment, first) is
 * stored and recorded in the Db before any playlist names it, so a player
 * never asks for something missing. Uploads retry with backoff for as long
 * as the store fails; segments wait meanwhile (an outage delays the stream,
 * it loses nothing): in memory when they come from the in-process packager,
 * spilled to local disk beyond a few, and deleted locally once stored.
 * Without recording, segments that leave the live window are deleted from
 * the store too. When the stream ends, the live playlist gets EXT-X-ENDLIST
 * and, with recording, a VOD playlist of every segment is written.
 */
import { readFile, unlink, writeFile } from 'node:fs/promises';
import type { DateRange, PlaylistSegment } from '../media/hls/hls-playlist.js';
import { renderMasterPlaylist, renderMediaPlaylist } from '../media/hls/hls-playlist.js';
import {
  hlsPlaylistKey,
  LIVE_PLAYLIST_CACHE,
  mediaPrefix,
  SEGMENT_CACHE,
  VOD_PLAYLIST_CACHE,
  vodPlaylistKey,
} from '../src/live/live-streams-service.js';
import type { SegmentRecord, StreamRecordings, TimedMetadata } from '../src/live/stream-recordings.js';
import { contentTypeForKey } from '../src/platform/object-store/object-key.js';
import type { ObjectStore } from '../src/platform/object-store/object-store.js';

const PLAYLIST_CONTENT_TYPE = contentTypeForKey('index.m3u8');
/** Segments held in memory while the store is slow; later ones wait on local disk. */
const SEGMENTS_IN_MEMORY = 8;

/** A segment waiting for the store: in memory (`data`), on disk, or on its way to disk (`spilling`). */
interface QueuedSegment {
  segment: LocalSegment;
  queuedAt: number;
  data: Buffer | null;
  spilling: Promise<void> | null;
}

/** A finished segment, ready to deliver. */
export interface LocalSegment {
  /** Its file on local disk; with `data`, where it is spilled if it has to wait. */
  path: string;
  /** The segment's bytes when the packager kept them in memory (not yet on disk). */
  data: Buffer | null;
  /** Called once `data` is no longer needed (stored, or spilled to disk), so the packager can reuse its memory. */
  release?: () => void;
  /** Object key to store it under (under the delivery's `mediaPrefix`). */
  key: string;
  durationSeconds: number;
  programDateTime: Date | null;
  /** fMP4 init segment on disk and its key, when the segment needs one. */
  init: { path: string; key: string } | null;
  /** First segment of a new transmuxer run after earlier ones. */
  discontinuity: boolean;
}

/** A pino logger satisfies this; missing levels are dropped. */
export interface HlsDeliveryLogger {
  warn?(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

export interface HlsDeliveryOptions {
  store: Pick<ObjectStore, 'put' | 'deleteMany'>;
  recordings: Pick<StreamRecordings, 'append' | 'tail'>;
  /** Db id of the stream. */
  streamId: string;
  /** Public id: the `live/<publicId>/` prefix. */
  publicId: string;
  /** The rendition of an ABR stream this delivers (`source`, `480p`, …; under `live/<publicId>/<rendition>/`); '' for a stream without a ladder. */
  rendition?: string;
  /** Keep every segment and write a VOD playlist at the end. */
  recording: boolean;
  /** Segments listed in the live playlist. */
  windowSize: number;
  /** Least EXT-X-TARGETDURATION (the transmuxer's segment target, rounded up). */
  targetDurationSeconds: number;
  /** First retry delay after a failed upload; doubles up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  logger: HlsDeliveryLogger;
  /** Called once, when the first live playlist naming a segment is stored: the stream is playable. */
  onPlayable?: (first: SegmentRecord, firstBytes: number) => void;
  /** Called with each segment once it is stored, with the time since it was queued (metrics). */
  onDelivered?: (segment: LocalSegment, uploadMs: number) => void;
}

export class HlsDeliveryClosedError extends Error {
  override name = 'HlsDeliveryClosedError';
}

const SEGMENT_CLASS: Record<TimedMetadata['kind'], string> = {
  pin: 'com.livecommerce.pin',
  flash_sale: 'com.livecommerce.flash-sale',
};

function toDateRange(item: TimedMetadata): DateRange {
  return { id: item.id, class: SEGMENT_CLASS[item.kind], startDate: item.at, attributes: item.attributes };
}

export class HlsDelivery {
  private readonly queue: QueuedSegment[] = [];
  private inMemory = 0;
  /** The live window, oldest first. */
  private window: PlaylistSegment[] = [];
  private nextSequence = 0;
  /** Discontinuities before the window's first segment. */
  private discontinuitiesBefore = 0;
  private readonly storedInits = new Set<string>();
  private readonly dateRanges = new Map<string, DateRange>();
  private running: Promise<void> | null = null;
  private closed = false;
  private wake: (() => void) | null = null;
  private ended = false;
  private playable = false;

  private constructor(private readonly options: HlsDeliveryOptions) {}

  /** A delivery that continues the stream's playlist from the segments already in the Db. */
  static async open(options: HlsDeliveryOptions): Promise<HlsDelivery> {
    const delivery = new HlsDelivery(options);
    const { segments, discontinuitiesBefore } = await options.recordings.tail(
      options.streamId,
      options.windowSize,
      options.rendition,
    );
    delivery.window = segments.map((s) => delivery.toPlaylistSegment(s));
    delivery.discontinuitiesBefore = discontinuitiesBefore;
    const last = segments.at(-1);
    delivery.nextSequence = last ? last.sequence + 1 : 0;
    for (const s of segments) if (s.initKey) delivery.storedInits.add(s.initKey);
    return delivery;
  }

  /** Segments delivered so far (the next one's sequence). */
  get delivered(): number {
    return this.nextSequence;
  }

  /** Segments waiting for the store. */
  get backlog(): number {
    return this.queue.length;
  }

  /** Queues a finished segment. */
  enqueue(segment: LocalSegment): void {
    if (this.closed || this.ended) throw new HlsDeliveryClosedError('delivery is closed');
    const queued: QueuedSegment = { segment, queuedAt: Date.now(), data: segment.data, spilling: null };
    if (queued.data && this.inMemory >= SEGMENTS_IN_MEMORY) this.spill(queued);
    if (queued.data) this.inMemory += 1;
    this.queue.push(queued);
    this.kick();
  }

  /** Writes a waiting segment to local disk so a long outage does not hold the stream in memory. */
  private spill(queued: QueuedSegment): void {
    const data = queued.data as Buffer;
    queued.spilling = writeFile(queued.segment.path, data).then(
      () => {
        queued.data = null;
        this.inMemory -= 1;
        queued.segment.release?.();
      },
      (err: unknown) =>
        this.options.logger.warn?.(
          { err, stream: this.options.publicId },
          'segment kept in memory: spill failed',
        ),
    );
  }

  /** Adds timed metadata; it appears in the next playlist written. */
  addTimedMetadata(item: TimedMetadata): void {
    this.dateRanges.set(item.id, toDateRange(item));
    if (!this.running && !this.ended && this.window.length > 0) this.kick(true);
  }

  /** Resolves when every queued segment and the playlist naming it are stored. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  /**
   * The stream is over: after the queue drains, the live playlist gets
   * EXT-X-ENDLIST and, when recording, the VOD playlist is written from the
   * Db's record of every segment. The replay is not announced here: an ABR
   * stream's master playlist comes after all its renditions' (see `finishRecording`).
   */
  async finish(): Promise<void> {
    await this.drain();
    this.ended = true;
    await this.retry('live playlist', () => this.putLivePlaylist());
    if (this.options.recording) {
      const all = await this.retry('segment list', () =>
        this.options.recordings.tail(this.options.streamId, undefined, this.options.rendition),
      );
      const body = renderMediaPlaylist({
        segments: all.segments.map((s) => this.toPlaylistSegment(s)),
        discontinuitySequence: 0,
        dateRanges: [...this.dateRanges.values()],
        ended: true,
        playlistType: 'VOD',
        minTargetDuration: this.options.targetDurationSeconds,
      });
      await this.retry('VOD playlist', () =>
        this.options.store.put(vodPlaylistKey(this.options.publicId, this.options.rendition), body, {
          contentType: PLAYLIST_CONTENT_TYPE,
          cacheControl: VOD_PLAYLIST_CACHE,
        }),
      );
    }
  }

  /** Stops retrying: what is still queued is not delivered. Idempotent. */
  close(): void {
    this.closed = true;
    this.wake?.();
  }

  private kick(playlistOnly = false): void {
    if (this.running || this.closed) return;
    this.running = (playlistOnly ? this.retry('live playlist', () => this.putLivePlaylist()) : this.run())
      .catch((err: unknown) => {
        if (!(err instanceof HlsDeliveryClosedError))
          this.options.logger.warn?.({ err, stream: this.options.publicId }, 'HLS delivery stopped');
      })
      .finally(() => {
        this.running = null;
        if (this.queue.length > 0 && !this.closed) this.kick();
      });
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      const queued = this.queue[0] as QueuedSegment;
      const { segment, queuedAt } = queued;
      await queued.spilling;
      if (segment.init && !this.storedInits.has(segment.init.key)) {
        const init = segment.init;
        await this.retry('init segment', () => this.putFile(init.path, init.key));
        this.storedInits.add(init.key);
      }
      const bytes = await this.retry('segment', () =>
        queued.data ? this.putBytes(queued.data, segment.key) : this.putFile(segment.path, segment.key),
      );
      const record: SegmentRecord = {
        sequence: this.nextSequence,
        objectKey: segment.key,
        initKey: segment.init?.key ?? null,
        durationMs: Math.max(1, Math.round(segment.durationSeconds * 1000)),
        programDateTime: segment.programDateTime,
        discontinuity: segment.discontinuity && this.nextSequence > 0,
      };
      await this.retry('segment record', () =>
        this.options.recordings.append(this.options.streamId, record, this.options.rendition),
      );
      this.queue.shift();
      this.nextSequence += 1;
      this.window.push(this.toPlaylistSegment(record));
      this.options.onDelivered?.(segment, Date.now() - queuedAt);
      if (queued.data) {
        this.inMemory -= 1;
        segment.release?.();
      } else await unlink(segment.path).catch(() => undefined);
      // One playlist per drained batch: after an outage the backlog goes out first, then one playlist names it all.
      if (this.queue.length === 0) {
        const dropped = this.trimWindow();
        await this.retry('live playlist', () => this.putLivePlaylist());
        if (!this.playable) {
          this.playable = true;
          this.options.onPlayable?.(record, bytes);
        }
        if (!this.options.recording && dropped.length > 0)
          await this.options.store.deleteMany(dropped).catch((err: unknown) => {
            this.options.logger.warn?.({ err, stream: this.options.publicId }, 'old segments not deleted');
          });
      }
    }
  }

  /** Shortens the window to its size; returns the keys of segments that left it. */
  private trimWindow(): string[] {
    const excess = this.window.length - this.options.windowSize;
    if (excess <= 0) return [];
    const gone = this.window.splice(0, excess);
    for (const s of gone) if (s.discontinuity) this.discontinuitiesBefore += 1;
    const prefix = mediaPrefix(this.options.publicId, this.options.rendition);
    return gone.map((s) => `${prefix}${s.uri}`);
  }

  private async putLivePlaylist(): Promise<void> {
    const first = this.window[0]?.programDateTime?.getTime() ?? 0;
    const body = renderMediaPlaylist({
      segments: this.window,
      discontinuitySequence: this.discontinuitiesBefore,
      // Metadata from before the window is over for a live viewer; the VOD keeps all of it.
      dateRanges: [...this.dateRanges.values()].filter((r) => r.startDate.getTime() >= first - 1000),
      ended: this.ended,
      minTargetDuration: this.options.targetDurationSeconds,
    });
    await this.options.store.put(hlsPlaylistKey(this.options.publicId, this.options.rendition), body, {
      contentType: PLAYLIST_CONTENT_TYPE,
      cacheControl: LIVE_PLAYLIST_CACHE,
      // Rewritten every segment; the final one (with ENDLIST) is durable.
      durable: this.ended,
    });
  }

  /** Stores a file; returns its size. */
  private async putFile(path: string, key: string): Promise<number> {
    return this.putBytes(await readFile(path), key);
  }

  private async putBytes(body: Buffer, key: string): Promise<number> {
    await this.options.store.put(key, body, {
      contentType: contentTypeForKey(key),
      cacheControl: SEGMENT_CACHE,
      // Without a recording a segment lives for one live window: not worth a flush to disk.
      durable: this.options.recording,
    });
    return body.length;
  }

  /** Runs `attempt` until it succeeds, backing off between failures; throws only once closed. */
  async retry<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    let delay = this.options.retryBaseMs ?? 250;
    const max = this.options.retryMaxMs ?? 5000;
    for (let failures = 0; ; failures++) {
      if (this.closed) throw new HlsDeliveryClosedError('delivery is closed');
      try {
        const result = await attempt();
        if (failures > 0)
          this.options.logger.info?.(
            { stream: this.options.publicId, what, failures },
            'HLS upload recovered',
          );
        return result;
      } catch (err) {
        if (failures === 0 || failures % 10 === 0)
          this.options.logger.warn?.(
            { err, stream: this.options.publicId, what, failures: failures + 1 },
            'HLS upload failed; retrying',
          );
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
        delay = Math.min(max, delay * 2);
      }
    }
  }

  private toPlaylistSegment(s: SegmentRecord): PlaylistSegment {
    const prefix = mediaPrefix(this.options.publicId, this.options.rendition);
    const relative = (key: string) => (key.startsWith(prefix) ? key.slice(prefix.length) : key);
    return {
      sequence: s.sequence,
      uri: relative(s.objectKey),
      durationSeconds: s.durationMs / 1000,
      programDateTime: s.programDateTime,
      initUri: s.initKey ? relative(s.initKey) : null,
      discontinuity: s.discontinuity,
    };
  }
}

/** One rendition of a stream and its delivery ('' names the only one of a stream without a ladder). */
export interface RenditionDelivery {
  name: string;
  delivery: HlsDelivery;
  /** Peak bits per second, for the master playlist. */
  bandwidth: number;
}

export interface StreamMediaOptions {
  store: Pick<ObjectStore, 'put'>;
  recordings: Pick<StreamRecordings, 'markReplayReady'>;
  streamId: string;
  publicId: string;
  recording: boolean;
}

/** True when the renditions are an ABR ladder (then `index.m3u8` and `vod.m3u8` are master playlists). */
const isLadder = (renditions: RenditionDelivery[]) => renditions.some((r) => r.name !== '');

function masterPlaylist(renditions: RenditionDelivery[], file: 'index.m3u8' | 'vod.m3u8'): string {
  return renderMasterPlaylist(renditions.map((r) => ({ uri: `${r.name}/${file}`, bandwidth: r.bandwidth })));
}

/** Stores the live master playlist of an ABR stream (nothing for a stream without a ladder). */
export async function putLiveMaster(
  renditions: RenditionDelivery[],
  options: StreamMediaOptions,
): Promise<void> {
  const lead = renditions[0];
  if (!lead || !isLadder(renditions)) return;
  await lead.delivery.retry('master playlist', () =>
    options.store.put(hlsPlaylistKey(options.publicId), masterPlaylist(renditions, 'index.m3u8'), {
      contentType: PLAYLIST_CONTENT_TYPE,
      cacheControl: LIVE_PLAYLIST_CACHE,
      durable: true,
    }),
  );
}

/**
 * The stream is over: every rendition's final live playlist and VOD, then the VOD master
 * playlist of an ABR stream, and only then the replay flag, so a replay URL never names a
 * playlist that is not there.
 */
export async function finishStreamMedia(
  renditions: RenditionDelivery[],
  options: StreamMediaOptions,
): Promise<void> {
  for (const r of renditions) await r.delivery.finish();
  const lead = renditions[0];
  if (!options.recording || !lead) return;
  if (isLadder(renditions))
    await lead.delivery.retry('VOD master playlist', () =>
      options.store.put(vodPlaylistKey(options.publicId), masterPlaylist(renditions, 'vod.m3u8'), {
        contentType: PLAYLIST_CONTENT_TYPE,
        cacheControl: VOD_PLAYLIST_CACHE,
      }),
    );
  await lead.delivery.retry('replay flag', () => options.recordings.markReplayReady(options.streamId));
}
