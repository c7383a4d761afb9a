/**
 * The catalogue of errors a client can see. Every code is stable (clients
 * switch on it), maps to one HTTP status, and is reused verbatim as the
 * `code` of WebSocket protocol errors. Add codes here; never reuse or rename one.
 */
export const ErrorCatalogue = {
  // generic request problems
  BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  INVALID_JSON: { status: 400, message: 'The request body is not valid JSON' },
  VALIDATION_FAILED: { status: 400, message: 'The request does not match the schema' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported content type' },
  BODY_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  NOT_FOUND: { status: 404, message: 'Not found' },
  ROUTE_NOT_FOUND: { status: 404, message: 'No such route' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed' },
  CONFLICT: { status: 409, message: 'Conflict' },
  IDEMPOTENCY_KEY_REQUIRED: { status: 400, message: 'This request needs an Idempotency-Key header' },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    message: 'This Idempotency-Key was used for a different request',
  },
  RATE_LIMITED: { status: 429, message: 'Too many requests' },
  // auth
  UNAUTHENTICATED: { status: 401, message: 'Authentication required' },
  TOKEN_INVALID: { status: 401, message: 'The access token is invalid' },
  TOKEN_EXPIRED: { status: 401, message: 'The access token has expired' },
  INVALID_CREDENTIALS: { status: 401, message: 'Wrong email or password' },
  FORBIDDEN: { status: 403, message: 'You are not allowed to do this' },
  EMAIL_TAKEN: { status: 409, message: 'A user with this email already exists' },
  USER_NOT_FOUND: { status: 404, message: 'No such user' },
  // catalog
  PRODUCT_NOT_FOUND: { status: 404, message: 'No such product' },
  SKU_NOT_FOUND: { status: 404, message: 'No such SKU' },
  SKU_CODE_TAKEN: { status: 409, message: 'A SKU with this code already exists' },
  PRODUCT_INACTIVE: { status: 409, message: 'This product is not for sale' },
  OUT_OF_STOCK: { status: 409, message: 'Not enough stock' },
  CURRENCY_MISMATCH: { status: 400, message: 'All items of an order must share one currency' },
  // coupons
  COUPON_NOT_FOUND: { status: 404, message: 'No such coupon' },
  COUPON_CODE_TAKEN: { status: 409, message: 'A coupon with this code already exists' },
  COUPON_INACTIVE: { status: 422, message: 'This coupon is disabled' },
  COUPON_NOT_STARTED: { status: 422, message: 'This coupon is not valid yet' },
  COUPON_EXPIRED: { status: 422, message: 'This coupon has expired' },
  COUPON_LIMIT_REACHED: { status: 422, message: 'This coupon has been used up' },
  COUPON_USER_LIMIT_REACHED: {
    status: 422,
    message: 'You have already used this coupon as often as allowed',
  },
  COUPON_MIN_NOT_MET: { status: 422, message: 'The order is below the minimum for this coupon' },
  COUPON_NOT_APPLICABLE: { status: 422, message: 'This coupon does not apply to these items' },
  COUPON_STREAM_MISMATCH: { status: 422, message: 'This coupon is only valid in another stream' },
  COUPON_CURRENCY_MISMATCH: { status: 422, message: 'This coupon is in another currency' },
  // orders and payments
  ORDER_NOT_FOUND: { status: 404, message: 'No such order' },
  ORDER_STATE_INVALID: { status: 409, message: 'The order is not in a state that allows this' },
  PAYMENT_FAILED: { status: 402, message: 'The payment was declined' },
  PAYMENT_TIMEOUT: {
    status: 504,
    message: 'The payment provider did not answer in time; retry with the same Idempotency-Key',
  },
  // flash sales
  FLASH_SALE_NOT_FOUND: { status: 404, message: 'No such flash sale' },
  FLASH_NOT_STARTED: { status: 409, message: 'The flash sale has not started' },
  FLASH_ENDED: { status: 409, message: 'The flash sale has ended' },
  FLASH_SOLD_OUT: { status: 409, message: 'The flash sale is sold out' },
  FLASH_LIMIT_REACHED: { status: 409, message: 'You have reached the per-buyer limit of this sale' },
  RESERVATION_NOT_FOUND: { status: 404, message: 'No such reservation' },
  RESERVATION_EXPIRED: { status: 409, message: 'The reservation has expired' },
  VELOCITY_LIMITED: { status: 429, message: 'Too many purchase attempts; slow down' },
  // chat
  CHAT_CONVERSATION_NOT_FOUND: { status: 404, message: 'No such conversation' },
  CHAT_BANNED: { status: 403, message: 'You are banned from this chat' },
  CHAT_MUTED: { status: 403, message: 'You are muted in this chat for now' },
  CHAT_SLOW_MODE: { status: 429, message: 'Slow mode is on: wait before sending again' },
  CHAT_MESSAGE_NOT_FOUND: { status: 404, message: 'No such message in this conversation' },
  CHAT_MEMBER_NOT_FOUND: { status: 404, message: 'This user is not a member of the conversation' },
  CHAT_NOT_OWNER: { status: 403, message: 'Only the owner of the conversation may do this' },
  CHAT_NOT_SENDER: { status: 403, message: 'Only the sender may do this to the message' },
  CHAT_NOT_GROUP: { status: 409, message: 'Members of a direct conversation cannot change' },
  CHAT_GROUP_FULL: { status: 409, message: 'The group has reached its member limit' },
  CHAT_MESSAGE_DELETED: { status: 409, message: 'The message has been deleted' },
  CHAT_MESSAGE_NOT_EDITABLE: { status: 409, message: 'Only text messages can be edited' },
  CHAT_CLIENT_ID_REUSED: {
    status: 422,
    message: 'This clientId was already used for a different message',
  },
  CHAT_ATTACHMENT_INVALID: { status: 422, message: 'The attachment is not a valid upload of yours' },
  CHAT_SEQ_OUT_OF_RANGE: { status: 400, message: 'seq is beyond the latest message of the conversation' },
  // live streams
  STREAM_NOT_FOUND: { status: 404, message: 'No such stream' },
  STREAM_ENDED: { status: 409, message: 'The stream has ended' },
  STREAM_STATE_INVALID: { status: 409, message: 'The stream is not in a state that allows this' },
  LIVE_ABR_UNAVAILABLE: {
    status: 400,
    message: 'This server has no adaptive bitrate ladder (LIVE_ABR_LADDER is empty)',
  },
  // uploads
  UPLOAD_TOO_LARGE: { status: 413, message: 'The file is larger than the upload limit' },
  UPLOAD_TYPE_UNSUPPORTED: { status: 415, message: 'This file type cannot be uploaded' },
  UPLOAD_EMPTY: { status: 400, message: 'The upload has no content' },
  UPLOAD_NAME_INVALID: { status: 400, message: 'The x-file-name header is not a usable file name' },
  // object store
  OBJECT_KEY_INVALID: { status: 400, message: 'Invalid object key' },
  RANGE_NOT_SATISFIABLE: { status: 416, message: 'Requested range not satisfiable' },
  // calls
  CALLS_DISABLED: { status: 503, message: 'Video calls are not enabled on this server' },
  CALL_NOT_FOUND: { status: 404, message: 'No such call' },
  CALL_STATE_INVALID: { status: 409, message: 'The call is not in a state that allows this' },
  CALL_CALLEE_INVALID: { status: 400, message: 'This call type needs a callee who can take calls' },
  CALL_AGENT_ONLY: { status: 403, message: 'Only the agent the call is ringing for may do this' },
  CALL_TRANSPORT_NOT_FOUND: { status: 404, message: 'No such transport of yours in this call' },
  CALL_PRODUCER_NOT_FOUND: { status: 404, message: 'No such producer in this call' },
  CALL_CONSUMER_NOT_FOUND: { status: 404, message: 'No such consumer of yours in this call' },
  CALL_MEDIA_PARAMETERS_INVALID: { status: 400, message: 'The media parameters were refused' },
  CALL_CANNOT_CONSUME: { status: 409, message: 'Your device cannot receive this media' },
  CALL_MEDIA_LIMIT: { status: 429, message: 'Too many transports or producers in this call' },
  CALL_MEDIA_UNAVAILABLE: {
    status: 503,
    message: 'The server hosting this call did not answer; the call may have ended',
  },
  // realtime protocol (WebSocket /ws; see docs/protocol.md)
  PROTOCOL_INVALID_FRAME: {
    status: 400,
    message: 'The frame is not a JSON object of the form {t, id?, d?}',
  },
  PROTOCOL_UNKNOWN_TYPE: { status: 400, message: 'Unknown message type' },
  FRAME_TOO_LARGE: { status: 413, message: 'The frame is too large' },
  ROOM_INVALID: { status: 400, message: 'No such room type or malformed room name' },
  ROOM_FORBIDDEN: { status: 403, message: 'You may not do this in this room' },
  NOT_JOINED: { status: 409, message: 'Join the room first' },
  TOO_MANY_ROOMS: { status: 429, message: 'This connection has joined too many rooms' },
  // server side
  SERVICE_UNAVAILABLE: { status: 503, message: 'A backing service is unavailable' },
  SHUTTING_DOWN: { status: 503, message: 'The server is shutting down' },
  WEB_APPS_NOT_BUILT: { status: 503, message: 'The web apps are not built: run npm run build' },
  INTERNAL: { status: 500, message: 'Internal server error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ErrorCatalogue;

export const ERROR_CODES = Object.keys(ErrorCatalogue) as ErrorCode[];

/** An error a client caused or may see; carries a stable code and its HTTP status. */
export class AppError extends Error {
  override readonly name = 'AppError';
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    /** Machine-readable context (offending field, limits); must never hold secrets. */
    readonly details?: Record<string, unknown>,
  ) {
    // Client errors are expected outcomes (sold out, limit reached) on hot paths: capturing a
    // stack trace for each would cost more than the request itself, and nobody reads them.
    const limit = Error.stackTraceLimit;
    if (ErrorCatalogue[code].status < 500) Error.stackTraceLimit = 0;
    super(message ?? ErrorCatalogue[code].message);
    Error.stackTraceLimit = limit;
    this.statusCode = ErrorCatalogue[code].status;
  }

  toJSON(): ErrorBody {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

/** Shape of every error answer, HTTP and WebSocket alike. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
