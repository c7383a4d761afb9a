/**
 * A live (or replay) HLS player on a <video> element: hls.js tuned for 1 s
 * segments, native HLS where the browser has it (Safari), and the stream's
 * timed metadata (pins, flash-sale starts: EXT-X-DATERANGE) surfaced when the
 * video reaches them, not when the playlist arrives seconds earlier.
 */
import Hls from 'hls.js';
import { Emitter } from './emitter.js';

/** One EXT-X-DATERANGE of the playlist. */
export interface TimedMetadataCue {
  /** `pin-<pinId>` or `flash-<saleId>`. */
  id: string;
  /** `com.livecommerce.pin` or `com.livecommerce.flash-sale`. */
  class: string;
  startDate: Date;
  /** The `X-` attributes, lower-cased without the prefix (`product-id`, `sale-id`, …). */
  attributes: Record<string, string>;
}

export interface LivePlayerEvents {
  /** The video reached a cue's moment (once per cue). */
  metadata: TimedMetadataCue;
  /** Playback failed for good (network or media error hls.js could not recover). */
  fatal: { type: string; details: string };
  /**
   * Seconds watched since the last report (every `watchReportSeconds` while playing), with how
   * playback went meanwhile: feed both to `LiveRoom.reportWatch`.
   */
  watched: { seconds: number; quality: PlaybackQuality };
}

/** How playback went since the last `watched` report. */
export interface PlaybackQuality {
  /** Bitrate of the rendition playing (from the master playlist; absent for a single rendition without one). */
  bitrateKbps?: number;
  /** Rebuffering events after playback started, and the seconds they lasted. */
  stalls: number;
  stallSeconds: number;
  droppedFrames: number;
}

export interface LivePlayerOptions {
  /** Playlist URL (`hlsUrl` or `replayUrl` of the stream page). */
  src: string;
  /** How often `watched` fires while the video plays. Default 15 s. */
  watchReportSeconds?: number;
}

/** Attempts to load a playlist that is not there yet (about a minute with backoff). */
const MANIFEST_RETRIES = 10;

export class LivePlayer extends Emitter<LivePlayerEvents> {
  private readonly hls: Hls | null = null;
  private readonly cues = new Map<string, TimedMetadataCue>();
  private readonly fired = new Set<string>();
  private watchedSeconds = 0;
  private lastTime: number | null = null;
  private closed = false;
  private manifestRetries = 0;
  private stalls = 0;
  private stallMs = 0;
  private stalledAt: number | null = null;
  private droppedFramesReported = 0;
  private readonly onTimeUpdate = () => this.tick();
  /** Waiting for data after playback started is a stall (the first load is not). */
  private readonly onWaiting = () => {
    if (this.lastTime === null || this.stalledAt !== null) return;
    this.stalls += 1;
    this.stalledAt = Date.now();
  };
  private readonly onPlaying = () => {
    if (this.stalledAt === null) return;
    this.stallMs += Date.now() - this.stalledAt;
    this.stalledAt = null;
  };

  constructor(
    readonly video: HTMLVideoElement,
    private readonly options: LivePlayerOptions,
  ) {
    super();
    if (Hls.isSupported()) {
      const hls = new Hls({
        // 1 s segments: start three segments behind live, catch up gently when behind.
        liveSyncDurationCount: 3,
        liveMaxLatencyDurationCount: 8,
        maxLiveSyncPlaybackRate: 1.1,
        backBufferLength: 30,
      });
      this.hls = hls;
      hls.on(Hls.Events.LEVEL_UPDATED, (_e, data) => {
        for (const [id, range] of Object.entries(data.details.dateRanges ?? {})) {
          if (!range?.startDate || this.cues.has(id)) continue;
          const attributes: Record<string, string> = {};
          for (const [k, v] of Object.entries(range.attr ?? {}))
            if (k.startsWith('X-') && typeof v === 'string') attributes[k.slice(2).toLowerCase()] = v;
          this.cues.set(id, { id, class: range.class ?? '', startDate: range.startDate, attributes });
        }
      });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (!data.fatal || this.closed) return;
        // A stream that just went live may not have its playlist on the CDN yet: keep asking, with backoff.
        const manifestMissing =
          data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR ||
          data.details === Hls.ErrorDetails.MANIFEST_LOAD_TIMEOUT ||
          data.details === Hls.ErrorDetails.LEVEL_LOAD_ERROR;
        if (manifestMissing && this.manifestRetries < MANIFEST_RETRIES) {
          const delay = Math.min(8000, 500 * 2 ** this.manifestRetries);
          this.manifestRetries += 1;
          setTimeout(() => {
            if (!this.closed) hls.loadSource(options.src);
          }, delay);
          return;
        }
        // One recovery attempt per kind, as hls.js recommends; then it is fatal for the app.
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
        this.emit('fatal', { type: data.type, details: data.details });
      });
      hls.on(Hls.Events.MANIFEST_LOADED, () => {
        this.manifestRetries = 0;
      });
      hls.loadSource(options.src);
      hls.attachMedia(video);
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = options.src;
    } else {
      queueMicrotask(() =>
        this.emit('fatal', { type: 'unsupported', details: 'This browser cannot play HLS' }),
      );
    }
    video.addEventListener('timeupdate', this.onTimeUpdate);
    video.addEventListener('waiting', this.onWaiting);
    video.addEventListener('playing', this.onPlaying);
  }

  /** The wall-clock time of the frame on screen (program date time), when known. */
  get playingDate(): Date | null {
    return this.hls?.playingDate ?? null;
  }

  /** Cues known so far (from the playlist), oldest first. */
  get timedMetadata(): TimedMetadataCue[] {
    return [...this.cues.values()].sort((a, b) => a.startDate.getTime() - b.startDate.getTime());
  }

  play(): Promise<void> {
    return this.video.play();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.video.removeEventListener('timeupdate', this.onTimeUpdate);
    this.video.removeEventListener('waiting', this.onWaiting);
    this.video.removeEventListener('playing', this.onPlaying);
    this.flushWatched();
    this.hls?.destroy();
  }

  private tick(): void {
    const now = this.video.currentTime;
    if (this.lastTime !== null && now > this.lastTime && now - this.lastTime < 2)
      this.watchedSeconds += now - this.lastTime;
    this.lastTime = now;
    if (this.watchedSeconds >= (this.options.watchReportSeconds ?? 15)) this.flushWatched();
    const playing = this.playingDate?.getTime();
    if (playing === undefined) return;
    for (const cue of this.timedMetadata) {
      if (cue.startDate.getTime() > playing) break;
      if (this.fired.has(cue.id)) continue;
      this.fired.add(cue.id);
      this.emit('metadata', cue);
    }
  }

  private flushWatched(): void {
    if (this.watchedSeconds <= 0) return;
    const seconds = Math.round(this.watchedSeconds * 10) / 10;
    this.watchedSeconds = 0;
    this.emit('watched', { seconds, quality: this.takeQuality() });
  }

  /** Quality since the last report; the counters start again. */
  private takeQuality(): PlaybackQuality {
    const now = Date.now();
    if (this.stalledAt !== null) {
      this.stallMs += now - this.stalledAt;
      this.stalledAt = now;
    }
    const dropped = this.video.getVideoPlaybackQuality?.().droppedVideoFrames ?? 0;
    const level = this.hls && this.hls.currentLevel >= 0 ? this.hls.levels[this.hls.currentLevel] : undefined;
    const quality: PlaybackQuality = {
      stalls: this.stalls,
      stallSeconds: Math.round(this.stallMs / 100) / 10,
      droppedFrames: Math.max(0, dropped - this.droppedFramesReported),
      ...(level?.bitrate ? { bitrateKbps: Math.round(level.bitrate / 1000) } : {}),
    };
    this.stalls = 0;
    this.stallMs = 0;
    this.droppedFramesReported = dropped;
    return quality;
  }
}
