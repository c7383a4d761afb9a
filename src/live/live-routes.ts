/**
 * /v1/streams: create and manage live streams, list them, and the stream
 * page's data. Stream keys travel only in answer bodies (create, rotate),
 * never in URLs, and are never logged.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { currentUser, requirePermission, requireUser } from '../auth/auth-hooks.js';
import { ErrorRef } from '../platform/http/openapi.js';
import {
  CreateStreamBody,
  FeaturedProductSchema,
  ListStreamsQuery,
  LiveStreamListSchema,
  LiveStreamPageSchema,
  LiveStreamSchema,
  LiveStreamWithKeySchema,
  PinBody,
  StreamAnalyticsSchema,
  StreamParams,
  StreamPinSchema,
  UnpinQuery,
  UpdateStreamBody,
} from './live-schemas.js';
import type { LiveStreamsService } from './live-streams-service.js';
import type { StreamAnalyticsService } from './stream-analytics.js';

const security = [{ bearer: [] }];
const tags = ['live'];

export async function liveRoutes(
  fastify: FastifyInstance,
  opts: { liveStreams: LiveStreamsService; analytics: StreamAnalyticsService },
): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { liveStreams, analytics } = opts;
  for (const schema of [
    LiveStreamSchema,
    LiveStreamWithKeySchema,
    FeaturedProductSchema,
    StreamPinSchema,
    LiveStreamPageSchema,
    LiveStreamListSchema,
    StreamAnalyticsSchema,
  ])
    fastify.addSchema(schema);
  const StreamRef = Type.Ref(LiveStreamSchema);
  const WithKeyRef = Type.Ref(LiveStreamWithKeySchema);

  app.post(
    '/v1/streams',
    {
      preValidation: requirePermission('streams:manage'),
      schema: {
        tags,
        summary: 'Create a live stream',
        description:
          'The answer carries the RTMP server URL and the stream key for OBS, separately. The key is shown this once (only its hash is stored): rotate it if it is lost.',
        security,
        body: CreateStreamBody,
        response: { 201: WithKeyRef, 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await liveStreams.create(currentUser(request), request.body)),
  );

  app.get(
    '/v1/streams',
    {
      schema: {
        tags,
        summary: 'Live streams, then upcoming ones',
        description:
          'Without `status`: live streams (latest started first), then scheduled ones (soonest first). `status=ended`: latest ended first. Keyset-paged with `cursor`.',
        querystring: ListStreamsQuery,
        response: { 200: Type.Ref(LiveStreamListSchema), 400: ErrorRef },
      },
    },
    async (request) => liveStreams.list(request.query),
  );

  app.get(
    '/v1/streams/:publicId',
    {
      schema: {
        tags,
        summary: "A stream page's data",
        description:
          'Status, HLS URL (while live), featured products, the current pin and the active flash sale. Later changes arrive as events on the WebSocket room `stream:<id>` (`stream.status`, `stream.pin`, `stream.unpin`, `flash.stock`). The owner and admins also get `stream.ingest`.',
        params: StreamParams,
        response: { 200: Type.Ref(LiveStreamPageSchema), 400: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => liveStreams.page(request.params.publicId, request.user),
  );

  app.patch(
    '/v1/streams/:publicId',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Edit a stream (its owner or an admin)',
        description:
          'Title, description and featured products (`productIds` replaces the list) at any time; `scheduledAt` and `recording` only while scheduled (409 STREAM_STATE_INVALID).',
        security,
        params: StreamParams,
        body: UpdateStreamBody,
        response: {
          200: StreamRef,
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request) => liveStreams.update(currentUser(request), request.params.publicId, request.body),
  );

  app.post(
    '/v1/streams/:publicId/key/rotate',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Issue a new stream key (the old one stops working)',
        description:
          'The new key is shown this once. Also re-enables a revoked stream. A publisher already connected keeps going; revoke to stop it. Ended streams: 409 STREAM_ENDED.',
        security,
        params: StreamParams,
        response: {
          200: WithKeyRef,
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request) => liveStreams.rotateKey(currentUser(request), request.params.publicId),
  );

  app.post(
    '/v1/streams/:publicId/key/revoke',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Disable the stream key',
        description:
          'The key no longer authenticates, and a publisher connected with it is dropped. Idempotent. Rotate to get a working key.',
        security,
        params: StreamParams,
        response: { 200: StreamRef, 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => liveStreams.revokeKey(currentUser(request), request.params.publicId),
  );

  app.get(
    '/v1/streams/:publicId/analytics',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Stream analytics',
        description:
          'Owner or admin: peak and unique viewers, watch time, average view duration, retention per minute, playback quality (bitrate, rebuffering, dropped frames), likes, chat messages, orders, revenue, revenue per minute and how each product pin converted (paid orders with the product during the pin or 5 minutes after it, ÷ viewers during the pin).',
        security,
        params: StreamParams,
        response: {
          200: Type.Ref(StreamAnalyticsSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
        },
      },
    },
    async (request) => analytics.stream(currentUser(request), request.params.publicId),
  );

  app.post(
    '/v1/streams/:publicId/end',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'End the stream',
        description:
          'Owner or admin. A live stream ends now (the publisher is dropped at the next heartbeat, the playlist gets its end and the recording is written); a scheduled one is cancelled. `stream.status` goes to the room. Already ended: 409 STREAM_ENDED.',
        security,
        params: StreamParams,
        response: {
          200: StreamRef,
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request) => liveStreams.end(currentUser(request), request.params.publicId),
  );

  app.post(
    '/v1/streams/:publicId/pins',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Pin a product or a coupon over the player',
        description:
          'Replaces the current pin and publishes `stream.pin` to the room `stream:<id>`, stamped with the media time. A product must be active (PRODUCT_NOT_FOUND); a coupon must exist, be active, not expired and not bound to another stream. Ended streams: 409 STREAM_ENDED.',
        security,
        params: StreamParams,
        body: PinBody,
        response: {
          201: Type.Ref(StreamPinSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
          422: ErrorRef,
        },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await liveStreams.pin(currentUser(request), request.params.publicId, request.body)),
  );

  app.delete(
    '/v1/streams/:publicId/pins/current',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Take the current pin down',
        description:
          'Publishes `stream.unpin` to the room `stream:<id>`. Idempotent: 204 also when nothing was pinned (no event then).',
        security,
        params: StreamParams,
        querystring: UnpinQuery,
        response: { 204: Type.Null(), 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request, reply) => {
      await liveStreams.unpin(currentUser(request), request.params.publicId, request.query);
      return reply.status(204).send(null);
    },
  );
}
