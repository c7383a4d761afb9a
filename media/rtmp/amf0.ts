/**
 * AMF0, the value encoding of RTMP commands and stream metadata: just the
 * types publishers (OBS, ffmpeg, hardware encoders) send and the replies we
 * write. Decoding is defensive: a malformed value throws `Amf0Error` and the
 * session is dropped, never the process.
 */

export type Amf0Value = number | boolean | string | null | undefined | Date | Amf0Object | Amf0Value[];
export interface Amf0Object {
  [key: string]: Amf0Value;
}

export class Amf0Error extends Error {
  override name = 'Amf0Error';
}

enum Marker {
  Number = 0x00,
  Boolean = 0x01,
  String = 0x02,
  Object = 0x03,
  Null = 0x05,
  Undefined = 0x06,
  EcmaArray = 0x08,
  ObjectEnd = 0x09,
  StrictArray = 0x0a,
  Date = 0x0b,
  LongString = 0x0c,
}

/** Nesting bound: a hostile payload cannot recurse the decoder off the stack. */
const MAX_DEPTH = 16;

class Reader {
  offset = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.offset >= this.buf.length;
  }

  need(n: number): void {
    if (this.offset + n > this.buf.length) throw new Amf0Error('truncated AMF0 value');
  }

  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.offset++);
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.offset);
    this.offset += 8;
    return v;
  }

  utf8(length: number): string {
    this.need(length);
    const s = this.buf.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return s;
  }

  value(depth: number): Amf0Value {
    if (depth > MAX_DEPTH) throw new Amf0Error('AMF0 value nested too deeply');
    const marker = this.u8();
    switch (marker) {
      case Marker.Number:
        return this.f64();
      case Marker.Boolean:
        return this.u8() !== 0;
      case Marker.String:
        return this.utf8(this.u16());
      case Marker.LongString:
        return this.utf8(this.u32());
      case Marker.Object:
        return this.properties(depth);
      case Marker.EcmaArray:
        this.u32(); // the count is a hint only; the end marker is what counts
        return this.properties(depth);
      case Marker.StrictArray: {
        const count = this.u32();
        if (count > this.buf.length - this.offset) throw new Amf0Error('AMF0 array longer than its message');
        const items: Amf0Value[] = [];
        for (let i = 0; i < count; i++) items.push(this.value(depth + 1));
        return items;
      }
      case Marker.Date: {
        const ms = this.f64();
        this.u16(); // time zone: unused by the format, always 0
        return new Date(ms);
      }
      case Marker.Null:
        return null;
      case Marker.Undefined:
        return undefined;
      default:
        throw new Amf0Error(`unsupported AMF0 marker 0x${marker.toString(16)}`);
    }
  }

  properties(depth: number): Amf0Object {
    const obj: Amf0Object = Object.create(null);
    for (;;) {
      const key = this.utf8(this.u16());
      if (key === '') {
        if (this.u8() !== Marker.ObjectEnd) throw new Amf0Error('AMF0 object without end marker');
        return obj;
      }
      obj[key] = this.value(depth + 1);
    }
  }
}

/** Decodes every value in `buf` (a command: name, transaction id, arguments). */
export function decodeAmf0(buf: Buffer): Amf0Value[] {
  const reader = new Reader(buf);
  const values: Amf0Value[] = [];
  while (!reader.done) values.push(reader.value(0));
  return values;
}

/** Byte length of the first value in `buf` (to cut `@setDataFrame` off a metadata message). */
export function firstValueLength(buf: Buffer): number {
  const reader = new Reader(buf);
  reader.value(0);
  return reader.offset;
}

function encodeString(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  const head = Buffer.alloc(3);
  head[0] = Marker.String;
  head.writeUInt16BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

function encodeKey(key: string): Buffer {
  const bytes = Buffer.from(key, 'utf8');
  const head = Buffer.alloc(2);
  head.writeUInt16BE(bytes.length, 0);
  return Buffer.concat([head, bytes]);
}

function encodeValue(value: Amf0Value): Buffer {
  if (value === null) return Buffer.from([Marker.Null]);
  if (value === undefined) return Buffer.from([Marker.Undefined]);
  if (typeof value === 'number') {
    const b = Buffer.alloc(9);
    b[0] = Marker.Number;
    b.writeDoubleBE(value, 1);
    return b;
  }
  if (typeof value === 'boolean') return Buffer.from([Marker.Boolean, value ? 1 : 0]);
  if (typeof value === 'string') return encodeString(value);
  if (value instanceof Date) {
    const b = Buffer.alloc(11);
    b[0] = Marker.Date;
    b.writeDoubleBE(value.getTime(), 1);
    return b;
  }
  if (Array.isArray(value)) {
    const head = Buffer.alloc(5);
    head[0] = Marker.StrictArray;
    head.writeUInt32BE(value.length, 1);
    return Buffer.concat([head, ...value.map(encodeValue)]);
  }
  const parts: Buffer[] = [Buffer.from([Marker.Object])];
  for (const [k, v] of Object.entries(value)) parts.push(encodeKey(k), encodeValue(v));
  parts.push(Buffer.from([0, 0, Marker.ObjectEnd]));
  return Buffer.concat(parts);
}

/** Encodes values one after another, as a command message body. */
export function encodeAmf0(...values: Amf0Value[]): Buffer {
  return Buffer.concat(values.map(encodeValue));
}
