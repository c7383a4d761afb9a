/**
 * S3ObjectStore: the ObjectStore on any S3 API (AWS, MinIO, R2, OpenStack
 * Swift with s3api) through @aws-sdk/client-s3.
 *
 * Compatibility choices, all needed by at least one non-AWS server:
 * - `requestChecksumCalculation`/`responseChecksumValidation: 'WHEN_REQUIRED'`:
 *   recent SDKs otherwise add CRC32 trailers (aws-chunked encoding) to every
 *   upload, which Swift, older MinIO and many gateways reject.
 * - DeleteObjects gets a Content-MD5 header (see `addContentMd5ForDeleteObjects`):
 *   S3 once required it, Swift 2.30 still does, and the SDK now sends only CRC32.
 * - Streams go through @aws-sdk/lib-storage `Upload` (multipart with known
 *   part sizes) instead of a streamed PutObject of unknown length.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { AppError } from '../errors.js';
import {
  assertValidKey,
  assertValidPrefix,
  checkRange,
  contentTypeForKey,
  DEFAULT_CONTENT_TYPE,
  MAX_KEY_BYTES,
  normalizeKeyPrefix,
  normalizeListLimit,
} from './object-key.js';
import type {
  ListPage,
  ObjectBody,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  StoredObject,
} from './object-store.js';

/** Bodies above this size, and every stream, are uploaded in parts. */
const MULTIPART_THRESHOLD = 8 * 1024 * 1024;
/** Part size of multipart uploads (S3 minimum is 5 MiB; 10,000 parts max = 80 GiB objects). */
const PART_SIZE = 8 * 1024 * 1024;
/** Parts uploaded in parallel; memory held per upload is about queueSize * partSize. */
const QUEUE_SIZE = 4;
/** DeleteObjects accepts at most 1000 keys per request. */
const DELETE_BATCH = 1000;

export interface S3ObjectStoreOptions {
  /** Bucket holding the objects; it must exist (`check()` verifies that). */
  bucket: string;
  /** Region used for request signing; non-AWS servers usually accept `us-east-1`. Default `us-east-1`. */
  region?: string;
  /**
   * S3 API endpoint for non-AWS services, e.g. `http://127.0.0.1:8090` (Swift
   * s3api) or `https://<account>.r2.cloudflarestorage.com`. Empty: AWS.
   */
  endpoint?: string;
  /**
   * Static credentials. Empty: the AWS SDK default chain (environment,
   * shared config, instance/task role).
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Address buckets as `<endpoint>/<bucket>/<key>` instead of
   * `<bucket>.<endpoint-host>/<key>`. Needed by MinIO and Swift, which have
   * no per-bucket DNS names. Default false (what AWS prefers).
   */
  forcePathStyle?: boolean;
  /**
   * Base URL players use for objects, without a trailing slash and without the
   * key (a CDN, or the public bucket URL); `publicUrl(key)` is
   * `<base>/<keyPrefix><key>`. Default: `<endpoint>/<bucket>` with path-style
   * addressing, `<scheme>://<bucket>.<endpoint-host>` without, and
   * `https://<bucket>.s3.<region>.amazonaws.com` on AWS.
   */
  publicBaseUrl?: string;
  /**
   * Prefix put in front of every key (`prod/`), so several deployments or
   * test runs can share one bucket. `list` strips it again. Key segments
   * separated by `/`; a missing final `/` is added. Default: none.
   */
  keyPrefix?: string;
  /** Milliseconds to wait for a TCP connection before a request fails (and is retried). Default 5000. */
  connectionTimeoutMs?: number;
}

/** HTTP status of an SDK error, when it came from the server. */
function statusOf(err: unknown): number | undefined {
  if (err instanceof S3ServiceException) return err.$metadata.httpStatusCode;
  return undefined;
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

/** The `NoSuchKey`/404 of a missing object, but not the 404 of a missing bucket (a misconfiguration). */
function isMissingObject(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  if (err.name === 'NoSuchBucket') return false;
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404;
}

function rethrowRange(err: unknown): never {
  if (statusOf(err) === 416 || errorName(err) === 'InvalidRange') {
    throw new AppError('RANGE_NOT_SATISFIABLE');
  }
  throw err;
}

/** S3 ETags are quoted (`"<md5>"`, or `"<md5>-<parts>"` for multipart uploads); the port's are not. */
function unquoteEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^(W\/)?"(.*)"$/, '$2');
}

/** `bytes 10-19/100` -> start 10, end 19, total 100. */
function parseContentRange(
  header: string | undefined,
): { start: number; end: number; total: number } | undefined {
  const m = header ? /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim()) : null;
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
}

export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  /** The SDK client; exposed for tests and admin tasks (bucket policy, ACLs). */
  readonly client: S3Client;
  readonly bucket: string;
  private readonly keyPrefix: string;
  private readonly publicBase: string;
  private readonly where: string;

  constructor(options: S3ObjectStoreOptions) {
    this.bucket = options.bucket;
    this.keyPrefix = normalizeKeyPrefix(options.keyPrefix);
    const region = options.region || 'us-east-1';
    const endpoint = options.endpoint ? options.endpoint.replace(/\/+$/, '') : undefined;
    const forcePathStyle = options.forcePathStyle ?? false;
    this.client = new S3Client({
      region,
      ...(endpoint ? { endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      forcePathStyle,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: options.connectionTimeoutMs ?? 5000 },
    });
    addContentMd5ForDeleteObjects(this.client);
    this.publicBase = (
      options.publicBaseUrl ?? defaultPublicBase(this.bucket, region, endpoint, forcePathStyle)
    ).replace(/\/+$/, '');
    // For error messages: where, never who (no credentials).
    this.where = `bucket "${this.bucket}" at ${endpoint ?? `AWS S3 (${region})`}`;
  }

  private fullKey(key: string): string {
    assertValidKey(key);
    const full = this.keyPrefix + key;
    if (full.length > MAX_KEY_BYTES) {
      throw new AppError(
        'OBJECT_KEY_INVALID',
        `Object key is longer than ${MAX_KEY_BYTES} bytes with the key prefix`,
      );
    }
    return full;
  }

  async put(key: string, body: ObjectBody, options: PutOptions = {}): Promise<void> {
    const Key = this.fullKey(key);
    const meta = {
      ContentType: options.contentType ?? contentTypeForKey(key),
      ...(options.cacheControl !== undefined ? { CacheControl: options.cacheControl } : {}),
    };
    if (!(body instanceof Readable)) {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body;
      if (bytes.length <= MULTIPART_THRESHOLD) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: bytes,
            ContentLength: bytes.length,
            ...meta,
          }),
        );
        return;
      }
      body = bytes;
    }
    // lib-storage reads the body part by part; a body shorter than one part
    // becomes a single PutObject, so small streams cost no extra requests.
    // On failure it aborts the multipart upload (leavePartsOnError: false).
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key, Body: body, ...meta },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      if (body instanceof Readable && !body.destroyed) body.destroy();
      throw err;
    }
  }

  async get(key: string, range?: { start: number; end?: number }): Promise<StoredObject | null> {
    const Key = this.fullKey(key);
    const checked = range ? checkRange(range) : undefined;
    let out: GetObjectCommandOutput;
    try {
      out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key,
          ...(checked ? { Range: `bytes=${checked.start}-${checked.end ?? ''}` } : {}),
        }),
      );
    } catch (err) {
      if (isMissingObject(err)) return null;
      rethrowRange(err);
    }
    const body = out.Body;
    if (!(body instanceof Readable)) {
      throw new Error(`S3 GetObject for ${this.where} returned no readable body`);
    }
    const info: ObjectInfo = {
      key,
      size: out.ContentLength ?? 0,
      contentType: out.ContentType ?? DEFAULT_CONTENT_TYPE,
      lastModified: out.LastModified ?? new Date(0),
    };
    if (out.CacheControl !== undefined) info.cacheControl = out.CacheControl;
    const etag = unquoteEtag(out.ETag);
    if (etag !== undefined) info.etag = etag;
    if (!checked) return { ...info, body };

    const got = parseContentRange(out.ContentRange);
    if (!got) {
      // A server that ignores Range sends the whole object (200): honour the
      // request anyway rather than hand back the wrong bytes.
      body.destroy();
      throw new Error(`S3 server for ${this.where} ignored a Range request`);
    }
    // `size` is the whole object's size, as from head(); the range says which bytes the body holds.
    return { ...info, size: got.total, body, range: { start: got.start, end: got.end } };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const Key = this.fullKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      const info: ObjectInfo = {
        key,
        size: out.ContentLength ?? 0,
        contentType: out.ContentType ?? DEFAULT_CONTENT_TYPE,
        lastModified: out.LastModified ?? new Date(0),
      };
      if (out.CacheControl !== undefined) info.cacheControl = out.CacheControl;
      const etag = unquoteEtag(out.ETag);
      if (etag !== undefined) info.etag = etag;
      return info;
    } catch (err) {
      if (isMissingObject(err)) return null;
      throw err;
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    const full = [...new Set(keys.map((k) => this.fullKey(k)))];
    for (let i = 0; i < full.length; i += DELETE_BATCH) {
      const batch = full.slice(i, i + DELETE_BATCH);
      const out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          // Quiet: only failures are listed. Missing keys count as deleted in S3.
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new Error(
          `S3 DeleteObjects on ${this.where} failed for ${failed.length} key(s), first ${first.Key}: ${first.Code} ${first.Message ?? ''}`.trim(),
        );
      }
    }
  }

  async list(prefix: string, options: { cursor?: string; limit?: number } = {}): Promise<ListPage> {
    assertValidPrefix(prefix);
    const limit = normalizeListLimit(options.limit);
    const out = await this.client.send(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: this.keyPrefix + prefix,
        MaxKeys: limit,
        ...(options.cursor ? { ContinuationToken: options.cursor } : {}),
      }),
    );
    const items: ListPage['items'] = (out.Contents ?? []).flatMap((o) =>
      o.Key?.startsWith(this.keyPrefix)
        ? [
            {
              key: o.Key.slice(this.keyPrefix.length),
              size: o.Size ?? 0,
              lastModified: o.LastModified ?? new Date(0),
            },
          ]
        : [],
    );
    return out.IsTruncated && out.NextContinuationToken
      ? { items, cursor: out.NextContinuationToken }
      : { items };
  }

  publicUrl(key: string): string {
    return `${this.publicBase}/${this.fullKey(key)}`;
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const status = statusOf(err);
      const hint =
        status === 404
          ? 'the bucket does not exist'
          : status === 403 || status === 401
            ? 'access denied: check the credentials and the bucket policy'
            : status === 301 || status === 400
              ? 'wrong region or endpoint for this bucket'
              : status === undefined
                ? `cannot reach the endpoint (${errorName(err)}: ${err instanceof Error ? err.message : String(err)})`
                : `HTTP ${status} ${errorName(err)}`;
      throw new Error(`S3 ${this.where} is not usable: ${hint}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

function defaultPublicBase(
  bucket: string,
  region: string,
  endpoint: string | undefined,
  forcePathStyle: boolean,
): string {
  if (!endpoint) {
    return forcePathStyle
      ? `https://s3.${region}.amazonaws.com/${bucket}`
      : `https://${bucket}.s3.${region}.amazonaws.com`;
  }
  if (forcePathStyle) return `${endpoint}/${bucket}`;
  const url = new URL(endpoint);
  return `${url.protocol}//${bucket}.${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * Adds `Content-MD5: base64(md5(body))` to DeleteObjects requests. In the
 * 'build' step the XML body is already serialized and the request is not yet
 * signed, so the header is covered by the signature.
 */
function addContentMd5ForDeleteObjects(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request: unknown = args.request;
      if (
        context.commandName === 'DeleteObjectsCommand' &&
        typeof request === 'object' &&
        request !== null &&
        'headers' in request &&
        'body' in request
      ) {
        const { headers, body } = request as { headers: Record<string, string>; body: unknown };
        if (typeof body === 'string' || body instanceof Uint8Array) {
          headers['content-md5'] = createHash('md5').update(body).digest('base64');
        }
      }
      return next(args);
    },
    { step: 'build', name: 'lcsContentMd5ForDeleteObjects', override: true },
  );
}
