/**
 * Live streams: what a streamer schedules and runs, and what viewers see.
 *
 * - A stream has a short public id (`Stream.id`, 10 base62 characters) used in
 *   public URLs, the realtime room `stream:<id>`, the HLS path
 *   `live/<id>/index.m3u8`, and as the `streamId` of flash sales, orders and
 *   coupons (those columns are free text; this is the value to put there).
 * - Its stream key is a secret shown once (at creation and at each rotation);
 *   only its sha256 is stored. Keys are rotatable and revocable.
 * - Lifecycle: scheduled → live → ended, each step a guarded update, so
 *   concurrent callers and retries agree. The RTMP ingest drives it through
 *   `authenticatePublish`, `markLive`, `touchPublishers`, `markDisconnected`,
 *   `markEnded`; `endAbandoned` (a periodic job on every instance) ends a live
 *   stream whose publisher left, or whose ingest died, more than the
 *   reconnect grace period ago. Publisher state lives in the Db, so any
 *   instance can take a reconnect.
 * - Pins (a product or a coupon over the player) and status changes are
 *   published to the stream's room, stamped with the stream's media time when
 *   it is known.
 *
 * Managing a stream needs `streams:manage` and ownership; admins manage any.
 */
import { randomUUID } from 'node:crypto';
import { type Expression, type Kysely, type Selectable, type SqlBool, sql, type Updateable } from 'kysely';
import { type Config, publicBaseUrl } from '../../config/schema.js';
import { type AuthUser, assertCan, assertOwnerOr, can } from '../auth/permissions.js';
import { isUuid, type Page } from '../commerce/catalog/paging.js';
import { normalizeCouponCode } from '../commerce/coupons/coupons-service.js';
import type { FlashSalesService, FlashSaleView } from '../commerce/flash-sales/flash-sales-service.js';
import type { Database } from '../database.js';
import { AppError } from '../platform/errors.js';
import type { ObjectStore } from '../platform/object-store/object-store.js';
import type { StreamEndReason, StreamPinKind, StreamStatus, StreamsTable } from './live-tables.js';
import type { StreamAudience } from './stream-audience.js';
import { hashStreamKey, newPublicId, newStreamKey, STREAM_KEY_PATTERN, sameKeyHash } from './stream-keys.js';
import { flashSaleMetadata, pinMetadata, type TimedMetadata } from './stream-recordings.js';

type Db = Kysely<Database>;
type StreamRow = Selectable<StreamsTable>;

export const STREAM_TITLE_MAX = 200;
export const STREAM_DESCRIPTION_MAX = 5000;
export const STREAM_FEATURED_MAX = 50;
/** Largest accepted media time (about 24.8 days), so it fits everywhere a JS number and bigint meet. */
export const MEDIA_TIME_MAX_MS = 2_147_483_647;

/** The room of a stream's realtime events. */
export function streamRoom(publicId: string): string {
  return `stream:${publicId}`;
}

/** Where a stream's media is stored: `live/<publicId>/`, and one directory deeper for a rendition of an ABR stream. */
export function mediaPrefix(publicId: string, rendition = ''): string {
  return rendition ? `live/${publicId}/${rendition}/` : `live/${publicId}/`;
}

/** Object key of a stream's live HLS playlist (the master playlist of an ABR stream), or of one rendition's. */
export function hlsPlaylistKey(publicId: string, rendition = ''): string {
  return `${mediaPrefix(publicId, rendition)}index.m3u8`;
}

/** Object key of a stream's recording (the VOD playlist written when it ends; a master for an ABR stream), or of one rendition's. */
export function vodPlaylistKey(publicId: string, rendition = ''): string {
  return `${mediaPrefix(publicId, rendition)}vod.m3u8`;
}

/** Segments and init segments never change once stored. */
export const SEGMENT_CACHE = 'public, max-age=31536000, immutable';
/** Players poll the live playlist every target duration; a cache must not serve it for longer. */
export const LIVE_PLAYLIST_CACHE = 'public, max-age=1';
export const VOD_PLAYLIST_CACHE = 'public, max-age=300';

/** The cache policy of a stream's media object by its key (undefined outside `live/`). */
export function liveMediaCacheControl(key: string): string | undefined {
  if (!key.startsWith('live/')) return undefined;
  if (!key.endsWith('.m3u8')) return SEGMENT_CACHE;
  return key.endsWith('/vod.m3u8') ? VOD_PLAYLIST_CACHE : LIVE_PLAYLIST_CACHE;
}

/**
 * The RTMP server URL streamers paste into OBS ("Server"); the stream key
 * goes in its own field. `RTMP_PUBLIC_URL`, else `rtmp://<host of the public
 * base URL>:RTMP_PORT/live`.
 */
export function rtmpServerUrl(config: Config): string {
  if (config.RTMP_PUBLIC_URL) return config.RTMP_PUBLIC_URL.replace(/\/+$/, '');
  const host = new URL(publicBaseUrl(config)).hostname;
  return `rtmp://${host}:${config.RTMP_PORT}/live`;
}

/** Where stream events go (the realtime gateway in production). */
export interface StreamEventPublisher {
  publish(room: string, event: string, data: unknown): Promise<unknown>;
}

export interface LiveStreamsOptions {
  gateway: StreamEventPublisher;
  /** Viewer counts and likes for the page data. */
  audience?: Pick<StreamAudience, 'counts'>;
  objectStore: Pick<ObjectStore, 'publicUrl'>;
  /** Gives the active flash sale of a stream with its remaining units. */
  flashSales: Pick<FlashSalesService, 'get'>;
  /** What `rtmpServerUrl(config)` returns. */
  rtmpUrl: string;
  /** STREAM_RECONNECT_GRACE_MS. */
  reconnectGraceMs: number;
  /** The server has an ABR ladder (LIVE_ABR_LADDER): streams may ask for it. */
  abrAvailable?: boolean;
  /**
   * Called when an event could not be published after its change was
   * committed (the Db stays the truth: the page data shows it). Without it
   * the error is thrown to the caller.
   */
  onPublishError?: (err: unknown, room: string, event: string) => void;
  /**
   * Receives each pin as timed metadata for the live playlist (the ingest
   * hosting the stream writes it as EXT-X-DATERANGE). Errors are the
   * callee's to handle.
   */
  onTimedMetadata?: (publicId: string, item: TimedMetadata) => void;
}

/** Shown to the owner and admins only. */
export interface StreamIngestInfo {
  /** OBS "Server"; the key goes in "Stream Key". */
  rtmpUrl: string;
  /** First characters of the current key ("sk_ab12"), to tell keys apart. */
  keyPrefix: string;
  keyRevokedAt: string | null;
}

export interface Stream {
  /** The public id. */
  id: string;
  ownerId: string;
  title: string;
  description: string;
  status: StreamStatus;
  scheduledAt: string;
  startedAt: string | null;
  endedAt: string | null;
  endReason: StreamEndReason | null;
  recording: boolean;
  abr: boolean;
  createdAt: string;
  updatedAt: string;
  /** Present for the owner and admins. */
  ingest?: StreamIngestInfo;
}

/** Answer of create and rotate: the only time the plaintext key is ever shown. */
export interface StreamWithKey {
  stream: Stream;
  rtmpUrl: string;
  streamKey: string;
}

export interface FeaturedProduct {
  id: string;
  title: string;
  currency: string;
  imageUrl: string | null;
  /** Cheapest active SKU; null when none is active. */
  minPriceMinor: number | null;
}

export interface StreamPin {
  id: string;
  kind: StreamPinKind;
  /** For product pins. */
  product: FeaturedProduct | null;
  /** For coupon pins. */
  couponCode: string | null;
  /** The stream's media time at the pin; null when the ingest has not supplied it. */
  mediaTimeMs: number | null;
  pinnedAt: string;
}

export interface StreamPage {
  stream: Stream;
  status: StreamStatus;
  /** The live HLS playlist once the live stream is playable (its first segments are stored); null otherwise. */
  hlsUrl: string | null;
  /** The recording (VOD playlist) once the stream has ended and it is written; null otherwise. */
  replayUrl: string | null;
  /** Viewers now (all instances), the peak, distinct viewers so far, and likes. */
  audience: { current: number; peak: number; unique: number; likes: number };
  featuredProducts: FeaturedProduct[];
  currentPin: StreamPin | null;
  activeFlashSale: FlashSaleView | null;
}

export interface CreateStreamInput {
  title: string;
  description?: string;
  /** ISO 8601; default: now. */
  scheduledAt?: string;
  /** Featured products in display order; each must exist and be visible to the caller. */
  productIds?: string[];
  /** Keep the segments and write a VOD playlist. Default true. */
  recording?: boolean;
  /** Also package the server's ABR ladder (LIVE_ABR_LADDER). Default false. */
  abr?: boolean;
}

export interface StreamPatch {
  title?: string;
  description?: string;
  /** Only while scheduled. */
  scheduledAt?: string;
  /** Replaces the featured list. */
  productIds?: string[];
  /** Only while scheduled. */
  recording?: boolean;
  /** Only while scheduled. */
  abr?: boolean;
}

export interface StreamListQuery {
  /** Default: live streams, then scheduled ones. */
  status?: StreamStatus;
  ownerId?: string;
  cursor?: string;
  limit?: number;
}

export interface PinInput {
  kind: StreamPinKind;
  productId?: string;
  couponCode?: string;
  /** The stream's media time of the pin; default: now on the stream's media timeline, if known. */
  mediaTimeMs?: number;
}

/** What `authenticatePublish` says about a key. */
export type PublishAuth =
  | {
      result: 'ok';
      streamId: string;
      publicId: string;
      ownerId: string;
      recording: boolean;
      /** Package the server's ABR ladder besides the source. */
      abr: boolean;
      /** The stream is already live and its publisher left within the grace period: continue it (discontinuity). */
      resume: boolean;
    }
  /** Another publisher holds the stream right now: refuse this one. */
  | { result: 'already_live'; streamId: string; publicId: string }
  /** The stream is over; its key cannot start it again. */
  | { result: 'ended'; streamId: string; publicId: string };

export interface LifecycleResult {
  streamId: string;
  publicId: string;
  status: StreamStatus;
  /** This call changed the status. */
  changed: boolean;
  /** markLive: this session now holds the publisher (false: refuse the publisher). */
  publishing: boolean;
}

interface ListCursor {
  rank: number;
  key: string;
  id: string;
}

function invalid(field: string, message: string): AppError {
  return new AppError('VALIDATION_FAILED', `${field} ${message}`, { field });
}

function checkTitle(title: string): string {
  const t = title.trim();
  if (t.length === 0 || t.length > STREAM_TITLE_MAX)
    throw invalid('title', `must be 1 to ${STREAM_TITLE_MAX} characters`);
  return t;
}

function checkDescription(description: string): string {
  if (description.length > STREAM_DESCRIPTION_MAX)
    throw invalid('description', `must be at most ${STREAM_DESCRIPTION_MAX} characters`);
  return description;
}

function checkDate(value: string, field: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw invalid(field, 'must be a date-time');
  return d;
}

function checkProductIds(ids: readonly string[]): string[] {
  if (ids.length > STREAM_FEATURED_MAX)
    throw invalid('productIds', `must hold at most ${STREAM_FEATURED_MAX} products`);
  if (new Set(ids).size !== ids.length) throw invalid('productIds', 'must not repeat a product');
  for (const id of ids) if (!isUuid(id)) throw invalid('productIds', 'must hold product ids (uuids)');
  return [...ids];
}

function checkMediaTime(ms: number | undefined): number | undefined {
  if (ms !== undefined && (!Number.isInteger(ms) || ms < 0 || ms > MEDIA_TIME_MAX_MS))
    throw invalid('mediaTimeMs', `must be an integer from 0 to ${MEDIA_TIME_MAX_MS}`);
  return ms;
}

/** Managing a stream: the permission, and ownership unless admin. */
function assertCanManage(user: AuthUser, ownerId: string): void {
  assertCan(user, 'streams:manage');
  assertOwnerOr(user, ownerId, 'users:manage');
}

function seesIngest(viewer: AuthUser | null | undefined, ownerId: string): boolean {
  return !!viewer && can(viewer, 'streams:manage') && (viewer.id === ownerId || can(viewer, 'users:manage'));
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

function encodeListCursor(c: ListCursor): string {
  return Buffer.from(JSON.stringify([c.rank, c.key, c.id])).toString('base64url');
}

function decodeListCursor(cursor: string): ListCursor {
  const bad = () => new AppError('VALIDATION_FAILED', 'cursor is invalid', { field: 'cursor' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw bad();
  const [rank, key, id] = parsed as unknown[];
  if (typeof rank !== 'number' || ![0, 1, 2].includes(rank)) throw bad();
  if (typeof key !== 'string' || !/^-?\d{1,15}(\.\d{1,6})?$/.test(key)) throw bad();
  if (typeof id !== 'string' || !isUuid(id)) throw bad();
  return { rank, key, id };
}

/** live 0, scheduled 1, ended 2: the listing's first sort key. */
const sortRank = sql<number>`(case ${sql.ref('status')} when 'live' then 0 when 'scheduled' then 1 else 2 end)`;
/** Within a rank: live newest started first, scheduled soonest first, ended newest ended first. */
const sortKey = sql<string>`(case ${sql.ref('status')}
  when 'live' then -extract(epoch from ${sql.ref('started_at')})
  when 'scheduled' then extract(epoch from ${sql.ref('scheduled_at')})
  else -extract(epoch from ${sql.ref('ended_at')}) end)`;

export class LiveStreamsService {
  private readonly gateway: StreamEventPublisher;
  private readonly objectStore: Pick<ObjectStore, 'publicUrl'>;
  private readonly flashSales: Pick<FlashSalesService, 'get'>;
  private rtmpUrl: string;
  private readonly graceMs: number;
  private readonly onPublishError?: LiveStreamsOptions['onPublishError'];
  private readonly onTimedMetadata?: LiveStreamsOptions['onTimedMetadata'];
  private readonly audience?: LiveStreamsOptions['audience'];

  private readonly abrAvailable: boolean;

  constructor(
    private readonly db: Db,
    options: LiveStreamsOptions,
  ) {
    this.gateway = options.gateway;
    this.objectStore = options.objectStore;
    this.flashSales = options.flashSales;
    this.rtmpUrl = options.rtmpUrl;
    this.graceMs = options.reconnectGraceMs;
    this.abrAvailable = options.abrAvailable ?? false;
    this.onPublishError = options.onPublishError;
    this.onTimedMetadata = options.onTimedMetadata;
    this.audience = options.audience;
  }

  /**
   * How often the ingest must call `touchPublishers` while a publisher is
   * connected. A publisher not confirmed for twice this long counts as gone
   * (a crashed ingest), so a reconnect elsewhere may take the stream over.
   */
  get publisherHeartbeatMs(): number {
    return Math.max(250, Math.floor(this.graceMs / 4));
  }

  // ---------------------------------------------------------------- management

  /** Creates a scheduled stream; the answer holds the plaintext key, once. */
  async create(user: AuthUser, input: CreateStreamInput): Promise<StreamWithKey> {
    assertCan(user, 'streams:manage');
    const title = checkTitle(input.title);
    const description = checkDescription(input.description ?? '');
    const scheduledAt = input.scheduledAt ? checkDate(input.scheduledAt, 'scheduledAt') : new Date();
    const productIds = checkProductIds(input.productIds ?? []);
    this.assertAbrAvailable(input.abr ?? false);
    await this.assertProductsVisible(user, productIds);
    for (let attempt = 0; ; attempt++) {
      const key = newStreamKey();
      const row = await this.db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('streams')
          .values({
            id: randomUUID(),
            public_id: newPublicId(),
            owner_id: user.id,
            title,
            description,
            status: 'scheduled',
            scheduled_at: scheduledAt,
            key_hash: key.hash,
            key_prefix: key.prefix,
            recording: input.recording ?? true,
            abr: input.abr ?? false,
          })
          // A public id collision (1 in 10^17 per pair) just draws another.
          .onConflict((oc) => oc.doNothing())
          .returningAll()
          .executeTakeFirst();
        if (inserted && productIds.length > 0)
          await trx
            .insertInto('stream_products')
            .values(
              productIds.map((product_id, position) => ({ stream_id: inserted.id, product_id, position })),
            )
            .execute();
        return inserted;
      });
      if (row) return { stream: this.toStream(row, true), rtmpUrl: this.rtmpUrl, streamKey: key.key };
      if (attempt >= 3) throw new AppError('INTERNAL', 'Could not allocate a stream id');
    }
  }

  /** The stream as `viewer` may see it (never the key or its hash; ingest details for the owner and admins). */
  async get(publicId: string, viewer?: AuthUser | null): Promise<Stream> {
    const row = await this.rowByPublicId(publicId);
    return this.toStream(row, seesIngest(viewer, row.owner_id));
  }

  /** Everything a stream page needs on first paint; later changes arrive on the room `stream:<id>`. */
  async page(publicId: string, viewer?: AuthUser | null): Promise<StreamPage> {
    const row = await this.rowByPublicId(publicId);
    const [featuredProducts, currentPin, activeFlashSale, audience] = await Promise.all([
      this.featuredProducts(row.id),
      this.currentPin(row.id),
      this.activeFlashSale(row.public_id),
      this.audience?.counts(row.public_id) ?? { current: 0, peak: 0, unique: 0, likes: 0 },
    ]);
    return {
      stream: this.toStream(row, seesIngest(viewer, row.owner_id)),
      status: row.status,
      hlsUrl:
        row.status === 'live' && row.media_origin_at
          ? this.objectStore.publicUrl(hlsPlaylistKey(row.public_id))
          : null,
      replayUrl: row.replay_ready_at ? this.objectStore.publicUrl(vodPlaylistKey(row.public_id)) : null,
      featuredProducts,
      currentPin,
      activeFlashSale,
      audience,
    };
  }

  /**
   * Streams, keyset-paged. Default: live ones (latest started first), then
   * scheduled ones (soonest first); `status` narrows to one state (ended:
   * latest ended first).
   */
  async list(query: StreamListQuery = {}): Promise<Page<Stream>> {
    const limit = query.limit ?? 20;
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      throw invalid('limit', 'must be an integer from 1 to 100');
    if (query.ownerId !== undefined && !isUuid(query.ownerId)) throw invalid('ownerId', 'must be a uuid');
    const statuses: StreamStatus[] = query.status ? [query.status] : ['live', 'scheduled'];
    let q = this.db
      .selectFrom('streams')
      .selectAll()
      .select([sortRank.as('sort_rank'), sql<string>`${sortKey}::text`.as('sort_key')])
      .where('status', 'in', statuses);
    if (query.ownerId) q = q.where('owner_id', '=', query.ownerId);
    if (query.cursor) {
      const c = decodeListCursor(query.cursor);
      q = q.where(
        sql<SqlBool>`(${sortRank}, ${sortKey}, ${sql.ref('id')}) > (${c.rank}::int, ${c.key}::numeric, ${c.id}::uuid)`,
      );
    }
    const rows = await q
      .orderBy(sortRank)
      .orderBy(sortKey)
      .orderBy('id')
      .limit(limit + 1)
      .execute();
    const hasMore = rows.length > limit;
    const pageRows = hasMore ? rows.slice(0, limit) : rows;
    const last = pageRows[pageRows.length - 1];
    return {
      items: pageRows.map((r) => this.toStream(r, false)),
      nextCursor:
        hasMore && last
          ? encodeListCursor({ rank: Number(last.sort_rank), key: last.sort_key, id: last.id })
          : null,
    };
  }

  /**
   * Edits a stream (owner or admin). Title, description and featured products
   * may change at any time; `scheduledAt` and `recording` only while scheduled
   * (STREAM_STATE_INVALID otherwise).
   */
  async update(user: AuthUser, publicId: string, patch: StreamPatch): Promise<Stream> {
    const current = await this.rowByPublicId(publicId);
    assertCanManage(user, current.owner_id);
    const set: Updateable<StreamsTable> = {};
    if (patch.title !== undefined) set.title = checkTitle(patch.title);
    if (patch.description !== undefined) set.description = checkDescription(patch.description);
    if (patch.scheduledAt !== undefined) set.scheduled_at = checkDate(patch.scheduledAt, 'scheduledAt');
    if (patch.recording !== undefined) set.recording = patch.recording;
    if (patch.abr !== undefined) {
      this.assertAbrAvailable(patch.abr);
      set.abr = patch.abr;
    }
    const onlyWhileScheduled =
      patch.scheduledAt !== undefined || patch.recording !== undefined || patch.abr !== undefined;
    const productIds = patch.productIds === undefined ? undefined : checkProductIds(patch.productIds);
    if (productIds) await this.assertProductsVisible(user, productIds);
    const row = await this.db.transaction().execute(async (trx) => {
      let u = trx
        .updateTable('streams')
        .set({ ...set, updated_at: new Date() })
        .where('id', '=', current.id);
      if (onlyWhileScheduled) u = u.where('status', '=', 'scheduled');
      const updated = await u.returningAll().executeTakeFirst();
      if (!updated) {
        // Read through the transaction: PGlite has one connection, and it is ours until we finish.
        const { status } = await trx
          .selectFrom('streams')
          .select('status')
          .where('id', '=', current.id)
          .executeTakeFirstOrThrow();
        throw new AppError(
          'STREAM_STATE_INVALID',
          `scheduledAt, recording and abr can only change while the stream is scheduled; it is ${status}`,
          { status },
        );
      }
      if (productIds) {
        await trx.deleteFrom('stream_products').where('stream_id', '=', current.id).execute();
        if (productIds.length > 0)
          await trx
            .insertInto('stream_products')
            .values(
              productIds.map((product_id, position) => ({ stream_id: current.id, product_id, position })),
            )
            .execute();
      }
      return updated;
    });
    return this.toStream(row, true);
  }

  /**
   * Issues a new key (owner or admin) and answers it once; the old key stops
   * authenticating at once, and a revoked stream becomes usable again. A
   * publisher already connected keeps going (revoke to stop it).
   */
  async rotateKey(user: AuthUser, publicId: string): Promise<StreamWithKey> {
    const current = await this.rowByPublicId(publicId);
    assertCanManage(user, current.owner_id);
    const key = newStreamKey();
    const row = await this.db
      .updateTable('streams')
      .set({ key_hash: key.hash, key_prefix: key.prefix, key_revoked_at: null, updated_at: new Date() })
      .where('id', '=', current.id)
      .where('status', '!=', 'ended')
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new AppError('STREAM_ENDED');
    return { stream: this.toStream(row, true), rtmpUrl: this.rtmpUrl, streamKey: key.key };
  }

  /**
   * Disables the key (owner or admin; idempotent): it no longer authenticates,
   * and a publisher connected with it is dropped at the ingest's next
   * heartbeat. Rotate to get a working key again.
   */
  async revokeKey(user: AuthUser, publicId: string): Promise<Stream> {
    const current = await this.rowByPublicId(publicId);
    assertCanManage(user, current.owner_id);
    const row = await this.db
      .updateTable('streams')
      .set({ key_revoked_at: sql<Date>`coalesce(key_revoked_at, now())`, updated_at: new Date() })
      .where('id', '=', current.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return this.toStream(row, true);
  }

  // ------------------------------------------------------------------- pins

  /**
   * Pins a product or a coupon over the player (owner or admin), replacing
   * the current pin, and publishes `stream.pin` to the stream's room.
   */
  async pin(user: AuthUser, publicId: string, input: PinInput): Promise<StreamPin> {
    const stream = await this.rowByPublicId(publicId);
    assertCanManage(user, stream.owner_id);
    if (stream.status === 'ended') throw new AppError('STREAM_ENDED');
    const given = checkMediaTime(input.mediaTimeMs);
    let product: FeaturedProduct | null = null;
    let couponCode: string | null = null;
    if (input.kind === 'product') {
      if (input.couponCode !== undefined) throw invalid('couponCode', 'is only for coupon pins');
      if (input.productId === undefined) throw invalid('productId', 'is required for product pins');
      if (!isUuid(input.productId)) throw invalid('productId', 'must be a uuid');
      product = (await this.productSummaries([input.productId])).get(input.productId) ?? null;
      if (!product) throw new AppError('PRODUCT_NOT_FOUND', undefined, { productId: input.productId });
    } else if (input.kind === 'coupon') {
      if (input.productId !== undefined) throw invalid('productId', 'is only for product pins');
      if (input.couponCode === undefined) throw invalid('couponCode', 'is required for coupon pins');
      couponCode = await this.checkPinnableCoupon(input.couponCode, stream.public_id);
    } else {
      throw invalid('kind', 'must be product or coupon');
    }
    const mediaTimeMs = given ?? mediaTimeNow(stream);
    const row = await this.db.transaction().execute(async (trx) => {
      // One pinner at a time per stream, so "unpin the current, insert the new" never collides.
      const locked = await trx
        .selectFrom('streams')
        .select('status')
        .where('id', '=', stream.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      if (locked.status === 'ended') throw new AppError('STREAM_ENDED');
      await trx
        .updateTable('stream_pins')
        .set({ unpinned_at: new Date() })
        .where('stream_id', '=', stream.id)
        .where('unpinned_at', 'is', null)
        .execute();
      return trx
        .insertInto('stream_pins')
        .values({
          id: randomUUID(),
          stream_id: stream.id,
          kind: input.kind,
          product_id: product?.id ?? null,
          coupon_code: couponCode,
          media_time_ms: mediaTimeMs,
          pinned_by: user.id,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    const pin: StreamPin = {
      id: row.id,
      kind: row.kind,
      product,
      couponCode,
      mediaTimeMs,
      pinnedAt: row.pinned_at.toISOString(),
    };
    await this.publish(stream.public_id, 'stream.pin', pin);
    this.onTimedMetadata?.(
      stream.public_id,
      pinMetadata({
        id: row.id,
        kind: row.kind,
        productId: row.product_id,
        couponCode,
        at:
          stream.media_origin_at && mediaTimeMs !== null
            ? new Date(stream.media_origin_at.getTime() + mediaTimeMs)
            : row.pinned_at,
      }),
    );
    return pin;
  }

  /**
   * Takes the current pin down (owner or admin) and publishes `stream.unpin`.
   * Idempotent: null when nothing was pinned (and nothing is published).
   */
  async unpin(
    user: AuthUser,
    publicId: string,
    input: { mediaTimeMs?: number } = {},
  ): Promise<{ pinId: string; mediaTimeMs: number | null; unpinnedAt: string } | null> {
    const stream = await this.rowByPublicId(publicId);
    assertCanManage(user, stream.owner_id);
    const given = checkMediaTime(input.mediaTimeMs);
    const row = await this.db
      .updateTable('stream_pins')
      .set({ unpinned_at: new Date() })
      .where('stream_id', '=', stream.id)
      .where('unpinned_at', 'is', null)
      .returning(['id', 'unpinned_at'])
      .executeTakeFirst();
    if (!row) return null;
    const event = {
      pinId: row.id,
      mediaTimeMs: given ?? mediaTimeNow(stream),
      unpinnedAt: (row.unpinned_at ?? new Date()).toISOString(),
    };
    await this.publish(stream.public_id, 'stream.unpin', event);
    return event;
  }

  /** The ingest listens on a port chosen at start (RTMP_PORT=0): the URL streamers are given follows it. */
  useRtmpUrl(url: string): void {
    this.rtmpUrl = url;
  }

  private assertAbrAvailable(wanted: boolean): void {
    if (wanted && !this.abrAvailable) throw new AppError('LIVE_ABR_UNAVAILABLE');
  }

  // ------------------------------------------------------- ingest (RTMP) side

  /**
   * Checks a stream key from an RTMP publish. null: unknown, malformed or
   * revoked key (say nothing more to the client). The hash comparison is
   * constant-time. A live stream whose publisher is connected answers
   * `already_live`; one whose publisher left within the grace period answers
   * `ok` with `resume: true`; one past it is ended here and answers `ended`.
   */
  async authenticatePublish(streamKey: string): Promise<PublishAuth | null> {
    if (!STREAM_KEY_PATTERN.test(streamKey)) return null;
    const hash = hashStreamKey(streamKey);
    const row = await this.db
      .selectFrom('streams')
      .select([
        'id',
        'public_id',
        'owner_id',
        'status',
        'key_hash',
        'key_revoked_at',
        'recording',
        'abr',
        sql<boolean>`${this.publisherActive()}`.as('active'),
        sql<boolean>`${this.withinGrace()}`.as('fresh'),
      ])
      .where('key_hash', '=', hash)
      .executeTakeFirst();
    if (!row || !sameKeyHash(row.key_hash, hash) || row.key_revoked_at) return null;
    const ids = { streamId: row.id, publicId: row.public_id };
    if (row.status === 'ended') return { result: 'ended', ...ids };
    if (row.status === 'live') {
      if (row.active) return { result: 'already_live', ...ids };
      if (!row.fresh) {
        await this.markEnded(row.id, 'publisher_gone');
        return { result: 'ended', ...ids };
      }
    }
    return {
      result: 'ok',
      ...ids,
      ownerId: row.owner_id,
      recording: row.recording,
      abr: row.abr,
      resume: row.status === 'live',
    };
  }

  /**
   * A publisher session starts (or resumes) the stream. scheduled → live, or
   * a live stream whose publisher left within the grace period is taken over.
   * Idempotent per session: the same `sessionId` again answers
   * `publishing: true` without changing anything; another session while the
   * first is connected, an ended stream or a revoked key answer
   * `publishing: false` (refuse the publisher). Publishes `stream.status`
   * when the stream goes live.
   */
  async markLive(streamId: string, options: { sessionId?: string } = {}): Promise<LifecycleResult> {
    const session = options.sessionId ?? 'default';
    const claim = {
      publisher_session: session,
      publisher_seen_at: sql<Date>`now()`,
      updated_at: new Date(),
    };
    const started = await this.db
      .updateTable('streams')
      .set({ ...claim, status: 'live', started_at: sql<Date>`now()` })
      .where('id', '=', streamId)
      .where('status', '=', 'scheduled')
      .where('key_revoked_at', 'is', null)
      .returning(['id', 'public_id', 'started_at'])
      .executeTakeFirst();
    if (started) {
      await this.publish(started.public_id, 'stream.status', {
        status: 'live',
        startedAt: iso(started.started_at),
      });
      return { streamId, publicId: started.public_id, status: 'live', changed: true, publishing: true };
    }
    // Already live: this session again, or a reconnect within the grace period while no one else publishes.
    const resumed = await this.db
      .updateTable('streams')
      .set(claim)
      .where('id', '=', streamId)
      .where('status', '=', 'live')
      .where('key_revoked_at', 'is', null)
      .where(this.withinGrace())
      .where((eb) => eb.or([eb('publisher_session', '=', session), eb.not(this.publisherActive())]))
      .returning(['public_id'])
      .executeTakeFirst();
    if (resumed)
      return { streamId, publicId: resumed.public_id, status: 'live', changed: false, publishing: true };
    return { ...(await this.lifecycleRow(streamId)), changed: false, publishing: false };
  }

  /**
   * The ingest confirms its publishers are still connected, all of an
   * instance's in one statement; call every `publisherHeartbeatMs`, with one
   * entry per stream (its current session). Returns the ids of the streams
   * that may go on; any other should stop publishing (the stream ended, its
   * key was revoked, or another session took over).
   */
  async touchPublishers(
    publishers: ReadonlyArray<{ streamId: string; sessionId: string }>,
  ): Promise<Set<string>> {
    if (publishers.length === 0) return new Set();
    const rows = await this.db
      .updateTable('streams')
      .set({ publisher_seen_at: sql<Date>`now()` })
      .where('status', '=', 'live')
      .where('key_revoked_at', 'is', null)
      .where(({ eb, refTuple, tuple }) =>
        eb(
          refTuple('id', 'publisher_session'),
          'in',
          publishers.map((p) => tuple(p.streamId, p.sessionId)),
        ),
      )
      .returning('id')
      .execute();
    return new Set(rows.map((r) => r.id));
  }

  /**
   * The publisher left (unpublish, dropped connection). The stream stays live
   * for the grace period, so a reconnect continues it; `endAbandoned` ends it
   * after that.
   */
  async markDisconnected(streamId: string, options: { sessionId?: string } = {}): Promise<void> {
    await this.db
      .updateTable('streams')
      .set({ publisher_session: null, publisher_seen_at: sql<Date>`now()` })
      .where('id', '=', streamId)
      .where('status', '=', 'live')
      .where('publisher_session', '=', options.sessionId ?? 'default')
      .execute();
  }

  /**
   * The ingest tells when media time 0 of the stream's timeline was (wall
   * clock, as in EXT-X-PROGRAM-DATE-TIME), once its first playlist is stored:
   * from then on the page data has `hlsUrl` and the room hears
   * `stream.playable`. Pins are stamped from it. Set once per stream (a
   * reconnect keeps the timeline).
   */
  async setMediaOrigin(streamId: string, originAt: Date): Promise<void> {
    const row = await this.db
      .updateTable('streams')
      .set({ media_origin_at: originAt })
      .where('id', '=', streamId)
      .where('status', '=', 'live')
      .where('media_origin_at', 'is', null)
      .returning('public_id')
      .executeTakeFirst();
    if (row)
      await this.publish(row.public_id, 'stream.playable', {
        hlsUrl: this.objectStore.publicUrl(hlsPlaylistKey(row.public_id)),
        mediaOriginAt: originAt.toISOString(),
      });
  }

  /**
   * The streamer ends the stream (owner or admin): live → ended, or a
   * scheduled stream is cancelled the same way. The ingest sees it at its
   * next heartbeat, drops the publisher and writes the final playlists.
   */
  async end(user: AuthUser, publicId: string): Promise<Stream> {
    const stream = await this.rowByPublicId(publicId);
    assertCanManage(user, stream.owner_id);
    if (stream.status === 'ended') throw new AppError('STREAM_ENDED');
    const row = await this.db
      .updateTable('streams')
      .set({
        status: 'ended',
        ended_at: sql<Date>`now()`,
        started_at: sql<Date>`coalesce(started_at, now())`,
        end_reason: 'ended_by_streamer',
        publisher_session: null,
        updated_at: new Date(),
      })
      .where('id', '=', stream.id)
      .where('status', '!=', 'ended')
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new AppError('STREAM_ENDED');
    await this.publish(row.public_id, 'stream.status', {
      status: 'ended',
      endedAt: iso(row.ended_at),
      reason: 'ended_by_streamer',
    });
    return this.toStream(row, true);
  }

  /**
   * A flash sale was created for a stream: its viewers get `flash.sale` (the
   * card and the countdown), stamped with the stream's media time of the
   * sale's start when the stream is live, and the ingest writes the start
   * into the live playlist. `streamId` of a sale is free text: a sale for an
   * unknown stream is announced in its room without a media time.
   */
  async announceFlashSale(sale: FlashSaleView): Promise<void> {
    if (!sale.streamId) return;
    const stream = await this.db
      .selectFrom('streams')
      .select(['public_id', 'status', 'media_origin_at'])
      .where('public_id', '=', sale.streamId)
      .executeTakeFirst();
    const startsAt = new Date(sale.startsAt);
    const origin = stream?.status === 'live' ? stream.media_origin_at : null;
    const mediaTimeMs = origin
      ? Math.min(MEDIA_TIME_MAX_MS, Math.max(0, startsAt.getTime() - origin.getTime()))
      : null;
    await this.publish(sale.streamId, 'flash.sale', { sale, mediaTimeMs });
    if (stream && stream.status !== 'ended')
      this.onTimedMetadata?.(
        stream.public_id,
        flashSaleMetadata({
          id: sale.id,
          productId: sale.productId,
          startsAt,
          endsAt: new Date(sale.endsAt),
          quantity: sale.quantity,
          salePriceMinor: sale.salePriceMinor,
          currency: sale.currency,
        }),
      );
  }

  /** The stream's lifecycle state (by Db id). */
  async statusOf(streamId: string): Promise<StreamStatus> {
    return (await this.lifecycleRow(streamId)).status;
  }

  /** live → ended (idempotent: anything else is left alone). Publishes `stream.status`. */
  async markEnded(streamId: string, reason: StreamEndReason): Promise<LifecycleResult> {
    const row = await this.db
      .updateTable('streams')
      .set({
        status: 'ended',
        ended_at: sql<Date>`now()`,
        end_reason: reason,
        publisher_session: null,
        updated_at: new Date(),
      })
      .where('id', '=', streamId)
      .where('status', '=', 'live')
      .returning(['id', 'public_id', 'ended_at'])
      .executeTakeFirst();
    if (!row) return { ...(await this.lifecycleRow(streamId)), changed: false, publishing: false };
    await this.publish(row.public_id, 'stream.status', {
      status: 'ended',
      endedAt: iso(row.ended_at),
      reason,
    });
    return { streamId: row.id, publicId: row.public_id, status: 'ended', changed: true, publishing: false };
  }

  /**
   * Ends every live stream whose publisher has not been seen for the grace
   * period (it left and did not come back, or its ingest died). Safe to run on
   * every instance at once: each stream is ended by one guarded update.
   */
  async endAbandoned(): Promise<number> {
    const rows = await this.db
      .updateTable('streams')
      .set({
        status: 'ended',
        ended_at: sql<Date>`now()`,
        end_reason: 'publisher_gone',
        publisher_session: null,
        updated_at: new Date(),
      })
      .where('status', '=', 'live')
      .where((eb) => eb.not(this.withinGrace()))
      .returning(['public_id', 'ended_at'])
      .execute();
    for (const r of rows)
      await this.publish(r.public_id, 'stream.status', {
        status: 'ended',
        endedAt: iso(r.ended_at),
        reason: 'publisher_gone',
      });
    return rows.length;
  }

  // ---------------------------------------------------------------- helpers

  /** The publisher was seen within the grace period (a null time never is). */
  private withinGrace(): Expression<SqlBool> {
    return sql<SqlBool>`coalesce(${sql.ref('publisher_seen_at')} > now() - ${this.graceMs} * interval '1 millisecond', false)`;
  }

  /** A session holds the publisher and confirmed it within two heartbeats. */
  private publisherActive(): Expression<SqlBool> {
    return sql<SqlBool>`coalesce(${sql.ref('publisher_session')} is not null and ${sql.ref('publisher_seen_at')} > now() - ${2 * this.publisherHeartbeatMs} * interval '1 millisecond', false)`;
  }

  private async rowByPublicId(publicId: string): Promise<StreamRow> {
    const row = await this.db
      .selectFrom('streams')
      .selectAll()
      .where('public_id', '=', publicId)
      .executeTakeFirst();
    if (!row) throw new AppError('STREAM_NOT_FOUND', undefined, { streamId: publicId });
    return row;
  }

  private async lifecycleRow(
    streamId: string,
  ): Promise<{ streamId: string; publicId: string; status: StreamStatus }> {
    if (!isUuid(streamId)) throw new AppError('STREAM_NOT_FOUND');
    const row = await this.db
      .selectFrom('streams')
      .select(['id', 'public_id', 'status'])
      .where('id', '=', streamId)
      .executeTakeFirst();
    if (!row) throw new AppError('STREAM_NOT_FOUND');
    return { streamId: row.id, publicId: row.public_id, status: row.status };
  }

  private toStream(row: StreamRow, withIngest: boolean): Stream {
    return {
      id: row.public_id,
      ownerId: row.owner_id,
      title: row.title,
      description: row.description,
      status: row.status,
      scheduledAt: row.scheduled_at.toISOString(),
      startedAt: iso(row.started_at),
      endedAt: iso(row.ended_at),
      endReason: row.end_reason,
      recording: row.recording,
      abr: row.abr,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
      ...(withIngest
        ? {
            ingest: {
              rtmpUrl: this.rtmpUrl,
              keyPrefix: row.key_prefix,
              keyRevokedAt: iso(row.key_revoked_at),
            },
          }
        : {}),
    };
  }

  /** Products a streamer may feature: existing, and active unless the caller is their seller or an admin. */
  private async assertProductsVisible(user: AuthUser, productIds: string[]): Promise<void> {
    if (productIds.length === 0) return;
    const rows = await this.db
      .selectFrom('products')
      .select(['id', 'seller_id', 'active'])
      .where('id', 'in', productIds)
      .execute();
    const visible = new Set(
      rows.filter((r) => r.active || r.seller_id === user.id || can(user, 'users:manage')).map((r) => r.id),
    );
    const missing = productIds.find((id) => !visible.has(id));
    if (missing) throw new AppError('PRODUCT_NOT_FOUND', undefined, { productId: missing });
  }

  /** Active products by id, with their cheapest active SKU. */
  private async productSummaries(ids: string[]): Promise<Map<string, FeaturedProduct>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('products')
      .leftJoin('skus', (join) =>
        join.onRef('skus.product_id', '=', 'products.id').on('skus.active', '=', true),
      )
      .select([
        'products.id',
        'products.title',
        'products.currency',
        'products.images',
        (eb) => eb.fn.min('skus.price_minor').as('min_price'),
      ])
      .where('products.id', 'in', ids)
      .where('products.active', '=', true)
      .groupBy('products.id')
      .execute();
    return new Map(
      rows.map((r) => [
        r.id,
        {
          id: r.id,
          title: r.title,
          currency: r.currency,
          imageUrl: r.images[0] ?? null,
          minPriceMinor: r.min_price === null ? null : Number(r.min_price),
        },
      ]),
    );
  }

  private async featuredProducts(streamId: string): Promise<FeaturedProduct[]> {
    const ids = (
      await this.db
        .selectFrom('stream_products')
        .select('product_id')
        .where('stream_id', '=', streamId)
        .orderBy('position')
        .execute()
    ).map((r) => r.product_id);
    const summaries = await this.productSummaries(ids);
    return ids.flatMap((id) => summaries.get(id) ?? []);
  }

  private async currentPin(streamId: string): Promise<StreamPin | null> {
    const row = await this.db
      .selectFrom('stream_pins')
      .selectAll()
      .where('stream_id', '=', streamId)
      .where('unpinned_at', 'is', null)
      .orderBy('pinned_at', 'desc')
      .executeTakeFirst();
    if (!row) return null;
    const product = row.product_id
      ? ((await this.productSummaries([row.product_id])).get(row.product_id) ?? null)
      : null;
    // A pinned product deactivated since is not shown.
    if (row.kind === 'product' && !product) return null;
    return {
      id: row.id,
      kind: row.kind,
      product,
      couponCode: row.coupon_code,
      mediaTimeMs: row.media_time_ms === null ? null : Number(row.media_time_ms),
      pinnedAt: row.pinned_at.toISOString(),
    };
  }

  /** The latest flash sale of the stream whose window is open now and that was not stopped. */
  private async activeFlashSale(publicId: string): Promise<FlashSaleView | null> {
    const now = new Date();
    const row = await this.db
      .selectFrom('flash_sales')
      .select('id')
      .where('stream_id', '=', publicId)
      .where('starts_at', '<=', now)
      .where('ends_at', '>', now)
      .where('stopped_at', 'is', null)
      .orderBy('starts_at', 'desc')
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    return row ? this.flashSales.get(row.id) : null;
  }

  /** A coupon a stream may pin: exists, active, not expired, and not bound to another stream. */
  private async checkPinnableCoupon(code: string, publicId: string): Promise<string> {
    const normalized = normalizeCouponCode(code);
    const coupon = await this.db
      .selectFrom('coupons')
      .select(['code', 'active', 'ends_at', 'stream_id'])
      .where('code', '=', normalized)
      .executeTakeFirst();
    if (!coupon) throw new AppError('COUPON_NOT_FOUND', undefined, { couponCode: normalized });
    if (!coupon.active) throw new AppError('COUPON_INACTIVE');
    if (coupon.ends_at && coupon.ends_at.getTime() <= Date.now()) throw new AppError('COUPON_EXPIRED');
    if (coupon.stream_id !== null && coupon.stream_id !== publicId)
      throw new AppError('COUPON_STREAM_MISMATCH');
    return coupon.code;
  }

  private async publish(publicId: string, event: string, data: unknown): Promise<void> {
    const room = streamRoom(publicId);
    try {
      await this.gateway.publish(room, event, data);
    } catch (err) {
      if (!this.onPublishError) throw err;
      this.onPublishError(err, room, event);
    }
  }
}

/** Now on the stream's media timeline, when the ingest has supplied its origin. */
function mediaTimeNow(stream: StreamRow): number | null {
  if (!stream.media_origin_at || stream.status !== 'live') return null;
  return Math.min(MEDIA_TIME_MAX_MS, Math.max(0, Date.now() - stream.media_origin_at.getTime()));
}
