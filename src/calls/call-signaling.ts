/**
 * Calls over the realtime gateway: who may join `call:<id>` (its two
 * participants) and `agent:<userId>` (that user: where their calls ring), the
 * `call.*` signaling messages, and ending a call whose participant's
 * connection left its room and did not come back within the grace time.
 *
 * Each message is authorized here, on the instance the client is connected
 * to (participant of an open call), then run by the CallMediaRelay on the
 * instance hosting the call's router, wherever that is.
 */
import { type TSchema, Type } from '@sinclair/typebox';
import type { Gateway, RequestContext } from '../../signaling/gateway.js';
import { AppError } from '../platform/errors.js';
import type { CallMediaRelay, MediaOp } from './call-media-relay.js';
import type { CallQuality } from './call-quality.js';
import { CALL_STATUSES, type CallStatus } from './call-tables.js';
import { type CallsLogger, type CallsService, callRoom } from './calls-service.js';

const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' });
const CallId = Type.String({ format: 'uuid' });
/**
 * Shapes checked here; mediasoup checks the contents (codecs, payload types,
 * fingerprints) and its refusals come back as CALL_MEDIA_PARAMETERS_INVALID.
 */
const Loose = (description: string, required: Record<string, TSchema>) =>
  Type.Object(required, { additionalProperties: true, description });
const DtlsParameters = Loose('DTLS parameters of the client side of the transport', {
  fingerprints: Type.Array(
    Type.Object(
      { algorithm: Type.String({ maxLength: 32 }), value: Type.String({ maxLength: 256 }) },
      { additionalProperties: false },
    ),
    { minItems: 1, maxItems: 8 },
  ),
});
const RtpParameters = Loose('RTP parameters of the producer (from mediasoup-client)', {
  codecs: Type.Array(Type.Object({}, { additionalProperties: true }), { minItems: 1, maxItems: 16 }),
});
const RtpCapabilities = Loose(
  "The client device's RTP capabilities (mediasoup-client `device.rtpCapabilities`)",
  {
    codecs: Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: 64 }),
  },
);

const body = <P extends Record<string, TSchema>>(props: P) =>
  Type.Object({ callId: CallId, ...props }, { additionalProperties: false });

/** Message type → payload schema and the media operation it becomes. */
const MESSAGES = {
  'call.join': {
    schema: body({}),
    op: (): MediaOp => ({ op: 'join' }),
  },
  'call.createTransport': {
    schema: body({ direction: Type.Union([Type.Literal('send'), Type.Literal('recv')]) }),
    op: (d: { direction: 'send' | 'recv' }): MediaOp => ({ op: 'createTransport', direction: d.direction }),
  },
  'call.connectTransport': {
    schema: body({ transportId: Id, dtlsParameters: DtlsParameters }),
    op: (d: { transportId: string; dtlsParameters: unknown }): MediaOp => ({
      op: 'connectTransport',
      transportId: d.transportId,
      dtlsParameters: d.dtlsParameters,
    }),
  },
  'call.produce': {
    schema: body({
      transportId: Id,
      kind: Type.Union([Type.Literal('audio'), Type.Literal('video')]),
      rtpParameters: RtpParameters,
    }),
    op: (d: { transportId: string; kind: 'audio' | 'video'; rtpParameters: unknown }): MediaOp => ({
      op: 'produce',
      transportId: d.transportId,
      kind: d.kind,
      rtpParameters: d.rtpParameters,
    }),
  },
  'call.consume': {
    schema: body({ transportId: Id, producerId: Id, rtpCapabilities: RtpCapabilities }),
    op: (d: { transportId: string; producerId: string; rtpCapabilities: unknown }): MediaOp => ({
      op: 'consume',
      transportId: d.transportId,
      producerId: d.producerId,
      rtpCapabilities: d.rtpCapabilities,
    }),
  },
  'call.resumeConsumer': {
    schema: body({ consumerId: Id }),
    op: (d: { consumerId: string }): MediaOp => ({ op: 'resumeConsumer', consumerId: d.consumerId }),
  },
  'call.pauseProducer': {
    schema: body({ producerId: Id }),
    op: (d: { producerId: string }): MediaOp => ({
      op: 'setProducerPaused',
      producerId: d.producerId,
      paused: true,
    }),
  },
  'call.resumeProducer': {
    schema: body({ producerId: Id }),
    op: (d: { producerId: string }): MediaOp => ({
      op: 'setProducerPaused',
      producerId: d.producerId,
      paused: false,
    }),
  },
  'call.restartIce': {
    schema: body({ transportId: Id }),
    op: (d: { transportId: string }): MediaOp => ({ op: 'restartIce', transportId: d.transportId }),
  },
  'call.leave': {
    schema: body({}),
    op: (): MediaOp => ({ op: 'leave' }),
  },
} as const;

const Metric = (description: string, maximum: number) =>
  Type.Optional(Type.Number({ minimum: 0, maximum, description }));
const ClientStats = Type.Object(
  {
    callId: CallId,
    bitrateKbps: Metric('Received bitrate', 1_000_000),
    packetLossPct: Metric('Received packets lost, %', 100),
    jitterMs: Metric('Jitter of received audio', 60_000),
    rttMs: Metric('Round trip time (candidate pair)', 60_000),
    fps: Metric('Frames decoded per second', 1000),
    width: Type.Optional(Type.Integer({ minimum: 1, maximum: 16384 })),
    height: Type.Optional(Type.Integer({ minimum: 1, maximum: 16384 })),
  },
  { additionalProperties: false },
);

/** Media is set up while the call rings (by the caller) and while it is active. */
const MEDIA_STATUSES: readonly CallStatus[] = ['ringing', 'active'];

export interface CallSignalingOptions {
  /** A participant whose connections all left the call's room ends the call after this. */
  disconnectGraceMs: number;
  logger: CallsLogger;
}

export function registerCallsOnGateway(
  gateway: Gateway,
  calls: CallsService,
  relay: CallMediaRelay,
  quality: CallQuality,
  options: CallSignalingOptions,
): { unregister: () => void; sweepAbandoned: (now?: number) => Promise<number> } {
  gateway.rooms.register(
    'call',
    {
      authorize: async (user, room) => {
        if (!user) return false;
        try {
          // Ended calls too: a client may still read the room's last events.
          await calls.participantCall(user.id, room.id, CALL_STATUSES);
          return true;
        } catch {
          return false;
        }
      },
    },
    { presence: true },
  );
  gateway.rooms.register('agent', { authorize: (user, room) => user !== null && user.id === room.id });

  for (const [type, message] of Object.entries(MESSAGES)) {
    gateway.handle(
      type,
      message.schema,
      async (ctx: RequestContext, d: { callId: string }) => {
        const user = ctx.requireUser();
        if (type === 'call.leave') {
          await calls.participantCall(user.id, d.callId, CALL_STATUSES);
          return relay.request(d.callId, user.id, { op: 'leave' });
        }
        const call = await calls.participantCall(user.id, d.callId, MEDIA_STATUSES);
        // While it rings only the caller sets up media (so it flows at once on answer): the
        // callee sees and hears nothing before answering.
        if (call.status === 'ringing' && call.callerId !== user.id)
          throw new AppError('CALL_STATE_INVALID', 'Answer the call first', { status: call.status });
        const result = await relay.request(d.callId, user.id, (message.op as (p: unknown) => MediaOp)(d));
        return type === 'call.join'
          ? { ...(result as object), iceServers: calls.iceServersFor(user.id) }
          : result;
      },
      { auth: true },
    );
  }

  // What the client's getStats saw, folded into the call's quality summary.
  gateway.handle(
    'call.stats',
    ClientStats,
    async (ctx, d) => {
      const user = ctx.requireUser();
      await calls.participantCall(user.id, d.callId, ['active']);
      const { callId, width, height, ...sample } = d;
      await quality.record(callId, 'client', sample, width && height ? { width, height } : undefined);
      return {};
    },
    { auth: true },
  );

  // Media of an ended call is released on whichever instance hosts it.
  const onEnded = (call: { id: string }) =>
    void relay
      .release(call.id)
      .catch((err: unknown) => options.logger.warn({ err, callId: call.id }, 'call release failed'));
  calls.on('ended', onEnded);

  const timers = new Set<NodeJS.Timeout>();
  const onLeave = (connection: { user: { id: string } | null }, room: string) => {
    if (!room.startsWith('call:') || !connection.user) return;
    const userId = connection.user.id;
    const callId = room.slice('call:'.length);
    // Their transports go now: a client that comes back starts afresh.
    relay.request(callId, userId, { op: 'leave' }).catch(() => undefined);
    const timer = setTimeout(() => {
      timers.delete(timer);
      void (async () => {
        const present = await gateway.presence.occupants(room);
        if (present.includes(userId)) return;
        const call = await calls.participantCall(userId, callId).catch(() => undefined);
        if (call) await calls.end(callId, 'ended', 'disconnected', userId);
      })().catch((err: unknown) => options.logger.warn({ err, callId }, 'disconnect check failed'));
    }, options.disconnectGraceMs);
    timer.unref();
    timers.add(timer);
  };
  gateway.on('leave', onLeave);

  // The fallback for connections whose instance died (no `leave` fires anywhere): presence
  // entries of a dead instance lapse, so a participant of an active call who is not in its
  // room, as seen by this instance for longer than the grace time, is gone.
  const absentSince = new Map<string, number>();
  const sweepAbandoned = async (now = Date.now()): Promise<number> => {
    const seen = new Set<string>();
    let ended = 0;
    for (const call of await calls.activeSince(new Date(now - options.disconnectGraceMs))) {
      const present = new Set(await gateway.presence.occupants(callRoom(call.id)));
      for (const userId of [call.callerId, call.agentId]) {
        if (!userId || present.has(userId)) continue;
        const key = `${call.id}:${userId}`;
        seen.add(key);
        const since = absentSince.get(key) ?? now;
        absentSince.set(key, since);
        if (
          now - since >= options.disconnectGraceMs &&
          (await calls.end(call.id, 'ended', 'disconnected', userId))
        )
          ended++;
      }
    }
    for (const key of absentSince.keys()) if (!seen.has(key)) absentSince.delete(key);
    return ended;
  };

  return {
    sweepAbandoned,
    unregister: () => {
      gateway.off('leave', onLeave);
      calls.off('ended', onEnded);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
