/**
 * The RTMP pieces on their own: AMF0 values, the chunk stream (header
 * compression, interleaving, extended timestamps, limits), both handshake
 * dialects, playlist rendering, and a server that survives garbage.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parseFfmpegPlaylist, renderMediaPlaylist } from '../media/hls/hls-playlist.js';
import { Amf0Error, decodeAmf0, encodeAmf0 } from '../media/rtmp/amf0.js';
import {
  ChunkReader,
  ChunkStreamError,
  encodeMessage,
  type RtmpMessage,
} from '../media/rtmp/chunk-stream.js';
import { HANDSHAKE_SIZE, serverHandshake } from '../media/rtmp/handshake.js';
import { RtmpServer } from '../media/rtmp/rtmp-server.js';

describe('AMF0', () => {
  it('round-trips the values commands carry', () => {
    const values = [
      'connect',
      1,
      { app: 'live', tcUrl: 'rtmp://x/live', nested: { ok: true } },
      null,
      undefined,
      [1, 'a'],
    ];
    expect(decodeAmf0(encodeAmf0(...(values as never[])))).toEqual(values);
  });

  it('refuses truncated values, unknown markers and hostile nesting with Amf0Error', () => {
    const encoded = encodeAmf0('publish', 5);
    expect(() => decodeAmf0(encoded.subarray(0, encoded.length - 3))).toThrow(Amf0Error);
    expect(() => decodeAmf0(Buffer.from([0x11]))).toThrow(Amf0Error);
    // 40 nested strict arrays of length 1: [0x0a, 0,0,0,1] repeated, then a number.
    const nested = Buffer.concat([
      ...Array.from({ length: 40 }, () => Buffer.from([0x0a, 0, 0, 0, 1])),
      encodeAmf0(1),
    ]);
    expect(() => decodeAmf0(nested)).toThrow(Amf0Error);
  });
});

describe('chunk stream', () => {
  const collect = (reader: ChunkReader, ...pieces: Buffer[]) => {
    const out: RtmpMessage[] = [];
    for (const p of pieces) reader.push(p, (m) => out.push(m));
    return out;
  };

  it('reassembles a message split into chunks and fed a byte at a time', () => {
    const payload = randomBytes(1000);
    const wire = encodeMessage(6, { type: 9, streamId: 1, timestamp: 40, payload }, 128);
    const reader = new ChunkReader({ maxMessageBytes: 1 << 20 });
    const out = collect(reader, ...[...wire].map((b) => Buffer.from([b])));
    expect(out).toHaveLength(1);
    expect(out[0]?.payload.equals(payload)).toBe(true);
    expect(out[0]).toMatchObject({ type: 9, streamId: 1, timestamp: 40 });
  });

  it('applies type 1, 2 and 3 headers as deltas on the same chunk stream', () => {
    const reader = new ChunkReader({ maxMessageBytes: 1 << 20 });
    const fmt0 = encodeMessage(4, { type: 8, streamId: 1, timestamp: 1000, payload: Buffer.from('aa') }, 128);
    // fmt 1: delta 20, length 3, type 8
    const fmt1 = Buffer.from([0x44, 0, 0, 20, 0, 0, 3, 8, ...Buffer.from('bbb')]);
    // fmt 2: delta 25, same length and type
    const fmt2 = Buffer.from([0x84, 0, 0, 25, ...Buffer.from('ccc')]);
    // fmt 3: a new message repeating the last delta
    const fmt3 = Buffer.from([0xc4, ...Buffer.from('ddd')]);
    const out = collect(reader, fmt0, fmt1, fmt2, fmt3);
    expect(out.map((m) => m.timestamp)).toEqual([1000, 1020, 1045, 1070]);
    expect(out.map((m) => m.payload.toString())).toEqual(['aa', 'bbb', 'ccc', 'ddd']);
  });

  it('carries extended timestamps, also on continuation chunks', () => {
    const payload = randomBytes(300);
    const wire = encodeMessage(5, { type: 9, streamId: 1, timestamp: 0x1234567, payload }, 128);
    const out = collect(new ChunkReader({ maxMessageBytes: 1 << 20 }), wire);
    expect(out[0]?.timestamp).toBe(0x1234567);
    expect(out[0]?.payload.equals(payload)).toBe(true);
  });

  it('interleaves chunk streams and honours the peer chunk size', () => {
    const reader = new ChunkReader({ maxMessageBytes: 1 << 20 });
    reader.chunkSize = 64;
    const a = encodeMessage(6, { type: 9, streamId: 1, timestamp: 0, payload: Buffer.alloc(100, 1) }, 64);
    const b = encodeMessage(4, { type: 8, streamId: 1, timestamp: 0, payload: Buffer.alloc(100, 2) }, 64);
    // a's first chunk (12 + 64), b whole, then a's rest.
    const out = collect(reader, a.subarray(0, 76), b, a.subarray(76));
    expect(out.map((m) => m.type)).toEqual([8, 9]);
    expect(out[1]?.payload.every((x) => x === 1)).toBe(true);
  });

  it('refuses a message over the size limit and a stream that starts without a full header', () => {
    const big = encodeMessage(6, { type: 9, streamId: 1, timestamp: 0, payload: Buffer.alloc(2000) }, 4096);
    expect(() => collect(new ChunkReader({ maxMessageBytes: 1000 }), big)).toThrow(ChunkStreamError);
    expect(() => collect(new ChunkReader({ maxMessageBytes: 1000 }), Buffer.from([0xc7, 1, 2]))).toThrow(
      ChunkStreamError,
    );
  });
});

describe('handshake', () => {
  it('echoes C1 for a simple-handshake client (librtmp, OBS)', () => {
    const c1 = Buffer.concat([Buffer.alloc(8), randomBytes(HANDSHAKE_SIZE - 8)]);
    const reply = serverHandshake(c1);
    expect(reply.length).toBe(1 + 2 * HANDSHAKE_SIZE);
    expect(reply[0]).toBe(3);
    expect(reply.subarray(1 + HANDSHAKE_SIZE).equals(c1)).toBe(true);
  });

  it('answers a digest client (Flash, ffmpeg) with S1 carrying a valid server digest', () => {
    const fpKey = Buffer.from('Genuine Adobe Flash Player 001');
    const c1 = Buffer.concat([Buffer.from([0, 0, 0, 0, 9, 0, 124, 2]), randomBytes(HANDSHAKE_SIZE - 8)]);
    const offsetOf = (p: Buffer, base: number) =>
      (((p[base] ?? 0) + (p[base + 1] ?? 0) + (p[base + 2] ?? 0) + (p[base + 3] ?? 0)) % 728) + base + 4;
    const at = offsetOf(c1, 8);
    const without = Buffer.concat([c1.subarray(0, at), c1.subarray(at + 32)]);
    createHmac('sha256', fpKey).update(without).digest().copy(c1, at);

    const reply = serverHandshake(c1);
    const s1 = reply.subarray(1, 1 + HANDSHAKE_SIZE);
    expect(s1.equals(c1)).toBe(false);
    const s1At = offsetOf(s1, 8);
    const expected = createHmac('sha256', Buffer.from('Genuine Adobe Flash Media Server 001'))
      .update(Buffer.concat([s1.subarray(0, s1At), s1.subarray(s1At + 32)]))
      .digest();
    expect(s1.subarray(s1At, s1At + 32).equals(expected)).toBe(true);
  });
});

describe('playlists', () => {
  it('reads segments, durations and dates from an ffmpeg playlist', () => {
    const parsed = parseFfmpegPlaylist(
      '#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI="init.mp4"\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T10:00:00.000+0000\n#EXTINF:1.001000,\nseg_000000.m4s\n#EXTINF:0.999,\nseg_000001.m4s\n#EXT-X-ENDLIST\n',
    );
    expect(parsed.ended).toBe(true);
    expect(parsed.segments.map((s) => [s.file, s.durationSeconds, s.initFile])).toEqual([
      ['seg_000000.m4s', 1.001, 'init.mp4'],
      ['seg_000001.m4s', 0.999, 'init.mp4'],
    ]);
    expect(parsed.segments[0]?.programDateTime?.toISOString()).toBe('2026-11-25T10:00:00.000Z');
  });

  it('writes discontinuities, date ranges and the VOD end', () => {
    const at = new Date('2026-11-25T10:00:00Z');
    const text = renderMediaPlaylist({
      segments: [
        {
          sequence: 4,
          uri: 'a/1.ts',
          durationSeconds: 2,
          programDateTime: at,
          initUri: null,
          discontinuity: false,
        },
        {
          sequence: 5,
          uri: 'b/0.ts',
          durationSeconds: 2.5,
          programDateTime: at,
          initUri: null,
          discontinuity: true,
        },
      ],
      discontinuitySequence: 1,
      dateRanges: [
        {
          id: 'pin-1',
          class: 'com.livecommerce.pin',
          startDate: at,
          attributes: { 'product-id': 'p"1', n: 2 },
        },
      ],
      ended: true,
      playlistType: 'VOD',
      minTargetDuration: 1,
    });
    expect(text).toContain('#EXT-X-MEDIA-SEQUENCE:4');
    expect(text).toContain('#EXT-X-DISCONTINUITY-SEQUENCE:1');
    expect(text).toContain('#EXT-X-TARGETDURATION:3');
    expect(text).toMatch(/#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXTINF:2\.500,\nb\/0\.ts/);
    expect(text).toContain(
      `#EXT-X-DATERANGE:ID="pin-1",CLASS="com.livecommerce.pin",START-DATE="${at.toISOString()}",X-PRODUCT-ID="p'1",X-N=2`,
    );
    expect(text.trimEnd().endsWith('#EXT-X-ENDLIST')).toBe(true);
  });
});

describe('RtmpServer', () => {
  let server: RtmpServer | undefined;
  afterEach(async () => {
    await server?.close();
  });

  it('drops a client that sends garbage and keeps serving others', async () => {
    const errors: Error[] = [];
    server = new RtmpServer({
      host: '127.0.0.1',
      port: 0,
      onPublish: async () => ({ accept: true, target: { flv: new PassThrough(), onEnd: () => undefined } }),
    });
    server.on('sessionError', (err) => errors.push(err));
    await server.listen();
    const port = server.port;
    const closed = (payload: Buffer) =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.write(payload));
        socket.on('error', () => undefined);
        socket.resume(); // read the server's handshake, or its close is never seen
        socket.on('close', () => resolve());
      });
    // Wrong version byte.
    await closed(Buffer.concat([Buffer.from([9]), randomBytes(HANDSHAKE_SIZE)]));
    // A valid handshake followed by a chunk stream that starts with a type 3 header.
    await closed(
      Buffer.concat([Buffer.from([3]), randomBytes(HANDSHAKE_SIZE * 2), Buffer.from([0xc9, 0, 0])]),
    );
    expect(errors.length).toBe(2);
    expect(server.connectionCount).toBe(0);
  });

  it('answers every read before the publish at once: an Acknowledgement when there is nothing else to say', async () => {
    server = new RtmpServer({
      host: '127.0.0.1',
      port: 0,
      onPublish: async () => ({ accept: false, reason: 'unauthorized' }),
    });
    await server.listen();
    const socket = connect(server.port, '127.0.0.1');
    socket.on('error', () => undefined);
    const received: Buffer[] = [];
    let bytes = 0;
    const waitForBytes = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (bytes >= n) {
            socket.off('data', onData);
            resolve();
          }
        };
        const onData = (chunk: Buffer) => {
          received.push(chunk);
          bytes += chunk.length;
          check();
        };
        socket.on('data', onData);
        check();
      });
    const handshake = 1 + HANDSHAKE_SIZE * 2;
    socket.write(Buffer.concat([Buffer.from([3]), randomBytes(HANDSHAKE_SIZE)]));
    await waitForBytes(handshake);
    // C2 alone: nothing to answer but its receipt, which must not wait for TCP's delayed ACK.
    socket.write(randomBytes(HANDSHAKE_SIZE));
    await waitForBytes(handshake + 16);
    const messages: RtmpMessage[] = [];
    new ChunkReader({ maxMessageBytes: 1024 }).push(Buffer.concat(received).subarray(handshake), (m) =>
      messages.push(m),
    );
    expect(messages.map((m) => m.type)).toEqual([3]);
    expect(messages[0]?.payload.readUInt32BE(0)).toBe(1 + HANDSHAKE_SIZE * 2);
    // A control message the server does not answer (a client's Window Acknowledgement Size) is acknowledged too.
    const windowSize = Buffer.alloc(4);
    windowSize.writeUInt32BE(2_500_000);
    socket.write(encodeMessage(2, { type: 5, streamId: 0, timestamp: 0, payload: windowSize }, 128));
    await waitForBytes(handshake + 32);
    socket.destroy();
  });
});
