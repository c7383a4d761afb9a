/**
 * The ObjectStore port: HLS playlists and segments, recordings, uploads.
 *
 * Adapters: `LocalObjectStore` (embedded default, a directory under DATA_DIR
 * served by this server at /media) and `S3ObjectStore` (@aws-sdk/client-s3,
 * any S3 API: AWS, MinIO, R2, Swift s3api). The contract suite in
 * `test/object-store.test.ts` runs unchanged against both.
 *
 * Keys are relative paths: segments of [A-Za-z0-9._=-] separated by single
 * slashes, no `.`/`..` segments, at most 1024 bytes.
 */
import type { Readable } from 'node:stream';

export type ObjectBody = Buffer | Uint8Array | string | Readable;

export interface PutOptions {
  /** Content-Type stored with the object and returned on reads. Default: from the key's extension. */
  contentType?: string;
  /** Cache-Control stored with the object and returned on reads. */
  cacheControl?: string;
  /**
   * false: the object is rewritten every few seconds (a live playlist), so a
   * crash losing its latest version costs nothing; the local store then skips
   * its fsync. Remote stores decide durability themselves and ignore it.
   */
  durable?: boolean;
}

export interface ObjectInfo {
  key: string;
  size: number;
  contentType: string;
  cacheControl?: string;
  /**
   * A validator that changes whenever the object does (for HTTP revalidation).
   * S3 gives the MD5 of a single-part put; the local store derives it from the
   * file (inode, size, mtime). Opaque: compare it, do not check bytes against it.
   */
  etag?: string;
  lastModified: Date;
}

export interface StoredObject extends ObjectInfo {
  body: Readable;
  /**
   * Present when a range was requested: the bytes the body holds, inclusive
   * (the end clamped to the object). `size` stays the whole object's size.
   */
  range?: { start: number; end: number };
}

export interface ListPage {
  /** Objects under the prefix in ascending key order. */
  items: Array<Pick<ObjectInfo, 'key' | 'size' | 'lastModified'>>;
  /** Pass to the next `list` call; absent on the last page. */
  cursor?: string;
}

export interface ObjectStore {
  /** `local` or `s3`; shown in /readyz. */
  readonly kind: 'local' | 's3';

  /** Stores an object (replacing any previous one). Streams and large bodies are uploaded in parts. */
  put(key: string, body: ObjectBody, options?: PutOptions): Promise<void>;
  /** Reads an object, or null if it does not exist. `range` is inclusive, like HTTP Range. */
  get(key: string, range?: { start: number; end?: number }): Promise<StoredObject | null>;
  head(key: string): Promise<ObjectInfo | null>;
  /** Deletes objects; missing keys are ignored. */
  deleteMany(keys: readonly string[]): Promise<void>;
  /** Lists objects whose key starts with `prefix`, a page at a time (default and max page size 1000). */
  list(prefix: string, options?: { cursor?: string; limit?: number }): Promise<ListPage>;
  /** The URL players and browsers use to fetch the object. */
  publicUrl(key: string): string;

  /** Resolves when the store is usable; rejects with the reason otherwise. */
  check(): Promise<void>;
  close(): Promise<void>;
}
