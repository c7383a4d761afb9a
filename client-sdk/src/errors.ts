/**
 * Every failure the SDK reports is a `LiveCommerceError` carrying the
 * server's stable code (`FLASH_SOLD_OUT`, `COUPON_EXPIRED`, …) or one of
 * the SDK's own (`NETWORK`, `TIMEOUT`, `DISCONNECTED`), so callers switch on
 * `err.code` rather than on messages.
 */

/** Codes the SDK itself produces (the server's are in its error catalogue, docs/api.md). */
export type ClientErrorCode =
  | 'NETWORK'
  | 'TIMEOUT'
  | 'DISCONNECTED'
  | 'CLOSED'
  | 'BAD_RESPONSE'
  /** No camera or microphone, or the user did not allow them. */
  | 'MEDIA_DEVICE'
  /** WebRTC media could not be set up or restored. */
  | 'MEDIA_FAILED';

export class LiveCommerceError extends Error {
  override readonly name = 'LiveCommerceError';

  constructor(
    /** Stable machine-readable code. */
    readonly code: string,
    message: string,
    /** HTTP status for HTTP failures; undefined for WebSocket and client-side ones. */
    readonly status?: number,
    /** Machine-readable context from the server (`retryAfterMs`, `field`, …). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** True when `err` is a LiveCommerceError with one of `codes`. */
export function isErrorCode(err: unknown, ...codes: string[]): err is LiveCommerceError {
  return err instanceof LiveCommerceError && codes.includes(err.code);
}
