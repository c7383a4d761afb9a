/**
 * /v1/auth and /v1/users: register, log in, who am I, admin role changes and
 * admin-issued tokens (for service accounts and tests).
 */

import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ErrorRef } from '../platform/http/openapi.js';
import { currentUser, requirePermission, requireUser } from './auth-hooks.js';
import {
  LoginBody,
  PublicUserSchema,
  RegisterBody,
  SessionSchema,
  SetRolesBody,
  UserIdParams,
} from './auth-schemas.js';
import { assertOwnerOr } from './permissions.js';
import type { UsersService } from './users-service.js';

export interface AuthRoutesOptions {
  users: UsersService;
  /** Attempts per IP per minute on register/login. */
  authRateLimitPerMinute: number;
}

export async function authRoutes(fastify: FastifyInstance, opts: AuthRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { users } = opts;
  const rateLimit = { max: opts.authRateLimitPerMinute, timeWindow: 60_000 };
  fastify.addSchema(PublicUserSchema);
  fastify.addSchema(SessionSchema);

  app.post(
    '/v1/auth/register',
    {
      config: { rateLimit },
      schema: {
        tags: ['auth'],
        summary: 'Create a viewer account and sign in',
        body: RegisterBody,
        response: { 201: Type.Ref(SessionSchema), 400: ErrorRef, 409: ErrorRef, 429: ErrorRef },
      },
    },
    async (request, reply) => {
      const user = await users.register(request.body);
      return reply.status(201).send(await users.startSession(user));
    },
  );

  app.post(
    '/v1/auth/login',
    {
      config: { rateLimit },
      schema: {
        tags: ['auth'],
        summary: 'Exchange email and password for an access token',
        body: LoginBody,
        response: { 200: Type.Ref(SessionSchema), 401: ErrorRef, 429: ErrorRef },
      },
    },
    async (request) => users.login(request.body.email, request.body.password),
  );

  app.get(
    '/v1/auth/me',
    {
      preValidation: requireUser,
      schema: {
        tags: ['auth'],
        summary: 'The signed-in user',
        security: [{ bearer: [] }],
        response: { 200: Type.Ref(PublicUserSchema), 401: ErrorRef },
      },
    },
    async (request) => users.get(currentUser(request).id),
  );

  app.get(
    '/v1/users/:id',
    {
      preValidation: requireUser,
      schema: {
        tags: ['auth'],
        summary: 'A user (yourself, or anyone for admins)',
        security: [{ bearer: [] }],
        params: UserIdParams,
        response: { 200: Type.Ref(PublicUserSchema), 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => {
      assertOwnerOr(request.user, request.params.id, 'users:manage');
      return users.get(request.params.id);
    },
  );

  app.put(
    '/v1/users/:id/roles',
    {
      preValidation: requirePermission('users:manage'),
      schema: {
        tags: ['auth'],
        summary: "Replace a user's roles (admin)",
        security: [{ bearer: [] }],
        params: UserIdParams,
        body: SetRolesBody,
        response: {
          200: Type.Ref(PublicUserSchema),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
        },
      },
    },
    async (request) => users.setRoles(request.params.id, request.body.roles),
  );

  app.post(
    '/v1/users/:id/tokens',
    {
      preValidation: requirePermission('users:manage'),
      schema: {
        tags: ['auth'],
        summary: 'Issue an access token for a user (admin)',
        security: [{ bearer: [] }],
        params: UserIdParams,
        response: { 201: Type.Ref(SessionSchema), 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await users.startSession(await users.get(request.params.id))),
  );
}
