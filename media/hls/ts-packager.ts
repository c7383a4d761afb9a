/**
 * Copy-transmux of a publisher's FLV (H.264 + AAC) into MPEG-TS HLS
 * segments inside the server process: the same job as the ffmpeg packager
 * with `-c copy`, without a child process per stream, a pipe, ffmpeg's
 * playlist on disk and the inotify round trip that announced each segment.
 *
 * Segments are cut at the first keyframe at least `segmentSeconds` after the
 * segment's start (as ffmpeg's hls muxer cuts), each opens with PAT/PMT and
 * its keyframe carries SPS/PPS, so every segment decodes on its own.
 * Timestamps run on from the run's first keyframe (1 s offset, so audio
 * slightly before it stays positive); the program date-time of a segment is
 * the wall clock at that first keyframe plus the media time since.
 * Finished segments are announced with their bytes in memory: the delivery
 * stores them from there and writes them to the working directory only
 * when they have to wait out an object-store outage.
 */
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  type AacConfig,
  ADTS_HEADER,
  type AvcConfig,
  annexBPieces,
  readAudioTag,
  readVideoTag,
  UnsupportedMediaError,
  writeAdtsHeader,
} from '../flv/flv-codecs.js';
import { FlvReader, type FlvTag, FlvTagType } from '../flv/flv-reader.js';
import type { HlsPackagerEvents, PackagerExit, SegmentPackager } from './hls-packager.js';
import { MpegTsWriter, TsBuffer } from './mpegts-writer.js';

export interface TsPackagerOptions {
  /** Working directory of this run (created). */
  dir: string;
  /** Target segment length; segments still cut only at keyframes. */
  segmentSeconds: number;
  /** No segment finished for this long while input flows: the run fails (a publisher without keyframes). */
  stallTimeoutMs: number;
  /** A segment growing past this without a keyframe to cut at fails the run (memory bound). Default 64 MiB. */
  maxSegmentBytes?: number;
}

const TICKS_PER_MS = 90;
const DEFAULT_MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Media time 0 is at 1 s, so audio a little before the first keyframe keeps a positive timestamp. */
const TIMESTAMP_OFFSET_MS = 1000;
/**
 * Segment buffers kept for reuse once the delivery has stored their bytes:
 * a fresh few hundred kilobytes per segment and stream kept V8's collector
 * busier than the packaging itself.
 */
const SPARE_BUFFERS = 3;

interface OpenSegment {
  index: number;
  startMs: number;
  out: TsBuffer;
}

export class TsPackager extends EventEmitter<HlsPackagerEvents> implements SegmentPackager {
  private readonly reader = new FlvReader((tag) => this.onTag(tag));
  private avc: AvcConfig | null = null;
  private aac: AacConfig | null = null;
  private writer: MpegTsWriter | null = null;
  /** FLV timestamp of the run's first keyframe (media time 0). */
  private baseMs = 0;
  /** Wall clock at that keyframe. */
  private originWallMs = 0;
  private segment: OpenSegment | null = null;
  private readonly spare: TsBuffer[] = [];
  /** Views of the frame being written; reused. */
  private readonly pieces: Buffer[] = [];
  private readonly adts = Buffer.allocUnsafe(ADTS_HEADER);
  private nextIndex = 0;
  private lastVideoMs = 0;
  private videoFrameMs = 0;
  private input: Writable | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private exit: PackagerExit | null = null;
  private exited: Promise<PackagerExit> | null = null;
  private resolveExit: (exit: PackagerExit) => void = () => undefined;

  constructor(private readonly options: TsPackagerOptions) {
    super();
  }

  async start(): Promise<Writable> {
    if (this.input) throw new Error('packager already started');
    await mkdir(this.options.dir, { recursive: true });
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    this.input = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (this.exit) return callback();
        try {
          this.reader.push(chunk);
        } catch (err) {
          this.fail((err as Error).message);
        }
        callback();
      },
      final: (callback) => {
        this.finish();
        callback();
      },
    });
    this.armStall();
    return this.input;
  }

  /** Ends the input: the open segment is announced, then `exit` (clean). */
  async stop(): Promise<PackagerExit | null> {
    if (!this.input || !this.exited) return null;
    if (!this.exit) this.input.end();
    return this.exited;
  }

  /** Stops now without the last segment. */
  kill(): void {
    this.fail('killed');
  }

  private onTag(tag: FlvTag): void {
    if (tag.type === FlvTagType.Video) this.onVideo(tag);
    else if (tag.type === FlvTagType.Audio) this.onAudio(tag);
    if (this.segment && this.segment.out.length > (this.options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES))
      throw new UnsupportedMediaError('segment too large: no keyframe to cut at');
  }

  private onVideo(tag: FlvTag): void {
    const video = readVideoTag(tag.data);
    if (video.kind === 'config') {
      this.avc = video.config;
      return;
    }
    if (video.kind === 'end' || !this.avc) return;
    if (!this.writer) {
      // Nothing is packaged before the first keyframe: a player cannot start anywhere else.
      if (!video.keyframe) return;
      this.writer = new MpegTsWriter({ video: true, audio: this.aac !== null });
      this.baseMs = tag.timestamp;
      this.originWallMs = Date.now();
    }
    const ms = this.mediaMs(tag.timestamp);
    if (this.segment && this.lastVideoMs < ms) this.videoFrameMs = ms - this.lastVideoMs;
    this.lastVideoMs = ms;
    if (video.keyframe && (!this.segment || ms - this.segment.startMs >= this.options.segmentSeconds * 1000))
      this.cut(ms);
    const dts = (ms + TIMESTAMP_OFFSET_MS) * TICKS_PER_MS;
    const pts = dts + video.compositionMs * TICKS_PER_MS;
    this.pieces.length = 0;
    annexBPieces(video.nalus, this.avc, video.keyframe, this.pieces);
    (this.writer as MpegTsWriter).writePes((this.segment as OpenSegment).out, 'video', this.pieces, {
      pts,
      dts,
      randomAccess: video.keyframe,
    });
  }

  private onAudio(tag: FlvTag): void {
    const audio = readAudioTag(tag.data);
    if (audio.kind === 'config') {
      this.aac = audio.config;
      return;
    }
    // Audio joins at the first keyframe, and only if its configuration came before it (the program is fixed then).
    if (!this.segment || !this.aac || !this.writer) return;
    const ms = this.mediaMs(tag.timestamp);
    const pts = (ms + TIMESTAMP_OFFSET_MS) * TICKS_PER_MS;
    writeAdtsHeader(this.adts, audio.raw.length, this.aac);
    this.pieces.length = 0;
    this.pieces.push(this.adts, audio.raw);
    this.writer.writePes(this.segment.out, 'audio', this.pieces, { pts });
  }

  private mediaMs(timestamp: number): number {
    return timestamp - this.baseMs;
  }

  /** Closes the open segment at `atMs` and opens the next. */
  private cut(atMs: number): void {
    if (this.segment) this.close(this.segment, atMs);
    const out = this.spare.pop() ?? new TsBuffer();
    out.reset();
    (this.writer as MpegTsWriter).writeTables(out);
    this.segment = { index: this.nextIndex++, startMs: atMs, out };
  }

  private close(segment: OpenSegment, endMs: number): void {
    const file = `seg_${String(segment.index).padStart(6, '0')}.ts`;
    const path = join(this.options.dir, file);
    const announced = {
      file,
      path,
      durationSeconds: Math.max(0.001, (endMs - segment.startMs) / 1000),
      programDateTime: new Date(this.originWallMs + segment.startMs),
      initFile: null,
      initPath: null,
    };
    this.armStall();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      if (this.spare.length < SPARE_BUFFERS) this.spare.push(segment.out);
    };
    this.emit('segment', { ...announced, data: segment.out.bytes, release });
  }

  /** The input ended: the open segment ends with its last video frame (video is the timeline, as in ffmpeg's muxer). */
  private finish(): void {
    if (this.exit) return;
    const segment = this.segment;
    if (segment) {
      this.close(segment, this.lastVideoMs + this.videoFrameMs);
      this.segment = null;
    }
    this.done({ code: 0, signal: null, clean: true, stderr: '' });
  }

  private fail(reason: string): void {
    if (this.exit) return;
    this.segment = null;
    this.done({ code: 1, signal: null, clean: false, stderr: reason });
  }

  private done(exit: PackagerExit): void {
    this.exit = exit;
    this.clearStall();
    // Not from inside the input stream's callbacks.
    process.nextTick(() => {
      this.emit('exit', exit);
      this.resolveExit(exit);
    });
  }

  private armStall(): void {
    this.clearStall();
    if (this.exit) return;
    this.stallTimer = setTimeout(() => this.fail('no segment for too long'), this.options.stallTimeoutMs);
    this.stallTimer.unref();
  }

  private clearStall(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}
