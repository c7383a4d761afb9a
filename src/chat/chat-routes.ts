/**
 * /v1/conversations: direct and group chats, messages, receipts. Every route
 * needs a signed-in user; conversations you are not in answer 404.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { currentUser, requireUser } from '../auth/auth-hooks.js';
import { AppError } from '../platform/errors.js';
import { ErrorRef } from '../platform/http/openapi.js';
import {
  AddMembersBody,
  AttachmentSchema,
  ConversationPageSchema,
  ConversationParams,
  ConversationSchema,
  CreateConversationBody,
  EditMessageBody,
  HistoryQuery,
  ListConversationsQuery,
  MemberParams,
  MessagePageSchema,
  MessageParams,
  MessageSchema,
  ReceiptBody,
  ReceiptStateSchema,
  SendMessageBody,
} from './chat-schemas.js';
import type { ChatService } from './chat-service.js';

export interface ChatRoutesOptions {
  chat: ChatService;
}

const security = [{ bearer: [] }];
const tags = ['chat'];

export async function chatRoutes(fastify: FastifyInstance, opts: ChatRoutesOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { chat } = opts;
  fastify.addSchema(AttachmentSchema);
  fastify.addSchema(MessageSchema);
  fastify.addSchema(ConversationSchema);
  fastify.addSchema(ConversationPageSchema);
  fastify.addSchema(MessagePageSchema);
  fastify.addSchema(ReceiptStateSchema);
  const ConversationRef = Type.Ref(ConversationSchema);
  const MessageRef = Type.Ref(MessageSchema);

  app.post(
    '/v1/conversations',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Start a direct conversation or create a group',
        description:
          '`direct` needs `userId` and is idempotent: the same pair always gets the same conversation (201 when created, 200 when it existed). `group` needs `title`; you become its owner and `memberIds` its members.',
        security,
        body: CreateConversationBody,
        response: {
          200: ConversationRef,
          201: ConversationRef,
          400: ErrorRef,
          401: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request, reply) => {
      const user = currentUser(request);
      const body = request.body;
      if (body.kind === 'direct') {
        if (body.title !== undefined || body.memberIds !== undefined)
          throw new AppError('VALIDATION_FAILED', 'body.title and body.memberIds are for groups', {
            location: 'body',
            field: body.title !== undefined ? 'title' : 'memberIds',
            rule: 'not',
          });
        if (body.userId === undefined)
          throw new AppError('VALIDATION_FAILED', 'body.userId is required for a direct conversation', {
            location: 'body',
            field: 'userId',
            rule: 'required',
          });
        const { conversation, created } = await chat.createDirect(user, body.userId);
        return reply.status(created ? 201 : 200).send(conversation);
      }
      if (body.userId !== undefined)
        throw new AppError('VALIDATION_FAILED', 'body.userId is for direct conversations; use memberIds', {
          location: 'body',
          field: 'userId',
          rule: 'not',
        });
      if (body.title === undefined)
        throw new AppError('VALIDATION_FAILED', 'body.title is required for a group', {
          location: 'body',
          field: 'title',
          rule: 'required',
        });
      return reply
        .status(201)
        .send(await chat.createGroup(user, { title: body.title, memberIds: body.memberIds ?? [] }));
    },
  );

  app.get(
    '/v1/conversations',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'My conversations, latest activity first, with unread counts and last messages',
        security,
        querystring: ListConversationsQuery,
        response: { 200: Type.Ref(ConversationPageSchema), 400: ErrorRef, 401: ErrorRef },
      },
    },
    async (request) => chat.listConversations(currentUser(request), request.query),
  );

  app.get(
    '/v1/conversations/:id',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'One of my conversations',
        security,
        params: ConversationParams,
        response: { 200: ConversationRef, 400: ErrorRef, 401: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => chat.getConversation(currentUser(request), request.params.id),
  );

  app.post(
    '/v1/conversations/:id/members',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Add members to a group (its owner)',
        description:
          'Users already in the group are left as they are. New members start with everything so far marked read. Publishes `member.added`.',
        security,
        params: ConversationParams,
        body: AddMembersBody,
        response: {
          200: ConversationRef,
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request) => chat.addMembers(currentUser(request), request.params.id, request.body.userIds),
  );

  app.delete(
    '/v1/conversations/:id/members/:userId',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Remove a member from a group (its owner), or leave it (your own user id)',
        description:
          'An owner who leaves hands ownership to the earliest-joined member. Direct conversations cannot be left (409 CHAT_NOT_GROUP). Publishes `member.removed`.',
        security,
        params: MemberParams,
        response: {
          204: Type.Null({ description: 'Removed' }),
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request, reply) => {
      await chat.removeMember(currentUser(request), request.params.id, request.params.userId);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/v1/conversations/:id/messages',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Send a message',
        description:
          'text: `body` (1-4000 characters). image/file: `attachment` naming one of your uploads (POST /v1/uploads; images must be images). product: an active `productId`. order: one of your own `orderId`s. A resend with the same `clientId` returns the first message with 200 and publishes nothing; the same `clientId` for different content is 422 CHAT_CLIENT_ID_REUSED. Publishes `message.created` to `conv:<id>` and `notify.message` to every other member.',
        security,
        params: ConversationParams,
        body: SendMessageBody,
        response: {
          200: MessageRef,
          201: MessageRef,
          400: ErrorRef,
          401: ErrorRef,
          404: ErrorRef,
          422: ErrorRef,
        },
      },
    },
    async (request, reply) => {
      const { message, replayed } = await chat.sendMessage(
        currentUser(request),
        request.params.id,
        request.body,
      );
      return reply.status(replayed ? 200 : 201).send(message);
    },
  );

  app.get(
    '/v1/conversations/:id/messages',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Message history, newest first',
        description:
          'Pages are ranges of `seq`: pass `nextBefore` as `before` for older messages. Messages arriving meanwhile never shift or repeat a page. Deleted messages stay in place with empty content.',
        security,
        params: ConversationParams,
        querystring: HistoryQuery,
        response: { 200: Type.Ref(MessagePageSchema), 400: ErrorRef, 401: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => chat.history(currentUser(request), request.params.id, request.query),
  );

  app.patch(
    '/v1/conversations/:id/messages/:messageId',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Edit one of your text messages',
        description: 'Publishes `message.edited`.',
        security,
        params: MessageParams,
        body: EditMessageBody,
        response: {
          200: MessageRef,
          400: ErrorRef,
          401: ErrorRef,
          403: ErrorRef,
          404: ErrorRef,
          409: ErrorRef,
        },
      },
    },
    async (request) =>
      chat.editMessage(currentUser(request), request.params.id, request.params.messageId, request.body.body),
  );

  app.delete(
    '/v1/conversations/:id/messages/:messageId',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Delete a message (its sender, or a member with chat:moderate)',
        description:
          'A soft delete: the message keeps its place in history without content. Deleting again returns the same tombstone. Publishes `message.deleted`.',
        security,
        params: MessageParams,
        response: { 200: MessageRef, 400: ErrorRef, 401: ErrorRef, 403: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => chat.deleteMessage(currentUser(request), request.params.id, request.params.messageId),
  );

  app.post(
    '/v1/conversations/:id/read',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Mark messages up to `seq` as read (also delivered)',
        description:
          'The pointer only moves forward: an older `seq` changes nothing. Publishes `receipt.read` to the conversation and `notify.read` (with your unread count) to your other devices when it moved.',
        security,
        params: ConversationParams,
        body: ReceiptBody,
        response: { 200: Type.Ref(ReceiptStateSchema), 400: ErrorRef, 401: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => chat.markRead(currentUser(request), request.params.id, request.body.seq),
  );

  app.post(
    '/v1/conversations/:id/delivered',
    {
      preValidation: requireUser,
      schema: {
        tags,
        summary: 'Mark messages up to `seq` as delivered',
        description:
          'The pointer only moves forward. Publishes `receipt.delivered` to the conversation when it moved.',
        security,
        params: ConversationParams,
        body: ReceiptBody,
        response: { 200: Type.Ref(ReceiptStateSchema), 400: ErrorRef, 401: ErrorRef, 404: ErrorRef },
      },
    },
    async (request) => chat.markDelivered(currentUser(request), request.params.id, request.body.seq),
  );
}
