/**
 * A small client of the `/ws` protocol for tests: request/response by id,
 * buffered event frames with waiting helpers, and the close code. Plus
 * `startTestGateway`, a Gateway on its own HTTP server for tests that need
 * options the configuration does not expose.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import WebSocket from 'ws';
import { Gateway, type GatewayOptions } from '../../signaling/gateway.js';
import type { AuthUser, Role } from '../../src/auth/permissions.js';
import { TokenService } from '../../src/auth/tokens.js';
import type { Engine } from '../../src/platform/engine/engine.js';

export interface Frame {
  t: string;
  id?: string | number;
  d?: unknown;
  code?: string;
  message?: string;
  details?: Record<string, unknown>;
  room?: string;
  seq?: number;
  e?: string;
}

/** An `error` reply as a rejection. */
export class WsRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(`${code}: ${message}`);
    this.name = 'WsRequestError';
  }
}

export interface ConnectOptions {
  token?: string;
  /** Path and query appended to the base URL. Default `/ws`. */
  path?: string;
  /** Wait for the `hello` frame before resolving. Default true. */
  waitHello?: boolean;
  timeoutMs?: number;
  /** Options of the ws client, e.g. `{ autoPong: false }` for a client that looks dead. */
  wsOptions?: WebSocket.ClientOptions;
}

interface Waiter {
  match: (frame: Frame) => boolean;
  resolve: (frame: Frame) => void;
}

export class WsClient {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  hello: Frame | undefined;
  closeCode: number | undefined;
  closeReason = '';
  readonly closed: Promise<number>;
  private nextId = 1;
  private readonly pending = new Map<
    string | number,
    { resolve: (d: unknown) => void; reject: (e: Error) => void }
  >();
  private readonly waiters = new Set<Waiter>();

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        for (const p of this.pending.values()) p.reject(new Error(`socket closed (${code})`));
        this.pending.clear();
        resolve(code);
      });
    });
    ws.on('error', () => undefined);
    ws.on('message', (data) => {
      let frame: Frame;
      try {
        frame = JSON.parse(data.toString()) as Frame;
      } catch {
        return;
      }
      this.frames.push(frame);
      if (frame.t === 'hello') this.hello = frame;
      if ((frame.t === 'ok' || frame.t === 'error') && frame.id !== undefined) {
        const p = this.pending.get(frame.id);
        if (p) {
          this.pending.delete(frame.id);
          if (frame.t === 'ok') p.resolve(frame.d);
          else p.reject(new WsRequestError(frame.code ?? '?', frame.message ?? '', frame.details));
        }
      }
      for (const w of this.waiters) {
        if (w.match(frame)) {
          this.waiters.delete(w);
          w.resolve(frame);
        }
      }
    });
  }

  /** Opens a connection to `baseUrl` (http://host:port) and waits for `hello`. */
  static async connect(baseUrl: string, options: ConnectOptions = {}): Promise<WsClient> {
    const path = options.path ?? '/ws';
    const query = options.token
      ? `${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(options.token)}`
      : '';
    const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}${path}${query}`, options.wsOptions);
    const client = new WsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    if (options.waitHello ?? true) await client.waitFor((f) => f.t === 'hello', options.timeoutMs);
    return client;
  }

  /** Sends `{t, id, d}` and resolves with the `ok` reply's `d` (rejects with WsRequestError). */
  request<T = unknown>(t: string, d?: unknown, timeoutMs = 15_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${t} #${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify(d === undefined ? { t, id } : { t, id, d }));
    });
  }

  /** Sends raw text or bytes. */
  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** Resolves with the first frame (already received or future) that matches. */
  waitFor(match: (frame: Frame) => boolean, timeoutMs = 15_000, fromIndex = 0): Promise<Frame> {
    for (let i = fromIndex; i < this.frames.length; i++)
      if (match(this.frames[i]!)) return Promise.resolve(this.frames[i]!);
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new Error(
            `no matching frame within ${timeoutMs} ms; last frames: ${JSON.stringify(this.frames.slice(-5))}`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Event frames of a room received so far. */
  events(room: string, event?: string): Frame[] {
    return this.frames.filter(
      (f) => f.t === 'event' && f.room === room && (event === undefined || f.e === event),
    );
  }

  /** Waits until `count` events of `room` (optionally of one name) have arrived. */
  async waitForEvents(room: string, count: number, timeoutMs = 20_000, event?: string): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.events(room, event).length < count) {
      if (Date.now() > deadline)
        throw new Error(
          `got ${this.events(room, event).length} of ${count} events in ${room} within ${timeoutMs} ms`,
        );
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.events(room, event);
  }

  /** Error frames without an id (rate limits, unparseable frames, closing notices). */
  errors(): Frame[] {
    return this.frames.filter((f) => f.t === 'error');
  }

  /** Closes and waits for the close to complete. */
  async close(code = 1000): Promise<void> {
    if (this.closeCode === undefined) {
      if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
        this.ws.close(code);
      await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
      if (this.closeCode === undefined) this.ws.terminate();
    }
  }

  /** Drops the TCP connection without a close handshake (a crashed or lost client). */
  terminate(): void {
    this.ws.terminate();
  }
}

export const TEST_JWT_SECRET = 'gateway-test-secret-'.padEnd(48, 'x');

/** Issues tokens for made-up users (no database needed: the gateway only verifies them). */
export class TestUsers {
  readonly tokens: TokenService;
  private n = 0;

  constructor(secret = TEST_JWT_SECRET, ttlSeconds = 3600) {
    this.tokens = new TokenService(secret, ttlSeconds);
  }

  async make(roles: Role[] = ['viewer'], id?: string): Promise<AuthUser & { token: string }> {
    this.n++;
    const user: AuthUser = {
      id: id ?? `u${this.n}-${Math.random().toString(36).slice(2, 10)}`,
      roles,
      displayName: `User ${this.n}`,
    };
    const { token } = await this.tokens.issue(user);
    return { ...user, token };
  }
}

export interface TestGateway {
  gateway: Gateway;
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** A Gateway attached to a fresh HTTP server on a free loopback port. */
export async function startTestGateway(
  engine: Engine,
  tokens: TokenService,
  options: Partial<Omit<GatewayOptions, 'engine' | 'tokens'>> = {},
): Promise<TestGateway> {
  const server = createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const gateway = new Gateway({ engine, tokens, ...options });
  gateway.attach(server);
  const { port } = server.address() as { port: number };
  let closing: Promise<void> | undefined;
  return {
    gateway,
    server,
    url: `http://127.0.0.1:${port}`,
    close() {
      closing ??= (async () => {
        await gateway.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}

/** Polls `fn` until it returns true; throws after `timeoutMs`. */
export async function until(
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
