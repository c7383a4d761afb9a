/**
 * Builds the fastify instance from services that already exist. No I/O and
 * no listening here, so tests build as many apps as they like.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { registerAuthHooks } from './auth/auth-hooks.js';
import { authRoutes } from './auth/auth-routes.js';
import { callRoutes } from './calls/call-routes.js';
import { chatRoutes } from './chat/chat-routes.js';
import { uploadRoutes } from './chat/upload-routes.js';
import { analyticsRoutes } from './commerce/analytics/analytics-routes.js';
import { catalogRoutes } from './commerce/catalog/catalog-routes.js';
import { couponRoutes } from './commerce/coupons/coupon-routes.js';
import { flashSaleRoutes, soldOutShortcut } from './commerce/flash-sales/flash-sale-routes.js';
import { orderRoutes } from './commerce/orders/orders-routes.js';
import { liveRoutes } from './live/live-routes.js';
import { registerErrorHandling, toAppError } from './platform/http/error-handler.js';
import { registerHealthRoutes } from './platform/http/health-routes.js';
import { registerMediaRoutes } from './platform/http/media-routes.js';
import { counter, registerMetrics } from './platform/http/metrics.js';
import { registerOpenApi } from './platform/http/openapi.js';
import { engineRateLimitStore } from './platform/http/rate-limit-store.js';
import { buildValidator, registerNulGuard } from './platform/http/validation.js';
import { registerWebApps } from './platform/http/web-apps.js';
import { LazyChildLogger, loggerOptions } from './platform/logger.js';
import type { Services } from './services.js';
import { VERSION } from './version.js';

export interface BuildAppOptions {
  /** A pino logger to share with the rest of the process; default: a new one at LOG_LEVEL. */
  logger?: Logger;
}

export async function buildApp(services: Services, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const { config } = services;
  // Late taps on a sold-out flash sale are answered before Fastify sees them (see soldOutShortcut).
  const shortcut = config.CORS_ORIGINS
    ? null
    : soldOutShortcut(
        services.flashSales,
        counter(
          services.metrics,
          'flash_sale_sold_out_shortcut_total',
          'Purchases of a sold-out flash sale answered before routing (not in http_request_duration_seconds)',
        ),
      );
  const app = Fastify({
    ...(shortcut
      ? {
          serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) =>
            createServer((req, res) => {
              if (!shortcut(req, res)) handler(req, res);
            }),
        }
      : {}),
    ...(options.logger
      ? { loggerInstance: options.logger as FastifyBaseLogger }
      : { logger: loggerOptions(config.LOG_LEVEL) }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    logController: new LogController({ disableRequestLogging: !config.LOG_REQUESTS }),
    trustProxy: config.TRUST_PROXY,
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
    childLoggerFactory: (logger, bindings, options) =>
      new LazyChildLogger(
        logger as Logger,
        bindings,
        options as Record<string, unknown>,
      ) as unknown as FastifyBaseLogger,
    // Connections idle in keep-alive close at shutdown; busy ones finish their request first.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    schemaController: { compilersFactory: { buildValidator } },
    // Router-level failures (malformed URLs) bypass the error handler; answer them from the catalogue too.
    frameworkErrors: (err, _request, reply) => {
      const appErr = toAppError(err);
      (reply as FastifyReply).status(appErr.statusCode).send(appErr.toJSON());
    },
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  registerErrorHandling(app);
  registerNulGuard(app);
  await registerOpenApi(app, VERSION);
  if (config.CORS_ORIGINS) {
    const origins = config.CORS_ORIGINS.split(',').map((o) => o.trim());
    await app.register(cors, { origin: origins.includes('*') ? true : origins, credentials: true });
  }
  await app.register(rateLimit, {
    global: false,
    store: engineRateLimitStore(services.engine),
    // Rate limiting must not become an outage when the engine hiccups.
    skipOnError: true,
  });
  registerAuthHooks(app, services.tokens);
  if (config.METRICS_ENABLED) registerMetrics(app, services.metrics);

  registerHealthRoutes(app, [
    { name: 'db', kind: services.db.kind, check: () => services.db.check() },
    { name: 'engine', kind: services.engine.kind, check: () => services.engine.check() },
    { name: 'objectStore', kind: services.objectStore.kind, check: () => services.objectStore.check() },
  ]);
  registerMediaRoutes(app, services.objectStore);
  registerWebApps(app);
  await app.register(authRoutes, {
    users: services.users,
    authRateLimitPerMinute: config.AUTH_RATE_LIMIT_PER_MINUTE,
  });
  await app.register(catalogRoutes, { catalog: services.catalog });
  await app.register(couponRoutes, {
    coupons: services.coupons,
    catalog: services.catalog,
    defaultShippingMinor: config.SHIPPING_FEE_MINOR,
  });
  await app.register(orderRoutes, { orders: services.orders });
  await app.register(flashSaleRoutes, { flashSales: services.flashSales });
  await app.register(analyticsRoutes, { analytics: services.analytics });
  await app.register(chatRoutes, { chat: services.chat });
  await app.register(uploadRoutes, { uploads: services.uploads });
  await app.register(liveRoutes, { liveStreams: services.liveStreams, analytics: services.streamAnalytics });
  await app.register(callRoutes, {
    calls: services.calls,
    analytics: services.callAnalytics,
    enabled: services.media !== undefined,
  });
  return app;
}
