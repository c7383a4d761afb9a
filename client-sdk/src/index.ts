/**
 * Browser SDK of the live commerce server: `LiveCommerce` wires the HTTP
 * API, the realtime connection and the pieces built on them.
 */
import { CallClient } from './call-client.js';
import { ChatClient } from './chat-client.js';
import { CommerceClient } from './commerce-client.js';
import { HttpClient, type TokenSource } from './http.js';
import { LiveRoom } from './live-chat-client.js';
import { RealtimeClient, type WebSocketLike } from './realtime-client.js';
import { StreamsClient } from './streams-client.js';

export * from './call-client.js';
export * from './chat-client.js';
export * from './commerce-client.js';
export * from './errors.js';
export {
  HttpClient,
  type HttpClientOptions,
  newIdempotencyKey,
  type RequestOptions,
  type TokenSource,
} from './http.js';
export * from './live-chat-client.js';
export * from './live-player.js';
export * from './realtime-client.js';
export * from './streams-client.js';

export interface LiveCommerceOptions {
  /** Server origin; default: the page's origin. */
  baseUrl?: string;
  /** The signed-in user's access token, if any (asked before each request and reconnect). */
  token?: TokenSource;
  /** WebSocket constructor for non-browser runtimes. */
  WebSocket?: new (
    url: string,
  ) => WebSocketLike;
}

export class LiveCommerce {
  readonly http: HttpClient;
  readonly realtime: RealtimeClient;
  readonly commerce: CommerceClient;
  /** 1:1 and group conversations. */
  readonly chat: ChatClient;
  /** The streamer's side: streams, keys, pins, flash sales, sales figures. */
  readonly streams: StreamsClient;
  /** Video calls with agents and streamers (mediasoup-client). */
  readonly calls: CallClient;

  constructor(options: LiveCommerceOptions = {}) {
    const baseUrl = options.baseUrl ?? globalThis.location.origin;
    this.http = new HttpClient({ baseUrl, token: options.token });
    this.realtime = new RealtimeClient({
      url: `${baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '')}/ws`,
      token: options.token,
      WebSocket: options.WebSocket,
    });
    this.commerce = new CommerceClient(this.http);
    this.streams = new StreamsClient(this.http);
    this.chat = new ChatClient(this.http, this.realtime);
    this.calls = new CallClient(this.http, this.realtime);
  }

  /** The room of a live stream: chat, pins, flash sales, stock, viewers. */
  liveRoom(streamId: string): LiveRoom {
    return new LiveRoom(this.realtime, streamId);
  }

  /** Signs in; use the token as `token` for a signed-in client. */
  login(
    email: string,
    password: string,
  ): Promise<{ token: string; user: { id: string; displayName: string; roles: string[] } }> {
    return this.http.request('POST', '/v1/auth/login', { email, password });
  }
}
