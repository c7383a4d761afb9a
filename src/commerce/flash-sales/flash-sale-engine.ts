/**
 * The hot path of flash sales: a sale's live state in the Engine and the
 * atomic operations on it (DESIGN.md §7). Each method is exactly one Engine
 * call, one EngineScript (see flash-sale-engine-scripts.ts), so every rule of
 * a purchase (velocity, idempotency, window, per-user limit, stock,
 * reservation with TTL, expiry index) holds atomically on Redis and in memory
 * alike, across any number of app instances.
 *
 * The Db stays the system of record: `load` takes a `FlashSaleState` built
 * from it, `epoch` tags that generation so a Db write can reject answers from
 * a stale one, and the Engine state can be rebuilt at any time (`unload` +
 * `load`) without overselling, because held units and open reservations come
 * back with it.
 *
 * Callers write the Db from the answers: an OK purchase becomes an order, a
 * confirm OK marks it paid, and every reservation that comes back closed
 * (expireDue's list, confirm's EXPIRED, cancel's OK) becomes expired or
 * cancelled there. Each of those answers is given exactly once per
 * reservation, so the Db writes need no extra deduplication beyond the epoch.
 */
import type { Engine, ScriptValue } from '../../platform/engine/engine.js';
import {
  cancelScript,
  confirmScript,
  coreKeys,
  encodeRecord,
  endScript,
  expireDueScript,
  flashSaleKeys,
  idempotencyField,
  loadScript,
  purchaseScript,
  type ReservationState,
  statusScript,
} from './flash-sale-engine-scripts.js';

export { type FlashSaleKeys, flashSaleKeys, type ReservationState } from './flash-sale-engine-scripts.js';

/** A sale's state as loaded into the Engine, built from the Db. */
export interface FlashSaleState {
  /** Generation number from the Db; returned with every OK purchase so the Db write can reject stale ones. */
  epoch: number;
  /** Sale window [startsAtMs, endsAtMs) in engine-clock ms since the epoch. */
  startsAtMs: number;
  endsAtMs: number;
  /** Most units one user may hold (open reservations + paid). */
  perUserLimit: number;
  /** How long a new reservation holds its units before it expires. */
  reservationTtlMs: number;
  /** Units still available. */
  stock: number;
  /** userId -> units held (open reservations + paid). */
  buyers: Record<string, number>;
  /** Open reservations to track for expiry. */
  open: Array<{ id: string; userId: string; quantity: number; expiresAtMs: number }>;
  /**
   * Ids of paid reservations, so confirm answers ALREADY_PAID and idempotent
   * replays work after a rebuild. Their quantity and expiry are not part of
   * the state, so a REPLAY of one answers quantity 0 and expiresAtMs 0
   * (read the order from the Db for details).
   */
  paid?: string[];
  /**
   * Idempotency keys seen so far. An entry whose reservation is neither open
   * nor paid still blocks a second reservation for that key; its REPLAY has
   * quantity 0, expiresAtMs 0 and no state.
   */
  idempotency?: Array<{ userId: string; key: string; reservationId: string }>;
}

/** One purchase attempt. */
export interface PurchaseInput {
  saleId: string;
  userId: string;
  /** Units to reserve; a positive integer. */
  quantity: number;
  /** Same user + key => the same reservation back (status 'REPLAY'), never a second one. */
  idempotencyKey: string;
  /** Id for the reservation if one is created (the caller generates a UUID). Must be unused. */
  reservationId: string;
  /**
   * Attempts per fixed window of `windowMs`, per user and per client IP in this
   * sale, counted before any stock check (replays are not counted).
   */
  velocity?: { ip: string; perUserMax: number; perIpMax: number; windowMs: number };
}

/** The answer to a purchase. `stock` is the units available after this call. */
export type PurchaseResult =
  | {
      status: 'OK' | 'REPLAY';
      reservationId: string;
      quantity: number;
      expiresAtMs: number;
      stock: number;
      epoch: number;
      /** The reservation's state now; absent for a replayed key whose reservation the engine has no record of. */
      state?: ReservationState;
    }
  | {
      status: 'NOT_LOADED' | 'NOT_STARTED' | 'ENDED' | 'SOLD_OUT' | 'INSUFFICIENT' | 'LIMIT' | 'VELOCITY';
      stock: number;
    };

/** Answers of `confirm`. */
export type ConfirmResult = 'OK' | 'ALREADY_PAID' | 'EXPIRED' | 'CANCELLED' | 'UNKNOWN' | 'NOT_LOADED';

/** Answers of `cancel`. */
export type CancelResult = 'OK' | 'UNKNOWN' | 'NOT_RESERVED' | 'NOT_LOADED';

/** A reservation closed by `expireDue`. */
export interface ExpiredReservation {
  id: string;
  userId: string;
  quantity: number;
}

/** Summary of a sale's Engine state. Zeros when not loaded. */
export interface FlashSaleStatus {
  loaded: boolean;
  stock: number;
  epoch: number;
  endsAtMs: number;
  startsAtMs: number;
}

const REFUSALS = new Set([
  'NOT_LOADED',
  'NOT_STARTED',
  'ENDED',
  'SOLD_OUT',
  'INSUFFICIENT',
  'LIMIT',
  'VELOCITY',
]);
const CONFIRM_RESULTS = new Set<string>([
  'OK',
  'ALREADY_PAID',
  'EXPIRED',
  'CANCELLED',
  'UNKNOWN',
  'NOT_LOADED',
]);
const CANCEL_RESULTS = new Set<string>(['OK', 'UNKNOWN', 'NOT_RESERVED', 'NOT_LOADED']);
const STATES = new Set<string>(['reserved', 'paid', 'expired', 'cancelled']);

/**
 * Typed access to flash-sale state in an Engine. Stateless itself: any number
 * of instances, in any number of processes, may share one Engine.
 *
 * Arguments are validated before anything is sent, so a bad call fails the
 * same way (RangeError) on either adapter and never reaches a script.
 */
export class FlashSaleEngine {
  /** @param engine where the hot state lives; memory for one instance, Redis for several. */
  constructor(private readonly engine: Engine) {}

  /**
   * Loads a sale's state unless it is already loaded (atomic; first loader
   * wins, so concurrent rebuilds cannot overwrite each other or stock already
   * sold from the winner's state). Returns true if this call loaded it.
   *
   * Every key of the sale lives `keyTtlMs` from now, including keys created
   * later (they get the sale's remaining life). Choose it so the state
   * outlives the sale and its last reservations, e.g. endsAt - now +
   * reservationTtl + a margin for late confirms and replays.
   */
  async load(saleId: string, state: FlashSaleState, keyTtlMs: number): Promise<boolean> {
    const keys = flashSaleKeys(saleId);
    positive('keyTtlMs', keyTtlMs);
    const args = loadArgs(state);
    const loaded = await this.engine.run(loadScript, coreKeys(keys), [keyTtlMs, ...args]);
    return loaded === 1;
  }

  /**
   * One purchase attempt: a single Engine call. Checks, in order: NOT_LOADED,
   * REPLAY (same user + idempotency key, even after sell-out or end),
   * VELOCITY, ENDED by `end()`, NOT_STARTED, ENDED by time, LIMIT (held +
   * quantity > perUserLimit), SOLD_OUT (stock 0), INSUFFICIENT (0 < stock <
   * quantity); otherwise reserves the units until now + reservationTtlMs and
   * answers OK. Rejects (error DUPLICATE_RESERVATION) if `reservationId`
   * already names a reservation of this sale.
   */
  async purchase(input: PurchaseInput): Promise<PurchaseResult> {
    const keys = flashSaleKeys(input.saleId);
    nonEmpty('userId', input.userId);
    nonEmpty('idempotencyKey', input.idempotencyKey);
    nonEmpty('reservationId', input.reservationId);
    positive('quantity', input.quantity);
    const v = input.velocity;
    if (v) {
      nonEmpty('velocity.ip', v.ip);
      positive('velocity.perUserMax', v.perUserMax);
      positive('velocity.perIpMax', v.perIpMax);
      positive('velocity.windowMs', v.windowMs);
    }
    // Velocity keys are real key names even when unused: the script's key
    // count is fixed, and Redis Cluster routes by every key passed.
    const reply = await this.engine.run(
      purchaseScript,
      [...coreKeys(keys), keys.velocityUser(input.userId), keys.velocityIp(v?.ip ?? '-')],
      [
        input.userId,
        input.quantity,
        idempotencyField(input.userId, input.idempotencyKey),
        input.reservationId,
        v ? 1 : 0,
        v?.perUserMax ?? 0,
        v?.perIpMax ?? 0,
        v?.windowMs ?? 0,
      ],
    );
    return parsePurchase(reply);
  }

  /**
   * Marks a reservation paid. EXPIRED also when the reservation is past its
   * expiry but not yet swept: this call expires it (units back to stock, once)
   * so a late payment can never succeed for units going back on sale; the
   * caller must then record the expiry in the Db and refund or reject.
   */
  async confirm(saleId: string, reservationId: string): Promise<ConfirmResult> {
    const keys = flashSaleKeys(saleId);
    nonEmpty('reservationId', reservationId);
    const reply = await this.engine.run(confirmScript, coreKeys(keys).slice(0, 5), [reservationId]);
    return oneOf(CONFIRM_RESULTS, reply[0], 'confirm') as ConfirmResult;
  }

  /**
   * Cancels `userId`'s open reservation, returning its units to stock once.
   * UNKNOWN for an id that does not exist or belongs to someone else;
   * NOT_RESERVED when it is already paid, expired or cancelled.
   */
  async cancel(
    saleId: string,
    reservationId: string,
    userId: string,
  ): Promise<{ result: CancelResult; stock: number }> {
    const keys = flashSaleKeys(saleId);
    nonEmpty('reservationId', reservationId);
    nonEmpty('userId', userId);
    const reply = await this.engine.run(cancelScript, coreKeys(keys).slice(0, 5), [reservationId, userId]);
    return { result: oneOf(CANCEL_RESULTS, reply[0], 'cancel') as CancelResult, stock: Number(reply[1]) };
  }

  /**
   * Expires due reservations (expiresAt <= engine now), oldest first, at most
   * `limit`; each one's units return to stock exactly once even with several
   * sweepers racing, and each expired reservation appears in exactly one
   * answer. Call repeatedly until `expired` comes back shorter than `limit`.
   */
  async expireDue(saleId: string, limit: number): Promise<{ expired: ExpiredReservation[]; stock: number }> {
    const keys = flashSaleKeys(saleId);
    positive('limit', limit);
    const reply = await this.engine.run(expireDueScript, coreKeys(keys).slice(0, 5), [limit]);
    const expired: ExpiredReservation[] = [];
    for (let i = 1; i + 2 < reply.length; i += 3) {
      expired.push({ id: String(reply[i]), userId: String(reply[i + 1]), quantity: Number(reply[i + 2]) });
    }
    return { expired, stock: Number(reply[0]) };
  }

  /** A consistent snapshot of the sale's window, epoch and stock. */
  async status(saleId: string): Promise<FlashSaleStatus> {
    const keys = flashSaleKeys(saleId);
    const [loaded, stock, epoch, endsAtMs, startsAtMs] = await this.engine.run(
      statusScript,
      [keys.meta, keys.stock],
      [],
    );
    return {
      loaded: loaded === 1,
      stock: Number(stock),
      epoch: Number(epoch),
      endsAtMs: Number(endsAtMs),
      startsAtMs: Number(startsAtMs),
    };
  }

  /**
   * Ends the sale now (manual stop): later purchases get ENDED, even if the
   * sale had not started. Open reservations stay payable until they expire.
   * Does nothing when the sale is not loaded (the Db's end time governs the
   * next load).
   */
  async end(saleId: string): Promise<void> {
    const keys = flashSaleKeys(saleId);
    await this.engine.run(endScript, [keys.meta], []);
  }

  /**
   * Deletes the sale's keys (tests, and an operator forcing a rebuild from the
   * Db). Velocity counters are not tracked per sale and simply run out with
   * their window.
   */
  async unload(saleId: string): Promise<void> {
    const keys = flashSaleKeys(saleId);
    await this.engine.del(...coreKeys(keys));
  }
}

// ---- argument checks and reply parsing -----------------------------------------------------

function nonEmpty(name: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new RangeError(`${name} must be a non-empty string`);
  }
}

function positive(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

function nonNegative(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}

/**
 * Validates a state and flattens it into loadScript's ARGV (after keyTtlMs).
 * Refuses ids that appear twice across open and paid: a record can have only
 * one state, and silently keeping one would lose or duplicate held units.
 */
function loadArgs(state: FlashSaleState): Array<string | number> {
  if (!Number.isSafeInteger(state.epoch))
    throw new RangeError(`epoch must be a safe integer, got ${state.epoch}`);
  nonNegative('startsAtMs', state.startsAtMs);
  nonNegative('endsAtMs', state.endsAtMs);
  positive('perUserLimit', state.perUserLimit);
  positive('reservationTtlMs', state.reservationTtlMs);
  nonNegative('stock', state.stock);

  const args: Array<string | number> = [
    state.epoch,
    state.startsAtMs,
    state.endsAtMs,
    state.perUserLimit,
    state.reservationTtlMs,
    state.stock,
  ];

  // Zero holdings are skipped: the scripts treat a missing field as 0 and
  // delete fields that drop to 0, so the loaded state looks like a live one.
  const buyers = Object.entries(state.buyers).filter(([, held]) => held !== 0);
  args.push(buyers.length);
  for (const [userId, held] of buyers) {
    nonEmpty('buyers userId', userId);
    positive(`buyers[${userId}]`, held);
    args.push(userId, held);
  }

  const ids = new Set<string>();
  const claim = (id: string) => {
    nonEmpty('reservation id', id);
    if (ids.has(id)) throw new RangeError(`reservation id ${id} appears twice in the state`);
    ids.add(id);
  };

  args.push(state.open.length);
  for (const r of state.open) {
    claim(r.id);
    nonEmpty('open userId', r.userId);
    positive('open quantity', r.quantity);
    nonNegative('open expiresAtMs', r.expiresAtMs);
    args.push(r.id, encodeRecord('reserved', r.quantity, r.expiresAtMs, r.userId), r.expiresAtMs);
  }

  const paid = state.paid ?? [];
  args.push(paid.length);
  for (const id of paid) {
    claim(id);
    // User, quantity and expiry are not in the state; the record only has to
    // carry "paid" so confirm and replays answer correctly.
    args.push(id, encodeRecord('paid', 0, 0, ''));
  }

  const idem = state.idempotency ?? [];
  args.push(idem.length);
  for (const entry of idem) {
    nonEmpty('idempotency userId', entry.userId);
    nonEmpty('idempotency key', entry.key);
    nonEmpty('idempotency reservationId', entry.reservationId);
    args.push(idempotencyField(entry.userId, entry.key), entry.reservationId);
  }
  return args;
}

/** Guards against a script and its parser drifting apart: an unexpected word is a bug, not an answer. */
function oneOf(allowed: Set<string>, value: ScriptValue | undefined, what: string): string {
  if (typeof value !== 'string' || !allowed.has(value)) {
    throw new Error(`flash-sale ${what} script answered ${JSON.stringify(value)}`);
  }
  return value;
}

function parsePurchase(reply: ScriptValue[]): PurchaseResult {
  const status = reply[0];
  const stock = Number(reply[1]);
  if (status === 'OK' || status === 'REPLAY') {
    const state = String(reply[6] ?? '');
    const result: PurchaseResult = {
      status,
      reservationId: String(reply[3]),
      quantity: Number(reply[4]),
      expiresAtMs: Number(reply[5]),
      stock,
      epoch: Number(reply[2]),
    };
    if (STATES.has(state)) result.state = state as ReservationState;
    return result;
  }
  const refusal = oneOf(REFUSALS, status, 'purchase');
  return { status: refusal as Exclude<PurchaseResult['status'], 'OK' | 'REPLAY'>, stock };
}
