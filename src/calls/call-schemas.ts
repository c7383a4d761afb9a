import { Type } from '@sinclair/typebox';
import { AGENT_STATUSES } from './agent-queue.js';
import { CALL_END_REASONS, CALL_STATUSES, CALL_TYPES } from './call-tables.js';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
/** A union of string literals that keeps its TypeScript type (a mapped array would widen to string). */
const Literals = <T extends readonly string[]>(values: T, description: string) =>
  Type.Unsafe<T[number]>(
    Type.Union(
      values.map((v) => Type.Literal(v)),
      { description },
    ),
  );

export const CallContextSchema = Type.Object(
  {
    streamId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'The live stream the call started from' }),
    ),
    productId: Type.Optional(Uuid),
    cart: Type.Optional(
      Type.Array(
        Type.Object(
          { skuId: Uuid, quantity: Type.Integer({ minimum: 1, maximum: 1000 }) },
          { additionalProperties: false },
        ),
        { maxItems: 50 },
      ),
    ),
  },
  { additionalProperties: false, description: 'What the shopper was looking at' },
);

const QualityStat = Type.Object(
  { avg: Type.Number(), max: Type.Number(), samples: Type.Integer() },
  { additionalProperties: false },
);
const QualityBySource = Type.Record(Type.String(), QualityStat, {
  description:
    'Per metric (bitrateKbps, packetLossPct, jitterMs, rttMs, score 0-10, fps): average, worst, samples',
});
const QualitySchema = Type.Object(
  {
    server: QualityBySource,
    client: QualityBySource,
    resolution: Type.Optional(Type.Object({ width: Type.Integer(), height: Type.Integer() })),
    updatedAt: Type.Optional(DateTime),
  },
  {
    additionalProperties: false,
    description: 'From the SFU every CALL_STATS_INTERVAL_MS and from `call.stats` reports',
  },
);

export const CallSchema = Type.Object(
  {
    id: Uuid,
    type: Literals(CALL_TYPES, 'support: to the next free agent; sales, consultation: to calleeId'),
    status: Literals(CALL_STATUSES, 'initiated (queued) → ringing → active → ended, or missed / rejected'),
    callerId: Uuid,
    agentId: Type.Union([Uuid, Type.Null()], {
      description: 'Who the call rings or rang; null while queued',
    }),
    context: CallContextSchema,
    createdAt: DateTime,
    ringingAt: Nullable(DateTime),
    answeredAt: Nullable(DateTime),
    endedAt: Nullable(DateTime),
    endedBy: Type.Union([Uuid, Type.Null()], { description: 'Null when the server ended it' }),
    endReason: Type.Union([Literals(CALL_END_REASONS, 'Why it is over'), Type.Null()]),
    durationMs: Type.Union([Type.Integer(), Type.Null()]),
    queuePosition: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Place in the support queue while initiated' }),
    ),
    quality: Type.Union([QualitySchema, Type.Null()]),
    record: Type.Boolean({ description: 'Recorded on the server (asked for by the caller)' }),
    recordings: Type.Array(
      Type.Object({
        key: Type.String(),
        url: Type.String({ description: 'Where the Matroska file of the track is' }),
        userId: Uuid,
        kind: Type.Union([Type.Literal('audio'), Type.Literal('video')]),
        bytes: Type.Integer(),
      }),
      { description: 'One file per recorded track, listed once the call is over' },
    ),
  },
  { $id: 'Call', additionalProperties: false },
);

export const IceServerSchema = Type.Object(
  {
    urls: Type.Array(Type.String()),
    username: Type.Optional(Type.String({ description: 'TURN REST username: expiry:userId' })),
    credential: Type.Optional(Type.String()),
  },
  { $id: 'IceServer', additionalProperties: false, description: 'An RTCIceServer' },
);

export const CallWithIceSchema = Type.Object(
  {
    call: Type.Ref(CallSchema),
    iceServers: Type.Array(Type.Ref(IceServerSchema), {
      description: 'For the RTCPeerConnection; TURN credentials expire after TURN_CREDENTIAL_TTL_SECONDS',
    }),
  },
  { $id: 'CallWithIce' },
);

export const StartCallBody = Type.Object(
  {
    type: Literals(CALL_TYPES, 'support goes to the queue; sales and consultation ring calleeId'),
    calleeId: Type.Optional(Uuid),
    context: Type.Optional(CallContextSchema),
    record: Type.Optional(
      Type.Boolean({ description: 'Record the call on the server; the callee sees it before answering' }),
    ),
  },
  { additionalProperties: false },
);

export const CallParams = Type.Object({ id: Uuid });

export const CallHistoryQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
    before: Type.Optional(
      Type.String({ format: 'date-time', description: 'createdAt of the last call seen' }),
    ),
  },
  { additionalProperties: false },
);

export const AvailabilitySchema = Type.Object(
  { status: Literals(AGENT_STATUSES, 'online: free for calls; busy: on a call; away') },
  { $id: 'AgentAvailability', additionalProperties: false },
);

export const CallAnalyticsQuerySchema = Type.Object(
  {
    from: Type.Optional(Type.String({ format: 'date-time', description: 'Default: 30 days before `to`' })),
    to: Type.Optional(Type.String({ format: 'date-time', description: 'Default: now' })),
    agentId: Type.Optional(Uuid),
  },
  { additionalProperties: false },
);

const NullableNumber = Type.Union([Type.Number(), Type.Null()]);
export const CallAnalyticsSchema = Type.Object(
  {
    from: DateTime,
    to: DateTime,
    byAgent: Type.Array(
      Type.Object({
        agentId: Uuid,
        calls: Type.Integer(),
        answered: Type.Integer(),
        missed: Type.Integer(),
        rejected: Type.Integer(),
        talkTimeMs: Type.Integer(),
        avgDurationMs: NullableNumber,
        avgQualityScore: Type.Union([Type.Number({ description: '0-10, from server samples' }), Type.Null()]),
      }),
    ),
    byType: Type.Array(
      Type.Object({
        type: Literals(CALL_TYPES, 'Call type'),
        calls: Type.Integer(),
        answered: Type.Integer(),
        answerRate: Type.Number(),
        avgWaitMs: Type.Union([Type.Number({ description: 'Start to answer, answered calls' }), Type.Null()]),
      }),
    ),
  },
  { $id: 'CallAnalytics' },
);
