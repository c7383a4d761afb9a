import type { ColumnType, Generated } from 'kysely';

export interface FlashSalesTable {
  id: string;
  product_id: string;
  sku_id: string;
  /** The stream it was announced in, if any. */
  stream_id: string | null;
  sale_price_minor: number;
  currency: string;
  /** Units on sale. */
  quantity: number;
  per_user_limit: number;
  /** Time a buyer has to pay a reservation. */
  reservation_ttl_seconds: number;
  starts_at: Date;
  ends_at: Date;
  /** Set when a seller stops the sale early. */
  stopped_at: Date | null;
  /**
   * Generation of the sale's Engine state. Bumped on every rebuild; a
   * reservation write carrying an older epoch is refused, so a reservation
   * the Engine forgot can never be counted twice.
   */
  engine_epoch: Generated<number>;
  created_by: string;
  created_at: Generated<Date>;
}

export type ReservationStatus = 'reserved' | 'paid' | 'expired' | 'cancelled';

export interface FlashReservationsTable {
  id: string;
  sale_id: string;
  user_id: string;
  quantity: number;
  status: ReservationStatus;
  expires_at: Date;
  idempotency_key: string;
  order_id: string | null;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface FlashSaleTables {
  flash_sales: FlashSalesTable;
  flash_reservations: FlashReservationsTable;
}
