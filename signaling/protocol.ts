/**
 * The wire format of `/ws` (docs/protocol.md is the reader's version).
 *
 * Every frame is one JSON object: `{ t: type, id?: requestId, d?: payload }`.
 * Inbound types each have a TypeBox schema compiled by Ajv (strict: no
 * coercion, no unknown fields); outbound frames are built here as strings so
 * that hot paths (event fan-out) serialize once and never through a generic
 * JSON.stringify of an envelope.
 */
import { OptionalKind, type Static, type TSchema, Type } from '@sinclair/typebox';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { type ErrorBody, ErrorCatalogue, type ErrorCode } from '../src/platform/errors.js';
import { createStrictAjv } from '../src/platform/http/validation.js';

/** Close codes the gateway uses; the numbers are part of the protocol. */
export const CloseCode = {
  /** The client or the server ended the session normally. */
  NORMAL: 1000,
  /** The server is shutting down; reconnect (to another instance). */
  GOING_AWAY: 1001,
  /** A frame exceeded WS_MAX_PAYLOAD_BYTES (sent by the ws library itself). */
  MESSAGE_TOO_BIG: 1009,
  /** The token given at connect time is invalid. */
  AUTH_FAILED: 4001,
  /** No token, no `auth` and no `join` within WS_AUTH_TIMEOUT_MS. */
  AUTH_TIMEOUT: 4002,
  /** The token expired (at connect, or later without a refreshing `auth`). */
  TOKEN_EXPIRED: 4003,
  /** Too many frames: the client kept sending after being rate limited. */
  FLOOD: 4008,
  /** The client does not read fast enough: its outbound buffer passed WS_MAX_BUFFERED_BYTES. */
  SLOW_CONSUMER: 4009,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Request id: echoed in the reply so the client can match it. */
export const RequestId = Type.Union([
  Type.String({ minLength: 1, maxLength: 64 }),
  Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
]);
export type RequestId = Static<typeof RequestId>;

/** `<type>:<id>`; the registry decides which types exist. */
export const RoomNameSchema = Type.String({
  minLength: 3,
  maxLength: 160,
  pattern: '^[a-z][a-z0-9-]{0,30}:[A-Za-z0-9._-]{1,128}$',
});

const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** Payload schemas of the built-in inbound types. */
export const BuiltinSchemas = {
  auth: Type.Object(
    { token: Type.String({ minLength: 1, maxLength: 4096 }) },
    { additionalProperties: false },
  ),
  join: Type.Object({ room: RoomNameSchema, lastSeq: Type.Optional(Seq) }, { additionalProperties: false }),
  leave: Type.Object({ room: RoomNameSchema }, { additionalProperties: false }),
  ping: Type.Optional(Type.Object({}, { additionalProperties: false })),
  presence: Type.Union([
    Type.Object({ room: RoomNameSchema }, { additionalProperties: false }),
    Type.Object(
      {
        users: Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
          minItems: 1,
          maxItems: 100,
          uniqueItems: true,
        }),
      },
      { additionalProperties: false },
    ),
  ]),
} as const;

export type AuthPayload = Static<typeof BuiltinSchemas.auth>;
export type JoinPayload = Static<typeof BuiltinSchemas.join>;
export type LeavePayload = Static<typeof BuiltinSchemas.leave>;
export type PresencePayload = Static<typeof BuiltinSchemas.presence>;

const ajv = createStrictAjv();

/**
 * Compiles the validator of a whole frame of one type: the envelope with
 * `t` fixed, an optional request id and the payload schema. A payload schema
 * that accepts `undefined` (Type.Optional) makes `d` optional.
 */
export function compileFrameValidator(type: string, payload: TSchema): ValidateFunction {
  const optional = (payload as { [OptionalKind]?: unknown })[OptionalKind] === 'Optional';
  const envelope = Type.Object(
    {
      t: Type.Literal(type),
      id: Type.Optional(RequestId),
      d: optional ? Type.Optional(payload) : payload,
    },
    { additionalProperties: false },
  );
  return ajv.compile(envelope);
}

/** A short, stable description of the first schema violation, e.g. `/d/room must match pattern ...`. */
export function describeValidationError(errors: ErrorObject[] | null | undefined): {
  message: string;
  details: Record<string, unknown>;
} {
  const first = errors?.[0];
  if (!first) return { message: ErrorCatalogue.VALIDATION_FAILED.message, details: {} };
  const path = first.instancePath || '/';
  const extra =
    first.keyword === 'additionalProperties'
      ? ` (${String((first.params as { additionalProperty?: unknown }).additionalProperty)})`
      : '';
  return {
    message: `${path} ${first.message ?? 'is invalid'}${extra}`,
    details: { path, keyword: first.keyword },
  };
}

// ---- outbound frames --------------------------------------------------------------

/** `{"t":"ok","id":...,"d":...}` */
export function okFrame(id: RequestId | undefined, data: unknown): string {
  return JSON.stringify(
    data === undefined ? { t: 'ok', ...(id === undefined ? {} : { id }) } : { t: 'ok', id, d: data },
  );
}

/** `{"t":"error","id"?:...,"code":...,"message":...,"details"?:...}` */
export function errorFrame(id: RequestId | undefined, error: ErrorBody): string {
  return JSON.stringify({
    t: 'error',
    ...(id === undefined ? {} : { id }),
    code: error.code,
    message: error.message,
    ...(error.details ? { details: error.details } : {}),
  });
}

export function errorBody(code: ErrorCode, message?: string, details?: Record<string, unknown>): ErrorBody {
  return { code, message: message ?? ErrorCatalogue[code].message, ...(details ? { details } : {}) };
}

/**
 * The body of one publication as stored in the room log and carried on the
 * bus: `{"e":event,"d":data}`. Serialized once per publication.
 */
export function eventBody(event: string, data: unknown): string {
  return data === undefined ? JSON.stringify({ e: event }) : JSON.stringify({ e: event, d: data });
}

/**
 * An event frame from a room's JSON-encoded name, a sequence number (0 for
 * ephemeral events, which carry none) and an event body. String concatenation
 * on already-serialized parts: `{"t":"event","room":"stream:1","seq":5,"e":...,"d":...}`.
 */
export function eventFrame(roomJson: string, seq: number, body: string): string {
  return seq > 0
    ? `{"t":"event","room":${roomJson},"seq":${seq},${body.slice(1)}`
    : `{"t":"event","room":${roomJson},${body.slice(1)}`;
}

/** Tells a client that its position in a room moved without events: reload history, continue from `seq`. */
export function resetFrame(room: string, seq: number, reason: 'gap_too_old' | 'restarted'): string {
  return JSON.stringify({ t: 'reset', room, d: { lastSeq: seq, reason } });
}
