/**
 * Puts the caller on `request.user` from an `Authorization: Bearer` token, and
 * gives routes one-line guards. A request with a bad token is refused even on
 * public routes: a client that sends a credential wants to know it is broken.
 */
import type { FastifyInstance, FastifyRequest, preValidationAsyncHookHandler } from 'fastify';
import { AppError } from '../platform/errors.js';
import { type AuthUser, assertCan, type Permission } from './permissions.js';
import type { TokenService } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller, or null for anonymous requests. */
    user: AuthUser | null;
  }
}

export function registerAuthHooks(app: FastifyInstance, tokens: TokenService): void {
  app.decorateRequest('user', null);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    if (!header) return;
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m?.[1]) throw new AppError('TOKEN_INVALID', 'Authorization must be "Bearer <token>"');
    request.user = tokens.verifySync(m[1]);
  });
}

/*
 * The guards run as preValidation hooks: a caller without the right to a route learns that
 * (401/403) before anything about the body it sent, and the route's schema stays private.
 */

/** Route guard: any signed-in user. */
export const requireUser: preValidationAsyncHookHandler = async (request: FastifyRequest) => {
  if (!request.user) throw new AppError('UNAUTHENTICATED');
};

/** Route guard: a signed-in user holding `permission`. */
export function requirePermission(permission: Permission): preValidationAsyncHookHandler {
  return async (request: FastifyRequest) => {
    assertCan(request.user, permission);
  };
}

/** The caller of a route guarded by `requireUser`/`requirePermission`. */
export function currentUser(request: FastifyRequest): AuthUser {
  if (!request.user) throw new AppError('UNAUTHENTICATED');
  return request.user;
}
