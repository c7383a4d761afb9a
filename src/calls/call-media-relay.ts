/**
 * Routes call signaling to the instance hosting the call's media. The first
 * instance that needs a call's router claims the call (`SET NX` of its id
 * under `{call:<id>}:media-owner`, refreshed while it hosts the call, so the
 * claim lapses when the instance dies) and creates the router in its own SFU.
 * A request arriving elsewhere is published on the owner's bus channel
 * `calls:rpc:<instance>`; the answer comes back on the sender's
 * `calls:reply:<instance>`. No answer within the timeout is
 * CALL_MEDIA_UNAVAILABLE. When a call ends, `release` tells every instance
 * (`calls:release`) so the owner closes the router.
 */
import { randomUUID } from 'node:crypto';
import type { types } from 'mediasoup';
import type { ProducerInfo, TransportInfo } from '../../media/sfu/call-media.js';
import type { Sfu } from '../../media/sfu/sfu.js';
import type { Engine } from '../platform/engine/engine.js';
import { AppError, type ErrorBody, ErrorCatalogue, type ErrorCode, isAppError } from '../platform/errors.js';

/** One signaling operation on a call's media, for one participant. */
export type MediaOp =
  | { op: 'join' }
  | { op: 'createTransport'; direction: 'send' | 'recv' }
  | { op: 'connectTransport'; transportId: string; dtlsParameters: unknown }
  | { op: 'produce'; transportId: string; kind: types.MediaKind; rtpParameters: unknown }
  | { op: 'consume'; transportId: string; producerId: string; rtpCapabilities: unknown }
  | { op: 'resumeConsumer'; consumerId: string }
  | { op: 'setProducerPaused'; producerId: string; paused: boolean }
  | { op: 'restartIce'; transportId: string }
  | { op: 'leave' };

export interface JoinResult {
  rtpCapabilities: types.RtpCapabilities;
  producers: ProducerInfo[];
}

export type { TransportInfo };

export interface RelayLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CallMediaRelayOptions {
  engine: Engine;
  sfu: Sfu;
  instanceId: string;
  /** How long a forwarded request waits for the owner's answer. */
  timeoutMs: number;
  /** Lifetime of an owner claim without refresh; it is refreshed every third of it. Default 15 s. */
  ownerTtlMs?: number;
  logger: RelayLogger;
}

interface RpcRequest {
  id: string;
  replyTo: string;
  callId: string;
  userId: string;
  op: MediaOp;
}

type RpcReply = { id: string; ok: true; data: unknown } | { id: string; ok: false; error: ErrorBody };

const ownerKey = (callId: string) => `{call:${callId}}:media-owner`;
const RELEASE_CHANNEL = 'calls:release';
/** How long a released call id is remembered, so a request racing the end cannot reopen its router. */
const RELEASED_MEMORY_MS = 60_000;

export class CallMediaRelay {
  private readonly engine: Engine;
  private readonly sfu: Sfu;
  private readonly instanceId: string;
  private readonly ownerTtlMs: number;
  private readonly pending = new Map<
    string,
    { resolve: (v: unknown) => void; reject: (e: AppError) => void; timer: NodeJS.Timeout }
  >();
  private readonly released = new Map<string, number>();
  private unsubscribers: Array<() => Promise<void>> = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  private started: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: CallMediaRelayOptions) {
    this.engine = options.engine;
    this.sfu = options.sfu;
    this.instanceId = options.instanceId;
    this.ownerTtlMs = options.ownerTtlMs ?? 15_000;
  }

  /** Subscribes to this instance's channels and starts refreshing its claims. Idempotent. */
  start(): Promise<void> {
    this.started ??= (async () => {
      this.unsubscribers = await Promise.all([
        this.engine.subscribe(`calls:rpc:${this.instanceId}`, (m) => void this.onRequest(m)),
        this.engine.subscribe(`calls:reply:${this.instanceId}`, (m) => this.onReply(m)),
        this.engine.subscribe(RELEASE_CHANNEL, (callId) => this.onRelease(callId)),
      ]);
      this.refreshTimer = setInterval(() => void this.refreshClaims(), Math.max(50, this.ownerTtlMs / 3));
      this.refreshTimer.unref();
    })();
    return this.started;
  }

  /** Runs `op` for `userId` on the instance hosting the call (claiming it if nobody does). */
  async request(callId: string, userId: string, op: MediaOp): Promise<unknown> {
    if (this.closed) throw new AppError('SHUTTING_DOWN');
    await this.start();
    let owner = await this.engine.get(ownerKey(callId));
    if (!owner) {
      if (op.op === 'leave') return {};
      const claimed = await this.engine.set(ownerKey(callId), this.instanceId, {
        ttlMs: this.ownerTtlMs,
        onlyIfAbsent: true,
      });
      owner = claimed ? this.instanceId : await this.engine.get(ownerKey(callId));
      if (!owner) throw new AppError('CALL_MEDIA_UNAVAILABLE');
    }
    if (owner === this.instanceId) return this.execute(callId, userId, op);
    return this.forward(owner, { id: randomUUID(), replyTo: this.instanceId, callId, userId, op });
  }

  /** The call is over: every instance drops its media (the owner closes the router). */
  async release(callId: string): Promise<void> {
    this.onRelease(callId);
    await this.engine.publish(RELEASE_CHANNEL, callId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new AppError('SHUTTING_DOWN'));
    }
    this.pending.clear();
    await this.started?.catch(() => undefined);
    await Promise.allSettled(this.unsubscribers.map((u) => u()));
    // Give up this instance's claims so the calls can be picked up elsewhere at once.
    await Promise.allSettled(this.sfu.callIds().map((id) => this.dropClaim(id)));
  }

  private forward(owner: string, request: RpcRequest): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(request.id);
        reject(new AppError('CALL_MEDIA_UNAVAILABLE'));
      }, this.options.timeoutMs);
      this.pending.set(request.id, { resolve, reject, timer });
      this.engine.publish(`calls:rpc:${owner}`, JSON.stringify(request)).catch(() => {
        clearTimeout(timer);
        this.pending.delete(request.id);
        reject(new AppError('CALL_MEDIA_UNAVAILABLE'));
      });
    });
  }

  private async onRequest(message: string): Promise<void> {
    let request: RpcRequest;
    try {
      request = JSON.parse(message) as RpcRequest;
    } catch {
      return;
    }
    let reply: RpcReply;
    try {
      reply = {
        id: request.id,
        ok: true,
        data: await this.execute(request.callId, request.userId, request.op),
      };
    } catch (err) {
      reply = { id: request.id, ok: false, error: this.toErrorBody(err, request) };
    }
    await this.engine
      .publish(`calls:reply:${request.replyTo}`, JSON.stringify(reply))
      .catch((err: unknown) =>
        this.options.logger.warn({ err, callId: request.callId }, 'call reply failed'),
      );
  }

  private onReply(message: string): void {
    let reply: RpcReply;
    try {
      reply = JSON.parse(message) as RpcReply;
    } catch {
      return;
    }
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    clearTimeout(waiter.timer);
    if (reply.ok) waiter.resolve(reply.data);
    else {
      const code: ErrorCode = reply.error.code in ErrorCatalogue ? reply.error.code : 'INTERNAL';
      waiter.reject(new AppError(code, reply.error.message, reply.error.details));
    }
  }

  private onRelease(callId: string): void {
    const now = Date.now();
    this.released.set(callId, now);
    for (const [id, at] of this.released) if (now - at > RELEASED_MEMORY_MS) this.released.delete(id);
    if (this.sfu.get(callId)) {
      this.sfu.closeCall(callId);
      void this.dropClaim(callId);
    }
  }

  private async dropClaim(callId: string): Promise<void> {
    if ((await this.engine.get(ownerKey(callId))) === this.instanceId)
      await this.engine.del(ownerKey(callId));
  }

  private async refreshClaims(): Promise<void> {
    for (const callId of this.sfu.callIds())
      await this.engine
        .set(ownerKey(callId), this.instanceId, { ttlMs: this.ownerTtlMs })
        .catch((err: unknown) => this.options.logger.warn({ err, callId }, 'call claim refresh failed'));
  }

  /** Runs an operation against this instance's SFU. */
  private async execute(callId: string, userId: string, op: MediaOp): Promise<unknown> {
    if (op.op === 'leave') {
      this.sfu.get(callId)?.leave(userId);
      return {};
    }
    if (this.released.has(callId)) throw new AppError('CALL_STATE_INVALID', 'The call has ended');
    const media = await this.sfu.open(callId);
    if (this.released.has(callId)) {
      this.sfu.closeCall(callId);
      throw new AppError('CALL_STATE_INVALID', 'The call has ended');
    }
    switch (op.op) {
      case 'join':
        return { rtpCapabilities: media.rtpCapabilities, producers: media.producersFor(userId) };
      case 'createTransport':
        return media.createTransport(userId, op.direction);
      case 'connectTransport':
        await media.connectTransport(userId, op.transportId, op.dtlsParameters);
        return {};
      case 'produce':
        return media.produce(userId, op.transportId, op.kind, op.rtpParameters);
      case 'consume':
        return media.consume(userId, op.transportId, op.producerId, op.rtpCapabilities);
      case 'resumeConsumer':
        await media.resumeConsumer(userId, op.consumerId);
        return {};
      case 'setProducerPaused':
        await media.setProducerPaused(userId, op.producerId, op.paused);
        return {};
      case 'restartIce':
        return { iceParameters: await media.restartIce(userId, op.transportId) };
    }
  }

  private toErrorBody(err: unknown, request: RpcRequest): ErrorBody {
    if (isAppError(err)) return err.toJSON();
    this.options.logger.error(
      { err, callId: request.callId, op: request.op.op },
      'call media request failed',
    );
    return new AppError('INTERNAL').toJSON();
  }
}
