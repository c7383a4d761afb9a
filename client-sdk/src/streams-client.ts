/**
 * The streamer's side: schedule streams, get the OBS settings, pin products,
 * start flash sales, end the show, and read what it sold.
 */
import type { FlashSale, StreamPin } from './commerce-client.js';
import { type HttpClient, newIdempotencyKey } from './http.js';

export interface Stream {
  id: string;
  ownerId: string;
  title: string;
  description: string;
  status: 'scheduled' | 'live' | 'ended';
  scheduledAt: string;
  startedAt: string | null;
  endedAt: string | null;
  endReason: string | null;
  recording: boolean;
  /** Owner and admins only. */
  ingest?: { rtmpUrl: string; keyPrefix: string; keyRevokedAt: string | null };
}

/** The only answers that show a stream key. */
export interface StreamWithKey {
  stream: Stream;
  /** OBS "Server". */
  rtmpUrl: string;
  /** OBS "Stream Key": shown once; rotate to see a new one. */
  streamKey: string;
}

export interface CreateStreamInput {
  title: string;
  description?: string;
  scheduledAt?: string;
  productIds?: string[];
  recording?: boolean;
}

export interface CreateFlashSaleInput {
  skuId: string;
  salePriceMinor: number;
  quantity: number;
  perUserLimit: number;
  reservationTtlSeconds: number;
  startsAt: string;
  endsAt: string;
  streamId?: string;
}

export interface StreamCommerce {
  streamId: string;
  orders: { created: number; paid: number; cancelled: number; expired: number };
  unitsSold: number;
  revenueMinor: Record<string, number>;
  conversion: number | null;
}

export interface StreamAnalytics {
  streamId: string;
  status: 'scheduled' | 'live' | 'ended';
  durationSeconds: number;
  viewers: { peak: number; unique: number };
  watch: {
    totalSeconds: number;
    averageViewSeconds: number;
    retention: Array<{ minute: number; viewers: number }>;
  };
  likes: number;
  chatMessages: number;
  commerce: StreamCommerce;
  revenuePerMinuteMinor: Record<string, number>;
  pins: Array<{ pinId: string; productId: string; orders: number; viewers: number; conversion: number }>;
}

export class StreamsClient {
  constructor(private readonly http: HttpClient) {}

  list(
    query: {
      status?: 'scheduled' | 'live' | 'ended';
      ownerId?: string;
      cursor?: string;
      limit?: number;
    } = {},
  ) {
    return this.http.request<{ items: Stream[]; nextCursor: string | null }>(
      'GET',
      '/v1/streams',
      undefined,
      { query },
    );
  }

  get(id: string): Promise<Stream> {
    return this.http
      .request<{ stream: Stream }>('GET', `/v1/streams/${encodeURIComponent(id)}`)
      .then((p) => p.stream);
  }

  create(input: CreateStreamInput): Promise<StreamWithKey> {
    return this.http.request('POST', '/v1/streams', input);
  }

  rotateKey(id: string): Promise<StreamWithKey> {
    return this.http.request('POST', `/v1/streams/${encodeURIComponent(id)}/key/rotate`);
  }

  revokeKey(id: string): Promise<Stream> {
    return this.http.request('POST', `/v1/streams/${encodeURIComponent(id)}/key/revoke`);
  }

  end(id: string): Promise<Stream> {
    return this.http.request('POST', `/v1/streams/${encodeURIComponent(id)}/end`);
  }

  pinProduct(id: string, productId: string): Promise<StreamPin> {
    return this.http.request('POST', `/v1/streams/${encodeURIComponent(id)}/pins`, {
      kind: 'product',
      productId,
    });
  }

  pinCoupon(id: string, couponCode: string): Promise<StreamPin> {
    return this.http.request('POST', `/v1/streams/${encodeURIComponent(id)}/pins`, {
      kind: 'coupon',
      couponCode,
    });
  }

  unpin(id: string): Promise<void> {
    return this.http.request('DELETE', `/v1/streams/${encodeURIComponent(id)}/pins/current`);
  }

  startFlashSale(input: CreateFlashSaleInput, idempotencyKey = newIdempotencyKey()): Promise<FlashSale> {
    return this.http.request('POST', '/v1/flash-sales', input, { idempotencyKey });
  }

  /** Audience, engagement, sales and pin conversion (owner or admin). */
  analytics(id: string): Promise<StreamAnalytics> {
    return this.http.request('GET', `/v1/streams/${encodeURIComponent(id)}/analytics`);
  }

  commerce(id: string): Promise<StreamCommerce> {
    return this.http.request('GET', `/v1/analytics/streams/${encodeURIComponent(id)}/commerce`);
  }
}
