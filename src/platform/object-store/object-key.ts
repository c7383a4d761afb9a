/**
 * Object keys and content types, shared by every ObjectStore adapter so that
 * a key accepted by one adapter is accepted by all of them.
 *
 * Keys are deliberately narrow: they become file paths in the local adapter
 * and URL paths in public links, so the rules rule out path traversal
 * (`..`), absolute paths, empty segments and anything that would need
 * URL-encoding.
 */
import { AppError } from '../errors.js';

/** Longest key in bytes (S3's own limit). Keys are ASCII, so bytes = characters. */
export const MAX_KEY_BYTES = 1024;
/**
 * Longest segment in bytes. Not an S3 rule: the local adapter stores a
 * segment as a file name and adds a suffix for temp files and metadata
 * sidecars, and file names stop at 255 bytes. Enforced for every adapter so
 * they accept exactly the same keys.
 */
export const MAX_SEGMENT_BYTES = 200;

const SEGMENT = /^[A-Za-z0-9._=-]+$/;
const PARTIAL_SEGMENT = /^[A-Za-z0-9._=-]*$/;

function invalid(what: string, value: string, reason: string): AppError {
  // The value is echoed (truncated) to help callers; keys never hold secrets.
  const shown = value.length > 80 ? `${value.slice(0, 80)}...` : value;
  return new AppError('OBJECT_KEY_INVALID', `Invalid object ${what} ${JSON.stringify(shown)}: ${reason}`, {
    reason,
  });
}

function checkSegment(what: string, value: string, segment: string): void {
  if (segment === '') throw invalid(what, value, 'empty segment (leading, trailing or double slash)');
  if (segment === '.' || segment === '..') throw invalid(what, value, `"${segment}" segment`);
  if (!SEGMENT.test(segment)) throw invalid(what, value, 'segments may only contain A-Z a-z 0-9 . _ = -');
  if (segment.length > MAX_SEGMENT_BYTES) {
    throw invalid(what, value, `segment longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
}

/**
 * Throws `OBJECT_KEY_INVALID` unless `key` is segments of `[A-Za-z0-9._=-]+`
 * separated by single slashes, without `.`/`..` segments or a leading or
 * trailing slash, at most 1024 bytes.
 */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw invalid('key', String(key), 'empty');
  if (key.length > MAX_KEY_BYTES) throw invalid('key', key, `longer than ${MAX_KEY_BYTES} bytes`);
  for (const segment of key.split('/')) checkSegment('key', key, segment);
}

/** Boolean form of {@link assertValidKey}. */
export function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws `OBJECT_KEY_INVALID` unless `prefix` can start a valid key: empty, or
 * complete segments each followed by `/`, then an optional partial last
 * segment (`live/12/seg` matches `live/12/seg-1.ts`). The complete segments
 * follow the key rules, so a prefix can never climb out of the store.
 */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw invalid('prefix', String(prefix), 'not a string');
  if (prefix === '') return;
  if (prefix.length > MAX_KEY_BYTES) throw invalid('prefix', prefix, `longer than ${MAX_KEY_BYTES} bytes`);
  const segments = prefix.split('/');
  const last = segments.pop() ?? '';
  for (const segment of segments) checkSegment('prefix', prefix, segment);
  if (!PARTIAL_SEGMENT.test(last))
    throw invalid('prefix', prefix, 'segments may only contain A-Z a-z 0-9 . _ = -');
}

/**
 * Normalizes a key prefix that a deployment puts in front of every key
 * (`S3_KEY_PREFIX`): empty, or valid segments ending in `/` (a missing final
 * slash is added, so `media` and `media/` mean the same).
 */
export function normalizeKeyPrefix(prefix: string | undefined): string {
  if (!prefix) return '';
  const withSlash = prefix.endsWith('/') ? prefix : `${prefix}/`;
  try {
    assertValidKey(withSlash.slice(0, -1));
  } catch {
    throw invalid('key prefix', prefix, 'must be key segments separated by single slashes');
  }
  return withSlash;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  m3u8: 'application/vnd.apple.mpegurl',
  ts: 'video/mp2t',
  m4s: 'video/iso.segment',
  mp4: 'video/mp4',
  m4a: 'audio/mp4',
  json: 'application/json',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  vtt: 'text/vtt',
  txt: 'text/plain; charset=utf-8',
  pdf: 'application/pdf',
};

/**
 * Checks a requested byte range (inclusive, like HTTP Range) and clamps its
 * end to the object: `start` must be an integer >= 0 and below `size`, `end`
 * (default: the last byte) an integer >= `start`. Throws
 * `RANGE_NOT_SATISFIABLE` otherwise. Without `size` only the shape is checked
 * (S3 adapters let the server compare with the size).
 */
export function checkRange(
  range: { start: number; end?: number },
  size?: number,
): { start: number; end: number | undefined } {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new AppError('RANGE_NOT_SATISFIABLE', 'Range start must be an integer >= 0');
  }
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new AppError('RANGE_NOT_SATISFIABLE', 'Range end must be an integer >= start');
  }
  if (size === undefined) return { start, end };
  if (start >= size) {
    throw new AppError('RANGE_NOT_SATISFIABLE', `Range starts at ${start} but the object has ${size} bytes`, {
      size,
    });
  }
  return { start, end: Math.min(end ?? size - 1, size - 1) };
}

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** Content-Type for a key from its extension (case-insensitive); `application/octet-stream` when unknown. */
export function contentTypeForKey(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return DEFAULT_CONTENT_TYPE; // no extension, or a dot-file like ".env"
  return CONTENT_TYPES[name.slice(dot + 1).toLowerCase()] ?? DEFAULT_CONTENT_TYPE;
}

/** Default and largest `list` page. */
export const MAX_LIST_LIMIT = 1000;

/** `list`'s page size: default and at most 1000; below 1 or not an integer is a caller bug (`BAD_REQUEST`). */
export function normalizeListLimit(limit: number | undefined): number {
  if (limit === undefined) return MAX_LIST_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new AppError('BAD_REQUEST', `list limit must be an integer >= 1 (got ${limit})`);
  }
  return Math.min(limit, MAX_LIST_LIMIT);
}
