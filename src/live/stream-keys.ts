/**
 * Stream keys and public ids. A stream key is the secret OBS sends in the RTMP
 * publish path; only its sha256 is stored, so a database leak does not leak a
 * working key (the key has ~190 random bits, so a fast unsalted hash is
 * enough: there is nothing to brute-force).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export const STREAM_KEY_PREFIX = 'sk_';
/** Random base62 characters after the prefix (32 × log2(62) ≈ 190 bits). */
const STREAM_KEY_RANDOM_CHARS = 32;
export const STREAM_KEY_PATTERN = /^sk_[A-Za-z0-9]{32}$/;
/** What the studio shows of a key: the prefix and 4 random characters ("sk_ab12…"). */
const KEY_DISPLAY_CHARS = STREAM_KEY_PREFIX.length + 4;

export const PUBLIC_ID_LENGTH = 10;
export const PUBLIC_ID_PATTERN = '^[A-Za-z0-9]{10}$';

/** `length` uniformly random base62 characters (rejection sampling: no modulo bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

export function newPublicId(): string {
  return randomBase62(PUBLIC_ID_LENGTH);
}

export interface NewStreamKey {
  /** The plaintext key: shown to the streamer once, never stored or logged. */
  key: string;
  hash: string;
  prefix: string;
}

export function newStreamKey(): NewStreamKey {
  const key = STREAM_KEY_PREFIX + randomBase62(STREAM_KEY_RANDOM_CHARS);
  return { key, hash: hashStreamKey(key), prefix: key.slice(0, KEY_DISPLAY_CHARS) };
}

/** sha256 of the key, hex. */
export function hashStreamKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Constant-time comparison of two hex sha256 digests. */
export function sameKeyHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}
