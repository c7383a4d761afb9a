/**
 * The Db side of a stream's media: the segments delivered so far (the live
 * playlist continues from them after a reconnect on any instance; the VOD
 * playlist is written from them), the timed metadata to put in playlists,
 * and the replay flag.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../database.js';

type Db = Kysely<Database>;

export interface SegmentRecord {
  sequence: number;
  objectKey: string;
  initKey: string | null;
  durationMs: number;
  programDateTime: Date | null;
  discontinuity: boolean;
}

/** A moment of the stream players should show something at (a pin, a flash sale). */
export interface TimedMetadata {
  /** Unique within the stream. */
  id: string;
  kind: 'pin' | 'flash_sale';
  /** Wall-clock time of that moment on the stream's timeline (as EXT-X-PROGRAM-DATE-TIME counts). */
  at: Date;
  attributes: Record<string, string | number>;
}

export interface StreamIds {
  streamId: string;
  publicId: string;
}

export class StreamRecordings {
  constructor(private readonly db: Db) {}

  /**
   * Records a delivered segment of `rendition` ('' for a stream without an ABR ladder);
   * a repeat of the same sequence (a retry) changes nothing.
   */
  async append(streamId: string, segment: SegmentRecord, rendition = ''): Promise<void> {
    await this.db
      .insertInto('stream_segments')
      .values({
        stream_id: streamId,
        rendition,
        sequence: segment.sequence,
        object_key: segment.objectKey,
        init_key: segment.initKey,
        duration_ms: segment.durationMs,
        program_date_time: segment.programDateTime,
        discontinuity: segment.discontinuity,
      })
      .onConflict((oc) => oc.columns(['stream_id', 'rendition', 'sequence']).doNothing())
      .execute();
  }

  /** The last `limit` segments of a rendition in order (all when no limit), and how many discontinuities came before them. */
  async tail(
    streamId: string,
    limit?: number,
    rendition = '',
  ): Promise<{ segments: SegmentRecord[]; discontinuitiesBefore: number }> {
    let query = this.db
      .selectFrom('stream_segments')
      .selectAll()
      .where('stream_id', '=', streamId)
      .where('rendition', '=', rendition)
      .orderBy('sequence', 'desc');
    if (limit !== undefined) query = query.limit(limit);
    const rows = (await query.execute()).reverse();
    const first = rows[0]?.sequence ?? 0;
    const before = await this.db
      .selectFrom('stream_segments')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('stream_id', '=', streamId)
      .where('rendition', '=', rendition)
      .where('sequence', '<', first)
      .where('discontinuity', '=', true)
      .executeTakeFirstOrThrow();
    return {
      segments: rows.map((r) => ({
        sequence: r.sequence,
        objectKey: r.object_key,
        initKey: r.init_key,
        durationMs: r.duration_ms,
        programDateTime: r.program_date_time,
        discontinuity: r.discontinuity,
      })),
      discontinuitiesBefore: Number(before.n),
    };
  }

  /** The renditions with segments ('' alone for a stream without an ABR ladder). */
  async renditions(streamId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('stream_segments')
      .select('rendition')
      .distinct()
      .where('stream_id', '=', streamId)
      .execute();
    return rows.map((r) => r.rendition).sort();
  }

  /** Object keys of every segment and init segment of the stream, all renditions (for retention). */
  async objectKeys(streamId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('stream_segments')
      .select(['object_key', 'init_key'])
      .where('stream_id', '=', streamId)
      .execute();
    const keys = new Set<string>();
    for (const r of rows) {
      keys.add(r.object_key);
      if (r.init_key) keys.add(r.init_key);
    }
    return [...keys];
  }

  /** Pins and flash-sale starts of the stream, oldest first. */
  async timedMetadata(streamId: string): Promise<TimedMetadata[]> {
    const stream = await this.db
      .selectFrom('streams')
      .select(['public_id', 'media_origin_at'])
      .where('id', '=', streamId)
      .executeTakeFirst();
    if (!stream) return [];
    const [pins, sales] = await Promise.all([
      this.db
        .selectFrom('stream_pins')
        .select(['id', 'kind', 'product_id', 'coupon_code', 'media_time_ms', 'pinned_at'])
        .where('stream_id', '=', streamId)
        .execute(),
      this.db
        .selectFrom('flash_sales')
        .select(['id', 'product_id', 'starts_at', 'ends_at', 'quantity', 'sale_price_minor', 'currency'])
        .where('stream_id', '=', stream.public_id)
        .execute(),
    ]);
    const origin = stream.media_origin_at;
    const items: TimedMetadata[] = [
      ...pins.map((p) =>
        pinMetadata({
          id: p.id,
          kind: p.kind,
          productId: p.product_id,
          couponCode: p.coupon_code,
          at:
            origin && p.media_time_ms !== null
              ? new Date(origin.getTime() + Number(p.media_time_ms))
              : p.pinned_at,
        }),
      ),
      ...sales.map((s) =>
        flashSaleMetadata({
          id: s.id,
          productId: s.product_id,
          startsAt: s.starts_at,
          endsAt: s.ends_at,
          quantity: s.quantity,
          salePriceMinor: s.sale_price_minor,
          currency: s.currency,
        }),
      ),
    ];
    return items.sort((a, b) => a.at.getTime() - b.at.getTime());
  }

  /**
   * Recorded streams that ended more than `afterMs` ago with segments but no
   * replay: their ingest died before writing the VOD.
   */
  unfinished(afterMs: number, limit = 10): Promise<StreamIds[]> {
    return this.endedWithMedia(new Date(Date.now() - afterMs), limit, { unfinishedOnly: true });
  }

  /** Ended streams past the retention (ended before `cutoff`) that still have media. */
  expired(cutoff: Date, limit = 10): Promise<StreamIds[]> {
    return this.endedWithMedia(cutoff, limit, { unfinishedOnly: false });
  }

  private async endedWithMedia(
    endedBefore: Date,
    limit: number,
    options: { unfinishedOnly: boolean },
  ): Promise<StreamIds[]> {
    let query = this.db
      .selectFrom('streams')
      .select(['id', 'public_id'])
      .where('status', '=', 'ended')
      .where('ended_at', '<', endedBefore)
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('stream_segments')
            .select('sequence')
            .whereRef('stream_segments.stream_id', '=', 'streams.id'),
        ),
      );
    if (options.unfinishedOnly)
      query = query.where('recording', '=', true).where('replay_ready_at', 'is', null);
    const rows = await query.limit(limit).execute();
    return rows.map((r) => ({ streamId: r.id, publicId: r.public_id }));
  }

  /** Forgets a stream's media after its objects were deleted: no segments, no replay. */
  async forget(streamId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('stream_segments').where('stream_id', '=', streamId).execute();
      await trx.updateTable('streams').set({ replay_ready_at: null }).where('id', '=', streamId).execute();
    });
  }

  async markReplayReady(streamId: string): Promise<void> {
    await this.db
      .updateTable('streams')
      .set({ replay_ready_at: new Date() })
      .where('id', '=', streamId)
      .execute();
  }
}

export function pinMetadata(pin: {
  id: string;
  kind: string;
  productId: string | null;
  couponCode: string | null;
  at: Date;
}): TimedMetadata {
  const attributes: Record<string, string | number> = { kind: pin.kind };
  if (pin.productId) attributes['product-id'] = pin.productId;
  if (pin.couponCode) attributes['coupon-code'] = pin.couponCode;
  return { id: `pin-${pin.id}`, kind: 'pin', at: pin.at, attributes };
}

export function flashSaleMetadata(sale: {
  id: string;
  productId: string;
  startsAt: Date;
  endsAt: Date;
  quantity: number;
  salePriceMinor: number;
  currency: string;
}): TimedMetadata {
  return {
    id: `flash-${sale.id}`,
    kind: 'flash_sale',
    at: sale.startsAt,
    attributes: {
      'sale-id': sale.id,
      'product-id': sale.productId,
      'ends-at': sale.endsAt.toISOString(),
      quantity: sale.quantity,
      'sale-price-minor': sale.salePriceMinor,
      currency: sale.currency,
    },
  };
}

/** Bus channel the ingest hosting a stream listens on for new timed metadata. */
export function timedMetadataChannel(publicId: string): string {
  return `live-meta:${publicId}`;
}
