/**
 * The codec layer of FLV audio and video tags as publishers send them
 * (H.264 in AVCC form, AAC raw frames) and what a transport stream needs
 * instead: Annex B access units with their parameter sets on keyframes,
 * and ADTS-framed AAC.
 */

export class UnsupportedMediaError extends Error {
  override name = 'UnsupportedMediaError';
}

const AVC_CODEC_ID = 7;
const AAC_SOUND_FORMAT = 10;
const START_CODE = Buffer.from([0, 0, 0, 1]);
/** Access unit delimiter (primary_pic_type 7: any slice type), which HLS asks before each access unit. */
const AUD = Buffer.from([0, 0, 0, 1, 0x09, 0xf0]);
const NAL_AUD = 9;
const NAL_SPS = 7;
export const ADTS_HEADER = 7;

export interface AvcConfig {
  /** SPS and PPS in Annex B form, ready to put before a keyframe. */
  parameterSets: Buffer;
  /** Bytes of each NAL unit's length prefix (1, 2 or 4). */
  lengthSize: number;
}

export type VideoTag =
  | { kind: 'config'; config: AvcConfig }
  | { kind: 'frame'; keyframe: boolean; compositionMs: number; nalus: Buffer }
  | { kind: 'end' };

/** Reads an FLV video tag body; only H.264 (codec id 7) is accepted. */
export function readVideoTag(data: Buffer): VideoTag {
  if (data.length < 5) throw new UnsupportedMediaError('video tag too short');
  const codecId = (data[0] as number) & 0x0f;
  if ((data[0] as number) & 0x80 || codecId !== AVC_CODEC_ID)
    throw new UnsupportedMediaError(`video codec ${codecId} is not H.264 (only H.264 is packaged)`);
  const packetType = data[1];
  if (packetType === 0) return { kind: 'config', config: readAvcConfig(data.subarray(5)) };
  if (packetType === 2) return { kind: 'end' };
  const compositionMs = data.readIntBE(2, 3);
  return { kind: 'frame', keyframe: (data[0] as number) >> 4 === 1, compositionMs, nalus: data.subarray(5) };
}

/** AVCDecoderConfigurationRecord (ISO/IEC 14496-15) → parameter sets in Annex B. */
export function readAvcConfig(record: Buffer): AvcConfig {
  if (record.length < 7 || record[0] !== 1) throw new UnsupportedMediaError('malformed AVC configuration');
  const lengthSize = ((record[4] as number) & 0x03) + 1;
  const parts: Buffer[] = [];
  let at = 5;
  for (const countMask of [0x1f, 0xff]) {
    if (at >= record.length) throw new UnsupportedMediaError('malformed AVC configuration');
    const count = (record[at] as number) & countMask;
    at += 1;
    for (let i = 0; i < count; i++) {
      if (at + 2 > record.length) throw new UnsupportedMediaError('malformed AVC configuration');
      const size = record.readUInt16BE(at);
      at += 2;
      if (at + size > record.length) throw new UnsupportedMediaError('malformed AVC configuration');
      parts.push(START_CODE, record.subarray(at, at + size));
      at += size;
    }
  }
  return { parameterSets: Buffer.concat(parts), lengthSize };
}

/**
 * A length-prefixed access unit → the pieces of its Annex B form (views,
 * nothing copied), appended to `pieces`: an AUD, on keyframes that do not
 * carry their own the stream's SPS and PPS (every segment starts at a
 * keyframe and must decode on its own), then each NAL unit after a start code.
 */
export function annexBPieces(nalus: Buffer, config: AvcConfig, keyframe: boolean, pieces: Buffer[]): void {
  pieces.push(AUD);
  const setsAt = pieces.length;
  let hasSps = false;
  let at = 0;
  while (at + config.lengthSize <= nalus.length) {
    const length = nalus.readUIntBE(at, config.lengthSize);
    at += config.lengthSize;
    if (length === 0 || at + length > nalus.length) break;
    const type = (nalus[at] as number) & 0x1f;
    if (type === NAL_SPS) hasSps = true;
    if (type !== NAL_AUD) pieces.push(START_CODE, nalus.subarray(at, at + length));
    at += length;
  }
  if (keyframe && !hasSps) pieces.splice(setsAt, 0, config.parameterSets);
}

export interface AacConfig {
  /** MPEG-4 audio object type (2: AAC LC). */
  objectType: number;
  sampleRateIndex: number;
  channels: number;
}

/** 96 kHz … 7.35 kHz (ISO/IEC 14496-3 table 1.18). */
const SAMPLE_RATE_INDEXES = 13;

export type AudioTag = { kind: 'config'; config: AacConfig } | { kind: 'frame'; raw: Buffer };

/** Reads an FLV audio tag body; only AAC (sound format 10) is accepted. */
export function readAudioTag(data: Buffer): AudioTag {
  if (data.length < 2) throw new UnsupportedMediaError('audio tag too short');
  const format = (data[0] as number) >> 4;
  if (format !== AAC_SOUND_FORMAT)
    throw new UnsupportedMediaError(`audio format ${format} is not AAC (only AAC is packaged)`);
  if (data[1] === 0) {
    if (data.length < 4) throw new UnsupportedMediaError('malformed AAC configuration');
    const objectType = (data[2] as number) >> 3;
    const sampleRateIndex = (((data[2] as number) & 0x07) << 1) | ((data[3] as number) >> 7);
    const channels = ((data[3] as number) >> 3) & 0x0f;
    // Index 15 (an explicit 24-bit rate) and channel configuration 0 (a program config element) cannot be said in ADTS.
    if (objectType === 0 || objectType === 31 || sampleRateIndex >= SAMPLE_RATE_INDEXES || channels === 0)
      throw new UnsupportedMediaError('unsupported AAC configuration');
    return { kind: 'config', config: { objectType, sampleRateIndex, channels } };
  }
  return { kind: 'frame', raw: data.subarray(2) };
}

/** Writes the 7-byte ADTS header (no CRC) of a raw AAC frame of `rawLength` bytes into `out`. */
export function writeAdtsHeader(out: Buffer, rawLength: number, config: AacConfig): void {
  const length = rawLength + ADTS_HEADER;
  // ADTS carries the profile in 2 bits (object type − 1): HE-AAC is signalled as LC with implicit SBR.
  const profile = Math.min(config.objectType, 4) - 1;
  out[0] = 0xff;
  out[1] = 0xf1;
  out[2] = (profile << 6) | (config.sampleRateIndex << 2) | ((config.channels >> 2) & 0x01);
  out[3] = ((config.channels & 0x03) << 6) | ((length >> 11) & 0x03);
  out[4] = (length >> 3) & 0xff;
  out[5] = ((length & 0x07) << 5) | 0x1f;
  out[6] = 0xfc;
}
