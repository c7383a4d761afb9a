/**
 * Composition root: reads the configuration, builds the adapters, starts the
 * listeners, and shuts everything down gracefully on SIGTERM/SIGINT.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import type { FastifyInstance } from 'fastify';
import { type Config, ConfigError, loadConfig, publicBaseUrl } from '../config/schema.js';
import { parseLadder } from '../media/hls/abr-ladder.js';
import { createIngestMetrics } from '../media/ingest-metrics.js';
import { checkFfmpeg, LiveIngest } from '../media/live-ingest.js';
import { findWorkerBinary } from '../media/sfu/worker-binary.js';
import { buildApp } from './app.js';
import { resolveJwtSecret } from './auth/tokens.js';
import { type Database, migrations } from './database.js';
import { liveMediaCacheControl, rtmpServerUrl } from './live/live-streams-service.js';
import { type DbHandle, openDb, redactUrl } from './platform/db/db.js';
import { createEngine } from './platform/engine/create-engine.js';
import type { Engine } from './platform/engine/engine.js';
import { createLogger, type Logger } from './platform/logger.js';
import { createObjectStore } from './platform/object-store/create-object-store.js';
import { LocalObjectStore } from './platform/object-store/local-object-store.js';
import type { ObjectStore } from './platform/object-store/object-store.js';
import { createServices, missingWorkerMessage, startServices, stopServices } from './services.js';
import { VERSION } from './version.js';

/**
 * Pending connections the kernel queues for accept. When a flash sale opens, thousands of
 * buyers connect within a second; with Node's default (511) the queue overflows, the kernel
 * drops the handshakes' last packet and clients retry 1 s and 3 s later (multi-second p99 in
 * the flash-sale bench at 1000 connections). The kernel caps it at net.core.somaxconn.
 */
const LISTEN_BACKLOG = 4096;

export interface RunningServer {
  app: FastifyInstance;
  config: Config;
  /** The URL the HTTP listener answers on. */
  url: string;
  /** Stops accepting, drains in-flight requests, closes adapters. */
  stop: () => Promise<void>;
}

/** A start-up failure with a one-line explanation and the command that fixes it. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

async function checkOrExplain(what: string, check: () => Promise<void>, fix: string): Promise<void> {
  try {
    await check();
  } catch (err) {
    throw new StartupError(`${what}: ${err instanceof Error ? err.message : String(err)}. ${fix}`);
  }
}

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const dataDir = resolve(config.DATA_DIR);
  mkdirSync(dataDir, { recursive: true });

  if (config.CALLS_ENABLED) {
    const worker = findWorkerBinary(config.MEDIASOUP_WORKER_BIN);
    if (!worker.path) throw new StartupError(missingWorkerMessage(worker.tried));
  }

  const closers: Array<() => Promise<void>> = [];
  // Each step gets a share of the shutdown budget: one that hangs is named in the log and
  // the others still run, so adapters are closed (and PGlite's files released) regardless.
  const stepBudgetMs = Math.max(500, Math.floor(config.SHUTDOWN_TIMEOUT_MS / 4));
  const closeAll = async () => {
    for (const [i, close] of [...closers].reverse().entries()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        close().catch((err) => logger.error({ err, step: i }, 'close failed')),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            logger.error(
              { step: i, closer: close.toString().slice(0, 80), budgetMs: stepBudgetMs },
              'shutdown step did not finish; going on',
            );
            resolve();
          }, stepBudgetMs);
        }),
      ]);
      clearTimeout(timer);
    }
  };

  try {
    let db: DbHandle<Database>;
    try {
      db = await openDb<Database>({
        url: config.DATABASE_URL,
        dataDir,
        poolSize: config.DATABASE_POOL_SIZE,
        migrations,
      });
    } catch (err) {
      const where = config.DATABASE_URL
        ? `PostgreSQL at ${redactUrl(config.DATABASE_URL)}`
        : `the embedded database in ${dataDir}`;
      throw new StartupError(
        `cannot open ${where}: ${(err as Error).message}. ${config.DATABASE_URL ? 'Start PostgreSQL or fix DATABASE_URL.' : ''}`.trim(),
      );
    }
    closers.push(() => db.close());

    const engine: Engine = createEngine({
      redisUrl: config.REDIS_URL,
      keyPrefix: config.REDIS_KEY_PREFIX,
      logger,
    });
    closers.push(() => engine.close());
    await checkOrExplain(
      'engine not reachable',
      () => engine.check(),
      'Start Redis or fix REDIS_URL (unset it for the in-memory engine).',
    );

    const port = config.PORT;
    const objectStore: ObjectStore = createObjectStore({
      dataDir,
      localPublicBaseUrl: `${publicBaseUrl(config, port)}/media`,
      s3: config.S3_BUCKET
        ? {
            bucket: config.S3_BUCKET,
            region: config.S3_REGION,
            endpoint: config.S3_ENDPOINT,
            credentials:
              config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY
                ? { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY }
                : undefined,
            forcePathStyle: config.S3_FORCE_PATH_STYLE,
            publicBaseUrl: config.S3_PUBLIC_URL,
            keyPrefix: config.S3_KEY_PREFIX,
          }
        : undefined,
      // Live media stored with its usual policy needs no metadata file per object.
      localDefaultCacheControl: liveMediaCacheControl,
    });
    closers.push(() => objectStore.close());
    await checkOrExplain(
      'object store not usable',
      () => objectStore.check(),
      'Fix the S3_* settings or DATA_DIR permissions.',
    );

    const jwt = resolveJwtSecret(config.JWT_SECRET, dataDir);
    if (jwt.generated)
      logger.warn(
        `JWT_SECRET is not set: using a generated secret kept in ${dataDir}/jwt-secret (fine for development only)`,
      );
    const services = createServices(config, { db, engine, objectStore }, { jwtSecret: jwt.secret, logger });
    if (
      config.ADMIN_EMAIL &&
      config.ADMIN_PASSWORD &&
      (await services.users.ensureAdmin(config.ADMIN_EMAIL, config.ADMIN_PASSWORD))
    )
      logger.info({ email: config.ADMIN_EMAIL }, 'created the bootstrap admin user');

    const app = await buildApp(services, { logger });
    // Closers run in reverse: WebSockets close first (an upgraded socket would hold
    // app.close() open), then the HTTP server stops, then jobs finish and pending writes flush.
    closers.push(() => stopServices(services));
    closers.push(() => app.close());
    closers.push(() => services.gateway.close());
    services.gateway.attach(app.server);
    const sfu = services.media?.sfu;
    if (sfu)
      await checkOrExplain(
        'cannot start the mediasoup workers',
        () => sfu.start(),
        'Rebuild the worker with `MS_FORCE=1 sh scripts/mediasoup-worker.sh` or set CALLS_ENABLED=false.',
      );
    await startServices(services);
    let ingest: LiveIngest | null = null;
    if (config.RTMP_ENABLED) {
      // MPEG-TS copies are packaged in process; ffmpeg runs only for ABR rungs and fMP4.
      if (config.LIVE_ABR_LADDER.trim() !== '' || config.HLS_SEGMENT_TYPE === 'fmp4')
        await checkOrExplain(
          'ffmpeg is needed for LIVE_ABR_LADDER and HLS_SEGMENT_TYPE=fmp4',
          () => checkFfmpeg(config.FFMPEG_PATH),
          'Install it (apt-get install ffmpeg), set FFMPEG_PATH, or leave both unset.',
        );
      ingest = new LiveIngest({
        host: config.HOST,
        port: config.RTMP_PORT,
        ffmpegPath: config.FFMPEG_PATH,
        workDir: resolve(config.LIVE_WORK_DIR ?? `${dataDir}/hls-work`),
        segmentSeconds: config.HLS_SEGMENT_SECONDS,
        segmentType: config.HLS_SEGMENT_TYPE,
        windowSize: config.HLS_LIVE_WINDOW_SEGMENTS,
        maxStreams: config.LIVE_MAX_STREAMS,
        abrLadder: parseLadder(config.LIVE_ABR_LADDER),
        maxTranscodes: config.LIVE_MAX_TRANSCODES,
        uploadRetryMaxMs: config.HLS_UPLOAD_RETRY_MAX_MS,
        reconnectGraceMs: config.STREAM_RECONNECT_GRACE_MS,
        liveStreams: services.liveStreams,
        recordings: services.recordings,
        store: objectStore,
        bus: engine,
        logger,
        metrics: createIngestMetrics(services.metrics, () => ingest?.streamCount ?? 0),
      });
      const running = ingest;
      // Before the jobs stop and adapters close: the last segments are uploaded and recorded.
      closers.push(() => running.close());
      await checkOrExplain(
        `cannot listen for RTMP on ${config.HOST}:${config.RTMP_PORT}`,
        () => running.start(),
        'Free the port or set RTMP_PORT (0 picks one).',
      );
      if (!config.RTMP_PUBLIC_URL && config.RTMP_PORT === 0)
        services.liveStreams.useRtmpUrl(rtmpServerUrl({ ...config, RTMP_PORT: running.port }));
    }
    await app.listen({ host: config.HOST, port: config.PORT, backlog: LISTEN_BACKLOG });
    const address = app.server.address();
    const boundPort = typeof address === 'object' && address ? address.port : config.PORT;
    const url = `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${boundPort}`;
    if (objectStore instanceof LocalObjectStore && !config.PUBLIC_BASE_URL && config.PORT === 0)
      objectStore.usePublicBaseUrl(`${publicBaseUrl(config, boundPort)}/media`);
    logger.info(
      {
        url,
        port: boundPort,
        version: VERSION,
        db: db.kind,
        engine: engine.kind,
        objectStore: objectStore.kind,
        rtmpPort: ingest?.port ?? null,
      },
      'server started',
    );
    let stopping: Promise<void> | undefined;
    return {
      app,
      config,
      url,
      stop: () => {
        stopping ??= closeAll();
        return stopping;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * The old generation may grow to twice its live size before V8 starts a full
 * collection. V8 counts Buffer memory allocated since the last full collection
 * against the old generation's room, and live ingest allocates Buffers at the
 * bit rate of every stream (socket reads, RTMP messages); with V8's default
 * room (as little as 1.1× the live size) that alone kept restarting full
 * collections every 0.6 s in one benchmark run in four, doubling the server's
 * CPU. Read by V8 whenever it sizes the heap, so setting it at start applies.
 */
const HEAP_GROWING_PERCENT = 100;

/** Entry point: `node dist/src/server.js` / `tsx src/server.ts`. */
async function main(): Promise<void> {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`Invalid configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL);
  let server: RunningServer;
  try {
    server = await startServer(config, logger);
  } catch (err) {
    if (err instanceof StartupError) {
      logger.fatal(err.message);
      process.stderr.write(`Cannot start: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }, 'graceful shutdown timed out; exiting');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    server.stop().then(
      () => {
        logger.info('shutdown complete');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main();
}
