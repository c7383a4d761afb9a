/**
 * Uploads for chat attachments: a signed-in user posts raw bytes, they are
 * checked (allowed type, content matching the declared type, size) and stored
 * in the ObjectStore under `uploads/<userId>/<uuid>/<name>`, and recorded so
 * that a message can only attach files really uploaded here by its sender.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { AuthUser } from '../auth/permissions.js';
import type { Database } from '../database.js';
import { AppError } from '../platform/errors.js';
import type { ObjectStore } from '../platform/object-store/object-store.js';

/** Accepted content types and the extension a stored name gets when it has none. */
export const UPLOAD_CONTENT_TYPES = {
  'image/jpeg': 'jpg',
  'image/png': 'png',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'application/pdf': 'pdf',
  'text/plain': 'txt',
} as const;
export type UploadContentType = keyof typeof UPLOAD_CONTENT_TYPES;
export const UPLOAD_CONTENT_TYPE_LIST = Object.keys(UPLOAD_CONTENT_TYPES) as UploadContentType[];

export const MAX_FILE_NAME_LENGTH = 255;
/** Longest file name inside the object key (keys allow only A-Z a-z 0-9 . _ -). */
const MAX_KEY_NAME_LENGTH = 100;
/** Objects never change once stored (the key holds a fresh uuid). */
const UPLOAD_CACHE_CONTROL = 'public, max-age=31536000, immutable';

export interface UploadView {
  /** Where clients fetch the file; what a message's attachment names. */
  url: string;
  key: string;
  /** The file's display name. */
  name: string;
  size: number;
  contentType: UploadContentType;
}

export interface UploadInput {
  /** The request's Content-Type header. */
  contentType: string | undefined;
  /** The request's x-file-name header: plain, or percent-encoded for non-ASCII names. */
  fileName: string | undefined;
  bytes: Buffer;
}

/** The media type of a Content-Type header, lower-cased and without parameters, if it is accepted. */
export function uploadContentType(header: string | undefined): UploadContentType | undefined {
  const essence = header?.split(';')[0]?.trim().toLowerCase();
  return essence && essence in UPLOAD_CONTENT_TYPES ? (essence as UploadContentType) : undefined;
}

/** Whether the bytes look like what the content type says (magic numbers; UTF-8 text without NUL). */
export function contentMatchesType(contentType: UploadContentType, bytes: Buffer): boolean {
  const starts = (...sig: number[]) => sig.every((b, i) => bytes[i] === b);
  switch (contentType) {
    case 'image/jpeg':
      return starts(0xff, 0xd8, 0xff);
    case 'image/png':
      return starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
    case 'image/gif':
      return (
        bytes.subarray(0, 6).toString('latin1') === 'GIF87a' ||
        bytes.subarray(0, 6).toString('latin1') === 'GIF89a'
      );
    case 'image/webp':
      return (
        bytes.subarray(0, 4).toString('latin1') === 'RIFF' &&
        bytes.subarray(8, 12).toString('latin1') === 'WEBP'
      );
    case 'application/pdf':
      return bytes.subarray(0, 5).toString('latin1') === '%PDF-';
    case 'text/plain':
      if (bytes.includes(0)) return false;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes);
        return true;
      } catch {
        return false;
      }
  }
}

/**
 * The display name from an x-file-name header: percent-decoded when encoded
 * (or raw UTF-8 read back from the header's latin1), without any directory
 * part, trimmed; no control characters, at most 255 characters. Missing or
 * empty: `upload.<ext>`.
 */
export function displayFileName(header: string | undefined, contentType: UploadContentType): string {
  const fallback = `upload.${UPLOAD_CONTENT_TYPES[contentType]}`;
  if (header === undefined) return fallback;
  let name = header;
  if (/%[0-9A-Fa-f]{2}/.test(name)) {
    try {
      name = decodeURIComponent(name);
    } catch {
      throw new AppError('UPLOAD_NAME_INVALID', 'x-file-name has a broken percent-encoding');
    }
  } else if (/[\u0080-\u00ff]/.test(name)) {
    // Node reads header bytes as latin1; a client that sent raw UTF-8 gets its name back.
    const utf8 = Buffer.from(name, 'latin1').toString('utf8');
    if (!utf8.includes('\ufffd')) name = utf8;
  }
  name = (name.split(/[/\\]/).pop() ?? '').trim();
  if (name === '') return fallback;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name))
    throw new AppError('UPLOAD_NAME_INVALID', 'x-file-name must not contain control characters');
  if ([...name].length > MAX_FILE_NAME_LENGTH)
    throw new AppError(
      'UPLOAD_NAME_INVALID',
      `x-file-name must be at most ${MAX_FILE_NAME_LENGTH} characters`,
    );
  return name;
}

/** The last segment of the object key: the display name reduced to key characters, with an extension. */
export function keyFileName(displayName: string, contentType: UploadContentType): string {
  const ext = UPLOAD_CONTENT_TYPES[contentType];
  let name = displayName
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._-]+/, '')
    .slice(0, MAX_KEY_NAME_LENGTH - ext.length - 1);
  if (name === '' || /^_+$/.test(name)) name = 'file';
  if (!/\.[A-Za-z0-9]+$/.test(name)) name = `${name}.${ext}`;
  return name;
}

export interface UploadsServiceOptions {
  /** Largest upload in bytes (UPLOAD_MAX_BYTES). */
  maxBytes: number;
}

export class UploadsService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly store: ObjectStore,
    readonly options: UploadsServiceOptions,
  ) {}

  async upload(user: AuthUser, input: UploadInput): Promise<UploadView> {
    const contentType = uploadContentType(input.contentType);
    if (!contentType)
      throw new AppError('UPLOAD_TYPE_UNSUPPORTED', undefined, { allowed: UPLOAD_CONTENT_TYPE_LIST });
    if (input.bytes.length === 0) throw new AppError('UPLOAD_EMPTY');
    if (input.bytes.length > this.options.maxBytes)
      throw new AppError('UPLOAD_TOO_LARGE', undefined, { maxBytes: this.options.maxBytes });
    if (!contentMatchesType(contentType, input.bytes))
      throw new AppError(
        'UPLOAD_TYPE_UNSUPPORTED',
        contentType === 'text/plain'
          ? 'Text files must be UTF-8 without NUL characters'
          : `The content is not ${contentType}`,
        { contentType },
      );
    const name = displayFileName(input.fileName, contentType);
    const id = randomUUID();
    const key = `uploads/${user.id}/${id}/${keyFileName(name, contentType)}`;
    await this.store.put(key, input.bytes, {
      contentType: contentType === 'text/plain' ? 'text/plain; charset=utf-8' : contentType,
      cacheControl: UPLOAD_CACHE_CONTROL,
    });
    const url = this.store.publicUrl(key);
    try {
      await this.db
        .insertInto('uploads')
        .values({
          id,
          owner_id: user.id,
          key,
          url,
          name,
          size: input.bytes.length,
          content_type: contentType,
        })
        .execute();
    } catch (err) {
      await this.store.deleteMany([key]).catch(() => {});
      throw err;
    }
    return { url, key, name, size: input.bytes.length, contentType };
  }
}
