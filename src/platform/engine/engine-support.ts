/**
 * Pieces shared by both Engine adapters: argument checks, so that a bad call
 * fails the same way on memory and on Redis instead of one adapter accepting
 * what the other rejects, plus the logger shape and the closed-engine error.
 */
import type { EngineScript, ScriptValue } from './engine.js';

/**
 * The logging the engines need. A pino `Logger` satisfies it; so does a test
 * double. Objects first, message second, as in pino.
 */
export interface EngineLogger {
  /** Recoveries worth knowing about (e.g. "redis connection restored"). Optional. */
  info?(obj: object, msg: string): void;
  /** Degradation that the engine is handling itself (lost connection, retrying). */
  warn(obj: object, msg: string): void;
  /** Failures nobody else will see, such as a pub/sub handler that threw. */
  error(obj: object, msg: string): void;
}

/** Thrown (as a rejection) by every method called after `close()`. */
export class EngineClosedError extends Error {
  constructor(kind: 'memory' | 'redis') {
    super(`engine (${kind}) is closed`);
    this.name = 'EngineClosedError';
  }
}

export function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

export function assertNonNegativeInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}

export function assertSafeInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`${name} must be a safe integer, got ${value}`);
  }
}

/** Scores may be infinite (Redis has -inf/+inf) but never NaN. */
export function assertScore(name: string, value: number): void {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new RangeError(`${name} must be a number (infinities allowed), got ${value}`);
  }
}

/** Both adapters refuse a key count that differs from the script's declaration. */
export function assertScriptKeys(script: EngineScript<ScriptValue>, keys: readonly string[]): void {
  if (keys.length !== script.keys) {
    throw new RangeError(`script ${script.name} takes ${script.keys} key(s), got ${keys.length}`);
  }
}

/** Replaces the password of a connection URL so it can appear in errors and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable url)';
  }
}

/**
 * A readable reason for a connection error. Node's happy-eyeballs connect can
 * fail with an AggregateError whose own message is empty, so fall back to its
 * code and the inner errors.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.message) return err.message;
  const code = (err as { code?: unknown }).code;
  if (err instanceof AggregateError && err.errors.length > 0) {
    const inner = err.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e))).join('; ');
    return typeof code === 'string' ? `${code} (${inner})` : inner;
  }
  return typeof code === 'string' ? code : err.name;
}
