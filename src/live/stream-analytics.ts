/**
 * A stream's analytics for its owner: audience (peak, unique, watch time,
 * average view duration, retention per minute), engagement (likes, chat
 * messages), commerce (orders, revenue, revenue per minute) and how each
 * product pin converted.
 *
 * Pin conversion: paid orders that contain the pinned product and were
 * placed in this stream while the pin was up or within `PIN_ATTRIBUTION_MS`
 * after it came down, divided by the distinct viewers who watched during the
 * pin's minutes.
 */
import { type Kysely, sql } from 'kysely';
import { type AuthUser, assertOwnerOr } from '../auth/permissions.js';
import type { LiveChat } from '../chat/live-chat.js';
import type { CommerceAnalytics, StreamCommerceStats } from '../commerce/analytics/commerce-analytics.js';
import type { Database } from '../database.js';
import { AppError } from '../platform/errors.js';
import type { StreamAudience } from './stream-audience.js';

/** Orders this long after a pin comes down still count for it. */
export const PIN_ATTRIBUTION_MS = 5 * 60_000;

export interface PinConversion {
  pinId: string;
  productId: string;
  pinnedAt: string;
  unpinnedAt: string | null;
  orders: number;
  viewers: number;
  /** orders ÷ viewers (0 without viewers). */
  conversion: number;
}

export interface StreamAnalytics {
  streamId: string;
  status: 'scheduled' | 'live' | 'ended';
  durationSeconds: number;
  viewers: { peak: number; unique: number };
  watch: {
    totalSeconds: number;
    /** Total watch time ÷ distinct viewers who reported watching. */
    averageViewSeconds: number;
    /** Distinct viewers per minute of the stream (minute 0 starts at `startedAt`). */
    retention: Array<{ minute: number; viewers: number }>;
  };
  /** How playback went, from the players' reports. */
  playback: {
    reports: number;
    /** Mean bitrate of the renditions viewers played (null without reports). */
    averageBitrateKbps: number | null;
    stalls: number;
    /** Time spent rebuffering ÷ (watch time + that time). */
    rebufferingRatio: number;
    droppedFrames: number;
  };
  likes: number;
  chatMessages: number;
  commerce: Pick<StreamCommerceStats, 'orders' | 'unitsSold' | 'revenueMinor' | 'conversion'>;
  /** Revenue per minute of stream, per currency (minor units). */
  revenuePerMinuteMinor: Record<string, number>;
  pins: PinConversion[];
}

export class StreamAnalyticsService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly deps: {
      audience: Pick<StreamAudience, 'counts'>;
      liveChat: Pick<LiveChat, 'messageCount'>;
      commerce: Pick<CommerceAnalytics, 'stream'>;
    },
  ) {}

  async stream(user: AuthUser, publicId: string): Promise<StreamAnalytics> {
    const stream = await this.db
      .selectFrom('streams')
      .select(['id', 'public_id', 'owner_id', 'status', 'started_at', 'ended_at'])
      .where('public_id', '=', publicId)
      .executeTakeFirst();
    if (!stream) throw new AppError('STREAM_NOT_FOUND');
    assertOwnerOr(user, stream.owner_id, 'users:manage');
    const end = stream.ended_at ?? new Date();
    const durationSeconds = stream.started_at
      ? Math.max(0, Math.round((end.getTime() - stream.started_at.getTime()) / 1000))
      : 0;

    const [counts, chatMessages, commerce, watch, retention, pins, playback] = await Promise.all([
      this.deps.audience.counts(publicId),
      this.deps.liveChat.messageCount(publicId),
      this.deps.commerce.stream(user, publicId),
      this.db
        .selectFrom('stream_watch')
        .select((eb) => [
          eb.fn.coalesce(eb.fn.sum<string>('seconds'), sql<string>`0`).as('total'),
          sql<string>`count(distinct viewer)`.as('viewers'),
        ])
        .where('stream_id', '=', stream.id)
        .executeTakeFirstOrThrow(),
      this.db
        .selectFrom('stream_watch')
        .select(['minute', sql<string>`count(distinct viewer)`.as('viewers')])
        .where('stream_id', '=', stream.id)
        .groupBy('minute')
        .orderBy('minute')
        .execute(),
      this.pinConversions(stream.id, publicId, stream.started_at),
      this.db
        .selectFrom('stream_playback')
        .select([
          sql<number>`reports::float8`.as('reports'),
          sql<number>`bitrate_kbps_sum::float8`.as('bitrateSum'),
          sql<number>`bitrate_reports::float8`.as('bitrateReports'),
          sql<number>`stalls::float8`.as('stalls'),
          sql<number>`stall_ms::float8`.as('stallMs'),
          sql<number>`dropped_frames::float8`.as('droppedFrames'),
        ])
        .where('stream_id', '=', stream.id)
        .executeTakeFirst(),
    ]);
    const stallSeconds = (playback?.stallMs ?? 0) / 1000;
    const totalSeconds = Number(watch.total);
    const watchers = Number(watch.viewers);
    const minutes = Math.max(1, durationSeconds / 60);
    const revenuePerMinuteMinor = Object.fromEntries(
      Object.entries(commerce.revenueMinor).map(([currency, minor]) => [
        currency,
        Math.round(minor / minutes),
      ]),
    );
    return {
      streamId: publicId,
      status: stream.status,
      durationSeconds,
      viewers: { peak: counts.peak, unique: Math.max(counts.unique, watchers) },
      watch: {
        totalSeconds,
        averageViewSeconds: watchers > 0 ? Math.round(totalSeconds / watchers) : 0,
        retention: retention.map((r) => ({ minute: r.minute, viewers: Number(r.viewers) })),
      },
      playback: {
        reports: playback?.reports ?? 0,
        averageBitrateKbps: playback?.bitrateReports
          ? Math.round(playback.bitrateSum / playback.bitrateReports)
          : null,
        stalls: playback?.stalls ?? 0,
        rebufferingRatio:
          stallSeconds > 0 ? Math.round((stallSeconds / (totalSeconds + stallSeconds)) * 10_000) / 10_000 : 0,
        droppedFrames: playback?.droppedFrames ?? 0,
      },
      likes: counts.likes,
      chatMessages,
      commerce: {
        orders: commerce.orders,
        unitsSold: commerce.unitsSold,
        revenueMinor: commerce.revenueMinor,
        conversion: commerce.conversion,
      },
      revenuePerMinuteMinor,
      pins,
    };
  }

  private async pinConversions(
    streamId: string,
    publicId: string,
    startedAt: Date | null,
  ): Promise<PinConversion[]> {
    const pins = await this.db
      .selectFrom('stream_pins')
      .select(['id', 'product_id', 'pinned_at', 'unpinned_at'])
      .where('stream_id', '=', streamId)
      .where('kind', '=', 'product')
      .orderBy('pinned_at')
      .execute();
    const out: PinConversion[] = [];
    for (const pin of pins) {
      const productId = pin.product_id as string;
      const until = new Date((pin.unpinned_at ?? new Date()).getTime() + PIN_ATTRIBUTION_MS);
      const [orders, viewers] = await Promise.all([
        this.db
          .selectFrom('orders')
          .select(sql<string>`count(distinct orders.id)`.as('n'))
          .where('orders.stream_id', '=', publicId)
          .where('orders.status', 'in', ['paid', 'fulfilled'])
          .where('orders.created_at', '>=', pin.pinned_at)
          .where('orders.created_at', '<=', until)
          .where((eb) =>
            eb.exists(
              eb
                .selectFrom('order_items')
                .select('order_items.order_id')
                .whereRef('order_items.order_id', '=', 'orders.id')
                .where('order_items.product_id', '=', productId),
            ),
          )
          .executeTakeFirstOrThrow(),
        startedAt
          ? this.db
              .selectFrom('stream_watch')
              .select(sql<string>`count(distinct viewer)`.as('n'))
              .where('stream_id', '=', streamId)
              .where('minute', '>=', minuteOf(startedAt, pin.pinned_at))
              .where('minute', '<=', minuteOf(startedAt, pin.unpinned_at ?? new Date()))
              .executeTakeFirstOrThrow()
          : { n: '0' },
      ]);
      const n = Number(orders.n);
      const v = Number(viewers.n);
      out.push({
        pinId: pin.id,
        productId,
        pinnedAt: pin.pinned_at.toISOString(),
        unpinnedAt: pin.unpinned_at?.toISOString() ?? null,
        orders: n,
        viewers: v,
        conversion: v > 0 ? Math.round((n / v) * 10_000) / 10_000 : 0,
      });
    }
    return out;
  }
}

function minuteOf(startedAt: Date, at: Date): number {
  return Math.max(0, Math.floor((at.getTime() - startedAt.getTime()) / 60_000));
}
