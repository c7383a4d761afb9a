/**
 * One ffmpeg process turning a publisher's FLV (on its stdin) into HLS
 * segments in a working directory: copy-transmux (or, for a rung of an ABR
 * ladder, an x264/AAC encode with keyframes where the source has them, so
 * the renditions' segments line up), 1 s target segments, `temp_file` so a
 * half-written file never carries its final name, program-date-time on every
 * segment.
 *
 * ffmpeg's own playlist is how we learn a segment is finished: each time it
 * is renamed into place (an inotify event) the new entries are announced
 * with their duration and date. The playlists players load are written by
 * the delivery from these announcements, not by ffmpeg.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { type FSWatcher, watch } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { AbrRung } from './abr-ladder.js';
import { type AnnouncedSegment, parseFfmpegPlaylist } from './hls-playlist.js';

export type HlsSegmentType = 'mpegts' | 'fmp4';

export interface HlsPackagerOptions {
  /** ffmpeg executable. */
  ffmpegPath: string;
  /** Working directory of this run (created; must be empty or new). */
  dir: string;
  /** Target segment length; segments still cut only at keyframes. */
  segmentSeconds: number;
  segmentType: HlsSegmentType;
  /** No new segment for this long while running: ffmpeg is treated as hung and killed. */
  stallTimeoutMs: number;
  /** Transcode to this rung instead of copying the source. */
  encode?: AbrRung;
}

/** A finished segment with the paths of its files. */
export interface PackagedSegment extends AnnouncedSegment {
  /** On disk, or (with `data`) where to put it if it has to wait there. */
  path: string;
  initPath: string | null;
  /** The bytes, when the packager kept them in memory instead of writing `path`. */
  data: Buffer | null;
  /** Hands `data`'s memory back to the packager once it is stored or on disk. */
  release?: () => void;
}

export interface PackagerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The input ended and ffmpeg finished normally. */
  clean: boolean;
  /** Last lines ffmpeg wrote to stderr (for the log). */
  stderr: string;
}

export interface HlsPackagerEvents {
  segment: [PackagedSegment];
  exit: [PackagerExit];
}

/** Turns a publisher's FLV into announced HLS segments: ffmpeg (`HlsPackager`) or in-process (`TsPackager`). */
export interface SegmentPackager extends EventEmitter<HlsPackagerEvents> {
  /** Starts; write FLV into the returned stream and end it when the publish ends. */
  start(): Promise<Writable>;
  /** Ends the input and resolves once the last segment is announced (null if never started). */
  stop(timeoutMs?: number): Promise<PackagerExit | null>;
  /** Stops now, without the last segment. */
  kill(): void;
}

const PLAYLIST = 'index.m3u8';

/** x264 for live (no B-frames or look-ahead), capped bitrate, keyframes where the source has them; AAC stereo. */
function encodeArgs(rung: AbrRung): string[] {
  return [
    '-vf',
    `scale=-2:${rung.height}`,
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-tune',
    'zerolatency',
    '-b:v',
    `${rung.videoKbps}k`,
    '-maxrate',
    `${rung.videoKbps}k`,
    '-bufsize',
    `${rung.videoKbps * 2}k`,
    '-force_key_frames',
    'source',
    '-pix_fmt',
    'yuv420p',
    '-c:a',
    'aac',
    '-b:a',
    `${rung.audioKbps}k`,
    '-ac',
    '2',
  ];
}
/** Entries ffmpeg keeps in its own playlist: enough to never miss one between two reads. */
const FFMPEG_LIST_SIZE = 30;

export class HlsPackager extends EventEmitter<HlsPackagerEvents> implements SegmentPackager {
  private process: ChildProcess | null = null;
  private watcher: FSWatcher | null = null;
  private lastAnnounced = '';
  private scanning: Promise<void> = Promise.resolve();
  private stallTimer: NodeJS.Timeout | null = null;
  private stderrTail = '';
  private inputEnded = false;
  private exited: Promise<PackagerExit> | null = null;

  constructor(private readonly options: HlsPackagerOptions) {
    super();
  }

  /** Starts ffmpeg; write FLV into the returned stream and end it when the publish ends. */
  async start(): Promise<Writable> {
    if (this.process) throw new Error('packager already started');
    const { dir } = this.options;
    await mkdir(dir, { recursive: true });
    const fmp4 = this.options.segmentType === 'fmp4';
    const args = [
      '-hide_banner',
      '-nostats',
      '-loglevel',
      'warning',
      // The FLV comes from our own ingest with its sequence headers up front: no need to probe long.
      '-probesize',
      '262144',
      '-analyzeduration',
      '1000000',
      '-f',
      'flv',
      '-i',
      'pipe:0',
      '-map',
      '0',
      ...(this.options.encode ? encodeArgs(this.options.encode) : ['-c', 'copy']),
      '-f',
      'hls',
      '-hls_time',
      String(this.options.segmentSeconds),
      '-hls_list_size',
      String(FFMPEG_LIST_SIZE),
      '-hls_flags',
      'temp_file+program_date_time+independent_segments',
      '-hls_segment_type',
      fmp4 ? 'fmp4' : 'mpegts',
      ...(fmp4 ? ['-hls_fmp4_init_filename', 'init.mp4'] : []),
      '-hls_segment_filename',
      join(dir, fmp4 ? 'seg_%06d.m4s' : 'seg_%06d.ts'),
      join(dir, PLAYLIST),
    ];
    const child = spawn(this.options.ffmpegPath, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.process = child;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-2000);
    });
    const stdin = child.stdin as Writable;
    // EPIPE when ffmpeg dies mid-write: the exit event reports it.
    stdin.on('error', () => undefined);
    stdin.on('finish', () => {
      this.inputEnded = true;
    });
    this.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        this.stderrTail += `\n${err.message}`;
      });
      child.once('close', (code, signal) => {
        this.watcher?.close();
        this.clearStall();
        // The last segment is announced by the final playlist ffmpeg writes as it exits.
        this.scan().finally(() => {
          const exit = { code, signal, clean: code === 0 && this.inputEnded, stderr: this.stderrTail.trim() };
          this.emit('exit', exit);
          resolve(exit);
        });
      });
    });
    this.watcher = watch(dir, (_event, file) => {
      if (file === PLAYLIST) void this.scan();
    });
    this.watcher.on('error', () => undefined);
    this.armStall();
    return stdin;
  }

  /** Ends the input and waits for ffmpeg to write its last segment and exit (killed after `timeoutMs`). */
  async stop(timeoutMs = 10_000): Promise<PackagerExit | null> {
    const child = this.process;
    if (!child || !this.exited) return null;
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Kills ffmpeg now (no final segment). */
  kill(): void {
    this.process?.kill('SIGKILL');
  }

  private scan(): Promise<void> {
    this.scanning = this.scanning.then(() => this.readPlaylist()).catch(() => undefined);
    return this.scanning;
  }

  private async readPlaylist(): Promise<void> {
    const text = await readFile(join(this.options.dir, PLAYLIST), 'utf8').catch(() => null);
    if (text === null) return;
    for (const segment of parseFfmpegPlaylist(text).segments) {
      // Names are zero-padded sequence numbers: anything not after the last announced is old.
      if (segment.file <= this.lastAnnounced) continue;
      this.lastAnnounced = segment.file;
      this.armStall();
      this.emit('segment', {
        ...segment,
        path: join(this.options.dir, segment.file),
        data: null,
        initPath: segment.initFile ? join(this.options.dir, segment.initFile) : null,
      });
    }
  }

  private armStall(): void {
    this.clearStall();
    this.stallTimer = setTimeout(() => {
      this.stderrTail += '\nno segment for too long: killed';
      this.process?.kill('SIGKILL');
    }, this.options.stallTimeoutMs);
    this.stallTimer.unref();
  }

  private clearStall(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}
