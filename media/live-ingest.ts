/**
 * Live ingest: RTMP publish → stream key check → stream goes live → ffmpeg
 * packages HLS → the delivery stores segments, then playlists → the stream
 * ends after the reconnect grace with a final and a VOD playlist.
 *
 * A stream this instance hosts has a `StreamPipeline`; each publisher
 * connection is a run of it (its own ffmpeg and segment folder). A
 * reconnect within the grace starts a new run of the same pipeline, marked
 * as a discontinuity; on another instance, the pipeline is rebuilt from the
 * Db's segment record, so the playlist continues there too.
 *
 * A stream created with `abr: true` is packaged in several renditions: the
 * source (copied) and the rungs of the server's ladder (transcoded), each
 * with its own ffmpeg fed the same FLV, its own delivery and playlists under
 * `live/<id>/<rendition>/`, and a master playlist at `live/<id>/index.m3u8`
 * once they are all playable. Rungs take transcode slots (LIVE_MAX_TRANSCODES);
 * a stream that finds none free goes live with its source only.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { type LiveStreamsService, mediaPrefix } from '../src/live/live-streams-service.js';
import {
  type StreamRecordings,
  type TimedMetadata,
  timedMetadataChannel,
} from '../src/live/stream-recordings.js';
import type { Engine } from '../src/platform/engine/engine.js';
import type { ObjectStore } from '../src/platform/object-store/object-store.js';
import {
  finishStreamMedia,
  HlsDelivery,
  putLiveMaster,
  type RenditionDelivery,
  type StreamMediaOptions,
} from '../workers/hls-delivery.js';
import { type AbrRung, rungBandwidth, SOURCE_RENDITION } from './hls/abr-ladder.js';
import { HlsPackager, type HlsSegmentType, type SegmentPackager } from './hls/hls-packager.js';
import { TsPackager } from './hls/ts-packager.js';
import type { IngestMetrics } from './ingest-metrics.js';
import { RtmpServer } from './rtmp/rtmp-server.js';
import type {
  PublishDecision,
  PublishEndReason,
  PublishRequest,
  PublishTarget,
  RtmpSession,
} from './rtmp/rtmp-session.js';

/** The application name in the RTMP URL (`rtmp://host:port/live`). */
export const RTMP_APP = 'live';

export interface IngestLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

type StreamsPort = Pick<
  LiveStreamsService,
  | 'authenticatePublish'
  | 'markLive'
  | 'touchPublishers'
  | 'markDisconnected'
  | 'setMediaOrigin'
  | 'endAbandoned'
  | 'statusOf'
  | 'publisherHeartbeatMs'
>;

export interface LiveIngestOptions {
  /** RTMP listen interface and port (0: any free port). */
  host: string;
  port: number;
  ffmpegPath: string;
  /** Where segments wait for upload, one folder per stream and run. */
  workDir: string;
  segmentSeconds: number;
  segmentType: HlsSegmentType;
  /** Segments in the live playlist. */
  windowSize: number;
  /** Streams packaged at once; more publishers are refused. */
  maxStreams: number;
  /** Lower renditions for streams created with `abr: true` (LIVE_ABR_LADDER). */
  abrLadder: AbrRung[];
  /** Rungs transcoded at once on this instance. */
  maxTranscodes: number;
  uploadRetryMaxMs: number;
  /** STREAM_RECONNECT_GRACE_MS. */
  reconnectGraceMs: number;
  liveStreams: StreamsPort;
  recordings: StreamRecordings;
  store: Pick<ObjectStore, 'put' | 'deleteMany'>;
  /** Timed metadata (pins) arrives on the bus from whichever instance took the request. */
  bus: Pick<Engine, 'subscribe'>;
  logger: IngestLogger;
  metrics?: IngestMetrics;
}

/** Checks that ffmpeg runs; throws with the reason otherwise. */
export function checkFfmpeg(ffmpegPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath, ['-hide_banner', '-version'], { stdio: 'ignore' });
    child.once('error', (err) => reject(new Error(`cannot run ${ffmpegPath} (${err.message})`)));
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${ffmpegPath} -version exited ${code}`)),
    );
  });
}

export class LiveIngest {
  private readonly rtmp: RtmpServer;
  private readonly pipelines = new Map<string, StreamPipeline>();
  /** Pipelines being created, so two racing publishes of one stream share one. */
  private readonly opening = new Map<string, Promise<StreamPipeline>>();
  private transcodes = 0;
  private closed = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private touching = false;

  constructor(readonly options: LiveIngestOptions) {
    this.rtmp = new RtmpServer({
      host: options.host,
      port: options.port,
      onPublish: async (request, session) => {
        const decision = await this.onPublish(request, session);
        if (!decision.accept) options.metrics?.publishRefused(decision.reason);
        return decision;
      },
    });
    this.rtmp.on('sessionError', (err, session) =>
      options.logger.warn({ err: err.message, remote: session.remoteAddress }, 'RTMP session error'),
    );
  }

  /** The RTMP port (after `start`). */
  get port(): number {
    return this.rtmp.port;
  }

  /** Streams with a pipeline here (publishing or within their grace). */
  get streamCount(): number {
    return this.pipelines.size;
  }

  async start(): Promise<void> {
    await this.rtmp.listen();
    this.heartbeat = setInterval(
      () => void this.touchPublishers(),
      this.options.liveStreams.publisherHeartbeatMs,
    );
    this.heartbeat.unref();
  }

  /**
   * Confirms every publisher connected here in one Db statement (not one per
   * stream), and drops those whose stream ended, whose key was revoked or
   * whose publish another session took over.
   */
  private async touchPublishers(): Promise<void> {
    if (this.touching) return;
    const publishers = [...this.pipelines.values()].flatMap((p) => p.publisher ?? []);
    if (publishers.length === 0) return;
    this.touching = true;
    try {
      const still = await this.options.liveStreams.touchPublishers(publishers);
      for (const p of publishers) if (!still.has(p.streamId)) p.kick();
    } catch (err) {
      this.options.logger.warn({ err, streams: publishers.length }, 'publisher heartbeat failed');
    } finally {
      this.touching = false;
    }
  }

  /**
   * Stops accepting publishers, ends the runs (ffmpeg writes its last
   * segment) and waits for their uploads. Streams stay live: the publisher's
   * reconnect, here after a restart or on another instance, continues them.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.rtmp.close();
    await Promise.all([...this.pipelines.values()].map((p) => p.close()));
  }

  private async onPublish(request: PublishRequest, session: RtmpSession): Promise<PublishDecision> {
    if (this.closed) return { accept: false, reason: 'server_full' };
    if (request.app !== RTMP_APP) return { accept: false, reason: 'unauthorized' };
    const { liveStreams, logger } = this.options;
    const auth = await liveStreams.authenticatePublish(request.streamName);
    if (!auth) {
      logger.warn({ remote: request.remoteAddress }, 'RTMP publish refused: unknown or revoked key');
      return { accept: false, reason: 'unauthorized' };
    }
    if (auth.result !== 'ok') {
      logger.warn({ stream: auth.publicId, result: auth.result }, 'RTMP publish refused');
      return { accept: false, reason: auth.result };
    }
    if (!this.pipelines.has(auth.streamId) && this.pipelines.size >= this.options.maxStreams) {
      logger.warn(
        { stream: auth.publicId, max: this.options.maxStreams },
        'RTMP publish refused: server full',
      );
      return { accept: false, reason: 'server_full' };
    }
    const live = await liveStreams.markLive(auth.streamId, { sessionId: request.sessionId });
    if (!live.publishing)
      return { accept: false, reason: live.status === 'ended' ? 'ended' : 'already_live' };
    const pipeline = await this.pipeline(auth);
    const target = await pipeline.startRun(session, request.sessionId);
    logger.info(
      { stream: auth.publicId, session: request.sessionId, resume: auth.resume },
      'RTMP publish started',
    );
    return { accept: true, target };
  }

  /** The rungs an ABR stream gets: as many as free slots allow, the lowest first (they matter most on slow networks). */
  private takeTranscodes(publicId: string): AbrRung[] {
    const { abrLadder, maxTranscodes, logger } = this.options;
    const free = Math.max(0, maxTranscodes - this.transcodes);
    const rungs = abrLadder.slice(Math.max(0, abrLadder.length - free));
    if (rungs.length < abrLadder.length)
      logger.warn(
        {
          stream: publicId,
          code: 'LIVE_TRANSCODE_CAPACITY',
          wanted: abrLadder.map((r) => r.name),
          got: rungs.map((r) => r.name),
          maxTranscodes,
        },
        'not enough transcode slots: the stream goes live with fewer renditions',
      );
    this.transcodes += rungs.length;
    return rungs;
  }

  private pipeline(ids: StreamIds): Promise<StreamPipeline> {
    const { streamId } = ids;
    const existing = this.pipelines.get(streamId);
    if (existing) return Promise.resolve(existing);
    let opening = this.opening.get(streamId);
    if (!opening) {
      const rungs = ids.abr ? this.takeTranscodes(ids.publicId) : [];
      opening = StreamPipeline.open(this.options, ids, rungs, () => {
        this.pipelines.delete(streamId);
        this.transcodes -= rungs.length;
      })
        .then(
          (p) => {
            this.pipelines.set(streamId, p);
            return p;
          },
          (err: unknown) => {
            this.transcodes -= rungs.length;
            throw err;
          },
        )
        .finally(() => this.opening.delete(streamId));
      this.opening.set(streamId, opening);
    }
    return opening;
  }
}

interface StreamIds {
  streamId: string;
  publicId: string;
  recording: boolean;
  abr: boolean;
}

interface Run {
  id: string;
  sessionId: string;
  session: RtmpSession;
  /** One per rendition, fed the same FLV. */
  packagers: SegmentPackager[];
  /** Still publishing (its end has not begun): the heartbeat confirms it. */
  live: boolean;
  ended: Promise<void>;
}

/** A rendition of the stream hosted here: its ladder rung (null for the source) and its delivery. */
interface Rendition extends RenditionDelivery {
  rung: AbrRung | null;
  playable: boolean;
}

/** How long the master playlist waits for the slowest rung after the source is playable. */
const RENDITIONS_READY_MS = 10_000;
/** Source BANDWIDTH until a segment was measured, and at least this much. */
const MIN_SOURCE_BANDWIDTH = 300_000;

/** Copies what the publisher sends to every rendition's ffmpeg (one stdin without a ladder). */
function fanOut(inputs: Writable[]): Writable {
  if (inputs.length === 1) return inputs[0] as Writable;
  const tee = new PassThrough();
  for (const input of inputs) tee.pipe(input);
  return tee;
}

/** One stream hosted here: its renditions' deliveries, its current run, its grace timer. */
class StreamPipeline {
  private run: Run | null = null;
  private graceTimer: NodeJS.Timeout | null = null;
  private readyTimer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => Promise<void>) | null = null;
  private announced = false;
  private origin: Date | null = null;
  private finished = false;
  private closing = false;

  private constructor(
    private readonly options: LiveIngestOptions,
    private readonly ids: StreamIds,
    private readonly renditions: Rendition[],
    private readonly onGone: () => void,
  ) {}

  static async open(
    options: LiveIngestOptions,
    ids: StreamIds,
    rungs: AbrRung[],
    onGone: () => void,
  ): Promise<StreamPipeline> {
    const ladder: Array<{ name: string; rung: AbrRung | null }> = ids.abr
      ? [{ name: SOURCE_RENDITION, rung: null }, ...rungs.map((rung) => ({ name: rung.name, rung }))]
      : [{ name: '', rung: null }];
    const renditions: Rendition[] = [];
    const pipeline = new StreamPipeline(options, ids, renditions, onGone);
    for (const { name, rung } of ladder) {
      const delivery = await HlsDelivery.open({
        store: options.store,
        recordings: options.recordings,
        streamId: ids.streamId,
        publicId: ids.publicId,
        rendition: name,
        recording: ids.recording,
        windowSize: options.windowSize,
        targetDurationSeconds: Math.ceil(options.segmentSeconds),
        retryMaxMs: options.uploadRetryMaxMs,
        logger: options.logger,
        onDelivered: (_segment, ms) => options.metrics?.segmentDelivered(ms),
        onPlayable: (first, bytes) =>
          pipeline.onPlayable(name, first.programDateTime, first.durationMs, bytes),
      });
      renditions.push({
        name,
        rung,
        delivery,
        bandwidth: rung ? rungBandwidth(rung) : MIN_SOURCE_BANDWIDTH,
        playable: false,
      });
    }
    const add = (item: TimedMetadata) => {
      for (const r of renditions) r.delivery.addTimedMetadata(item);
    };
    pipeline.unsubscribe = await options.bus.subscribe(timedMetadataChannel(ids.publicId), (message) => {
      try {
        const item = JSON.parse(message) as TimedMetadata & { at: string };
        add({ ...item, at: new Date(item.at) });
      } catch {
        options.logger.warn({ stream: ids.publicId }, 'malformed timed metadata on the bus');
      }
    });
    for (const item of await options.recordings.timedMetadata(ids.streamId)) add(item);
    return pipeline;
  }

  /** The publisher connected here now, for the ingest's heartbeat; `kick` drops it if it is still the one. */
  get publisher(): { streamId: string; sessionId: string; kick: () => void } | null {
    const run = this.run;
    if (!run?.live) return null;
    return {
      streamId: this.ids.streamId,
      sessionId: run.sessionId,
      kick: () => {
        if (this.run === run && run.live) run.session.kick();
      },
    };
  }

  /** A publisher connection starts (or resumes) the stream here. */
  async startRun(session: RtmpSession, sessionId: string): Promise<PublishTarget> {
    // A previous run of this stream still finishing (its publisher just dropped): let it write its last segment first.
    if (this.run) {
      this.run.session.kick();
      await this.run.ended;
    }
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    const runId = Date.now().toString(36);
    const packagers = this.renditions.map((rendition) => this.packager(rendition, runId, session));
    const flv = fanOut(await Promise.all(packagers.map((p) => p.start())));
    let endRun: () => void = () => undefined;
    const run: Run = {
      id: runId,
      sessionId,
      session,
      packagers,
      ended: new Promise<void>((resolve) => {
        endRun = resolve;
      }),
      live: true,
    };
    this.run = run;
    return {
      flv,
      onEnd: (reason) => {
        this.endRun(run, reason).finally(endRun);
      },
    };
  }

  /** Stops retrying uploads after the current run ends (shutdown); the stream stays live. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.run) await this.run.ended;
    await this.drain();
    for (const r of this.renditions) r.delivery.close();
    await this.unsubscribe?.();
    if (this.graceTimer) clearTimeout(this.graceTimer);
    if (this.readyTimer) clearTimeout(this.readyTimer);
  }

  /**
   * The packager of one rendition for one run; its segments go to the rendition's delivery.
   * A copied MPEG-TS rendition is packaged in this process; transcoded rungs and fMP4 need ffmpeg.
   */
  private packager(rendition: Rendition, runId: string, session: RtmpSession): SegmentPackager {
    const { options, ids } = this;
    const common = {
      dir: join(options.workDir, ids.publicId, runId, rendition.name || 'main'),
      segmentSeconds: options.segmentSeconds,
      stallTimeoutMs: Math.max(30_000, options.segmentSeconds * 20_000),
    };
    const packager: SegmentPackager =
      !rendition.rung && options.segmentType === 'mpegts'
        ? new TsPackager(common)
        : new HlsPackager({
            ...common,
            ffmpegPath: options.ffmpegPath,
            segmentType: options.segmentType,
            encode: rendition.rung ?? undefined,
          });
    const keyOf = (file: string) => `${mediaPrefix(ids.publicId, rendition.name)}${runId}/${file}`;
    let firstOfRun = true;
    packager.on('segment', (segment) => {
      rendition.delivery.enqueue({
        path: segment.path,
        data: segment.data,
        release: segment.release,
        key: keyOf(segment.file),
        durationSeconds: segment.durationSeconds,
        programDateTime: segment.programDateTime,
        init:
          segment.initPath && segment.initFile
            ? { path: segment.initPath, key: keyOf(segment.initFile) }
            : null,
        discontinuity: firstOfRun,
      });
      firstOfRun = false;
    });
    packager.on('exit', (exit) => {
      if (!exit.clean && this.run?.id === runId) {
        // Restart by reconnect: the publisher (OBS retries by itself) gets fresh transmuxers with fresh headers.
        options.logger.error(
          {
            stream: ids.publicId,
            rendition: rendition.name || undefined,
            code: exit.code,
            signal: exit.signal,
            stderr: exit.stderr,
          },
          'packaging failed; dropping the publisher so it reconnects',
        );
        session.kick();
      }
    });
    return packager;
  }

  /**
   * A rendition's first playlist is stored. Once every rendition's is (or a while after the
   * source's), an ABR stream's master playlist is stored, and then the stream is announced
   * playable with its media origin: players never load a playlist that is not there.
   */
  private onPlayable(name: string, programDateTime: Date | null, durationMs: number, bytes: number): void {
    const rendition = this.renditions.find((r) => r.name === name);
    if (!rendition) return;
    rendition.playable = true;
    if (!rendition.rung) {
      this.origin = programDateTime ?? new Date();
      rendition.bandwidth = Math.max(
        MIN_SOURCE_BANDWIDTH,
        Math.round(((bytes * 8) / (durationMs / 1000)) * 1.2),
      );
      this.readyTimer = setTimeout(() => void this.announce(), RENDITIONS_READY_MS);
      this.readyTimer.unref();
    }
    if (this.renditions.every((r) => r.playable)) void this.announce();
  }

  private async announce(): Promise<void> {
    if (this.announced || !this.origin) return;
    this.announced = true;
    if (this.readyTimer) clearTimeout(this.readyTimer);
    const { options, ids } = this;
    try {
      await putLiveMaster(
        this.renditions.filter((r) => r.playable),
        this.mediaOptions(),
      );
      // Media time 0 is the source's first frame; set once, when players can start.
      await options.liveStreams.setMediaOrigin(ids.streamId, this.origin);
    } catch (err) {
      options.logger.warn({ err, stream: ids.publicId }, 'stream not announced playable');
    }
  }

  private mediaOptions(): StreamMediaOptions {
    const { options, ids } = this;
    return {
      store: options.store,
      recordings: options.recordings,
      streamId: ids.streamId,
      publicId: ids.publicId,
      recording: ids.recording,
    };
  }

  private async drain(): Promise<void> {
    await Promise.all(this.renditions.map((r) => r.delivery.drain()));
  }

  private async endRun(run: Run, reason: PublishEndReason): Promise<void> {
    const { options, ids } = this;
    run.live = false;
    // Free the stream first: the encoder may reconnect while ffmpeg is still writing its last segment.
    await options.liveStreams
      .markDisconnected(ids.streamId, { sessionId: run.sessionId })
      .catch((err: unknown) => options.logger.warn({ err, stream: ids.publicId }, 'disconnect not recorded'));
    const exits = await Promise.all(run.packagers.map((p) => p.stop()));
    options.logger.info(
      { stream: ids.publicId, reason, ffmpeg: exits.map((e) => e?.code) },
      'RTMP publish ended',
    );
    if (this.run !== run) return;
    this.run = null;
    if (this.closing) return;
    await this.drain();
    await rm(join(options.workDir, ids.publicId, run.id), { recursive: true, force: true });
    // Ended by the streamer or revoked meanwhile: finish now; otherwise wait for a reconnect.
    if (await this.endedInDb()) {
      await this.finish();
      return;
    }
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      this.afterGrace().catch((err: unknown) =>
        options.logger.error({ err, stream: ids.publicId }, 'ending the stream failed'),
      );
    }, options.reconnectGraceMs + options.liveStreams.publisherHeartbeatMs);
    this.graceTimer.unref();
  }

  private async afterGrace(): Promise<void> {
    if (this.run || this.finished) return;
    await this.options.liveStreams.endAbandoned();
    if (await this.endedInDb()) await this.finish();
    else {
      // Another instance took the publisher over and continues the playlist from the Db.
      await this.close();
      this.onGone();
    }
  }

  private async endedInDb(): Promise<boolean> {
    return (await this.options.liveStreams.statusOf(this.ids.streamId)) === 'ended';
  }

  /** The stream is over: final live playlists, VOD, cleanup. */
  private async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await finishStreamMedia(this.renditions, this.mediaOptions());
    await this.close();
    await rm(join(this.options.workDir, this.ids.publicId), { recursive: true, force: true });
    this.options.logger.info(
      { stream: this.ids.publicId, segments: this.renditions[0]?.delivery.delivered },
      'stream finished',
    );
    this.onGone();
  }
}
