/**
 * The RTMP listener: accepts publisher connections and runs an `RtmpSession`
 * per connection. What a publish leads to is the `onPublish` callback's
 * business (media/live-ingest.ts).
 *
 * Why not node-media-server: it brings an HTTP server, Express, a JSON store
 * in the working directory and a debug-level logger of its own, and it parses
 * every media packet into objects for its players; its CPU per publisher was
 * higher than the transmuxer's. This server does only what publishing needs
 * and hands FLV bytes straight to ffmpeg.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { type PublishDecision, type PublishRequest, RtmpSession } from './rtmp-session.js';

export interface RtmpServerOptions {
  /** Interface to listen on. */
  host: string;
  /** TCP port; 0 picks a free one (see `port` after `listen`). */
  port: number;
  /** Decides each publish attempt. */
  onPublish(request: PublishRequest, session: RtmpSession): Promise<PublishDecision>;
  /** Most simultaneous connections, publishing or not; more are refused at accept. Default 1000. */
  maxConnections?: number;
  /** Largest RTMP message accepted. Default 8 MiB (a keyframe of a high-bitrate 4K stream fits). */
  maxMessageBytes?: number;
  /** Handshake, connect and publish must finish within this. Default 10 s. */
  setupTimeoutMs?: number;
  /** A silent connection is closed after this. Default 30 s. */
  idleTimeoutMs?: number;
  /** See `RtmpSessionOptions.readCoalesceMs`. Default 50 ms. */
  readCoalesceMs?: number;
}

export interface RtmpServerEvents {
  /** A session's socket or protocol error; the session is closed, the server goes on. */
  sessionError: [Error, RtmpSession];
}

export class RtmpServer extends EventEmitter<RtmpServerEvents> {
  private readonly server: Server;
  private readonly sessions = new Set<RtmpSession>();
  private closed = false;

  constructor(private readonly options: RtmpServerOptions) {
    super();
    this.server = createServer((socket) => this.accept(socket));
    this.server.maxConnections = options.maxConnections ?? 1000;
  }

  /** The bound port (after `listen`). */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting and ends every session (publishers see the connection close). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.kick();
    await closing;
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const session = new RtmpSession(socket, {
      onPublish: this.options.onPublish,
      maxMessageBytes: this.options.maxMessageBytes ?? 8 * 1024 * 1024,
      setupTimeoutMs: this.options.setupTimeoutMs ?? 10_000,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 30_000,
      readCoalesceMs: this.options.readCoalesceMs ?? 50,
    });
    this.sessions.add(session);
    session.on('error', (err) => this.emit('sessionError', err, session));
    session.on('close', () => this.sessions.delete(session));
  }
}
