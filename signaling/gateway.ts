/**
 * The realtime gateway: the `/ws` endpoint, its typed JSON protocol, rooms
 * with cross-instance fan-out through the Engine bus, per-room sequencing
 * with reconnect recovery, and presence. docs/protocol.md describes the wire
 * side; this file is the server side.
 *
 * Extension points for domain modules (chat, live, calls):
 * - `gateway.handle(type, schema, handler)` adds an inbound message type;
 *   the handler gets the connection and the validated payload, returns the
 *   reply data or throws an AppError (sent as an error frame).
 * - `gateway.rooms.register(type, authorizer, options)` decides who may join
 *   or publish in a room type (e.g. `conv:` members only).
 * - `gateway.publish(room, event, data)` sends an event to everyone in a
 *   room on every instance (sequenced and kept for recovery, or ephemeral).
 * - `gateway.authorize(user, room, 'publish')` for handlers acting for a client.
 * - Events: `connection`, `disconnect`, `join`, `leave`, `presence`, `evict`.
 *
 * Channel layout: one bus channel per room (`r:<room>`), subscribed while the
 * instance has members in it (plus a short linger). Instances only receive
 * traffic for rooms they serve; Redis pub/sub handles many channels cheaply,
 * and the price (a SUBSCRIBE round trip on a room's first local join) is
 * covered by the join's own log read. One shared channel would make every
 * instance parse every room's traffic.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Static, TSchema } from '@sinclair/typebox';
import type { ValidateFunction } from 'ajv';
import WebSocket, { WebSocketServer } from 'ws';
import type { Config } from '../config/schema.js';
import type { AuthUser } from '../src/auth/permissions.js';
import { AppError, isAppError } from '../src/platform/errors.js';
import { findNulCharacter } from '../src/platform/http/validation.js';
import { Connection, type ConnectionInfo } from './connection.js';
import { roomKeys } from './gateway-scripts.js';
import { Presence, type PresenceChange, type UserPresence } from './presence.js';
import {
  type AuthPayload,
  BuiltinSchemas,
  CloseCode,
  compileFrameValidator,
  describeValidationError,
  errorBody,
  errorFrame,
  eventBody,
  type JoinPayload,
  type LeavePayload,
  okFrame,
  type PresencePayload,
  type RequestId,
} from './protocol.js';
import { RoomChannel, type RoomMember } from './room-channel.js';
import { type RoomAction, RoomRegistry } from './rooms.js';

export type { ConnectionInfo } from './connection.js';
export type { PresenceChange, UserPresence } from './presence.js';
export { CloseCode } from './protocol.js';
export type { RoomAction, RoomAuthorizer, RoomName, RoomTypeOptions } from './rooms.js';

/** Verifies access tokens; `TokenService` satisfies it. Throws AppError TOKEN_INVALID / TOKEN_EXPIRED. */
export interface TokenVerifier {
  verifySync(token: string): AuthUser;
}

/** A pino logger satisfies this; missing levels are dropped. */
export interface GatewayLogger {
  debug?(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
  warn?(obj: object, msg: string): void;
  error?(obj: object, msg: string): void;
}

type Log = Required<GatewayLogger>;

function normalizeLogger(logger: GatewayLogger | undefined): Log {
  const noop = () => undefined;
  const bind = (fn: ((obj: object, msg: string) => void) | undefined) => (fn ? fn.bind(logger) : noop);
  return {
    debug: bind(logger?.debug),
    info: bind(logger?.info),
    warn: bind(logger?.warn),
    error: bind(logger?.error),
  };
}

export interface GatewayOptions {
  /** Engine for history, bus and presence; shared by all instances that should act as one. */
  engine: import('../src/platform/engine/engine.js').Engine;
  /** Verifies tokens from `?token=` and `auth` frames. */
  tokens: TokenVerifier;
  logger?: GatewayLogger;
  /** URL path of the endpoint. Default `/ws`. */
  path?: string;
  /** Inbound frames above this many bytes get FRAME_TOO_LARGE (connection stays). Default 16384. */
  maxMessageBytes?: number;
  /** Hard inbound frame limit: above it ws closes the connection with 1009. Default 65536. */
  maxPayloadBytes?: number;
  /** Anonymous connections must `auth` or `join` within this many ms (else close 4002). Default 10000. */
  authTimeoutMs?: number;
  /** Ping interval; an unanswered ping drops the socket at the next tick. Also presence refresh. Default 20000. */
  heartbeatIntervalMs?: number;
  /** Presence entry lifetime without refresh; at least 1.5 x heartbeatIntervalMs. Default 45000. */
  presenceTtlMs?: number;
  /** How often every instance looks for lapsed presence entries. Default heartbeatIntervalMs / 2. */
  presenceSweepIntervalMs?: number;
  /** Token bucket refill: sustained inbound frames per second per connection. Default 20. */
  ratePerSecond?: number;
  /** Token bucket size: frames allowed in a burst. Default 40. */
  rateBurst?: number;
  /** Consecutive rate-limited frames before closing with 4008. Default 20. */
  floodCloseAfter?: number;
  /** Outbound bytes queued above which a client is closed with 4009. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Rooms one connection may be in. Default 100. */
  maxRoomsPerConnection?: number;
  /** Events kept per room for recovery. Default 1000. */
  historyMaxLen?: number;
  /** History lifetime after the last event of a room nobody is in, ms. Default 1 h. */
  historyTtlMs?: number;
  /** How long an out-of-order publication waits for its predecessors before the log is read. Default 100 ms. */
  gapWaitMs?: number;
  /** How long a room stays subscribed after its last local member left. Default 5000 ms. */
  roomLingerMs?: number;
  /** Events per log read during a recovery replay. Default 200. */
  replayBatch?: number;
  /** After a policy close (flood, slow consumer) the socket is destroyed if still open after this. Default 2000 ms. */
  closeGraceMs?: number;
  /** Send fan-out frames pre-framed through ws' Sender (one header per publication). Default true. */
  preFrame?: boolean;
  /** Identifies this instance in presence entries. Default random. */
  instanceId?: string;
}

/** What a handler gets besides its payload. */
export interface RequestContext {
  readonly connection: ConnectionInfo;
  /** The signed-in user, or null for anonymous connections. */
  readonly user: AuthUser | null;
  readonly gateway: Gateway;
  /** The signed-in user; throws UNAUTHENTICATED for anonymous connections. */
  requireUser(): AuthUser;
  /**
   * Sends the `ok` reply now (for handlers that must order it before other
   * frames); the handler's return value is then ignored.
   */
  reply(data?: unknown): void;
}

export type MessageHandler<S extends TSchema> = (ctx: RequestContext, payload: Static<S>) => unknown;

export interface HandlerOptions {
  /** Anonymous connections get UNAUTHENTICATED. Default false. */
  auth?: boolean;
}

/** Why the gateway closed a connection itself. */
export type EvictReason =
  | 'auth_failed'
  | 'auth_timeout'
  | 'token_expired'
  | 'flood'
  | 'slow_consumer'
  | 'heartbeat';

/** Typed events of the gateway. */
export interface GatewayEvents {
  connection: [connection: ConnectionInfo];
  disconnect: [connection: ConnectionInfo, code: number, reason: string];
  join: [connection: ConnectionInfo, room: string];
  leave: [connection: ConnectionInfo, room: string];
  /** A user came online or went offline; emitted once cluster-wide, by the instance that saw it. */
  presence: [change: PresenceChange];
  /** The gateway is closing a connection for a policy reason. */
  evict: [connection: ConnectionInfo, reason: EvictReason, code: number];
}

export interface PublishOptions {
  /**
   * Not sequenced and not kept for recovery (typing indicators, presence);
   * delivered to members connected right now. Default false.
   */
  ephemeral?: boolean;
}

export interface GatewayStats {
  connections: number;
  anonymous: number;
  rooms: number;
  presenceUsers: number;
}

interface Handler {
  validate: ValidateFunction;
  run: (ctx: RequestContext, payload: unknown) => unknown;
  auth: boolean;
}

const EVENT_NAME = /^[a-z][A-Za-z0-9._-]{0,63}$/;
const MESSAGE_TYPE = EVENT_NAME;
const USER_ID = /^[A-Za-z0-9._-]{1,128}$/;
const BUILTIN_TYPES = new Set(['auth', 'join', 'leave', 'ping', 'presence']);
const MAX_PRESENCE_MEMBERS = 200;

/** Gateway options from the validated configuration. */
export function gatewayOptionsFromConfig(
  config: Config,
): Omit<GatewayOptions, 'engine' | 'tokens' | 'logger'> {
  return {
    maxMessageBytes: config.WS_MAX_MESSAGE_BYTES,
    maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
    authTimeoutMs: config.WS_AUTH_TIMEOUT_MS,
    heartbeatIntervalMs: config.WS_HEARTBEAT_INTERVAL_MS,
    presenceTtlMs: config.WS_PRESENCE_TTL_MS,
    ratePerSecond: config.WS_RATE_PER_SECOND,
    rateBurst: config.WS_RATE_BURST,
    floodCloseAfter: config.WS_FLOOD_CLOSE_AFTER,
    maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
    maxRoomsPerConnection: config.WS_MAX_ROOMS_PER_CONNECTION,
    historyMaxLen: config.WS_HISTORY_MAX_LEN,
    historyTtlMs: config.WS_HISTORY_TTL_MS,
  };
}

/** The `exp` claim of a token already verified by the TokenService, in ms. */
function tokenExpiry(token: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: unknown;
    };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

const INVALID_JSON = Symbol('invalid JSON');

function parseJson(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    return INVALID_JSON;
  }
}

/** A frame's request id when it is a usable one (1-64 characters, or a safe non-negative integer). */
function requestIdOf(frame: unknown): RequestId | undefined {
  if (typeof frame !== 'object' || frame === null) return undefined;
  const { id } = frame as { id?: unknown };
  return (typeof id === 'string' && id.length > 0 && id.length <= 64) ||
    (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0)
    ? (id as RequestId)
    : undefined;
}

function toAppError(err: unknown): AppError {
  return isAppError(err) ? err : new AppError('INTERNAL');
}

export class Gateway extends EventEmitter<GatewayEvents> {
  /** Room types and their authorizers; domain modules register theirs here. */
  readonly rooms = new RoomRegistry();
  readonly instanceId: string;
  readonly presence: Presence;
  private readonly engine: GatewayOptions['engine'];
  private readonly tokens: TokenVerifier;
  private readonly logger: Log;
  private readonly path: string;
  private readonly maxMessageBytes: number;
  private readonly authTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;
  private readonly floodCloseAfter: number;
  private readonly maxBufferedBytes: number;
  private readonly maxRooms: number;
  private readonly historyMaxLen: number;
  private readonly historyTtlMs: number;
  private readonly gapWaitMs: number;
  private readonly roomLingerMs: number;
  private readonly replayBatch: number;
  private readonly closeGraceMs: number;
  private readonly limits: ConstructorParameters<typeof Connection>[4];
  private readonly wss: WebSocketServer;
  private readonly handlers = new Map<string, Handler>();
  private readonly connections = new Set<Connection>();
  private readonly channels = new Map<string, RoomChannel>();
  private server: Server | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private closed = false;
  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    this.handleUpgrade(req, socket, head);

  constructor(options: GatewayOptions) {
    super();
    this.engine = options.engine;
    this.tokens = options.tokens;
    this.logger = normalizeLogger(options.logger);
    this.path = options.path ?? '/ws';
    this.maxMessageBytes = options.maxMessageBytes ?? 16384;
    const maxPayload = options.maxPayloadBytes ?? 65536;
    this.authTimeoutMs = options.authTimeoutMs ?? 10_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 20_000;
    const presenceTtlMs = options.presenceTtlMs ?? 45_000;
    this.floodCloseAfter = options.floodCloseAfter ?? 20;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1 << 20;
    this.maxRooms = options.maxRoomsPerConnection ?? 100;
    this.historyMaxLen = options.historyMaxLen ?? 1000;
    this.historyTtlMs = options.historyTtlMs ?? 3_600_000;
    this.gapWaitMs = options.gapWaitMs ?? 100;
    this.roomLingerMs = options.roomLingerMs ?? 5000;
    this.replayBatch = options.replayBatch ?? 200;
    this.closeGraceMs = options.closeGraceMs ?? 2000;
    this.instanceId = options.instanceId ?? randomBytes(8).toString('hex');
    if (maxPayload < this.maxMessageBytes)
      throw new RangeError('maxPayloadBytes must be at least maxMessageBytes');
    if (presenceTtlMs < this.heartbeatIntervalMs * 1.5)
      throw new RangeError(
        `presence TTL (${presenceTtlMs} ms) must be at least 1.5 x the heartbeat interval (${this.heartbeatIntervalMs} ms)`,
      );
    this.limits = {
      ratePerSecond: options.ratePerSecond ?? 20,
      rateBurst: options.rateBurst ?? 40,
      maxBufferedBytes: this.maxBufferedBytes,
      preFrame: options.preFrame ?? true,
    };
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload,
      // Compression would cost CPU per socket per message and defeat pre-framing.
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.presence = new Presence({
      engine: this.engine,
      instanceId: this.instanceId,
      ttlMs: presenceTtlMs,
      sweepIntervalMs:
        options.presenceSweepIntervalMs ?? Math.max(50, Math.floor(this.heartbeatIntervalMs / 2)),
      logger: this.logger,
      onUserChange: (change) => this.emit('presence', change),
      onRoomChange: (room, joined, left) => this.publishRoomPresence(room, joined, left),
    });
    this.registerBuiltins();
  }

  // ---- public API ----------------------------------------------------------------

  /**
   * Starts serving `path` on `server`'s upgrade requests, the heartbeat and
   * the presence sweeper. Call once.
   */
  attach(server: Server): void {
    if (this.closed) throw new Error('gateway is closed');
    if (this.server) throw new Error('gateway is already attached');
    this.server = server;
    server.on('upgrade', this.onUpgrade);
    this.heartbeat = setInterval(() => this.tick(), this.heartbeatIntervalMs);
    this.heartbeat.unref();
    this.presence.start();
  }

  /**
   * Adds an inbound message type. `schema` validates `d` (strictly: no
   * coercion; objects should say `additionalProperties: false`). The
   * handler's return value becomes the `ok` reply's `d`; a thrown AppError
   * becomes an `error` reply with its code. Frames of one connection are
   * handled one at a time, in order.
   */
  handle<S extends TSchema>(
    type: string,
    schema: S,
    handler: MessageHandler<S>,
    options: HandlerOptions = {},
  ): void {
    if (this.handlers.has(type))
      throw new Error(`message type ${type} is ${BUILTIN_TYPES.has(type) ? 'built in' : 'already handled'}`);
    if (!MESSAGE_TYPE.test(type)) throw new RangeError(`invalid message type ${JSON.stringify(type)}`);
    this.handlers.set(type, {
      validate: compileFrameValidator(type, schema),
      run: handler as Handler['run'],
      auth: options.auth ?? false,
    });
  }

  /** The inbound message types this gateway answers, built in and added with `handle` (sorted). */
  messageTypes(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /**
   * Publishes `event` with `data` to everyone in `room` on every instance.
   * Sequenced events are appended to the room's history first (that assigns
   * `seq`) and can be recovered after a reconnect; ephemeral ones cannot and
   * resolve with seq 0. `data` is serialized once, here.
   */
  async publish(
    room: string,
    event: string,
    data?: unknown,
    options: PublishOptions = {},
  ): Promise<{ seq: number }> {
    if (!this.rooms.resolve(room)) throw new AppError('ROOM_INVALID', undefined, { room });
    if (!EVENT_NAME.test(event)) throw new RangeError(`invalid event name ${JSON.stringify(event)}`);
    const body = eventBody(event, data);
    const channel = roomKeys(room).channel;
    if (options.ephemeral) {
      await this.engine.publish(channel, `0:${body}`);
      return { seq: 0 };
    }
    const seq = await this.engine.logAppend(roomKeys(room).history, body, {
      maxLen: this.historyMaxLen,
      ttlMs: this.historyTtlMs,
    });
    // Local members need not wait for the bus round trip; the bus copy is then a duplicate and dropped.
    this.channels.get(room)?.receive(seq, body);
    await this.engine.publish(channel, `${seq}:${body}`);
    return { seq };
  }

  /** Whether `user` may `action` in `room` under the registered authorizers. */
  authorize(user: AuthUser | null, room: string, action: RoomAction): Promise<boolean> {
    return this.rooms.authorize(user, room, action);
  }

  /** Online state and last-seen time of users, across instances. */
  presenceOf(userIds: readonly string[]): Promise<UserPresence[]> {
    return this.presence.status(userIds);
  }

  stats(): GatewayStats {
    let anonymous = 0;
    for (const conn of this.connections) if (!conn.user) anonymous++;
    return {
      connections: this.connections.size,
      anonymous,
      rooms: this.channels.size,
      presenceUsers: this.presence.localCounts.users,
    };
  }

  /**
   * Stops accepting connections, closes every socket with 1001, removes this
   * instance's presence, unsubscribes its rooms. Idempotent; later calls
   * return the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    this.server?.off('upgrade', this.onUpgrade);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const sockets = [...this.connections];
    const allClosed = Promise.all(
      sockets.map(
        (conn) =>
          new Promise<void>((resolve) => {
            if (conn.ws.readyState === WebSocket.CLOSED) resolve();
            else conn.ws.once('close', () => resolve());
          }),
      ),
    );
    for (const conn of sockets) {
      conn.closing = true;
      try {
        conn.ws.close(CloseCode.GOING_AWAY, 'server shutting down');
      } catch {
        conn.ws.terminate();
      }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([allClosed, new Promise<void>((r) => (timer = setTimeout(r, this.closeGraceMs)))]);
    clearTimeout(timer);
    for (const conn of sockets) if (conn.ws.readyState !== WebSocket.CLOSED) conn.ws.terminate();
    for (const conn of sockets) this.cleanup(conn, CloseCode.GOING_AWAY, 'server shutting down');
    await this.presence.close().catch(() => undefined);
    await Promise.all([...this.channels.values()].map((ch) => ch.close().catch(() => undefined)));
    this.channels.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  // ---- connections ---------------------------------------------------------------

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== this.path) {
      // Another listener may own that path; answer only when nobody else will.
      if (this.server?.listenerCount('upgrade') === 1) rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    if (this.closed) {
      rejectUpgrade(socket, 503, 'Service Unavailable');
      return;
    }
    const token = url.searchParams.get('token');
    let user: AuthUser | null = null;
    let authError: AppError | undefined;
    if (token) {
      try {
        user = this.tokens.verifySync(token);
      } catch (err) {
        authError = isAppError(err) ? err : new AppError('TOKEN_INVALID');
      }
    }
    const ip = req.socket.remoteAddress ?? '';
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.onConnection(
        new Connection(randomUUID(), ws, ip, user, this.limits, this.onSlowConsumer),
        token,
        authError,
      );
    });
  }

  /**
   * Shared by every connection: a handler created per upgrade would keep that
   * upgrade's request (headers, token) alive as long as the socket.
   */
  private readonly onSlowConsumer = (conn: Connection): void =>
    this.evict(conn, 'slow_consumer', CloseCode.SLOW_CONSUMER, 'slow consumer');

  private onConnection(conn: Connection, token: string | null, authError: AppError | undefined): void {
    const { ws } = conn;
    ws.on('error', (err) => this.logger.debug({ err, connection: conn.id }, 'websocket error'));
    ws.on('close', (code, reason) => this.cleanup(conn, code, reason.toString()));
    if (this.closed) {
      ws.close(CloseCode.GOING_AWAY, 'server shutting down');
      return;
    }
    if (authError) {
      const expired = authError.code === 'TOKEN_EXPIRED';
      conn.sendText(errorFrame(undefined, authError.toJSON()));
      this.evict(
        conn,
        expired ? 'token_expired' : 'auth_failed',
        expired ? CloseCode.TOKEN_EXPIRED : CloseCode.AUTH_FAILED,
        authError.message,
      );
      return;
    }
    this.connections.add(conn);
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('message', (data, isBinary) => this.onMessage(conn, data as Buffer, isBinary));
    if (conn.user) {
      conn.expiresAt = token ? tokenExpiry(token) : undefined;
      this.presence.connect(conn.user.id, conn.user.displayName);
    } else {
      conn.authTimer = setTimeout(() => {
        conn.authTimer = undefined;
        if (!conn.user && !conn.rooms?.size)
          this.evict(conn, 'auth_timeout', CloseCode.AUTH_TIMEOUT, 'no auth or join in time');
      }, this.authTimeoutMs);
      conn.authTimer.unref();
    }
    conn.sendText(
      JSON.stringify({
        t: 'hello',
        d: {
          connectionId: conn.id,
          userId: conn.user?.id ?? null,
          instance: this.instanceId,
          heartbeatMs: this.heartbeatIntervalMs,
          maxMessageBytes: this.maxMessageBytes,
        },
      }),
    );
    this.emit('connection', conn);
  }

  /** Closes a connection for a policy reason with a documented code; destroys it if the close stalls. */
  private evict(conn: Connection, reason: EvictReason, code: number, message: string): void {
    if (conn.closing || conn.closed) return;
    conn.closing = true;
    this.emit('evict', conn, reason, code);
    try {
      conn.ws.close(code, message);
    } catch {
      conn.ws.terminate();
      return;
    }
    setTimeout(() => {
      if (conn.ws.readyState !== WebSocket.CLOSED) conn.ws.terminate();
    }, this.closeGraceMs).unref();
  }

  /** Forgets a closed connection: rooms, presence, timers. Runs once. */
  private cleanup(conn: Connection, code: number, reason: string): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.closing = true;
    conn.queue.length = 0;
    if (conn.authTimer) clearTimeout(conn.authTimer);
    this.connections.delete(conn);
    if (conn.rooms) for (const member of [...conn.rooms.values()]) this.leaveRoom(conn, member);
    if (conn.user) this.presence.disconnect(conn.user.id);
    this.emit('disconnect', conn, code, reason);
  }

  private tick(): void {
    const now = Date.now();
    for (const conn of this.connections) {
      if (conn.closing) continue;
      if (!conn.alive) {
        this.emit('evict', conn, 'heartbeat', 1006);
        conn.closing = true;
        conn.ws.terminate();
        continue;
      }
      if (conn.expiresAt !== undefined && now >= conn.expiresAt) {
        conn.sendText(errorFrame(undefined, errorBody('TOKEN_EXPIRED')));
        this.evict(conn, 'token_expired', CloseCode.TOKEN_EXPIRED, 'token expired');
        continue;
      }
      conn.alive = false;
      try {
        conn.ws.ping();
      } catch {
        // the socket is closing; the close event cleans up
      }
    }
    const touchEvery = Math.max(1000, Math.min(this.historyTtlMs / 3, 60_000));
    for (const channel of this.channels.values()) void channel.touch(now, touchEvery);
    void this.presence.refresh();
  }

  // ---- inbound frames -------------------------------------------------------------

  private onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (conn.closing) return;
    conn.alive = true;
    if (!conn.takeToken()) {
      if (conn.strikes > this.floodCloseAfter) {
        this.evict(conn, 'flood', CloseCode.FLOOD, 'too many messages');
        return;
      }
      // With the request's id, so that a client can fail that request at once and retry it.
      const id = isBinary || data.length > this.maxMessageBytes ? undefined : requestIdOf(parseJson(data));
      conn.sendText(
        errorFrame(
          id,
          errorBody('RATE_LIMITED', 'Too many messages; slow down', { retryAfterMs: conn.msUntilToken() }),
        ),
      );
      return;
    }
    if (isBinary) {
      conn.sendText(
        errorFrame(undefined, errorBody('PROTOCOL_INVALID_FRAME', 'Binary frames are not supported')),
      );
      return;
    }
    if (data.length > this.maxMessageBytes) {
      conn.sendText(
        errorFrame(
          undefined,
          errorBody('FRAME_TOO_LARGE', undefined, { limit: this.maxMessageBytes, size: data.length }),
        ),
      );
      return;
    }
    const frame = parseJson(data);
    if (frame === INVALID_JSON) {
      conn.sendText(
        errorFrame(undefined, errorBody('PROTOCOL_INVALID_FRAME', 'The frame is not valid JSON')),
      );
      return;
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      conn.sendText(errorFrame(undefined, errorBody('PROTOCOL_INVALID_FRAME')));
      return;
    }
    const { t } = frame as { t?: unknown };
    const id = requestIdOf(frame);
    if (typeof t !== 'string') {
      conn.sendText(errorFrame(id, errorBody('PROTOCOL_INVALID_FRAME', 'The frame has no string type `t`')));
      return;
    }
    const handler = this.handlers.get(t);
    if (!handler) {
      conn.sendText(
        errorFrame(
          id,
          errorBody('PROTOCOL_UNKNOWN_TYPE', undefined, { type: t.length <= 64 ? t : `${t.slice(0, 64)}…` }),
        ),
      );
      return;
    }
    if (!handler.validate(frame)) {
      const { message, details } = describeValidationError(handler.validate.errors);
      conn.sendText(errorFrame(id, errorBody('VALIDATION_FAILED', message, details)));
      return;
    }
    const nulAt = findNulCharacter(frame);
    if (nulAt !== null) {
      conn.sendText(
        errorFrame(
          id,
          errorBody('VALIDATION_FAILED', `${nulAt} must not contain U+0000`, { path: nulAt, keyword: 'nul' }),
        ),
      );
      return;
    }
    if (conn.queue.length >= this.limits.rateBurst) {
      conn.sendText(errorFrame(id, errorBody('RATE_LIMITED', 'Too many requests in progress')));
      return;
    }
    conn.queue.push(() => this.runHandler(conn, handler, id, (frame as { d?: unknown }).d));
    if (!conn.processing) void this.processQueue(conn);
  }

  private async processQueue(conn: Connection): Promise<void> {
    conn.processing = true;
    try {
      for (let job = conn.queue.shift(); job && !conn.closed; job = conn.queue.shift()) await job();
    } finally {
      conn.processing = false;
    }
  }

  private async runHandler(conn: Connection, handler: Handler, id: RequestId | undefined, payload: unknown) {
    let replied = false;
    const ctx: RequestContext = {
      connection: conn,
      user: conn.user,
      gateway: this,
      requireUser: () => {
        if (!conn.user) throw new AppError('UNAUTHENTICATED');
        return conn.user;
      },
      reply: (data?: unknown) => {
        if (replied) return;
        replied = true;
        conn.sendText(okFrame(id, data));
      },
    };
    try {
      if (handler.auth && !conn.user) throw new AppError('UNAUTHENTICATED');
      const result = await handler.run(ctx, payload);
      if (!replied) ctx.reply(result);
    } catch (err) {
      const appErr = toAppError(err);
      if (appErr.statusCode >= 500)
        this.logger.error({ err, connection: conn.id }, 'websocket handler failed');
      if (!replied) {
        replied = true;
        conn.sendText(errorFrame(id, appErr.toJSON()));
      }
    }
  }

  // ---- built-in types --------------------------------------------------------------

  private registerBuiltins(): void {
    this.handle('auth', BuiltinSchemas.auth, (ctx, d) => this.onAuth(ctx.connection as Connection, d));
    this.handle('join', BuiltinSchemas.join, (ctx, d) => this.onJoin(ctx, ctx.connection as Connection, d));
    this.handle('leave', BuiltinSchemas.leave, (ctx, d) => this.onLeave(ctx.connection as Connection, d));
    this.handle('ping', BuiltinSchemas.ping, () => ({ ts: Date.now() }));
    this.handle('presence', BuiltinSchemas.presence, (ctx, d) =>
      this.onPresence(ctx, ctx.connection as Connection, d),
    );
  }

  private onAuth(conn: Connection, d: AuthPayload) {
    const user = this.tokens.verifySync(d.token);
    if (conn.user && conn.user.id !== user.id)
      throw new AppError('FORBIDDEN', 'This connection is signed in as another user');
    conn.expiresAt = tokenExpiry(d.token);
    if (!conn.user) {
      conn.user = user;
      if (conn.authTimer) clearTimeout(conn.authTimer);
      conn.authTimer = undefined;
      this.presence.connect(user.id, user.displayName);
      if (conn.rooms)
        for (const room of conn.rooms.keys())
          if (this.rooms.resolve(room)?.type.presence) this.presence.enter(room, user.id);
    } else {
      conn.user = user;
    }
    return { userId: user.id, roles: user.roles, displayName: user.displayName };
  }

  private async onJoin(ctx: RequestContext, conn: Connection, d: JoinPayload) {
    const resolved = this.rooms.resolve(d.room);
    if (!resolved) throw new AppError('ROOM_INVALID', undefined, { room: d.room });
    const existing = conn.member(d.room);
    if (existing) return { room: d.room, lastSeq: existing.cursor };
    if ((conn.rooms?.size ?? 0) >= this.maxRooms)
      throw new AppError('TOO_MANY_ROOMS', undefined, { limit: this.maxRooms });
    if (!(await resolved.type.authorizer.authorize(conn.user, resolved.room, 'join')))
      throw new AppError('ROOM_FORBIDDEN', undefined, { room: d.room });
    if (conn.closed) return undefined;
    const channel = this.acquire(d.room);
    try {
      try {
        await channel.ready;
      } catch (err) {
        this.logger.warn({ err, room: d.room }, 'room subscription failed');
        throw new AppError('SERVICE_UNAVAILABLE', 'Realtime delivery is unavailable; try again');
      }
      if (conn.closed) return undefined;
      const onAdded = (member: RoomMember) => {
        conn.addMember(channel, member);
        if (conn.authTimer) clearTimeout(conn.authTimer);
        conn.authTimer = undefined;
        if (resolved.type.presence && conn.user) this.presence.enter(d.room, conn.user.id);
        this.emit('join', conn, d.room);
      };
      if (d.lastSeq === undefined) {
        const member = channel.addLive(conn);
        onAdded(member);
        ctx.reply({ room: d.room, lastSeq: member.cursor });
        return undefined;
      }
      await channel.recover(conn, d.lastSeq, onAdded, (result) =>
        ctx.reply({
          room: d.room,
          lastSeq: result.lastSeq,
          recovered: result.recovered,
          replayed: result.replayed,
          ...(result.reason ? { reason: result.reason } : {}),
        }),
      );
      return undefined;
    } finally {
      channel.holds--;
      this.release(channel);
    }
  }

  private onLeave(conn: Connection, d: LeavePayload) {
    const member = conn.member(d.room);
    if (!member) throw new AppError('NOT_JOINED', undefined, { room: d.room });
    this.leaveRoom(conn, member);
    return { room: d.room };
  }

  private async onPresence(ctx: RequestContext, conn: Connection, d: PresencePayload) {
    if ('users' in d) {
      ctx.requireUser();
      for (const id of d.users)
        if (!USER_ID.test(id)) throw new AppError('VALIDATION_FAILED', `/d/users contains an invalid id`);
      return { users: await this.presence.status(d.users) };
    }
    if (!conn.hasJoined(d.room)) throw new AppError('NOT_JOINED', undefined, { room: d.room });
    const resolved = this.rooms.resolve(d.room)!;
    const inRoom = resolved.type.presence ? await this.presence.occupants(d.room, MAX_PRESENCE_MEMBERS) : [];
    const ids = resolved.type.members
      ? (await resolved.type.members(resolved.room)).slice(0, MAX_PRESENCE_MEMBERS)
      : inRoom;
    if (!resolved.type.presence && !resolved.type.members)
      return { room: d.room, tracked: false, members: [] };
    const present = new Set(inRoom);
    const statuses = await this.presence.status(ids.filter((id) => USER_ID.test(id)));
    return {
      room: d.room,
      tracked: true,
      members: statuses.map((s) => ({ ...s, inRoom: present.has(s.userId) })),
    };
  }

  // ---- rooms --------------------------------------------------------------------

  /** The room's channel, created and started if needed, held open until `release`. */
  private acquire(room: string): RoomChannel {
    let channel = this.channels.get(room);
    if (!channel || channel.state === 'closed') {
      const created = new RoomChannel(room, {
        engine: this.engine,
        historyTtlMs: this.historyTtlMs,
        gapWaitMs: this.gapWaitMs,
        replayBatch: this.replayBatch,
        logger: this.logger,
        waitWritable: (conn) => this.waitWritable(conn),
      });
      this.channels.set(room, created);
      created.start().catch(() => {
        if (this.channels.get(room) === created) this.channels.delete(room);
        void created.close();
      });
      channel = created;
    }
    if (channel.lingerTimer) {
      clearTimeout(channel.lingerTimer);
      channel.lingerTimer = undefined;
    }
    channel.holds++;
    return channel;
  }

  /** Closes a channel nobody uses any more, after the linger time. */
  private release(channel: RoomChannel): void {
    if (channel.refs > 0 || channel.lingerTimer || channel.state === 'closed') return;
    const drop = () => {
      channel.lingerTimer = undefined;
      if (channel.refs > 0) return;
      if (this.channels.get(channel.name) === channel) this.channels.delete(channel.name);
      void channel
        .close()
        .catch((err) => this.logger.warn({ err, room: channel.name }, 'unsubscribe failed'));
    };
    if (this.roomLingerMs <= 0 || this.closed) {
      drop();
      return;
    }
    channel.lingerTimer = setTimeout(drop, this.roomLingerMs);
    channel.lingerTimer.unref();
  }

  private leaveRoom(conn: Connection, member: RoomMember): void {
    const channel = member.channel;
    conn.removeMember(channel.name);
    channel.removeMember(member);
    if (conn.user && this.rooms.resolve(channel.name)?.type.presence)
      this.presence.exit(channel.name, conn.user.id);
    this.emit('leave', conn, channel.name);
    this.release(channel);
  }

  /** Waits (polling) until a replaying connection's outbound buffer is below half the bound. */
  private async waitWritable(conn: Connection): Promise<void> {
    const deadline = Date.now() + this.closeGraceMs * 5;
    while (!conn.closed && conn.ws.bufferedAmount > this.maxBufferedBytes / 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
  }

  private publishRoomPresence(room: string, joined: string[], left: string[]): void {
    const publish = (event: string, data: unknown) =>
      this.publish(room, event, data, { ephemeral: true }).catch((err) => {
        if (!this.closed) this.logger.warn({ err, room }, 'presence event publish failed');
      });
    for (const userId of joined) {
      const name = this.presence.nameOf(userId);
      void publish('presence.join', name === undefined ? { userId } : { userId, name });
    }
    for (const userId of left) void publish('presence.leave', { userId });
  }
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
