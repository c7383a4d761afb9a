/**
 * The payment step, behind an interface so a real processor can be plugged
 * in. Charges are idempotent on `idempotencyKey`: asking twice for the same
 * key returns the first charge, never a second one — this, not luck, is what
 * makes a retried payment safe from double charging.
 */
import { randomUUID } from 'node:crypto';

export type PaymentMethod = 'test_card_ok' | 'test_card_declined' | 'test_card_hang';

export interface ChargeRequest {
  /** One charge per key; we use the order id. */
  idempotencyKey: string;
  amountMinor: number;
  currency: string;
  method: PaymentMethod;
}

export type ChargeResult = { status: 'succeeded'; ref: string } | { status: 'declined'; reason: string };

export interface PaymentProvider {
  charge(request: ChargeRequest, signal: AbortSignal): Promise<ChargeResult>;
  /** Returns a succeeded charge's money (late payment for an expired reservation). Idempotent. */
  refund(ref: string): Promise<void>;
}

/**
 * The built-in provider for development and tests. `test_card_ok` succeeds,
 * `test_card_declined` is declined, `test_card_hang` never answers (until the
 * caller gives up). Counts charges so tests can prove nothing is charged twice.
 */
export class TestPaymentProvider implements PaymentProvider {
  private readonly charges = new Map<string, Promise<ChargeResult>>();
  private readonly refunded = new Set<string>();
  /** Successful charges actually made (not replays). */
  chargeCount = 0;

  async charge(request: ChargeRequest, signal: AbortSignal): Promise<ChargeResult> {
    const existing = this.charges.get(request.idempotencyKey);
    if (existing) return existing;
    if (request.method === 'test_card_hang') {
      // A hung processor: nothing is recorded, so a later retry with a working card can still succeed.
      return new Promise((_, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    const result: Promise<ChargeResult> =
      request.method === 'test_card_declined'
        ? Promise.resolve({ status: 'declined', reason: 'card_declined' })
        : Promise.resolve({ status: 'succeeded', ref: `test_ch_${randomUUID()}` });
    if (request.method === 'test_card_ok') {
      this.charges.set(request.idempotencyKey, result);
      this.chargeCount++;
    }
    return result;
  }

  async refund(ref: string): Promise<void> {
    this.refunded.add(ref);
  }

  /** What happened to the charge made under `idempotencyKey`, for tests that prove money was not kept. */
  async chargeState(idempotencyKey: string): Promise<'none' | 'charged' | 'refunded'> {
    const charge = this.charges.get(idempotencyKey);
    if (!charge) return 'none';
    const result = await charge;
    return result.status === 'succeeded' && this.refunded.has(result.ref) ? 'refunded' : 'charged';
  }
}
