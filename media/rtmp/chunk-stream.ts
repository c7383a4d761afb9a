/**
 * The RTMP chunk stream: messages are cut into chunks of at most the
 * sender's chunk size, interleaved by chunk stream id, each chunk header
 * compressed against the previous one on the same chunk stream.
 *
 * `ChunkReader` is on the hot path of every publisher (a few hundred chunks a
 * second each), so it parses in place from the socket's buffers and copies
 * each payload byte once, into the message being assembled.
 */

/** RTMP message type ids this server reads or writes. */
export const MessageType = {
  SetChunkSize: 1,
  Abort: 2,
  Acknowledgement: 3,
  UserControl: 4,
  WindowAckSize: 5,
  SetPeerBandwidth: 6,
  Audio: 8,
  Video: 9,
  DataAmf3: 15,
  CommandAmf3: 17,
  DataAmf0: 18,
  CommandAmf0: 20,
  Aggregate: 22,
} as const;

export interface RtmpMessage {
  type: number;
  /** Message stream id (0 for control and connection commands). */
  streamId: number;
  /** Milliseconds, 32 bits, as the publisher counts them (decode time for video). */
  timestamp: number;
  payload: Buffer;
  /**
   * The payload's allocation with the reader's `framing` room before and after
   * it (a received message only), for the consumer to wrap it without a copy.
   */
  framed?: Buffer;
}

export class ChunkStreamError extends Error {
  override name = 'ChunkStreamError';
}

interface ChunkStreamState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  /** The message being assembled (with its framing room), if a chunk of it has arrived. */
  payload: Buffer | null;
  received: number;
}

export interface ChunkReaderOptions {
  /** Largest message accepted; a bigger one is a protocol error (memory bound). */
  maxMessageBytes: number;
  /** Most chunk streams a peer may open (memory bound). */
  maxChunkStreams?: number;
  /** Bytes left free before and after each message's payload in `framed` (an FLV tag's header and size). */
  framing?: { before: number; after: number };
}

/** Reassembles messages from chunks. Feed it socket data; it returns whole messages. */
export class ChunkReader {
  /** Set from the peer's SetChunkSize. */
  chunkSize = 128;
  private readonly streams = new Map<number, ChunkStreamState>();
  private pending: Buffer | null = null;
  private readonly maxMessageBytes: number;
  private readonly maxChunkStreams: number;
  private readonly before: number;
  private readonly after: number;

  constructor(options: ChunkReaderOptions) {
    this.maxMessageBytes = options.maxMessageBytes;
    this.maxChunkStreams = options.maxChunkStreams ?? 64;
    this.before = options.framing?.before ?? 0;
    this.after = options.framing?.after ?? 0;
  }

  /** Parses as many chunks as `data` (after any leftover) holds; calls `onMessage` per whole message. */
  push(data: Buffer, onMessage: (message: RtmpMessage) => void): void {
    let buf = data;
    if (this.pending) {
      buf = Buffer.concat([this.pending, data]);
      this.pending = null;
    }
    let pos = 0;
    while (pos < buf.length) {
      const used = this.readChunk(buf, pos, onMessage);
      if (used === 0) break;
      pos += used;
    }
    if (pos < buf.length) this.pending = buf.subarray(pos);
  }

  /** Drops a partly received message (the peer's Abort). */
  abort(chunkStreamId: number): void {
    const state = this.streams.get(chunkStreamId);
    if (state) {
      state.payload = null;
      state.received = 0;
    }
  }

  /** Parses one chunk at `start`; 0 when the buffer does not hold all of it yet. */
  private readChunk(buf: Buffer, start: number, onMessage: (message: RtmpMessage) => void): number {
    let pos = start;
    const available = buf.length;
    const first = buf[pos] as number;
    const fmt = first >> 6;
    let csid = first & 0x3f;
    pos += 1;
    if (csid === 0) {
      if (pos + 1 > available) return 0;
      csid = (buf[pos] as number) + 64;
      pos += 1;
    } else if (csid === 1) {
      if (pos + 2 > available) return 0;
      csid = (buf[pos] as number) + (buf[pos + 1] as number) * 256 + 64;
      pos += 2;
    }
    const headerSize = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    if (pos + headerSize > available) return 0;

    let state = this.streams.get(csid);
    if (!state) {
      if (fmt !== 0) throw new ChunkStreamError(`chunk stream ${csid} starts without a full header`);
      if (this.streams.size >= this.maxChunkStreams) throw new ChunkStreamError('too many chunk streams');
      state = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        payload: null,
        received: 0,
      };
      this.streams.set(csid, state);
    }
    const startsMessage = state.payload === null;
    let tsField = 0;
    if (fmt <= 2) {
      tsField = buf.readUIntBE(pos, 3);
      state.extended = tsField === 0xffffff;
    }
    if (fmt <= 1) {
      state.length = buf.readUIntBE(pos + 3, 3);
      state.type = buf[pos + 6] as number;
    }
    if (fmt === 0) state.streamId = buf.readUInt32LE(pos + 7);
    pos += headerSize;
    if (state.extended) {
      if (pos + 4 > available) return 0;
      tsField = buf.readUInt32BE(pos);
      pos += 4;
    }

    const remaining = state.length - state.received;
    const size = Math.min(remaining, this.chunkSize);
    if (pos + size > available) return 0;

    // The header is whole and so is the payload: commit the timestamp now, once per message.
    if (startsMessage) {
      if (fmt === 0) {
        state.timestamp = tsField;
        state.delta = 0;
      } else if (fmt === 1 || fmt === 2) {
        state.delta = tsField;
        state.timestamp = (state.timestamp + tsField) >>> 0;
      } else {
        state.timestamp = (state.timestamp + state.delta) >>> 0;
      }
      if (state.length > this.maxMessageBytes)
        throw new ChunkStreamError(`message of ${state.length} bytes exceeds ${this.maxMessageBytes}`);
      state.payload = Buffer.allocUnsafe(this.before + state.length + this.after);
      state.received = 0;
    }
    const framed = state.payload as Buffer;
    buf.copy(framed, this.before + state.received, pos, pos + size);
    state.received += size;
    pos += size;
    if (state.received === state.length) {
      state.payload = null;
      state.received = 0;
      const payload = framed.subarray(this.before, this.before + state.length);
      onMessage({ type: state.type, streamId: state.streamId, timestamp: state.timestamp, payload, framed });
    }
    return pos - start;
  }
}

/**
 * Encodes one message as chunks (type 0 header, then type 3 continuations).
 * Only control and command messages are written, so simplicity wins over
 * header compression.
 */
export function encodeMessage(chunkStreamId: number, message: RtmpMessage, chunkSize: number): Buffer {
  const { payload } = message;
  const extended = message.timestamp >= 0xffffff;
  const header = Buffer.alloc(12 + (extended ? 4 : 0));
  header[0] = chunkStreamId & 0x3f;
  header.writeUIntBE(extended ? 0xffffff : message.timestamp, 1, 3);
  header.writeUIntBE(payload.length, 4, 3);
  header[7] = message.type;
  header.writeUInt32LE(message.streamId, 8);
  if (extended) header.writeUInt32BE(message.timestamp, 12);
  // A continuation repeats the extended timestamp when the message has one.
  const continuation = Buffer.concat([Buffer.from([0xc0 | (chunkStreamId & 0x3f)]), header.subarray(12)]);
  const parts: Buffer[] = [header];
  for (let offset = 0; offset < payload.length; offset += chunkSize) {
    if (offset > 0) parts.push(continuation);
    parts.push(payload.subarray(offset, offset + chunkSize));
  }
  return Buffer.concat(parts);
}
