/**
 * One RTMP connection, publish only: handshake, `connect`, `createStream`,
 * `publish` (the stream key is checked by the server's `onPublish` before
 * the publisher is told to start), then audio, video and metadata messages
 * rewritten as FLV tags into the accepted target, e.g. ffmpeg's stdin.
 *
 * Playback over RTMP is not offered: viewers get HLS.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { type Amf0Object, type Amf0Value, decodeAmf0, encodeAmf0, firstValueLength } from './amf0.js';
import { ChunkReader, encodeMessage, MessageType, type RtmpMessage } from './chunk-stream.js';
import { HANDSHAKE_SIZE, RTMP_VERSION, serverHandshake } from './handshake.js';

/** Why a publish attempt was refused; the publisher sees it in `NetStream.Publish.*` status. */
export type PublishRefusal = 'unauthorized' | 'already_live' | 'ended' | 'server_full' | 'error';

/** Why an accepted publish ended. */
export type PublishEndReason = 'unpublished' | 'disconnected' | 'kicked' | 'protocol_error';

export interface PublishRequest {
  /** Connection id, unique per server run; also the publisher session id. */
  sessionId: string;
  /** The application from `connect` (OBS "Server" path), e.g. `live`. */
  app: string;
  /** The stream name from `publish`: the stream key, without any query string. Secret: never log it. */
  streamName: string;
  remoteAddress: string;
}

/** What an accepted publish writes into. */
export interface PublishTarget {
  /** Receives an FLV file: header, then one tag per media or metadata message. */
  flv: Writable;
  /** Called once when the publish is over. */
  onEnd(reason: PublishEndReason): void;
}

export type PublishDecision =
  | { accept: true; target: PublishTarget }
  | { accept: false; reason: PublishRefusal };

export interface RtmpSessionOptions {
  /** Decides a publish attempt; may take its time (a Db lookup). */
  onPublish(request: PublishRequest, session: RtmpSession): Promise<PublishDecision>;
  /** Largest message accepted from a publisher. */
  maxMessageBytes: number;
  /** Handshake, connect and publish must be done within this. */
  setupTimeoutMs: number;
  /** A connection silent this long is closed. */
  idleTimeoutMs: number;
  /**
   * While publishing, after each read the socket rests this long so the next
   * read takes everything that arrived meanwhile: a publisher sends a few
   * small packets per frame, and one read and one transmuxer write per rest
   * instead of per packet cuts the ingest's CPU several-fold. Adds at most
   * this much latency. 0 reads as data arrives.
   */
  readCoalesceMs: number;
}

export interface RtmpSessionEvents {
  close: [];
  /** A protocol violation or an error of the socket; the session closes. */
  error: [Error];
}

const OUT_CHUNK_SIZE = 4096;
const WINDOW_ACK_SIZE = 2_500_000;
const CONTROL_CHUNK_STREAM = 2;
const COMMAND_CHUNK_STREAM = 3;
const PUBLISH_STREAM_ID = 1;
const FLV_HEADER = Buffer.from([0x46, 0x4c, 0x56, 0x01, 0x05, 0, 0, 0, 9, 0, 0, 0, 0]);
const FLV_TAG_HEADER = 11;
/** The PreviousTagSize after each tag. */
const FLV_TAG_SIZE = 4;

const STATUS_BY_REFUSAL: Record<PublishRefusal, { code: string; description: string }> = {
  unauthorized: { code: 'NetStream.Publish.Unauthorized', description: 'Stream key refused' },
  already_live: { code: 'NetStream.Publish.BadName', description: 'Stream is already being published' },
  ended: { code: 'NetStream.Publish.Unauthorized', description: 'Stream has ended' },
  server_full: { code: 'NetStream.Publish.Rejected', description: 'Server is at its live stream limit' },
  error: { code: 'NetStream.Publish.Failed', description: 'Server error' },
};

type Phase = 'c0c1' | 'c2' | 'commands' | 'authorizing' | 'publishing' | 'closed';

export class RtmpSession extends EventEmitter<RtmpSessionEvents> {
  readonly id = randomUUID();
  private phase: Phase = 'c0c1';
  private handshakeBuffer = Buffer.alloc(0);
  private readonly reader: ChunkReader;
  private app = '';
  private target: PublishTarget | null = null;
  private bytesIn = 0;
  private lastAck = 0;
  private peerWindow = WINDOW_ACK_SIZE;
  private readonly setupTimer: NodeJS.Timeout;
  /** FLV tags of the socket read being handled, written together (corked). */
  private batch: Buffer[] = [];
  private outChunkSize = 128;
  private closeEmitted = false;
  private waitingForDrain = false;
  private resting = false;
  /** Something was written to the peer since its last read. */
  private answered = false;

  constructor(
    private readonly socket: Socket,
    private readonly options: RtmpSessionOptions,
  ) {
    super();
    this.reader = new ChunkReader({
      maxMessageBytes: options.maxMessageBytes,
      framing: { before: FLV_TAG_HEADER, after: FLV_TAG_SIZE },
    });
    socket.setNoDelay(true);
    socket.setTimeout(options.idleTimeoutMs, () => this.fail(new Error('connection idle')));
    this.setupTimer = setTimeout(
      () => this.fail(new Error('publish not started in time')),
      options.setupTimeoutMs,
    );
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => {
      this.finish('disconnected');
      if (!this.closeEmitted) {
        this.closeEmitted = true;
        this.emit('close');
      }
    });
  }

  get remoteAddress(): string {
    return this.socket.remoteAddress ?? '';
  }

  /** True once the publish was accepted and until it ends. */
  get publishing(): boolean {
    return this.phase === 'publishing';
  }

  /** Ends the publish and the connection (key revoked, stream ended, shutdown). */
  kick(): void {
    this.finish('kicked');
  }

  private onData(data: Buffer): void {
    try {
      this.bytesIn += data.length;
      this.answered = false;
      if (this.phase === 'c0c1' || this.phase === 'c2') this.handshake(data);
      else this.readChunks(data);
      // Until the publish, an encoder whose TCP delays small writes (Nagle, as ffmpeg's) holds
      // each command until the last one is acknowledged; a read left unanswered is acknowledged
      // only by the 40 ms delayed-ACK timer. Answering it at once (an RTMP Acknowledgement when
      // there is nothing else to say) takes about 130 ms off the start of every stream.
      if (this.phase === 'commands' && !this.answered) this.acknowledge();
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private handshake(data: Buffer): void {
    this.handshakeBuffer = Buffer.concat([this.handshakeBuffer, data]);
    if (this.phase === 'c0c1') {
      if (this.handshakeBuffer.length < 1 + HANDSHAKE_SIZE) return;
      if (this.handshakeBuffer[0] !== RTMP_VERSION)
        throw new Error(`unsupported RTMP version ${this.handshakeBuffer[0]}`);
      this.socket.write(serverHandshake(this.handshakeBuffer.subarray(1, 1 + HANDSHAKE_SIZE)));
      this.handshakeBuffer = this.handshakeBuffer.subarray(1 + HANDSHAKE_SIZE);
      this.phase = 'c2';
    }
    if (this.handshakeBuffer.length < HANDSHAKE_SIZE) return;
    const rest = this.handshakeBuffer.subarray(HANDSHAKE_SIZE);
    this.handshakeBuffer = Buffer.alloc(0);
    this.phase = 'commands';
    if (rest.length > 0) this.readChunks(rest);
  }

  private readChunks(data: Buffer): void {
    this.reader.push(data, (message) => this.onMessage(message));
    if (this.batch.length > 0 && this.target) {
      const { flv } = this.target;
      this.writeBatch(flv);
      // Backpressure: a slow transmuxer slows the publisher's TCP window rather than filling memory.
      if (flv.writableNeedDrain) {
        this.waitingForDrain = true;
        this.socket.pause();
        flv.once('drain', () => {
          this.waitingForDrain = false;
          this.resumeReading();
        });
      }
    }
    if (this.phase === 'publishing' && this.options.readCoalesceMs > 0 && !this.resting) {
      this.resting = true;
      this.socket.pause();
      setTimeout(() => {
        this.resting = false;
        this.resumeReading();
      }, this.options.readCoalesceMs);
    }
    if (this.bytesIn - this.lastAck >= this.peerWindow) this.acknowledge();
  }

  private resumeReading(): void {
    if (!this.waitingForDrain && !this.resting && !this.socket.destroyed) this.socket.resume();
  }

  private onMessage(message: RtmpMessage): void {
    switch (message.type) {
      case MessageType.Audio:
      case MessageType.Video:
        if (this.phase === 'publishing' && message.payload.length > 0)
          this.addTag(message.type, message.timestamp, message.payload, message.framed);
        return;
      case MessageType.DataAmf0:
      case MessageType.DataAmf3:
        if (this.phase === 'publishing') this.onData0(message);
        return;
      case MessageType.CommandAmf0:
      case MessageType.CommandAmf3:
        this.onCommand(message);
        return;
      case MessageType.SetChunkSize: {
        const size = message.payload.readUInt32BE(0) & 0x7fffffff;
        if (size < 1) throw new Error('chunk size must be positive');
        this.reader.chunkSize = size;
        return;
      }
      case MessageType.Abort:
        this.reader.abort(message.payload.readUInt32BE(0));
        return;
      case MessageType.WindowAckSize:
        this.peerWindow = Math.max(1, message.payload.readUInt32BE(0));
        return;
      default:
        // Acknowledgements, user control (pings) and aggregates from publishers are not needed to ingest.
        return;
    }
  }

  /** `@setDataFrame("onMetaData", {...})` becomes the FLV `onMetaData` script tag. */
  private onData0(message: RtmpMessage): void {
    let body = message.type === MessageType.DataAmf3 ? message.payload.subarray(1) : message.payload;
    const [name] = decodeAmf0(body.subarray(0, firstValueLength(body)));
    if (name === '@setDataFrame') body = body.subarray(firstValueLength(body));
    this.addTag(MessageType.DataAmf0, message.timestamp, body);
  }

  /** Frames a message as an FLV tag: in the room the chunk reader left around it when there is, else in a copy. */
  private addTag(type: number, timestamp: number, payload: Buffer, framed?: Buffer): void {
    const tag =
      framed && framed.length === FLV_TAG_HEADER + payload.length + FLV_TAG_SIZE
        ? framed
        : Buffer.allocUnsafe(FLV_TAG_HEADER + payload.length + FLV_TAG_SIZE);
    if (tag !== framed) payload.copy(tag, FLV_TAG_HEADER);
    tag[0] = type;
    tag.writeUIntBE(payload.length, 1, 3);
    tag.writeUIntBE(timestamp & 0xffffff, 4, 3);
    tag[7] = (timestamp >>> 24) & 0xff;
    tag.writeUIntBE(0, 8, 3);
    tag.writeUInt32BE(FLV_TAG_HEADER + payload.length, FLV_TAG_HEADER + payload.length);
    this.batch.push(tag);
  }

  /** One write per tag, corked: the tags go out together (one writev into a pipe), with no concatenated copy. */
  private writeBatch(flv: Writable): void {
    flv.cork();
    for (const tag of this.batch) flv.write(tag);
    this.batch = [];
    flv.uncork();
  }

  private onCommand(message: RtmpMessage): void {
    const body = message.type === MessageType.CommandAmf3 ? message.payload.subarray(1) : message.payload;
    const [name, txn, , ...args] = decodeAmf0(body);
    const transaction = typeof txn === 'number' ? txn : 0;
    switch (name) {
      case 'connect':
        this.onConnect(transaction, decodeAmf0(body)[2]);
        return;
      case 'createStream':
        this.reply(transaction, null, PUBLISH_STREAM_ID);
        return;
      case 'publish':
        this.onPublish(args[0]);
        return;
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        if (this.phase === 'publishing') this.finish('unpublished');
        return;
      case 'play':
        this.status(message.streamId, 'error', 'NetStream.Play.Failed', 'Playback is over HLS, not RTMP');
        this.close();
        return;
      default:
        // releaseStream, FCPublish, _checkbw and the like need no answer to publish.
        return;
    }
  }

  private onConnect(transaction: number, command: Amf0Value): void {
    const app =
      typeof command === 'object' && command !== null && !Array.isArray(command) && !(command instanceof Date)
        ? (command as Amf0Object).app
        : undefined;
    this.app = typeof app === 'string' ? (app.split('?')[0]?.replace(/\/+$/, '') ?? '') : '';
    const ackSize = Buffer.alloc(4);
    ackSize.writeUInt32BE(WINDOW_ACK_SIZE);
    this.send(CONTROL_CHUNK_STREAM, MessageType.WindowAckSize, 0, ackSize);
    const bandwidth = Buffer.alloc(5);
    bandwidth.writeUInt32BE(WINDOW_ACK_SIZE);
    bandwidth[4] = 2; // dynamic
    this.send(CONTROL_CHUNK_STREAM, MessageType.SetPeerBandwidth, 0, bandwidth);
    const chunkSize = Buffer.alloc(4);
    chunkSize.writeUInt32BE(OUT_CHUNK_SIZE);
    this.send(CONTROL_CHUNK_STREAM, MessageType.SetChunkSize, 0, chunkSize);
    this.outChunkSize = OUT_CHUNK_SIZE;
    this.reply(
      transaction,
      { fmsVer: 'FMS/3,0,1,123', capabilities: 31 },
      {
        level: 'status',
        code: 'NetConnection.Connect.Success',
        description: 'Connection succeeded.',
        objectEncoding: 0,
      },
    );
  }

  private onPublish(streamNameValue: Amf0Value): void {
    if (this.phase !== 'commands') return;
    const streamName = typeof streamNameValue === 'string' ? (streamNameValue.split('?')[0] ?? '') : '';
    this.phase = 'authorizing';
    const request: PublishRequest = {
      sessionId: this.id,
      app: this.app,
      streamName,
      remoteAddress: this.remoteAddress,
    };
    this.options.onPublish(request, this).then(
      (decision) => this.onDecision(decision),
      (err: unknown) => {
        this.emit('error', err instanceof Error ? err : new Error(String(err)));
        this.onDecision({ accept: false, reason: 'error' });
      },
    );
  }

  private onDecision(decision: PublishDecision): void {
    if (this.phase !== 'authorizing') {
      // The publisher left while we decided: the accepted target must still hear the end.
      if (decision.accept) {
        decision.target.flv.end();
        decision.target.onEnd('disconnected');
      }
      return;
    }
    if (!decision.accept) {
      const status = STATUS_BY_REFUSAL[decision.reason];
      this.status(PUBLISH_STREAM_ID, 'error', status.code, status.description);
      // Let the status reach the publisher before the connection goes.
      this.phase = 'closed';
      clearTimeout(this.setupTimer);
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 2000).unref();
      return;
    }
    clearTimeout(this.setupTimer);
    this.target = decision.target;
    this.phase = 'publishing';
    decision.target.flv.write(FLV_HEADER);
    const begin = Buffer.alloc(6);
    begin.writeUInt32BE(PUBLISH_STREAM_ID, 2); // event 0: StreamBegin
    this.send(CONTROL_CHUNK_STREAM, MessageType.UserControl, 0, begin);
    this.status(PUBLISH_STREAM_ID, 'status', 'NetStream.Publish.Start', 'Publishing started');
  }

  /** An RTMP Acknowledgement of every byte received so far. */
  private acknowledge(): void {
    this.lastAck = this.bytesIn;
    const ack = Buffer.alloc(4);
    ack.writeUInt32BE(this.bytesIn >>> 0);
    this.send(CONTROL_CHUNK_STREAM, MessageType.Acknowledgement, 0, ack);
  }

  private send(chunkStreamId: number, type: number, streamId: number, payload: Buffer): void {
    if (this.socket.destroyed || this.phase === 'closed') return;
    this.answered = true;
    this.socket.write(
      encodeMessage(chunkStreamId, { type, streamId, timestamp: 0, payload }, this.outChunkSize),
    );
  }

  private reply(transaction: number, properties: Amf0Value, information: Amf0Value): void {
    this.send(
      COMMAND_CHUNK_STREAM,
      MessageType.CommandAmf0,
      0,
      encodeAmf0('_result', transaction, properties, information),
    );
  }

  private status(streamId: number, level: 'status' | 'error', code: string, description: string): void {
    this.send(
      COMMAND_CHUNK_STREAM,
      MessageType.CommandAmf0,
      streamId,
      encodeAmf0('onStatus', 0, null, { level, code, description }),
    );
  }

  private fail(err: Error): void {
    if (this.phase === 'closed') return;
    this.emit('error', err);
    this.finish(this.phase === 'publishing' ? 'protocol_error' : 'disconnected');
  }

  private finish(reason: PublishEndReason): void {
    if (this.phase === 'closed') return;
    const target = this.phase === 'publishing' ? this.target : null;
    this.phase = 'closed';
    clearTimeout(this.setupTimer);
    this.target = null;
    if (target) {
      if (reason === 'unpublished') this.flushBatch(target);
      target.flv.end();
      target.onEnd(reason);
    }
    this.close();
  }

  private flushBatch(target: PublishTarget): void {
    if (this.batch.length > 0) this.writeBatch(target.flv);
  }

  /** Destroys the socket; its `close` event emits ours. */
  private close(): void {
    this.phase = 'closed';
    clearTimeout(this.setupTimer);
    if (!this.socket.destroyed) this.socket.destroy();
  }
}
