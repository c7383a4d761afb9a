/**
 * One client socket as the gateway sees it: who it is, which rooms it has
 * joined, its flood-control bucket, and the only two ways bytes go out
 * (`sendText` for replies and replays, `sendPrepared` for fan-out), both of
 * which enforce the slow-consumer bound.
 *
 * Memory matters here (tens of thousands of idle sockets per instance), so
 * the per-connection state is a handful of numbers plus a lazily created
 * room map; timers are shared by the gateway except the auth timeout of
 * connections that arrive without a token.
 */
import WebSocket, * as wsModule from 'ws';
import type { AuthUser } from '../src/auth/permissions.js';
import type { RoomChannel, RoomMember } from './room-channel.js';

/** The subset of ws' internal Sender that pre-framed sends use. */
interface InternalSender {
  _state?: number;
  _queue?: unknown[];
  sendFrame(list: Buffer[], cb?: (err?: Error) => void): void;
}

interface SenderStatic {
  frame(
    data: Buffer,
    options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean },
  ): Buffer[];
}

// Not in @types/ws; exported by ws' ESM wrapper (and set on the class by its CJS entry).
const Sender =
  (wsModule as unknown as { Sender?: SenderStatic }).Sender ??
  (WebSocket as unknown as { Sender?: SenderStatic }).Sender;

/**
 * One outbound frame shared by every socket it goes to: the JSON text is
 * built once, encoded to bytes once and, where ws allows it, wrapped in its
 * WebSocket frame header once, so fan-out to N sockets costs N socket writes
 * and nothing else.
 */
export class PreparedFrame {
  private payload: Buffer | undefined;
  private wire: Buffer | undefined;

  constructor(readonly text: string) {}

  /** UTF-8 bytes of the frame. */
  bytes(): Buffer {
    this.payload ??= Buffer.from(this.text);
    return this.payload;
  }

  /** Header + payload of an unmasked, unfragmented text frame; undefined if ws' Sender is unavailable. */
  framed(): Buffer | undefined {
    if (!this.wire && Sender) {
      const parts = Sender.frame(this.bytes(), {
        fin: true,
        opcode: 1,
        mask: false,
        readOnly: false,
        rsv1: false,
      });
      this.wire = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    }
    return this.wire;
  }
}

export interface ConnectionLimits {
  ratePerSecond: number;
  rateBurst: number;
  maxBufferedBytes: number;
  preFrame: boolean;
}

/** Read-only view of a connection given to handlers and event listeners. */
export interface ConnectionInfo {
  readonly id: string;
  /** Null while anonymous. */
  readonly user: AuthUser | null;
  /** Client address as seen by the HTTP server. */
  readonly ip: string;
  /** Names of the rooms this connection has joined. */
  joinedRooms(): string[];
  /** Whether this connection has joined `room`. */
  hasJoined(room: string): boolean;
}

export class Connection implements ConnectionInfo {
  user: AuthUser | null;
  /** Token expiry in ms since the epoch, when signed in. */
  expiresAt: number | undefined;
  /** Answered the last ping (or sent anything) since the previous heartbeat. */
  alive = true;
  /** The gateway decided to close it; nothing more is sent. */
  closing = false;
  /** The socket is closed and the connection cleaned up. */
  closed = false;
  authTimer: NodeJS.Timeout | undefined;
  /** Joined rooms; created on first join. */
  rooms: Map<string, RoomMember> | undefined;
  /** Inbound frames waiting for the one in progress (handled strictly in order). */
  readonly queue: Array<() => Promise<void>> = [];
  processing = false;
  private tokens: number;
  private refilledAt: number;
  /** Frames rejected in a row by the rate limit. */
  strikes = 0;

  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly ip: string,
    user: AuthUser | null,
    private readonly limits: ConnectionLimits,
    /** Called once when the outbound buffer passes the bound. */
    private readonly onSlow: (conn: Connection) => void,
  ) {
    this.user = user;
    this.tokens = limits.rateBurst;
    this.refilledAt = performance.now();
  }

  joinedRooms(): string[] {
    return this.rooms ? [...this.rooms.keys()] : [];
  }

  hasJoined(room: string): boolean {
    return this.rooms?.has(room) ?? false;
  }

  member(room: string): RoomMember | undefined {
    return this.rooms?.get(room);
  }

  addMember(channel: RoomChannel, member: RoomMember): void {
    this.rooms ??= new Map();
    this.rooms.set(channel.name, member);
  }

  removeMember(room: string): RoomMember | undefined {
    const member = this.rooms?.get(room);
    if (member) this.rooms!.delete(room);
    return member;
  }

  /** Takes one token from the bucket; false when the client is over its rate. */
  takeToken(): boolean {
    const now = performance.now();
    const { ratePerSecond, rateBurst } = this.limits;
    this.tokens = Math.min(rateBurst, this.tokens + ((now - this.refilledAt) / 1000) * ratePerSecond);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.strikes = 0;
      return true;
    }
    this.strikes++;
    return false;
  }

  /** Milliseconds until the bucket holds a token again (after `takeToken` refused). */
  msUntilToken(): number {
    return Math.ceil(((1 - this.tokens) / this.limits.ratePerSecond) * 1000);
  }

  get open(): boolean {
    return !this.closing && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one frame built for this socket only (replies, replays). */
  sendText(text: string): void {
    if (!this.open) return;
    this.ws.send(text);
    this.checkBuffer();
  }

  /** Sends a frame shared with other sockets, pre-framed when possible. */
  sendPrepared(frame: PreparedFrame): void {
    if (!this.open) return;
    const sender = this.limits.preFrame
      ? (this.ws as unknown as { _sender?: InternalSender })._sender
      : undefined;
    // Pre-framed bytes go straight to the socket; only safe while ws' sender
    // has nothing queued (state DEFAULT = 0: no compression or blob in
    // flight), which always holds with permessage-deflate off.
    const wire = sender && sender._state === 0 && !sender._queue?.length ? frame.framed() : undefined;
    if (wire) sender!.sendFrame([wire]);
    else this.ws.send(frame.bytes(), { binary: false });
    this.checkBuffer();
  }

  private checkBuffer(): void {
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) this.onSlow(this);
  }
}
