import type { ColumnType, Generated } from 'kysely';

export const ORDER_STATUSES = ['pending_payment', 'paid', 'fulfilled', 'cancelled', 'expired'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export interface OrdersTable {
  id: string;
  user_id: string;
  status: OrderStatus;
  currency: string;
  subtotal_minor: number;
  discount_minor: number;
  shipping_minor: number;
  total_minor: number;
  coupon_id: string | null;
  /** The live stream the purchase was made in, and the stream's media time then (ms). */
  stream_id: string | null;
  stream_media_time_ms: number | null;
  /** Provider's charge reference once paid. */
  payment_ref: string | null;
  /** Unpaid orders expire at this time: stock, coupon use and reservations are returned. */
  expires_at: Date;
  paid_at: Date | null;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface OrderItemsTable {
  id: string;
  order_id: string;
  product_id: string;
  sku_id: string;
  title: string;
  quantity: number;
  unit_price_minor: number;
  /** Set for a line bought through a flash sale (at the sale price). */
  flash_sale_id: string | null;
  reservation_id: string | null;
}

export interface OrderTables {
  orders: OrdersTable;
  order_items: OrderItemsTable;
}
