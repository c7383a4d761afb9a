/**
 * MPEG-2 transport stream packetization (ISO/IEC 13818-1) of one program
 * with an H.264 and/or an AAC (ADTS) elementary stream: the PAT and PMT
 * that open every HLS segment, and PES packets cut into 188-byte TS
 * packets with continuity counters, a PCR on the clock track and stuffing
 * in the adaptation field. Timestamps are 90 kHz ticks.
 */

const PACKET = 188;
const PAYLOAD = PACKET - 4;
const SYNC = 0x47;
const PAT_PID = 0;
const PMT_PID = 0x1000;
export const VIDEO_PID = 0x100;
export const AUDIO_PID = 0x101;
const STREAM_TYPE_H264 = 0x1b;
const STREAM_TYPE_AAC_ADTS = 0x0f;
const STREAM_ID_VIDEO = 0xe0;
const STREAM_ID_AUDIO = 0xc0;
/** 2^33: PTS, DTS and the PCR base wrap here. */
const TIMESTAMP_WRAP = 8589934592;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let bit = 0; bit < 8; bit++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32/MPEG-2 of PSI sections. */
export function crc32Mpeg2(data: Uint8Array, start = 0, end = data.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++)
    crc = ((crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ (data[i] as number)) & 0xff] as number)) >>> 0;
  return crc;
}

/** Writes a 33-bit timestamp in the PES form (prefix nibble, marker bits). */
function writeTimestamp(buf: Buffer, at: number, prefix: number, ticks: number): void {
  const t = ticks % TIMESTAMP_WRAP;
  const high = Math.floor(t / 0x40000000); // bits 32..30
  const low = t % 0x40000000; // bits 29..0
  buf[at] = (prefix << 4) | ((high & 0x7) << 1) | 1;
  buf.writeUInt16BE((((low >>> 15) & 0x7fff) << 1) | 1, at + 1);
  buf.writeUInt16BE(((low & 0x7fff) << 1) | 1, at + 3);
}

/** Writes the 6-byte PCR (33-bit base in 90 kHz, extension 0). */
function writePcr(buf: Buffer, at: number, ticks: number): void {
  const base = ticks % TIMESTAMP_WRAP;
  const top = Math.floor(base / 2); // bits 32..1
  buf.writeUInt32BE(top >>> 0, at);
  buf[at + 4] = ((base % 2) << 7) | 0x7e;
  buf[at + 5] = 0;
}

export interface TsProgram {
  video: boolean;
  audio: boolean;
}

export interface PesOptions {
  pts: number;
  /** Omitted when equal to `pts` (audio, and video without reordering). */
  dts?: number;
  /** A video keyframe: the packet is marked as a random access point. */
  randomAccess?: boolean;
}

/**
 * The bytes of one segment as it is written: one buffer that grows by
 * doubling and is reused for later segments, so packaging a stream does not
 * allocate per frame (fresh buffers per frame kept V8's collector busy).
 */
export class TsBuffer {
  private buffer: Buffer;
  length = 0;

  constructor(capacity = 256 * 1024) {
    this.buffer = Buffer.allocUnsafe(capacity);
  }

  /** What has been written. A view: valid until the next `reset`. */
  get bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }

  /** Makes room for `bytes` more and returns the buffer with the offset to write them at. */
  reserve(bytes: number): { buf: Buffer; at: number } {
    const at = this.length;
    if (at + bytes > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, at + bytes));
      this.buffer.copy(grown, 0, 0, at);
      this.buffer = grown;
    }
    this.length += bytes;
    return { buf: this.buffer, at };
  }

  reset(): void {
    this.length = 0;
  }
}

function table(pid: number, body: number[]): Buffer {
  const out = Buffer.alloc(PACKET, 0xff);
  const [tableId, ...rest] = body;
  out[0] = SYNC;
  out[1] = 0x40 | ((pid >> 8) & 0x1f);
  out[2] = pid & 0xff;
  out[3] = 0x10; // payload only; the continuity counter is set per write
  out[4] = 0; // pointer_field
  const sectionLength = rest.length + 4; // after the length field: the body and the CRC
  out[5] = tableId as number;
  out[6] = 0xb0 | ((sectionLength >> 8) & 0x0f);
  out[7] = sectionLength & 0xff;
  Buffer.from(rest).copy(out, 8);
  const crcAt = 8 + rest.length;
  out.writeUInt32BE(crc32Mpeg2(out, 5, crcAt), crcAt);
  return out;
}

export class MpegTsWriter {
  /** Continuity counters by PID (PAT, PMT, video, audio). */
  private readonly continuity = new Uint8Array(0x2000);
  private readonly pcrPid: number;
  private readonly pat: Buffer;
  private readonly pmt: Buffer;
  /** The PES header being written (at most 19 bytes); reused. */
  private readonly header = Buffer.allocUnsafe(19);
  private readonly parts: Buffer[] = [];

  constructor(program: TsProgram) {
    if (!program.video && !program.audio) throw new Error('a program needs at least one stream');
    this.pcrPid = program.video ? VIDEO_PID : AUDIO_PID;
    // table_id 0, transport_stream_id 1, version 0 current, section 0 of 0; program 1 → PMT PID
    this.pat = table(PAT_PID, [
      0x00,
      0x00,
      0x01,
      0xc1,
      0x00,
      0x00,
      0x00,
      0x01,
      0xe0 | (PMT_PID >> 8),
      PMT_PID & 0xff,
    ]);
    const streams: number[] = [];
    if (program.video) streams.push(STREAM_TYPE_H264, 0xe0 | (VIDEO_PID >> 8), VIDEO_PID & 0xff, 0xf0, 0x00);
    if (program.audio)
      streams.push(STREAM_TYPE_AAC_ADTS, 0xe0 | (AUDIO_PID >> 8), AUDIO_PID & 0xff, 0xf0, 0x00);
    // table_id 2, program 1, version 0 current, section 0 of 0; PCR PID; no program descriptors; the streams
    this.pmt = table(PMT_PID, [
      0x02, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe0 | (this.pcrPid >> 8), this.pcrPid & 0xff, 0xf0, 0x00, ...streams,
    ]); // biome-ignore format: one table per line
  }

  /** PAT and PMT: the first two packets of every segment, so each segment decodes on its own. */
  writeTables(out: TsBuffer): void {
    const { buf, at } = out.reserve(PACKET * 2);
    this.pat.copy(buf, at);
    buf[at + 3] = 0x10 | this.nextContinuity(PAT_PID);
    this.pmt.copy(buf, at + PACKET);
    buf[at + PACKET + 3] = 0x10 | this.nextContinuity(PMT_PID);
  }

  /** One access unit, given as consecutive pieces (video: Annex B with its AUD; audio: an ADTS frame), as TS packets. */
  writePes(out: TsBuffer, kind: 'video' | 'audio', pieces: readonly Buffer[], options: PesOptions): void {
    const video = kind === 'video';
    const pid = video ? VIDEO_PID : AUDIO_PID;
    const withDts = options.dts !== undefined && options.dts !== options.pts;
    const headerData = withDts ? 10 : 5;
    let payloadLength = 0;
    for (const piece of pieces) payloadLength += piece.length;
    const header = this.header.subarray(0, 9 + headerData);
    header.writeUInt32BE(0x00000100 | (video ? STREAM_ID_VIDEO : STREAM_ID_AUDIO), 0);
    const length = 3 + headerData + payloadLength;
    // Video PES may exceed 16 bits; 0 ("unbounded") is allowed for video only.
    header.writeUInt16BE(video || length > 0xffff ? 0 : length, 4);
    header[6] = 0x84; // marker bits, data_alignment_indicator
    header[7] = withDts ? 0xc0 : 0x80;
    header[8] = headerData;
    writeTimestamp(header, 9, withDts ? 0x3 : 0x2, options.pts);
    if (withDts) writeTimestamp(header, 14, 0x1, options.dts as number);
    const pcr = pid === this.pcrPid ? (options.dts ?? options.pts) : null;
    this.parts.length = 0;
    this.parts.push(header, ...pieces);
    this.packetize(out, pid, this.parts, header.length + payloadLength, pcr, options.randomAccess === true);
  }

  private packetize(
    out: TsBuffer,
    pid: number,
    parts: readonly Buffer[],
    total: number,
    pcr: number | null,
    randomAccess: boolean,
  ): void {
    const firstAf = pcr !== null || randomAccess ? 2 + (pcr !== null ? 6 : 0) : 0;
    const packets = total + firstAf <= PAYLOAD ? 1 : 1 + Math.ceil((total - (PAYLOAD - firstAf)) / PAYLOAD);
    const { buf, at: start } = out.reserve(packets * PACKET);
    let read = 0; // bytes of the PES written so far
    let part = 0; // the piece being copied, and the offset in it
    let offset = 0;
    for (let p = 0; p < packets; p++) {
      const at = start + p * PACKET;
      const first = p === 0;
      let af = first ? firstAf : 0;
      const room = PAYLOAD - af;
      const remaining = total - read;
      // The last packet's short payload is padded by growing (or adding) its adaptation field.
      if (remaining < room) af += room - remaining;
      buf[at] = SYNC;
      buf[at + 1] = (first ? 0x40 : 0) | ((pid >> 8) & 0x1f);
      buf[at + 2] = pid & 0xff;
      buf[at + 3] = (af > 0 ? 0x30 : 0x10) | this.nextContinuity(pid);
      let w = at + 4;
      if (af > 0) {
        buf[w] = af - 1; // adaptation_field_length excludes itself
        if (af > 1) {
          let flags = 0;
          if (first && randomAccess) flags |= 0x40;
          if (first && pcr !== null) flags |= 0x10;
          buf[w + 1] = flags;
          let f = w + 2;
          if (first && pcr !== null) {
            writePcr(buf, f, pcr);
            f += 6;
          }
          buf.fill(0xff, f, w + af);
        }
        w += af;
      }
      const end = at + PACKET;
      read += end - w;
      while (w < end) {
        const piece = parts[part] as Buffer;
        const n = Math.min(piece.length - offset, end - w);
        piece.copy(buf, w, offset, offset + n);
        w += n;
        offset += n;
        if (offset === piece.length) {
          part += 1;
          offset = 0;
        }
      }
    }
  }

  private nextContinuity(pid: number): number {
    const cc = this.continuity[pid] as number;
    this.continuity[pid] = (cc + 1) & 0x0f;
    return cc;
  }
}
