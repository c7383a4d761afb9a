/**
 * Reads an FLV byte stream (file header, then tags each followed by its
 * size) into tags, whatever the write boundaries: a tag split across two
 * writes waits for its rest, and tags that arrive whole are handed out as
 * views of the written buffer, not copies.
 */

export const FlvTagType = { Audio: 8, Video: 9, Script: 18 } as const;

export interface FlvTag {
  type: number;
  /** Milliseconds (decode time for video), 32 bits. */
  timestamp: number;
  /** The tag's body; a view that is only valid during the callback. */
  data: Buffer;
}

export class FlvFormatError extends Error {
  override name = 'FlvFormatError';
}

const FILE_HEADER_MIN = 9;
const TAG_HEADER = 11;
const PREVIOUS_SIZE = 4;
/** Larger than any tag a publisher may send (the RTMP ingest caps messages lower). */
const MAX_TAG_BYTES = 16 * 1024 * 1024;

export class FlvReader {
  private pending: Buffer | null = null;
  private headerRead = false;

  constructor(private readonly onTag: (tag: FlvTag) => void) {}

  /** Parses what `chunk` completes; throws `FlvFormatError` on a stream that is not FLV. */
  push(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let at = 0;
    if (!this.headerRead) {
      if (buf.length < FILE_HEADER_MIN + PREVIOUS_SIZE) {
        this.pending = buf;
        return;
      }
      if (buf[0] !== 0x46 || buf[1] !== 0x4c || buf[2] !== 0x56)
        throw new FlvFormatError('not an FLV stream');
      at = buf.readUInt32BE(5) + PREVIOUS_SIZE;
      this.headerRead = true;
    }
    while (buf.length - at >= TAG_HEADER) {
      const size = buf.readUIntBE(at + 1, 3);
      if (size > MAX_TAG_BYTES) throw new FlvFormatError(`FLV tag of ${size} bytes`);
      const end = at + TAG_HEADER + size + PREVIOUS_SIZE;
      if (end > buf.length) break;
      const type = (buf[at] as number) & 0x1f;
      const timestamp = (buf.readUIntBE(at + 4, 3) | ((buf[at + 7] as number) << 24)) >>> 0;
      this.onTag({ type, timestamp, data: buf.subarray(at + TAG_HEADER, at + TAG_HEADER + size) });
      at = end;
    }
    if (at < buf.length) {
      // Keep only the unread rest; copy it so the caller's large buffer is not retained.
      buf = buf.subarray(at);
      this.pending = Buffer.from(buf);
    }
  }
}
