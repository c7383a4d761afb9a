/**
 * The `/ws` protocol (docs/protocol.md) for browsers and Node: requests with
 * replies and timeouts, rooms that survive reconnects, and recovery by
 * sequence number, so a short network cut loses no event.
 *
 * After a drop it reconnects with exponential backoff and full jitter, asks
 * for a fresh token, and rejoins every room with the last `seq` it saw; the
 * server replays what was missed, or sends `reset` when the gap is too old
 * (then reload history: the `reset` handler says so).
 */
import { isErrorCode, LiveCommerceError } from './errors.js';
import type { TokenSource } from './http.js';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** An event in a room, as the server sent it. */
export interface RoomEvent<Data = unknown> {
  room: string;
  /** Absent for ephemeral events (viewer counts, live stock). */
  seq?: number;
  event: string;
  data: Data;
}

export interface ResetNotice {
  room: string;
  lastSeq: number;
  /** `gap_too_old` or `history_lost`: reload the room's history from the API. */
  reason: string;
}

export interface JoinResult {
  room: string;
  lastSeq: number;
  recovered?: boolean;
  replayed?: number;
  reason?: string;
}

/** The subset of the WebSocket API used (browser WebSocket and the `ws` package both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

export interface RealtimeClientOptions {
  /** `ws(s)://host/ws`. */
  url: string;
  /** Access token for signed-in features; asked again at every reconnect. */
  token?: TokenSource;
  /** A request without a reply after this fails with `TIMEOUT`. Default 10 s. */
  requestTimeoutMs?: number;
  /** First reconnect delay ceiling; doubles per failed attempt up to `maxReconnectDelayMs`. Default 500 ms. */
  minReconnectDelayMs?: number;
  /** Default 15 s. */
  maxReconnectDelayMs?: number;
  /** Sends `ping` this often to notice a dead connection the browser does not report. Default 25 s. */
  pingIntervalMs?: number;
  /** WebSocket constructor (default: the global one). */
  WebSocket?: new (
    url: string,
  ) => WebSocketLike;
}

type Frame =
  | { t: 'hello'; d: { connectionId: string; userId: string | null } }
  | { t: 'ok'; id: number; d: unknown }
  | { t: 'error'; id?: number; code: string; message: string; details?: Record<string, unknown> }
  | { t: 'event'; room: string; seq?: number; e: string; d: unknown }
  | { t: 'reset'; room: string; d: { lastSeq: number; reason: string } };

interface Pending {
  resolve(value: unknown): void;
  reject(err: LiveCommerceError): void;
  timer: ReturnType<typeof setTimeout>;
}

type Handler<T> = (value: T) => void;

export class RealtimeClient {
  private socket: WebSocketLike | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Rooms to be in, with the last sequence number seen in each. */
  private readonly rooms = new Map<string, number | undefined>();
  private readonly eventHandlers = new Map<string, Set<Handler<RoomEvent>>>();
  private readonly stateHandlers = new Set<Handler<ConnectionState>>();
  private readonly resetHandlers = new Set<Handler<ResetNotice>>();
  private stateValue: ConnectionState = 'closed';
  private attempts = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private closedByUser = false;
  private opened: Promise<void> | null = null;

  constructor(private readonly options: RealtimeClientOptions) {}

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Connects (and keeps reconnecting until `close`). Resolves on the first `hello`. */
  connect(): Promise<void> {
    this.closedByUser = false;
    this.opened ??= this.open();
    return this.opened;
  }

  /**
   * Sends a request; resolves with the reply's data or rejects with the server's code. A request
   * refused with `RATE_LIMITED` was not carried out, so it is sent again after the server's
   * `retryAfterMs` while that still fits in `timeoutMs`.
   */
  async request<T = unknown>(
    type: string,
    data?: unknown,
    timeoutMs = this.options.requestTimeoutMs ?? 10_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.send<T>(type, data, Math.max(1, deadline - Date.now()));
      } catch (err) {
        const wait = isErrorCode(err, 'RATE_LIMITED') ? err.details?.retryAfterMs : undefined;
        if (typeof wait !== 'number' || Date.now() + wait >= deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  private send<T>(type: string, data: unknown, timeoutMs: number): Promise<T> {
    const socket = this.socket;
    if (!socket || this.stateValue !== 'open')
      return Promise.reject(new LiveCommerceError('DISCONNECTED', 'Not connected'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new LiveCommerceError('TIMEOUT', `${type}: no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      socket.send(JSON.stringify(data === undefined ? { t: type, id } : { t: type, id, d: data }));
    });
  }

  /** Joins a room now (if connected) and after every reconnect, recovering missed events. */
  async join(room: string): Promise<JoinResult | null> {
    if (!this.rooms.has(room)) this.rooms.set(room, undefined);
    if (this.stateValue !== 'open') return null;
    return this.joinNow(room);
  }

  async leave(room: string): Promise<void> {
    this.rooms.delete(room);
    if (this.stateValue === 'open') await this.request('leave', { room });
  }

  /**
   * Calls `handler` for events named `event` (`'*'`: all) in any joined room.
   * Returns a function that removes it.
   */
  on<Data = unknown>(event: string, handler: Handler<RoomEvent<Data>>): () => void {
    let set = this.eventHandlers.get(event);
    if (!set) {
      set = new Set();
      this.eventHandlers.set(event, set);
    }
    set.add(handler as Handler<RoomEvent>);
    return () => set.delete(handler as Handler<RoomEvent>);
  }

  onState(handler: Handler<ConnectionState>): () => void {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  /** Missed events could not be replayed: reload the room's history. */
  onReset(handler: Handler<ResetNotice>): () => void {
    this.resetHandlers.add(handler);
    return () => this.resetHandlers.delete(handler);
  }

  /** Closes for good; pending requests fail with `CLOSED`. */
  close(): void {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.stopPing();
    this.socket?.close(1000);
    this.socket = null;
    this.failPending('CLOSED', 'Client closed');
    this.setState('closed');
    this.opened = null;
  }

  private async open(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      let first = true;
      const attempt = async () => {
        this.setState(this.attempts === 0 ? 'connecting' : 'reconnecting');
        const token = await this.options.token?.();
        const url = new URL(this.options.url);
        if (token) url.searchParams.set('token', token);
        const Ctor =
          this.options.WebSocket ?? (globalThis.WebSocket as unknown as new (u: string) => WebSocketLike);
        const socket = new Ctor(url.toString());
        this.socket = socket;
        socket.onmessage = (ev) => {
          const frame = parseFrame(ev.data);
          if (!frame) return;
          if (frame.t === 'hello') {
            this.attempts = 0;
            this.setState('open');
            this.startPing();
            void this.rejoinAll();
            if (first) {
              first = false;
              resolve();
            }
            return;
          }
          this.onFrame(frame);
        };
        socket.onclose = () => {
          if (this.socket === socket) this.socket = null;
          this.stopPing();
          this.failPending('DISCONNECTED', 'Connection lost');
          if (this.closedByUser) return;
          if (first && this.attempts >= 3) {
            first = false;
            reject(new LiveCommerceError('NETWORK', 'Cannot reach the realtime server'));
          }
          this.scheduleReconnect(attempt);
        };
        socket.onerror = () => undefined;
      };
      void attempt();
    });
  }

  private scheduleReconnect(attempt: () => Promise<void>): void {
    this.setState('reconnecting');
    const min = this.options.minReconnectDelayMs ?? 500;
    const max = this.options.maxReconnectDelayMs ?? 15_000;
    // Full jitter: thousands of viewers cut off at once do not come back at once.
    const delay = Math.random() * Math.min(max, min * 2 ** this.attempts);
    this.attempts += 1;
    this.reconnectTimer = setTimeout(() => void attempt(), delay);
  }

  private async rejoinAll(): Promise<void> {
    for (const room of this.rooms.keys()) {
      try {
        await this.joinNow(room);
      } catch {
        // A room that refuses us now (banned, deleted) stays wanted; the app sees the error on its own join.
      }
    }
  }

  private async joinNow(room: string): Promise<JoinResult> {
    const lastSeq = this.rooms.get(room);
    const result = await this.request<JoinResult>(
      'join',
      lastSeq === undefined ? { room } : { room, lastSeq },
    );
    const seen = this.rooms.get(room);
    if (seen === undefined || result.lastSeq > seen) this.rooms.set(room, result.lastSeq);
    if (result.recovered === false && lastSeq !== undefined)
      for (const h of this.resetHandlers)
        h({ room, lastSeq: result.lastSeq, reason: result.reason ?? 'gap_too_old' });
    return result;
  }

  private onFrame(frame: Exclude<Frame, { t: 'hello' }>): void {
    if (frame.t === 'ok' || (frame.t === 'error' && frame.id !== undefined)) {
      const pending = this.pending.get(frame.id as number);
      if (!pending) return;
      this.pending.delete(frame.id as number);
      clearTimeout(pending.timer);
      if (frame.t === 'ok') pending.resolve(frame.d);
      else pending.reject(new LiveCommerceError(frame.code, frame.message, undefined, frame.details));
      return;
    }
    if (frame.t === 'event') {
      if (frame.seq !== undefined && this.rooms.has(frame.room)) {
        const seen = this.rooms.get(frame.room);
        if (seen !== undefined && frame.seq <= seen) return; // already delivered before a reconnect
        this.rooms.set(frame.room, frame.seq);
      }
      const event: RoomEvent = { room: frame.room, seq: frame.seq, event: frame.e, data: frame.d };
      for (const h of this.eventHandlers.get(frame.e) ?? []) h(event);
      for (const h of this.eventHandlers.get('*') ?? []) h(event);
      return;
    }
    if (frame.t === 'reset') {
      this.rooms.set(frame.room, frame.d.lastSeq);
      for (const h of this.resetHandlers) h({ room: frame.room, ...frame.d });
    }
  }

  private startPing(): void {
    this.stopPing();
    const interval = this.options.pingIntervalMs ?? 25_000;
    this.pingTimer = setInterval(() => {
      this.request('ping', undefined, interval).catch(() => {
        // No answer within a whole interval: the connection is dead even if the browser has not noticed.
        this.socket?.close(4000);
      });
    }, interval);
  }

  private stopPing(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private failPending(code: string, message: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new LiveCommerceError(code, message));
      this.pending.delete(id);
    }
  }

  private setState(state: ConnectionState): void {
    if (state === this.stateValue) return;
    this.stateValue = state;
    for (const h of this.stateHandlers) h(state);
  }
}

function parseFrame(data: unknown): Frame | null {
  if (typeof data !== 'string') return null;
  try {
    const frame = JSON.parse(data) as Frame;
    return typeof frame === 'object' && frame !== null && typeof frame.t === 'string' ? frame : null;
  } catch {
    return null;
  }
}
