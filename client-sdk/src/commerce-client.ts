/**
 * Shopping calls: products, the stream page, flash-sale purchase, checkout
 * and payment. Mutating calls carry an idempotency key generated here (or
 * given by the caller to retry the very same action), so a retried tap never
 * buys twice.
 */
import { type HttpClient, newIdempotencyKey } from './http.js';

export interface Sku {
  id: string;
  code: string;
  name: string;
  priceMinor: number;
  stock: number;
  active: boolean;
}

export interface Product {
  id: string;
  title: string;
  description?: string;
  category: string | null;
  currency: string;
  images?: string[];
  skus: Sku[];
}

export interface FlashSale {
  id: string;
  productId: string;
  skuId: string;
  streamId: string | null;
  salePriceMinor: number;
  currency: string;
  quantity: number;
  perUserLimit: number;
  reservationTtlSeconds: number;
  startsAt: string;
  endsAt: string;
  state: 'scheduled' | 'live' | 'ended';
  remaining: number;
}

export interface StreamPin {
  id: string;
  kind: 'product' | 'coupon';
  product: {
    id: string;
    title: string;
    currency: string;
    imageUrl: string | null;
    minPriceMinor: number | null;
  } | null;
  couponCode: string | null;
  mediaTimeMs: number | null;
  pinnedAt: string;
}

export interface StreamPage {
  stream: {
    id: string;
    title: string;
    description: string;
    status: 'scheduled' | 'live' | 'ended';
    ownerId: string;
  };
  status: 'scheduled' | 'live' | 'ended';
  hlsUrl: string | null;
  replayUrl: string | null;
  featuredProducts: Array<{
    id: string;
    title: string;
    currency: string;
    imageUrl: string | null;
    minPriceMinor: number | null;
  }>;
  currentPin: StreamPin | null;
  activeFlashSale: FlashSale | null;
  audience: { current: number; peak: number; unique: number; likes: number };
}

export interface Reservation {
  reservationId: string;
  saleId: string;
  quantity: number;
  /** Pay (check out and pay) before this. */
  expiresAt: string;
  salePriceMinor: number;
  currency: string;
  remaining: number;
}

export interface CouponQuote {
  couponId: string;
  code: string;
  discountMinor: number;
  freeShipping: boolean;
  currency: string;
  subtotalMinor: number;
  shippingMinor: number;
  totalMinor: number;
}

export interface Order {
  id: string;
  status: 'pending_payment' | 'paid' | 'fulfilled' | 'cancelled' | 'expired';
  currency: string;
  subtotalMinor: number;
  discountMinor: number;
  shippingMinor: number;
  totalMinor: number;
  couponCode: string | null;
  streamId: string | null;
}

export interface CheckoutInput {
  items?: Array<{ skuId: string; quantity: number }>;
  /** Flash-sale reservations to pay for. */
  reservations?: string[];
  couponCode?: string;
  /** The stream the purchase happens in (attribution). */
  streamId?: string;
}

export type PaymentMethod = 'test_card_ok' | 'test_card_declined' | 'test_card_hang';

export class CommerceClient {
  constructor(private readonly http: HttpClient) {}

  /** Products, newest first (`sellerId`: one seller's, including their inactive ones when it is you). */
  products(
    query: { sellerId?: string; category?: string; q?: string; cursor?: string; limit?: number } = {},
  ) {
    return this.http.request<{ items: Product[]; nextCursor: string | null }>(
      'GET',
      '/v1/products',
      undefined,
      { query },
    );
  }

  product(id: string): Promise<Product> {
    return this.http.request('GET', `/v1/products/${encodeURIComponent(id)}`);
  }

  /** Everything a stream page shows on first paint; later changes arrive on the room `stream:<id>`. */
  streamPage(streamId: string): Promise<StreamPage> {
    return this.http.request('GET', `/v1/streams/${encodeURIComponent(streamId)}`);
  }

  flashSale(id: string): Promise<FlashSale> {
    return this.http.request('GET', `/v1/flash-sales/${encodeURIComponent(id)}`);
  }

  /**
   * Reserves flash-sale units (pay before the reservation expires). Fails
   * with `FLASH_SOLD_OUT`, `FLASH_LIMIT_REACHED`, `FLASH_NOT_STARTED`,
   * `FLASH_ENDED`, `RATE_LIMITED`, … Pass the same key to retry a tap.
   */
  buyFlash(saleId: string, quantity = 1, idempotencyKey = newIdempotencyKey()): Promise<Reservation> {
    return this.http.request(
      'POST',
      `/v1/flash-sales/${encodeURIComponent(saleId)}/purchase`,
      { quantity },
      { idempotencyKey },
    );
  }

  /**
   * Prices a cart with a coupon; when it does not apply the error code says
   * why (`COUPON_EXPIRED`, `COUPON_MIN_NOT_MET`, `COUPON_LIMIT_REACHED`, …).
   */
  validateCoupon(
    code: string,
    items: Array<{ skuId: string; quantity: number }>,
    streamId?: string,
  ): Promise<CouponQuote> {
    return this.http.request('POST', '/v1/coupons/validate', {
      code,
      items,
      ...(streamId ? { streamId } : {}),
    });
  }

  checkout(input: CheckoutInput, idempotencyKey = newIdempotencyKey()): Promise<Order> {
    return this.http.request('POST', '/v1/orders', input, { idempotencyKey });
  }

  pay(orderId: string, method: PaymentMethod, idempotencyKey = `pay-${orderId}`): Promise<Order> {
    return this.http.request(
      'POST',
      `/v1/orders/${encodeURIComponent(orderId)}/pay`,
      { method },
      { idempotencyKey },
    );
  }
}
