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
  // object store
  OBJECT_KEY_INVALID: { status: 400, message: 'Invalid object key' },
  RANGE_NOT_SATISFIABLE: { status: 416, message: 'Requested range not satisfiable' },
  // server side
  SERVICE_UNAVAILABLE: { status: 503, message: 'A backing service is unavailable' },
  SHUTTING_DOWN: { status: 503, message: 'The server is shutting down' },
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
    super(message ?? ErrorCatalogue[code].message);
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
