/**
 * Chat over the realtime gateway: who may join `conv:<id>` rooms (members),
 * whose presence a conversation shows, and the WebSocket message types for
 * chat actions. Every action goes through ChatService, so WebSocket and HTTP
 * callers get the same rules and error codes.
 */
import { Type } from '@sinclair/typebox';
import type { Kysely } from 'kysely';
import type { Gateway } from '../../signaling/gateway.js';
import type { Database } from '../database.js';
import { AppError } from '../platform/errors.js';
import { EditMessageBody, SendMessageBody } from './chat-schemas.js';
import type { ChatService } from './chat-service.js';

const ConversationId = Type.String({ format: 'uuid' });

/** How long a typing indicator lasts unless renewed; clients drop it after this. */
export const TYPING_TTL_MS = 5000;

export function registerChatOnGateway(gateway: Gateway, chat: ChatService, db: Kysely<Database>): void {
  gateway.rooms.register(
    'conv',
    { authorize: async (user, room) => user !== null && (await chat.isMember(user.id, room.id)) },
    {
      presence: true,
      members: async (room) =>
        (
          await db
            .selectFrom('conversation_members')
            .select('user_id')
            .where('conversation_id', '=', room.id)
            .where('left_at', 'is', null)
            .execute()
        ).map((m) => m.user_id),
    },
  );

  gateway.handle(
    'chat.send',
    Type.Composite([Type.Object({ conversationId: ConversationId }), SendMessageBody], {
      additionalProperties: false,
    }),
    async (ctx, { conversationId, ...input }) =>
      (await chat.sendMessage(ctx.requireUser(), conversationId, input)).message,
    { auth: true },
  );
  gateway.handle(
    'chat.edit',
    Type.Composite(
      [
        Type.Object({ conversationId: ConversationId, messageId: Type.String({ format: 'uuid' }) }),
        EditMessageBody,
      ],
      {
        additionalProperties: false,
      },
    ),
    (ctx, d) => chat.editMessage(ctx.requireUser(), d.conversationId, d.messageId, d.body),
    { auth: true },
  );
  gateway.handle(
    'chat.delete',
    Type.Object(
      { conversationId: ConversationId, messageId: Type.String({ format: 'uuid' }) },
      { additionalProperties: false },
    ),
    (ctx, d) => chat.deleteMessage(ctx.requireUser(), d.conversationId, d.messageId),
    { auth: true },
  );
  const Receipt = Type.Object(
    { conversationId: ConversationId, seq: Type.Integer({ minimum: 0 }) },
    { additionalProperties: false },
  );
  gateway.handle(
    'chat.read',
    Receipt,
    (ctx, d) => chat.markRead(ctx.requireUser(), d.conversationId, d.seq),
    { auth: true },
  );
  gateway.handle(
    'chat.delivered',
    Receipt,
    (ctx, d) => chat.markDelivered(ctx.requireUser(), d.conversationId, d.seq),
    {
      auth: true,
    },
  );
  // Typing is a fleeting signal: not stored, not replayed on recovery, expires on the client.
  gateway.handle(
    'chat.typing',
    Type.Object({ conversationId: ConversationId }, { additionalProperties: false }),
    async (ctx, d) => {
      const user = ctx.requireUser();
      if (!(await chat.isMember(user.id, d.conversationId)))
        throw new AppError('CHAT_CONVERSATION_NOT_FOUND');
      await gateway.publish(
        `conv:${d.conversationId}`,
        'typing',
        { conversationId: d.conversationId, userId: user.id, expiresInMs: TYPING_TTL_MS },
        { ephemeral: true },
      );
      return { expiresInMs: TYPING_TTL_MS };
    },
    { auth: true },
  );
}
