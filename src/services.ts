/**
 * Builds every domain service from already-open adapters. Shared by the
 * composition root (src/server.ts) and the tests, so both run the same graph.
 */
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import { Sfu } from '../media/sfu/sfu.js';
import { findWorkerBinary } from '../media/sfu/worker-binary.js';
import { Gateway, type GatewayLogger, gatewayOptionsFromConfig } from '../signaling/gateway.js';
import { commerceExpiryJobs } from '../workers/commerce-expiry.js';
import { recordingJobs } from '../workers/live-recordings.js';
import { type JobLogger, PeriodicJob } from '../workers/periodic-job.js';
import { TokenService } from './auth/tokens.js';
import { UsersService } from './auth/users-service.js';
import { AgentQueue } from './calls/agent-queue.js';
import { CallAnalyticsService } from './calls/call-analytics.js';
import { CallMediaRelay } from './calls/call-media-relay.js';
import { registerCallMetrics } from './calls/call-metrics.js';
import { CallQuality, serverSample } from './calls/call-quality.js';
import { CallRecorder } from './calls/call-recorder.js';
import { registerCallsOnGateway } from './calls/call-signaling.js';
import { CallsService, callRoom } from './calls/calls-service.js';
import { iceServerOptionsFromConfig } from './calls/ice-servers.js';
import { registerChatOnGateway } from './chat/chat-gateway.js';
import { ChatService } from './chat/chat-service.js';
import { LiveChat, registerLiveChatOnGateway } from './chat/live-chat.js';
import type { RoomPublisher } from './chat/room-publisher.js';
import { UploadsService } from './chat/uploads-service.js';
import { CommerceAnalytics } from './commerce/analytics/commerce-analytics.js';
import { CatalogService } from './commerce/catalog/catalog-service.js';
import { CouponsService } from './commerce/coupons/coupons-service.js';
import { FlashSalesService } from './commerce/flash-sales/flash-sales-service.js';
import { OrdersService } from './commerce/orders/orders-service.js';
import { type PaymentProvider, TestPaymentProvider } from './commerce/orders/payment-provider.js';
import type { Database } from './database.js';
import { LiveStreamsService, rtmpServerUrl } from './live/live-streams-service.js';
import { StreamAnalyticsService } from './live/stream-analytics.js';
import { StreamAudience } from './live/stream-audience.js';
import { StreamRecordings, timedMetadataChannel } from './live/stream-recordings.js';
import { registerWatchTimeOnGateway, WatchTimeRecorder } from './live/watch-time.js';
import type { DbHandle } from './platform/db/db.js';
import type { Engine } from './platform/engine/engine.js';
import { createMetricsRegistry } from './platform/http/metrics.js';
import type { ObjectStore } from './platform/object-store/object-store.js';

export interface Adapters {
  db: DbHandle<Database>;
  engine: Engine;
  objectStore: ObjectStore;
}

export interface Services extends Adapters {
  config: Config;
  /** Prometheus registry served at /metrics; modules register their own metrics in it. */
  metrics: Registry;
  tokens: TokenService;
  users: UsersService;
  catalog: CatalogService;
  coupons: CouponsService;
  flashSales: FlashSalesService;
  orders: OrdersService;
  payments: PaymentProvider;
  analytics: CommerceAnalytics;
  chat: ChatService;
  /** Chat and moderation in live streams' public rooms. */
  liveChat: LiveChat;
  uploads: UploadsService;
  /** Live streams: keys, schedule, lifecycle, featured products and pins. */
  liveStreams: LiveStreamsService;
  /** Viewers (current, peak, unique) and likes of live streams, across instances. */
  audience: StreamAudience;
  /** Watch-time reports of players, written in batches. */
  watchTime: WatchTimeRecorder;
  /** Per-stream analytics for owners. */
  streamAnalytics: StreamAnalyticsService;
  /** Segments delivered per stream, timed metadata, replay state (used by the ingest). */
  recordings: StreamRecordings;
  /** Background jobs of this instance (reservation and order expiry, abandoned live streams). */
  jobs: PeriodicJob[];
  /**
   * The realtime gateway: `gateway.publish(room, event, data)` reaches clients
   * on every instance. Serves `/ws` once the composition root attaches it to
   * the HTTP server.
   */
  gateway: Gateway;
  /** Call lifecycle, agent availability and queue, history. */
  calls: CallsService;
  /** Call figures per agent and per type. */
  callAnalytics: CallAnalyticsService;
  /** This instance's SFU and the signaling relay to the instance hosting each call; absent when CALLS_ENABLED=false. */
  media?: {
    sfu: Sfu;
    relay: CallMediaRelay;
    quality: CallQuality;
    recorder: CallRecorder;
    unregister: () => void;
  };
}

/** The one line a start without a mediasoup worker fails with. */
export function missingWorkerMessage(tried: string[]): string {
  return `video calls are enabled but no mediasoup worker binary was found${tried.length ? ` (looked at ${tried.join(', ')})` : ''}: run \`npm run setup\` (it builds one), or set MEDIASOUP_WORKER_BIN, or set CALLS_ENABLED=false`;
}

export interface CreateServicesOptions {
  /** HS256 secret for access tokens. */
  jwtSecret: string;
  /** Replaces the built-in test payment provider. */
  payments?: PaymentProvider;
  /** Where chat events go; default: the realtime gateway. */
  chatPublisher?: RoomPublisher;
  logger: JobLogger & GatewayLogger;
}

export function createServices(config: Config, adapters: Adapters, options: CreateServicesOptions): Services {
  const db = adapters.db.db;
  const tokens = new TokenService(options.jwtSecret, config.JWT_TTL_SECONDS);
  const users = new UsersService(db, tokens);
  const catalog = new CatalogService(db);
  const coupons = new CouponsService(db);
  const gateway = new Gateway({
    ...gatewayOptionsFromConfig(config),
    engine: adapters.engine,
    tokens,
    logger: options.logger,
  });
  const flashSales = new FlashSalesService(
    db,
    adapters.engine,
    {
      windowMs: config.FLASH_VELOCITY_WINDOW_MS,
      perUserMax: config.FLASH_VELOCITY_PER_USER,
      perIpMax: config.FLASH_VELOCITY_PER_IP,
    },
    {
      // Live stock goes to the stream's room; ephemeral: the sale's GET has the current value for late joiners.
      onStock: ({ saleId, streamId, remaining }) => {
        if (streamId)
          gateway
            .publish(`stream:${streamId}`, 'flash.stock', { saleId, remaining }, { ephemeral: true })
            .catch((err: unknown) => options.logger.error({ err, saleId }, 'flash stock publish failed'));
      },
      onCreated: (sale) => {
        liveStreams
          .announceFlashSale(sale)
          .catch((err: unknown) =>
            options.logger.error({ err, saleId: sale.id }, 'flash sale announcement failed'),
          );
      },
    },
  );
  const payments = options.payments ?? new TestPaymentProvider();
  const orders = new OrdersService(db, coupons, flashSales, payments, {
    paymentTtlSeconds: config.ORDER_PAYMENT_TTL_SECONDS,
    paymentTimeoutMs: config.PAYMENT_TIMEOUT_MS,
    shippingFeeMinor: config.SHIPPING_FEE_MINOR,
  });
  const jobs = commerceExpiryJobs(flashSales, orders, config.SWEEP_INTERVAL_MS, options.logger);
  const analytics = new CommerceAnalytics(db);
  const chat = new ChatService(db, {
    // Chat events go out through the gateway: numbered per room, kept for recovery, on every instance.
    publisher: options.chatPublisher ?? {
      publish: async (room, event, data) => {
        await gateway.publish(room, event, data);
      },
    },
    maxGroupMembers: config.CHAT_GROUP_MAX_MEMBERS,
    onPublishError: (err, room, event) => options.logger.error({ err, room, event }, 'chat publish failed'),
  });
  registerChatOnGateway(gateway, chat, db);
  const liveChat = new LiveChat(adapters.engine, gateway);
  registerLiveChatOnGateway(gateway, liveChat);
  const uploads = new UploadsService(db, adapters.objectStore, { maxBytes: config.UPLOAD_MAX_BYTES });
  const audience = new StreamAudience(adapters.engine, gateway, {
    onError: (err) => options.logger.error({ err }, 'stream audience update failed'),
  });
  const liveStreams = new LiveStreamsService(db, {
    audience,
    gateway,
    objectStore: adapters.objectStore,
    flashSales,
    rtmpUrl: rtmpServerUrl(config),
    reconnectGraceMs: config.STREAM_RECONNECT_GRACE_MS,
    abrAvailable: config.LIVE_ABR_LADDER.trim() !== '',
    onPublishError: (err, room, event) =>
      options.logger.error({ err, room, event }, 'stream event publish failed'),
    // The instance whose ingest hosts the stream writes pins into its live playlist.
    onTimedMetadata: (publicId, item) => {
      adapters.engine
        .publish(timedMetadataChannel(publicId), JSON.stringify(item))
        .catch((err: unknown) => options.logger.error({ err, publicId }, 'timed metadata publish failed'));
    },
  });
  const recordings = new StreamRecordings(db);
  const watchTime = new WatchTimeRecorder(db);
  registerWatchTimeOnGateway(gateway, watchTime);
  jobs.push(new PeriodicJob('watch-time-flush', 5_000, () => watchTime.flush(), options.logger));
  const streamAnalytics = new StreamAnalyticsService(db, { audience, liveChat, commerce: analytics });
  jobs.push(
    ...recordingJobs({
      recordings,
      store: adapters.objectStore,
      retentionDays: config.RECORDING_RETENTION_DAYS,
      orphanAfterMs: config.STREAM_RECONNECT_GRACE_MS + 5 * 60_000,
      windowSize: config.HLS_LIVE_WINDOW_SEGMENTS,
      targetDurationSeconds: Math.ceil(config.HLS_SEGMENT_SECONDS),
      intervalMs: 60_000,
      logger: options.logger,
    }),
  );
  // Ends live streams whose publisher left (or whose ingest died) more than the grace period ago.
  jobs.push(
    new PeriodicJob(
      'live-stream-abandon',
      liveStreams.publisherHeartbeatMs,
      () => liveStreams.endAbandoned(),
      options.logger,
    ),
  );
  const log = {
    info: (obj: object, msg: string) => options.logger.info?.(obj, msg),
    warn: (obj: object, msg: string) => options.logger.warn?.(obj, msg),
    error: (obj: object, msg: string) => options.logger.error(obj, msg),
  };
  const calls = new CallsService(db, {
    publisher: gateway,
    queue: new AgentQueue(adapters.engine),
    iceServers: iceServerOptionsFromConfig(config),
    ringTimeoutMs: config.CALL_RING_TIMEOUT_MS,
    queueTimeoutMs: config.CALL_QUEUE_TIMEOUT_MS,
    logger: log,
  });
  let media: Services['media'];
  if (config.CALLS_ENABLED) {
    const lookup = findWorkerBinary(config.MEDIASOUP_WORKER_BIN);
    if (!lookup.path) throw new Error(missingWorkerMessage(lookup.tried));
    const sfu = new Sfu({
      binary: lookup.path,
      numWorkers: config.MEDIASOUP_NUM_WORKERS,
      rtcMinPort: config.RTC_MIN_PORT,
      rtcMaxPort: config.RTC_MAX_PORT,
      logger: log,
      transport: { listenIp: config.RTC_LISTEN_IP, announcedAddress: config.RTC_ANNOUNCED_ADDRESS },
    });
    const relay = new CallMediaRelay({
      engine: adapters.engine,
      sfu,
      instanceId: gateway.instanceId,
      timeoutMs: config.CALL_SIGNALING_TIMEOUT_MS,
      logger: log,
    });
    sfu.on('mediaLost', (callId) => {
      calls
        .end(callId, 'ended', 'media_worker_died', null)
        .catch((err: unknown) => log.error({ err, callId }, 'ending a call after its worker died failed'));
    });
    const recorder = new CallRecorder({
      db,
      sfu,
      objectStore: adapters.objectStore,
      logger: log,
      onRecorded: (callId, recordings) => {
        gateway
          .publish(callRoom(callId), 'call.recorded', { callId, recordings })
          .catch((err: unknown) => log.warn({ err, callId }, 'call recording event publish failed'));
      },
    });
    sfu.on('notify', (callId, event, data) => {
      gateway
        .publish(callRoom(callId), event, data)
        .catch((err: unknown) => log.warn({ err, callId, event }, 'call media event publish failed'));
      if (event === 'call.newProducer')
        recorder
          .onProducer(callId, data as { producerId: string; userId: string; kind: 'audio' | 'video' })
          .catch((err: unknown) => log.error({ err, callId }, 'call recording failed to start'));
    });
    sfu.on('callClosed', (callId) => {
      recorder.finish(callId).catch((err: unknown) => log.error({ err, callId }, 'call recording failed'));
    });
    const quality = new CallQuality(db);
    calls.on('ended', (call) => quality.forget(call.id));
    const { unregister, sweepAbandoned } = registerCallsOnGateway(gateway, calls, relay, quality, {
      disconnectGraceMs: config.CALL_DISCONNECT_GRACE_MS,
      logger: log,
    });
    // Active calls whose participant is not in the call's room (their instance died, or they never joined).
    jobs.push(
      new PeriodicJob(
        'call-abandoned',
        Math.max(100, Math.floor(config.CALL_DISCONNECT_GRACE_MS / 2)),
        () => sweepAbandoned(),
        options.logger,
      ),
    );
    // An agent whose last connection closed cannot take calls (nor become free after the current one).
    gateway.on('presence', (change) => {
      if (!change.online)
        void calls.queue
          .status(change.userId)
          .then((status) => (status !== 'away' ? calls.queue.setStatus(change.userId, 'away') : undefined))
          .catch((err: unknown) => log.warn({ err }, 'agent availability update failed'));
    });
    media = { sfu, relay, quality, recorder, unregister };
    // Quality samples of the calls whose media this instance hosts.
    jobs.push(
      new PeriodicJob(
        'call-quality',
        config.CALL_STATS_INTERVAL_MS,
        async () => {
          for (const callId of sfu.callIds()) {
            const stats = await sfu.get(callId)?.stats();
            if (stats?.length) await quality.record(callId, 'server', serverSample(stats));
          }
        },
        options.logger,
      ),
    );
    // Ring and queue timeouts, on every instance (each call ends once).
    jobs.push(
      new PeriodicJob(
        'call-timeouts',
        Math.min(config.SWEEP_INTERVAL_MS, Math.floor(config.CALL_RING_TIMEOUT_MS / 4)),
        () => calls.expireDue(),
        options.logger,
      ),
    );
  }
  const metrics = createMetricsRegistry();
  registerCallMetrics(metrics, { calls, media });
  return {
    ...adapters,
    config,
    metrics,
    calls,
    callAnalytics: new CallAnalyticsService(db),
    media,
    tokens,
    users,
    catalog,
    coupons,
    flashSales,
    orders,
    payments,
    analytics,
    chat,
    liveChat,
    uploads,
    liveStreams,
    audience,
    watchTime,
    streamAnalytics,
    recordings,
    jobs,
    gateway,
  };
}

/** Starts subscriptions and background jobs. */
export async function startServices(services: Services): Promise<void> {
  await services.flashSales.start();
  // Workers start now so that a broken worker binary stops the server at start, not at the first call.
  await services.media?.sfu.start();
  await services.media?.relay.start();
  for (const job of services.jobs) job.start();
  services.audience.start();
}

/** Stops jobs and flushes pending writes; adapters stay open (the caller closes them). */
export async function stopServices(services: Services): Promise<void> {
  await services.audience.stop();
  await services.gateway.close();
  await Promise.all(services.jobs.map((j) => j.stop()));
  await services.watchTime.flush();
  await services.flashSales.stop();
  if (services.media) {
    services.media.unregister();
    await services.media.relay.close();
    await services.media.sfu.close();
    await services.media.recorder.close();
  }
}
