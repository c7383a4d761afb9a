/**
 * Flash sales: the rules around the hot path. The Engine decides every
 * purchase atomically (window, per-buyer limit, stock, reservation with TTL);
 * the Db is the system of record: reservations are written there (in group
 * commits) before a buyer is told, and the Engine state of a sale can be
 * rebuilt from the Db at any time without overselling (see `ensureLoaded`).
 */
import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { AuthUser } from '../../auth/permissions.js';
import { assertCan, assertOwnerOr } from '../../auth/permissions.js';
import type { Database } from '../../database.js';
import type { Engine } from '../../platform/engine/engine.js';
import { AppError } from '../../platform/errors.js';
import { FlashSaleEngine, type PurchaseResult } from './flash-sale-engine.js';
import type { FlashReservationsTable, FlashSalesTable } from './flash-sale-tables.js';
import { ReservationWriter } from './reservation-writer.js';

type Db = Kysely<Database>;

/** Channel on the Engine bus carrying `{ saleId, stock }` whenever a sale's stock changes. */
export const FLASH_STOCK_CHANNEL = 'flash:stock';

/** Engine state outlives the sale by this much, so late payments and replays still find it. */
const STATE_GRACE_MS = 24 * 3600 * 1000;
/** How long a sold-out answer is served from memory before the Engine is asked again. */
const SOLD_OUT_FLAG_MS = 1000;
/** How often a sale's stock is published at most (the last value always goes out). */
const STOCK_PUBLISH_INTERVAL_MS = 200;

export type FlashSaleState = 'scheduled' | 'live' | 'ended';

export interface FlashSaleView {
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
  state: FlashSaleState;
  /** Units still available (not reserved or sold). */
  remaining: number;
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

export interface ReservationView {
  reservationId: string;
  saleId: string;
  quantity: number;
  expiresAt: string;
  salePriceMinor: number;
  currency: string;
  /** Units left in the sale right after this purchase. */
  remaining: number;
}

export interface VelocityLimits {
  windowMs: number;
  perUserMax: number;
  perIpMax: number;
}

interface SaleMeta {
  row: Selectable<FlashSalesTable>;
  /**
   * Known sold out until this time (ms): answer without touching the Engine.
   * Stock events clear it at once; the deadline bounds how long a lost event
   * or an Engine that lost its data (and must be rebuilt) can go unnoticed.
   */
  soldOutUntil: number;
}

export interface FlashSaleHooks {
  /**
   * Called on the instance that changed a sale's stock (at most every 200 ms
   * per sale, the last value always), so the live room of the sale's stream
   * can show "12 left"; other instances hear it on the bus.
   */
  onStock?: (update: { saleId: string; streamId: string | null; remaining: number }) => void;
  /** Called once a sale is created (announce it in its stream: card, countdown, timed metadata). */
  onCreated?: (sale: FlashSaleView) => void;
}

export class FlashSalesService {
  private readonly hot: FlashSaleEngine;
  private readonly writer: ReservationWriter;
  private readonly meta = new Map<string, SaleMeta>();
  private readonly metaLoads = new Map<string, Promise<SaleMeta>>();
  private readonly publishTimers = new Map<string, { timer: NodeJS.Timeout; stock: number }>();
  private unsubscribe?: () => Promise<void>;

  private readonly onStock?: FlashSaleHooks['onStock'];
  private readonly onCreated?: FlashSaleHooks['onCreated'];

  constructor(
    private readonly db: Db,
    private readonly engine: Engine,
    private readonly velocity: VelocityLimits,
    hooks: FlashSaleHooks = {},
  ) {
    this.onStock = hooks.onStock;
    this.onCreated = hooks.onCreated;
    this.hot = new FlashSaleEngine(engine);
    this.writer = new ReservationWriter(db);
  }

  /** Follows stock events from every instance, so sold-out flags clear when units come back. */
  async start(): Promise<void> {
    this.unsubscribe = await this.engine.subscribe(FLASH_STOCK_CHANNEL, (message) => {
      const { saleId, stock } = JSON.parse(message) as { saleId: string; stock: number };
      const m = this.meta.get(saleId);
      if (m) m.soldOutUntil = stock <= 0 ? Date.now() + SOLD_OUT_FLAG_MS : 0;
    });
  }

  async stop(): Promise<void> {
    for (const { timer } of this.publishTimers.values()) clearTimeout(timer);
    this.publishTimers.clear();
    await this.writer.flush();
    await this.unsubscribe?.();
  }

  async create(user: AuthUser, input: CreateFlashSaleInput): Promise<FlashSaleView> {
    assertCan(user, 'catalog:write');
    const startsAt = new Date(input.startsAt);
    const endsAt = new Date(input.endsAt);
    if (!(endsAt > startsAt))
      throw new AppError('VALIDATION_FAILED', 'endsAt must be after startsAt', {
        location: 'body',
        field: 'endsAt',
      });
    const sku = await this.db
      .selectFrom('skus')
      .innerJoin('products', 'products.id', 'skus.product_id')
      .select(['skus.id', 'skus.product_id', 'products.seller_id', 'products.currency'])
      .where('skus.id', '=', input.skuId)
      .executeTakeFirst();
    if (!sku) throw new AppError('SKU_NOT_FOUND');
    assertOwnerOr(user, sku.seller_id, 'users:manage');
    const id = randomUUID();
    await this.db
      .insertInto('flash_sales')
      .values({
        id,
        product_id: sku.product_id,
        sku_id: sku.id,
        stream_id: input.streamId ?? null,
        sale_price_minor: input.salePriceMinor,
        currency: sku.currency,
        quantity: input.quantity,
        per_user_limit: input.perUserLimit,
        reservation_ttl_seconds: input.reservationTtlSeconds,
        starts_at: startsAt,
        ends_at: endsAt,
        created_by: user.id,
      })
      .execute();
    await this.ensureLoaded(id);
    const view = await this.get(id);
    this.onCreated?.(view);
    return view;
  }

  async get(id: string): Promise<FlashSaleView> {
    const row = await this.db.selectFrom('flash_sales').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new AppError('FLASH_SALE_NOT_FOUND');
    let status = await this.hot.status(id);
    if (!status.loaded) {
      await this.ensureLoaded(id);
      status = await this.hot.status(id);
    }
    return toView(row, status.stock, status.endsAtMs);
  }

  async listForStream(streamId: string): Promise<FlashSaleView[]> {
    const rows = await this.db
      .selectFrom('flash_sales')
      .select('id')
      .where('stream_id', '=', streamId)
      .orderBy('starts_at', 'desc')
      .limit(50)
      .execute();
    return Promise.all(rows.map((r) => this.get(r.id)));
  }

  /** Stops a sale early (seller or admin). */
  async stopSale(user: AuthUser, id: string): Promise<FlashSaleView> {
    const row = await this.db.selectFrom('flash_sales').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new AppError('FLASH_SALE_NOT_FOUND');
    assertOwnerOr(user, row.created_by, 'users:manage');
    await this.db.updateTable('flash_sales').set({ stopped_at: new Date() }).where('id', '=', id).execute();
    await this.ensureLoaded(id);
    await this.hot.end(id);
    return this.get(id);
  }

  /** True when this instance knows the sale is sold out (no Engine call needed to say so). */
  isKnownSoldOut(saleId: string): boolean {
    return (this.meta.get(saleId)?.soldOutUntil ?? 0) > Date.now();
  }

  /**
   * The hot path: one Engine call decides; the reservation is then made
   * durable in a group commit before the buyer is answered.
   */
  async purchase(
    user: AuthUser,
    ip: string,
    saleId: string,
    quantity: number,
    idempotencyKey: string,
  ): Promise<{ reservation: ReservationView; replayed: boolean }> {
    const meta = this.meta.get(saleId) ?? (await this.loadMeta(saleId));
    if (meta.soldOutUntil > Date.now()) throw new AppError('FLASH_SOLD_OUT', undefined, { remaining: 0 });
    const input = {
      saleId,
      userId: user.id,
      quantity,
      idempotencyKey,
      reservationId: randomUUID(),
      velocity: {
        ip,
        perUserMax: this.velocity.perUserMax,
        perIpMax: this.velocity.perIpMax,
        windowMs: this.velocity.windowMs,
      },
    };
    let result = await this.hot.purchase(input);
    if (result.status === 'NOT_LOADED') {
      await this.ensureLoaded(saleId);
      result = await this.hot.purchase(input);
    }
    if (result.status !== 'OK' && result.status !== 'REPLAY') {
      if (result.status === 'SOLD_OUT') meta.soldOutUntil = Date.now() + SOLD_OUT_FLAG_MS;
      throw purchaseError(result, meta.row.per_user_limit);
    }
    const row = meta.row;
    const reservation: ReservationView = {
      reservationId: result.reservationId,
      saleId,
      quantity: result.quantity,
      expiresAt: new Date(result.expiresAtMs).toISOString(),
      salePriceMinor: row.sale_price_minor,
      currency: row.currency,
      remaining: result.stock,
    };
    if (result.status === 'REPLAY') {
      // A concurrent retry of ours is still being written: answer when it is durable.
      const pending = this.writer.pending(result.reservationId);
      if (pending && (await pending) === 'stale')
        throw new AppError('SERVICE_UNAVAILABLE', 'Sale state was rebuilt; retry');
      return { reservation, replayed: true };
    }
    let outcome: 'written' | 'stale';
    try {
      outcome = await this.writer.write({
        id: result.reservationId,
        saleId,
        userId: user.id,
        quantity: result.quantity,
        expiresAt: new Date(result.expiresAtMs),
        idempotencyKey,
        epoch: result.epoch,
      });
    } catch (err) {
      // The Db refused: give the unit back so nothing is held that nobody was told about.
      await this.hot.cancel(saleId, result.reservationId, user.id).catch(() => undefined);
      throw err;
    }
    if (outcome === 'stale') throw new AppError('SERVICE_UNAVAILABLE', 'Sale state was rebuilt; retry');
    this.publishStock(saleId, result.stock);
    if (result.stock === 0) meta.soldOutUntil = Date.now() + SOLD_OUT_FLAG_MS;
    return { reservation, replayed: false };
  }

  /**
   * Marks a reservation paid in the Engine (no longer expirable). Returns
   * false when it can no longer be paid (expired, cancelled, unknown).
   */
  async confirmForPayment(saleId: string, reservationId: string): Promise<boolean> {
    let r = await this.hot.confirm(saleId, reservationId);
    if (r === 'NOT_LOADED') {
      await this.ensureLoaded(saleId);
      r = await this.hot.confirm(saleId, reservationId);
    }
    if (r === 'EXPIRED') await this.markReservations([reservationId], 'expired');
    return r === 'OK' || r === 'ALREADY_PAID';
  }

  /** Returns a reservation's units (buyer cancels, or its order is cancelled/expired). */
  async release(saleId: string, reservationId: string, userId: string): Promise<void> {
    let r = await this.hot.cancel(saleId, reservationId, userId);
    if (r.result === 'NOT_LOADED') {
      await this.ensureLoaded(saleId);
      r = await this.hot.cancel(saleId, reservationId, userId);
    }
    await this.markReservations([reservationId], 'cancelled');
    if (r.result === 'OK') this.publishStock(saleId, r.stock, true);
  }

  /** Buyer cancels their own reservation. */
  async cancelReservation(user: AuthUser, saleId: string, reservationId: string): Promise<void> {
    const res = await this.db
      .selectFrom('flash_reservations')
      .select(['user_id', 'status', 'order_id'])
      .where('id', '=', reservationId)
      .where('sale_id', '=', saleId)
      .executeTakeFirst();
    if (!res || res.user_id !== user.id) throw new AppError('RESERVATION_NOT_FOUND');
    if (res.status !== 'reserved' || res.order_id)
      throw new AppError(
        'ORDER_STATE_INVALID',
        `The reservation is ${res.order_id ? 'in an order' : res.status}`,
      );
    await this.release(saleId, reservationId, user.id);
  }

  /**
   * Rebuilds a sale's Engine state from the Db unless it is loaded. Holds the
   * sale row `for update` throughout, so concurrent rebuilders queue and the
   * reservation writer (which takes it `for share`) cannot slip a row in
   * between the count and the load; the epoch bump makes any write prepared
   * against the old state stale.
   */
  async ensureLoaded(saleId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const sale = await trx
        .selectFrom('flash_sales')
        .selectAll()
        .where('id', '=', saleId)
        .forUpdate()
        .executeTakeFirst();
      if (!sale) throw new AppError('FLASH_SALE_NOT_FOUND');
      if ((await this.hot.status(saleId)).loaded) return;
      const epoch = sale.engine_epoch + 1;
      await trx.updateTable('flash_sales').set({ engine_epoch: epoch }).where('id', '=', saleId).execute();
      const now = new Date();
      // Unpaid reservations past their time can no longer be paid: they go back to stock here.
      await trx
        .updateTable('flash_reservations')
        .set({ status: 'expired', updated_at: now })
        .where('sale_id', '=', saleId)
        .where('status', '=', 'reserved')
        .where('expires_at', '<=', now)
        .execute();
      const held = await trx
        .selectFrom('flash_reservations')
        .select(['id', 'user_id', 'quantity', 'status', 'expires_at', 'idempotency_key'])
        .where('sale_id', '=', saleId)
        .where('status', 'in', ['reserved', 'paid'])
        .execute();
      const taken = held.reduce((sum, r) => sum + r.quantity, 0);
      const buyers: Record<string, number> = {};
      for (const r of held) buyers[r.user_id] = (buyers[r.user_id] ?? 0) + r.quantity;
      const endsAtMs = (sale.stopped_at ?? sale.ends_at).getTime();
      await this.hot.load(
        saleId,
        {
          epoch,
          startsAtMs: sale.starts_at.getTime(),
          endsAtMs: Math.max(endsAtMs, sale.starts_at.getTime() + 1),
          perUserLimit: sale.per_user_limit,
          reservationTtlMs: sale.reservation_ttl_seconds * 1000,
          stock: Math.max(0, sale.quantity - taken),
          buyers,
          open: held
            .filter((r) => r.status === 'reserved')
            .map((r) => ({
              id: r.id,
              userId: r.user_id,
              quantity: r.quantity,
              expiresAtMs: r.expires_at.getTime(),
            })),
          paid: held.filter((r) => r.status === 'paid').map((r) => r.id),
          idempotency: held.map((r) => ({ userId: r.user_id, key: r.idempotency_key, reservationId: r.id })),
        },
        Math.max(60_000, endsAtMs - Date.now() + STATE_GRACE_MS),
      );
      const m = this.meta.get(saleId);
      if (m) m.soldOutUntil = sale.quantity - taken <= 0 ? Date.now() + SOLD_OUT_FLAG_MS : 0;
    });
  }

  /**
   * Expires due reservations of sales that may still hold any; safe to run on
   * every instance at once (the Engine hands each expiry to exactly one caller).
   */
  async sweep(): Promise<number> {
    const horizon = new Date(Date.now() - STATE_GRACE_MS);
    const sales = await this.db
      .selectFrom('flash_sales')
      .select('id')
      .where('ends_at', '>', horizon)
      .execute();
    let expired = 0;
    for (const { id } of sales) {
      const status = await this.hot.status(id);
      if (!status.loaded) continue;
      for (;;) {
        const r = await this.hot.expireDue(id, 500);
        if (r.expired.length === 0) break;
        expired += r.expired.length;
        await this.markReservations(
          r.expired.map((e) => e.id),
          'expired',
        );
        this.publishStock(id, r.stock, true);
        if (r.expired.length < 500) break;
      }
    }
    return expired;
  }

  private async markReservations(ids: string[], status: 'expired' | 'cancelled'): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .updateTable('flash_reservations')
      .set({ status, updated_at: new Date() })
      .where('id', 'in', ids)
      .where('status', '=', 'reserved')
      .execute();
  }

  private loadMeta(saleId: string): Promise<SaleMeta> {
    let loading = this.metaLoads.get(saleId);
    if (!loading) {
      loading = (async () => {
        const row = await this.db
          .selectFrom('flash_sales')
          .selectAll()
          .where('id', '=', saleId)
          .executeTakeFirst();
        if (!row) throw new AppError('FLASH_SALE_NOT_FOUND');
        const meta: SaleMeta = { row, soldOutUntil: 0 };
        this.meta.set(saleId, meta);
        return meta;
      })().finally(() => this.metaLoads.delete(saleId));
      this.metaLoads.set(saleId, loading);
    }
    return loading;
  }

  /** Publishes stock at most every 200 ms per sale; `now` sends at once (units came back). */
  private publishStock(saleId: string, stock: number, now = false): void {
    const pending = this.publishTimers.get(saleId);
    if (pending) {
      pending.stock = stock;
      if (!now) return;
      clearTimeout(pending.timer);
      this.publishTimers.delete(saleId);
    }
    const send = (value: number) => {
      this.engine
        .publish(FLASH_STOCK_CHANNEL, JSON.stringify({ saleId, stock: value }))
        .catch(() => undefined);
      if (this.onStock) {
        const onStock = this.onStock;
        const known = this.meta.get(saleId);
        if (known) onStock({ saleId, streamId: known.row.stream_id, remaining: value });
        else
          this.loadMeta(saleId).then(
            (m) => onStock({ saleId, streamId: m.row.stream_id, remaining: value }),
            () => undefined,
          );
      }
    };
    send(stock);
    if (now) return;
    const entry = {
      stock,
      timer: setTimeout(() => {
        this.publishTimers.delete(saleId);
        if (entry.stock !== stock) send(entry.stock);
      }, STOCK_PUBLISH_INTERVAL_MS),
    };
    entry.timer.unref();
    this.publishTimers.set(saleId, entry);
  }

  /** Per-sale figures for analytics. */
  async reservationCounts(
    saleId: string,
  ): Promise<Record<FlashReservationsTable['status'], { count: number; units: number }>> {
    const rows = await this.db
      .selectFrom('flash_reservations')
      .select([
        'status',
        (eb) => eb.fn.countAll<number>().as('count'),
        (eb) => eb.fn.sum<number>('quantity').as('units'),
      ])
      .where('sale_id', '=', saleId)
      .groupBy('status')
      .execute();
    const out = {
      reserved: { count: 0, units: 0 },
      paid: { count: 0, units: 0 },
      expired: { count: 0, units: 0 },
      cancelled: { count: 0, units: 0 },
    };
    for (const r of rows) out[r.status] = { count: Number(r.count), units: Number(r.units ?? 0) };
    return out;
  }
}

function toView(row: Selectable<FlashSalesTable>, remaining: number, engineEndsAtMs: number): FlashSaleView {
  const now = Date.now();
  const endsAtMs = Math.min(
    row.ends_at.getTime(),
    row.stopped_at?.getTime() ?? Number.POSITIVE_INFINITY,
    engineEndsAtMs,
  );
  const state: FlashSaleState =
    now < row.starts_at.getTime() ? 'scheduled' : now >= endsAtMs || remaining <= 0 ? 'ended' : 'live';
  return {
    id: row.id,
    productId: row.product_id,
    skuId: row.sku_id,
    streamId: row.stream_id,
    salePriceMinor: row.sale_price_minor,
    currency: row.currency,
    quantity: row.quantity,
    perUserLimit: row.per_user_limit,
    reservationTtlSeconds: row.reservation_ttl_seconds,
    startsAt: row.starts_at.toISOString(),
    endsAt: new Date(endsAtMs).toISOString(),
    state,
    remaining,
  };
}

function purchaseError(result: PurchaseResult, perUserLimit: number): AppError {
  switch (result.status) {
    case 'NOT_STARTED':
      return new AppError('FLASH_NOT_STARTED');
    case 'ENDED':
      return new AppError('FLASH_ENDED');
    case 'SOLD_OUT':
      return new AppError('FLASH_SOLD_OUT', undefined, { remaining: 0 });
    case 'INSUFFICIENT':
      return new AppError('FLASH_SOLD_OUT', `Only ${result.stock} left`, { remaining: result.stock });
    case 'LIMIT':
      return new AppError('FLASH_LIMIT_REACHED', undefined, { perUserLimit });
    case 'VELOCITY':
      return new AppError('VELOCITY_LIMITED');
    default:
      return new AppError('SERVICE_UNAVAILABLE', 'Flash sale state is not available; retry');
  }
}
