/**
 * Picks the ObjectStore adapter from config: S3 when a bucket is configured
 * (`S3_BUCKET`), otherwise the local directory `<dataDir>/objects` served at /media.
 */
import { join } from 'node:path';
import { LocalObjectStore } from './local-object-store.js';
import type { ObjectStore } from './object-store.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from './s3-object-store.js';

export interface CreateObjectStoreOptions {
  /** The server's data directory (`DATA_DIR`); the local store lives in `<dataDir>/objects`. */
  dataDir: string;
  /** Where this server serves the local store, e.g. `http://localhost:8080/media` (unused with S3). */
  localPublicBaseUrl: string;
  /**
   * S3 settings. When present with a non-empty `bucket` the S3 adapter is
   * used; undefined or an empty bucket selects the local directory.
   */
  s3?: S3ObjectStoreOptions | undefined;
  /** The local store's Cache-Control by key when a put gives the same (see LocalObjectStoreOptions). */
  localDefaultCacheControl?: (key: string) => string | undefined;
}

export function createObjectStore(options: CreateObjectStoreOptions): ObjectStore {
  if (options.s3?.bucket) return new S3ObjectStore(options.s3);
  return new LocalObjectStore({
    rootDir: join(options.dataDir, 'objects'),
    publicBaseUrl: options.localPublicBaseUrl,
    ...(options.localDefaultCacheControl ? { defaultCacheControl: options.localDefaultCacheControl } : {}),
  });
}
