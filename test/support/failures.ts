/** Shared ways for tests to say what a call failed with. */
import { randomUUID } from 'node:crypto';
import type { AuthUser, Role } from '../../src/auth/permissions.js';
import { AppError } from '../../src/platform/errors.js';
import { WsRequestError } from './ws-client.js';

/** A caller with the given roles, for service-level tests. */
export const actor = (...roles: Role[]): AuthUser => ({
  id: randomUUID(),
  roles,
  displayName: roles.join('+'),
});

/** Resolves to the AppError code a promise rejects with (and its details); fails if it resolves. */
export async function failure(
  p: Promise<unknown>,
): Promise<{ code: string; details: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppError) return { code: err.code, details: err.details ?? {} };
    throw err;
  }
  throw new Error('expected a rejection');
}

/** The protocol error code of a WebSocket request, or 'ok' when it succeeded. */
export async function wsCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof WsRequestError ? err.code : String(err);
  }
}
