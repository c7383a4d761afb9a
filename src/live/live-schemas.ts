import { Type } from '@sinclair/typebox';
import { FlashSaleSchema } from '../commerce/flash-sales/flash-sale-schemas.js';
import {
  MEDIA_TIME_MAX_MS,
  STREAM_DESCRIPTION_MAX,
  STREAM_FEATURED_MAX,
  STREAM_TITLE_MAX,
} from './live-streams-service.js';
import { STREAM_END_REASONS, STREAM_STATUSES } from './live-tables.js';
import { PUBLIC_ID_PATTERN } from './stream-keys.js';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

const PublicId = Type.String({
  pattern: PUBLIC_ID_PATTERN,
  description:
    "The stream's public id: in URLs, the realtime room `stream:<id>`, and as `streamId` of flash sales, orders and coupons",
  examples: ['a7Kq2ZpX9b'],
});
const Status = Type.Union(
  STREAM_STATUSES.map((s) => Type.Literal(s)),
  { description: 'scheduled → live → ended' },
);
const Title = Type.String({
  minLength: 1,
  maxLength: STREAM_TITLE_MAX,
  examples: ['Sneaker drop: live unboxing'],
});
const Description = Type.String({ maxLength: STREAM_DESCRIPTION_MAX, examples: ['Three new colourways.'] });
const ProductIds = Type.Array(Uuid, {
  maxItems: STREAM_FEATURED_MAX,
  uniqueItems: true,
  description: 'Featured products in display order; each must exist (and be active unless it is yours)',
});
const MediaTimeMs = Type.Integer({
  minimum: 0,
  maximum: MEDIA_TIME_MAX_MS,
  description: "The stream's media time (ms); default: now on the stream's timeline once the ingest knows it",
  examples: [754000],
});

const ingestExample = {
  rtmpUrl: 'rtmp://live.example.com:1935/live',
  keyPrefix: 'sk_Ab3d',
  keyRevokedAt: null,
};
const publicStreamExample = {
  id: 'a7Kq2ZpX9b',
  ownerId: '5a1e2c3d-4b5f-4e6a-8b7c-9d0e1f2a3b44',
  title: 'Sneaker drop: live unboxing',
  description: 'Three new colourways.',
  status: 'scheduled',
  scheduledAt: '2026-11-25T18:00:00.000Z',
  startedAt: null,
  endedAt: null,
  endReason: null,
  recording: true,
  abr: false,
  createdAt: '2026-11-20T09:00:00.000Z',
  updatedAt: '2026-11-20T09:00:00.000Z',
};
const streamExample = { ...publicStreamExample, ingest: ingestExample };

export const LiveStreamSchema = Type.Object(
  {
    id: PublicId,
    ownerId: Uuid,
    title: Type.String(),
    description: Type.String(),
    status: Status,
    scheduledAt: DateTime,
    startedAt: Nullable(DateTime),
    endedAt: Nullable(DateTime),
    endReason: Type.Union([...STREAM_END_REASONS.map((r) => Type.Literal(r)), Type.Null()], {
      description: 'publisher_gone: the publisher left and did not return within the grace period',
    }),
    recording: Type.Boolean({ description: 'Segments are kept and a VOD playlist written' }),
    abr: Type.Boolean({
      description:
        'Also packaged in the lower renditions of LIVE_ABR_LADDER; hlsUrl and replayUrl are then master playlists',
    }),
    createdAt: DateTime,
    updatedAt: DateTime,
    ingest: Type.Optional(
      Type.Object(
        {
          rtmpUrl: Type.String({ description: 'OBS "Server"; the stream key goes in its own field' }),
          keyPrefix: Type.String({ description: 'First characters of the current key, to tell keys apart' }),
          keyRevokedAt: Nullable(DateTime),
        },
        { description: 'Owner and admins only. The key itself is never shown again after create/rotate.' },
      ),
    ),
  },
  { $id: 'LiveStream', examples: [streamExample] },
);

export const LiveStreamWithKeySchema = Type.Object(
  {
    stream: Type.Ref(LiveStreamSchema),
    rtmpUrl: Type.String({ description: 'OBS "Server"' }),
    streamKey: Type.String({
      description: 'OBS "Stream Key". Shown this once: only its hash is stored. Keep it secret.',
    }),
  },
  {
    $id: 'LiveStreamWithKey',
    examples: [
      {
        stream: streamExample,
        rtmpUrl: 'rtmp://live.example.com:1935/live',
        streamKey: 'sk_Ab3dEf6hJk9mNp2rSt5vWx8zBc4dFg7h',
      },
    ],
  },
);

const featuredExample = {
  id: '0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22',
  title: 'Court Classic',
  currency: 'EUR',
  imageUrl: 'https://cdn.example.com/court.jpg',
  minPriceMinor: 8999,
};

export const FeaturedProductSchema = Type.Object(
  {
    id: Uuid,
    title: Type.String(),
    currency: Type.String(),
    imageUrl: Nullable(Type.String()),
    minPriceMinor: Type.Union([Type.Integer(), Type.Null()], {
      description: 'Cheapest active SKU, minor units; null when none is active',
    }),
  },
  { $id: 'FeaturedProduct', examples: [featuredExample] },
);

const pinExample = {
  id: '3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b',
  kind: 'product',
  product: featuredExample,
  couponCode: null,
  mediaTimeMs: 754000,
  pinnedAt: '2026-11-25T18:12:34.000Z',
};

export const StreamPinSchema = Type.Object(
  {
    id: Uuid,
    kind: Type.Union([Type.Literal('product'), Type.Literal('coupon')]),
    product: Type.Union([Type.Ref(FeaturedProductSchema), Type.Null()]),
    couponCode: Nullable(Type.String()),
    mediaTimeMs: Type.Union([Type.Integer(), Type.Null()], {
      description: "The stream's media time of the pin; null until the ingest supplies the timeline",
    }),
    pinnedAt: DateTime,
  },
  { $id: 'StreamPin', examples: [pinExample] },
);

export const LiveStreamPageSchema = Type.Object(
  {
    stream: Type.Ref(LiveStreamSchema),
    status: Status,
    hlsUrl: Nullable(Type.String({ description: 'Live HLS playlist while the stream is live' })),
    replayUrl: Nullable(
      Type.String({
        description: 'Recording (VOD HLS playlist) once the stream has ended and it is written',
      }),
    ),
    featuredProducts: Type.Array(Type.Ref(FeaturedProductSchema)),
    audience: Type.Object(
      {
        current: Type.Integer({ minimum: 0, description: 'Connections watching now, on every instance' }),
        peak: Type.Integer({ minimum: 0 }),
        unique: Type.Integer({
          minimum: 0,
          description: 'Distinct viewers (users, or anonymous connections) so far',
        }),
        likes: Type.Integer({ minimum: 0 }),
      },
      { description: 'Live counts; `stream.viewers` and `stream.likes` on the room keep them current' },
    ),
    currentPin: Type.Union([Type.Ref(StreamPinSchema), Type.Null()]),
    activeFlashSale: Type.Union(
      // The FlashSale shape, inlined: its $id belongs to the flash-sale routes.
      [Type.Object({ ...FlashSaleSchema.properties }), Type.Null()],
      { description: 'The latest flash sale of this stream whose window is open and that was not stopped' },
    ),
  },
  {
    $id: 'LiveStreamPage',
    examples: [
      {
        stream: { ...publicStreamExample, status: 'live', startedAt: '2026-11-25T18:00:03.000Z' },
        status: 'live',
        hlsUrl: 'https://cdn.example.com/live/a7Kq2ZpX9b/index.m3u8',
        replayUrl: null,
        featuredProducts: [featuredExample],
        audience: { current: 1520, peak: 1804, unique: 2950, likes: 48211 },
        currentPin: pinExample,
        activeFlashSale: null,
      },
    ],
  },
);

export const LiveStreamListSchema = Type.Object(
  {
    items: Type.Array(Type.Ref(LiveStreamSchema)),
    nextCursor: Nullable(
      Type.String({ description: 'Pass as `cursor` for the next page; null on the last page' }),
    ),
  },
  { $id: 'LiveStreamList', examples: [{ items: [publicStreamExample], nextCursor: null }] },
);

export const CreateStreamBody = Type.Object(
  {
    title: Title,
    description: Type.Optional(Description),
    scheduledAt: Type.Optional(
      Type.String({ format: 'date-time', description: 'Planned start; default now' }),
    ),
    productIds: Type.Optional(ProductIds),
    recording: Type.Optional(Type.Boolean({ default: true, description: 'Keep segments for a VOD' })),
    abr: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Also transcode the ladder in LIVE_ABR_LADDER (adaptive bitrate); 400 LIVE_ABR_UNAVAILABLE when the server has none',
      }),
    ),
  },
  {
    additionalProperties: false,
    examples: [
      {
        title: 'Sneaker drop: live unboxing',
        description: 'Three new colourways.',
        scheduledAt: '2026-11-25T18:00:00Z',
        productIds: ['0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22'],
      },
    ],
  },
);

export const UpdateStreamBody = Type.Object(
  {
    title: Type.Optional(Title),
    description: Type.Optional(Description),
    scheduledAt: Type.Optional(
      Type.String({ format: 'date-time', description: 'Only while scheduled (else STREAM_STATE_INVALID)' }),
    ),
    productIds: Type.Optional(ProductIds),
    recording: Type.Optional(
      Type.Boolean({ description: 'Only while scheduled (else STREAM_STATE_INVALID)' }),
    ),
    abr: Type.Optional(Type.Boolean({ description: 'Only while scheduled (else STREAM_STATE_INVALID)' })),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    examples: [{ title: 'Sneaker drop (moved)', scheduledAt: '2026-11-26T18:00:00Z' }, { productIds: [] }],
  },
);

export const ListStreamsQuery = Type.Object(
  {
    status: Type.Optional(Status),
    ownerId: Type.Optional(Uuid),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'From the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  },
  { additionalProperties: false },
);

export const PinBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('product'), Type.Literal('coupon')]),
    productId: Type.Optional(Type.String({ format: 'uuid', description: 'For kind=product' })),
    couponCode: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'For kind=coupon (any case)' }),
    ),
    mediaTimeMs: Type.Optional(MediaTimeMs),
  },
  {
    additionalProperties: false,
    examples: [
      { kind: 'product', productId: '0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22' },
      { kind: 'coupon', couponCode: 'LIVE10', mediaTimeMs: 754000 },
    ],
  },
);

export const UnpinQuery = Type.Object(
  { mediaTimeMs: Type.Optional(MediaTimeMs) },
  { additionalProperties: false },
);

export const StreamParams = Type.Object({ publicId: PublicId }, { additionalProperties: false });

const PerCurrency = Type.Record(Type.String(), Type.Integer(), { description: 'Minor units per currency' });

export const StreamAnalyticsSchema = Type.Object(
  {
    streamId: Type.String(),
    status: Status,
    durationSeconds: Type.Integer({ minimum: 0 }),
    viewers: Type.Object({ peak: Type.Integer(), unique: Type.Integer() }),
    watch: Type.Object({
      totalSeconds: Type.Integer(),
      averageViewSeconds: Type.Integer({ description: 'Total watch time ÷ distinct viewers who watched' }),
      retention: Type.Array(Type.Object({ minute: Type.Integer(), viewers: Type.Integer() }), {
        description: 'Distinct viewers per minute of the stream',
      }),
    }),
    playback: Type.Object(
      {
        reports: Type.Integer(),
        averageBitrateKbps: Type.Union([Type.Integer(), Type.Null()], {
          description: 'Mean bitrate of the renditions viewers played',
        }),
        stalls: Type.Integer({ description: 'Rebuffering events' }),
        rebufferingRatio: Type.Number({ description: 'Time rebuffering ÷ (watch time + that time)' }),
        droppedFrames: Type.Integer(),
      },
      { description: "From the players' quality reports (`live.watch`)" },
    ),
    likes: Type.Integer(),
    chatMessages: Type.Integer(),
    commerce: Type.Object({
      orders: Type.Object({
        created: Type.Integer(),
        paid: Type.Integer(),
        cancelled: Type.Integer(),
        expired: Type.Integer(),
      }),
      unitsSold: Type.Integer(),
      revenueMinor: PerCurrency,
      conversion: Type.Number(),
    }),
    revenuePerMinuteMinor: PerCurrency,
    pins: Type.Array(
      Type.Object({
        pinId: Type.String({ format: 'uuid' }),
        productId: Type.String({ format: 'uuid' }),
        pinnedAt: Type.String({ format: 'date-time' }),
        unpinnedAt: Nullable(Type.String({ format: 'date-time' })),
        orders: Type.Integer(),
        viewers: Type.Integer(),
        conversion: Type.Number(),
      }),
    ),
  },
  {
    $id: 'StreamAnalytics',
    examples: [
      {
        streamId: 'a7Kq2ZpX9b',
        status: 'ended',
        durationSeconds: 3600,
        viewers: { peak: 1804, unique: 2950 },
        watch: {
          totalSeconds: 3_100_000,
          averageViewSeconds: 1051,
          retention: [{ minute: 0, viewers: 420 }],
        },
        playback: {
          reports: 12_400,
          averageBitrateKbps: 2100,
          stalls: 96,
          rebufferingRatio: 0.0021,
          droppedFrames: 310,
        },
        likes: 48211,
        chatMessages: 5120,
        commerce: {
          orders: { created: 320, paid: 301, cancelled: 4, expired: 15 },
          unitsSold: 340,
          revenueMinor: { USD: 1_690_000 },
          conversion: 0.94,
        },
        revenuePerMinuteMinor: { USD: 28_167 },
        pins: [],
      },
    ],
  },
);
