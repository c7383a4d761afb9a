/**
 * 1:1 and group conversations: history over HTTP, everything live over the
 * realtime client (send, edit, delete, receipts, typing), typed events, and
 * resend-safe sending (a `clientId` per message, so a retry after a dropped
 * connection never posts twice).
 */
import type { HttpClient } from './http.js';
import type { RealtimeClient, RoomEvent } from './realtime-client.js';

export type MessageType = 'text' | 'image' | 'file' | 'product' | 'order';

export interface ChatMessage {
  id: string;
  conversationId: string;
  /** The conversation's own counter: order messages by it. */
  seq: number;
  senderId: string | null;
  type: MessageType | 'system';
  body: string | null;
  createdAt: string;
  editedAt: string | null;
  deletedAt: string | null;
}

export interface Conversation {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  unread: number;
  lastMessage: ChatMessage | null;
}

export interface SendInput {
  type?: MessageType;
  body?: string;
  /** Upload id from `POST /v1/uploads` for image and file messages. */
  attachment?: string;
  productId?: string;
  orderId?: string;
  /** Makes a resend idempotent; generated when absent. */
  clientId?: string;
}

/** Typed events of a conversation room `conv:<id>`. */
export interface ConversationEvents {
  'message.created': ChatMessage;
  'message.edited': ChatMessage;
  'message.deleted': ChatMessage;
  'receipt.read': { userId: string; seq: number };
  'receipt.delivered': { userId: string; seq: number };
  typing: { userId: string; expiresInMs: number };
}

export class ChatClient {
  constructor(
    private readonly http: HttpClient,
    private readonly realtime: RealtimeClient,
  ) {}

  /** My conversations, latest activity first, with unread counts. */
  conversations(query: { cursor?: string; limit?: number } = {}) {
    return this.http.request<{ items: Conversation[]; nextCursor: string | null }>(
      'GET',
      '/v1/conversations',
      undefined,
      {
        query,
      },
    );
  }

  /** The 1:1 conversation with `userId` (the same one every time). */
  direct(userId: string): Promise<Conversation> {
    return this.http.request('POST', '/v1/conversations', { kind: 'direct', userId });
  }

  group(title: string, memberIds: string[]): Promise<Conversation> {
    return this.http.request('POST', '/v1/conversations', { kind: 'group', title, memberIds });
  }

  /** History, newest first; pass `nextBefore` back as `before` for older pages. */
  history(conversationId: string, query: { before?: number; limit?: number } = {}) {
    return this.http.request<{ items: ChatMessage[]; nextBefore: number | null }>(
      'GET',
      `/v1/conversations/${encodeURIComponent(conversationId)}/messages`,
      undefined,
      { query },
    );
  }

  /** Joins the conversation's room (again after every reconnect, missing nothing). */
  open(conversationId: string): Promise<unknown> {
    return this.realtime.join(`conv:${conversationId}`);
  }

  on<E extends keyof ConversationEvents>(
    conversationId: string,
    event: E,
    handler: (data: ConversationEvents[E], raw: RoomEvent) => void,
  ): () => void {
    const room = `conv:${conversationId}`;
    return this.realtime.on(event, (raw) => {
      if (raw.room === room) handler(raw.data as ConversationEvents[E], raw);
    });
  }

  send(conversationId: string, input: SendInput): Promise<ChatMessage> {
    return this.realtime.request('chat.send', {
      conversationId,
      type: input.type ?? 'text',
      ...input,
      clientId: input.clientId ?? crypto.randomUUID(),
    });
  }

  edit(conversationId: string, messageId: string, body: string): Promise<ChatMessage> {
    return this.realtime.request('chat.edit', { conversationId, messageId, body });
  }

  delete(conversationId: string, messageId: string): Promise<ChatMessage> {
    return this.realtime.request('chat.delete', { conversationId, messageId });
  }

  /** Marks everything up to `seq` read; answers the new unread count. */
  read(
    conversationId: string,
    seq: number,
  ): Promise<{ lastReadSeq: number; lastDeliveredSeq: number; unread: number }> {
    return this.realtime.request('chat.read', { conversationId, seq });
  }

  delivered(conversationId: string, seq: number) {
    return this.realtime.request<{ lastReadSeq: number; lastDeliveredSeq: number; unread: number }>(
      'chat.delivered',
      {
        conversationId,
        seq,
      },
    );
  }

  /** Tells the others you are typing (send again before `expiresInMs` runs out). */
  typing(conversationId: string): Promise<{ expiresInMs: number }> {
    return this.realtime.request('chat.typing', { conversationId });
  }
}
