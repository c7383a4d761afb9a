/**
 * /v1/calls: start, answer, reject and hang up calls, read one and the
 * history; /v1/calls/availability for agents. Media signaling is on the
 * WebSocket (`call.*` messages, docs/protocol.md).
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { currentUser, requirePermission, requireUser } from '../auth/auth-hooks.js';
import { AppError } from '../platform/errors.js';
import { ErrorRef } from '../platform/http/openapi.js';
import type { CallAnalyticsService } from './call-analytics.js';
import {
  AvailabilitySchema,
  CallAnalyticsQuerySchema,
  CallAnalyticsSchema,
  CallHistoryQuery,
  CallParams,
  CallSchema,
  CallWithIceSchema,
  IceServerSchema,
  StartCallBody,
} from './call-schemas.js';
import type { CallsService } from './calls-service.js';

const security = [{ bearer: [] }];
const tags = ['calls'];

export async function callRoutes(
  fastify: FastifyInstance,
  opts: { calls: CallsService; analytics: CallAnalyticsService; enabled: boolean },
): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { calls, analytics } = opts;
  for (const schema of [
    CallSchema,
    IceServerSchema,
    CallWithIceSchema,
    AvailabilitySchema,
    CallAnalyticsSchema,
  ])
    fastify.addSchema(schema);
  const CallRef = Type.Ref(CallSchema);
  const WithIceRef = Type.Ref(CallWithIceSchema);
  const errors = { 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef, 409: ErrorRef, 503: ErrorRef };
  if (!opts.enabled)
    app.addHook('onRequest', async () => {
      throw new AppError('CALLS_DISABLED');
    });

  app.post(
    '/v1/calls',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Start a call',
        description:
          'support: rings the longest-idle online agent, or waits in the queue (`queuePosition`; `call.queued` events) and is missed after CALL_QUEUE_TIMEOUT_MS. sales / consultation: rings `calleeId` (an agent or streamer). Join the realtime room `call:<id>` for `call.updated` events and the `call.*` signaling.',
        security,
        body: StartCallBody,
        response: { 201: WithIceRef, ...errors },
      },
    },
    async (request, reply) => {
      const user = currentUser(request);
      const call = await calls.start(user, request.body);
      return reply.status(201).send({ call, iceServers: calls.iceServersFor(user.id) });
    },
  );

  app.get(
    '/v1/calls',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'My calls, newest first',
        description: 'Calls I made or took. Page with `before` = the last `createdAt` seen.',
        security,
        querystring: CallHistoryQuery,
        response: { 200: Type.Object({ items: Type.Array(CallRef) }), ...errors },
      },
    },
    async (request) => ({ items: await calls.history(currentUser(request), request.query) }),
  );

  app.get(
    '/v1/calls/availability',
    {
      preValidation: requirePermission('calls:answer'),
      schema: {
        tags,
        summary: 'My availability as an agent',
        security,
        response: { 200: Type.Ref(AvailabilitySchema), ...errors },
      },
    },
    async (request) => ({ status: await calls.availability(currentUser(request)) }),
  );

  app.put(
    '/v1/calls/availability',
    {
      preValidation: requirePermission('calls:answer'),
      schema: {
        tags,
        summary: 'Set my availability as an agent',
        description:
          'online: support calls may ring me (a waiting one at once); busy, away: they do not. Calls set me busy while they ring or run and online again after.',
        security,
        body: AvailabilitySchema,
        response: { 200: Type.Ref(AvailabilitySchema), ...errors },
      },
    },
    async (request) => ({ status: await calls.setAvailability(currentUser(request), request.body.status) }),
  );

  app.get(
    '/v1/calls/queue',
    {
      preValidation: requirePermission('calls:answer'),
      schema: {
        tags,
        summary: 'Support calls waiting for an agent',
        description:
          'Oldest first (the next one to ring), at most 50, each with its place in the queue. Waiting calls ring online agents by themselves; this is for the support desk to show the line.',
        security,
        response: {
          200: Type.Object({
            items: Type.Array(Type.Object({ call: CallRef, position: Type.Integer({ minimum: 1 }) })),
          }),
          ...errors,
        },
      },
    },
    async () => ({ items: await calls.waiting() }),
  );

  app.get(
    '/v1/calls/analytics',
    {
      preValidation: requirePermission('calls:answer'),
      schema: {
        tags,
        summary: 'Call analytics per agent and per type',
        description:
          'Calls created in [from, to): per agent calls, outcomes, talk time, average quality score; per type answer rate and average wait until answered. Admins see every agent (or `agentId`); an agent sees their own figures.',
        security,
        querystring: CallAnalyticsQuerySchema,
        response: { 200: Type.Ref(CallAnalyticsSchema), ...errors },
      },
    },
    async (request) => analytics.summary(currentUser(request), request.query),
  );

  app.get(
    '/v1/calls/:id',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'A call',
        security,
        params: CallParams,
        response: { 200: CallRef, ...errors },
      },
    },
    async (request) => calls.get(currentUser(request), request.params.id),
  );

  app.post(
    '/v1/calls/:id/answer',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Answer a call ringing for me',
        security,
        params: CallParams,
        response: { 200: WithIceRef, ...errors },
      },
    },
    async (request) => {
      const user = currentUser(request);
      return { call: await calls.answer(user, request.params.id), iceServers: calls.iceServersFor(user.id) };
    },
  );

  app.post(
    '/v1/calls/:id/reject',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Reject a call ringing for me',
        security,
        params: CallParams,
        response: { 200: CallRef, ...errors },
      },
    },
    async (request) => calls.reject(currentUser(request), request.params.id),
  );

  app.post(
    '/v1/calls/:id/hangup',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Hang up (or, before an answer, cancel) a call',
        security,
        params: CallParams,
        response: { 200: CallRef, ...errors },
      },
    },
    async (request) => calls.hangup(currentUser(request), request.params.id),
  );
}
