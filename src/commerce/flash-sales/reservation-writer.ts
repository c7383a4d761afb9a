/**
 * Group commit for flash-sale reservations. A purchase is answered only once
 * its reservation is durable in the Db (nothing a buyer was told is lost), but
 * the Db sees one multi-row insert per batch instead of one per purchase:
 * purchases that arrive while a batch is being written form the next batch.
 *
 * Each batch locks its sales' rows `for share` and keeps only rows whose
 * Engine epoch is still the sale's current one. A rebuild takes the same rows
 * `for update`, so it either sees a batch's rows or makes them stale: a
 * reservation the rebuilt Engine does not know is never written.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../database.js';

export interface PendingReservation {
  id: string;
  saleId: string;
  userId: string;
  quantity: number;
  expiresAt: Date;
  idempotencyKey: string;
  /** Engine epoch the reservation was made under. */
  epoch: number;
}

/** `written`: durable. `stale`: the Engine was rebuilt meanwhile; the reservation does not exist. */
export type WriteOutcome = 'written' | 'stale';

interface Waiter {
  row: PendingReservation;
  resolve: (outcome: WriteOutcome) => void;
  reject: (err: unknown) => void;
}

export class ReservationWriter {
  private queue: Waiter[] = [];
  private writing = false;
  private readonly inFlight = new Map<string, Promise<WriteOutcome>>();

  /**
   * @param db the Db holding flash_sales and flash_reservations.
   * @param maxBatch most rows per insert (Postgres allows 65535 parameters; 9 per row).
   */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly maxBatch = 1000,
  ) {}

  write(row: PendingReservation): Promise<WriteOutcome> {
    const promise = new Promise<WriteOutcome>((resolve, reject) => {
      this.queue.push({ row, resolve, reject });
    });
    this.inFlight.set(row.id, promise);
    const forget = () => this.inFlight.delete(row.id);
    promise.then(forget, forget);
    if (!this.writing) void this.drain();
    return promise;
  }

  /** The pending write of a reservation made by this instance, if any (idempotent replays wait on it). */
  pending(reservationId: string): Promise<WriteOutcome> | undefined {
    return this.inFlight.get(reservationId);
  }

  /** Resolves when everything queued so far is written (graceful shutdown). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.writing) await new Promise((r) => setTimeout(r, 5));
  }

  private async drain(): Promise<void> {
    this.writing = true;
    // Let the purchases of this event-loop turn join the batch.
    await new Promise((r) => setImmediate(r));
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const outcomes = await this.writeBatch(batch.map((w) => w.row));
          batch.forEach((w, i) => {
            w.resolve(outcomes[i] ?? 'stale');
          });
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async writeBatch(rows: PendingReservation[]): Promise<WriteOutcome[]> {
    return this.db.transaction().execute(async (trx) => {
      const saleIds = [...new Set(rows.map((r) => r.saleId))];
      const sales = await trx
        .selectFrom('flash_sales')
        .select(['id', 'engine_epoch'])
        .where('id', 'in', saleIds)
        .forShare()
        .execute();
      const epochs = new Map(sales.map((s) => [s.id, s.engine_epoch]));
      const current = rows.filter((r) => epochs.get(r.saleId) === r.epoch);
      if (current.length > 0) {
        await trx
          .insertInto('flash_reservations')
          .values(
            current.map((r) => ({
              id: r.id,
              sale_id: r.saleId,
              user_id: r.userId,
              quantity: r.quantity,
              status: 'reserved' as const,
              expires_at: r.expiresAt,
              idempotency_key: r.idempotencyKey,
            })),
          )
          // A retry whose first attempt was written already: nothing to add.
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
      return rows.map((r) => (epochs.get(r.saleId) === r.epoch ? 'written' : 'stale'));
    });
  }
}
