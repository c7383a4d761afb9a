import type { ColumnType, Generated } from 'kysely';

export const CONVERSATION_KINDS = ['direct', 'group'] as const;
export type ConversationKind = (typeof CONVERSATION_KINDS)[number];

export const MEMBER_ROLES = ['owner', 'member'] as const;
export type MemberRole = (typeof MEMBER_ROLES)[number];

export const MESSAGE_TYPES = ['text', 'image', 'file', 'product', 'order', 'system'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** What an image/file message points at: an object uploaded through POST /v1/uploads. */
export interface Attachment {
  url: string;
  /** Object-store key (`uploads/<ownerId>/<uuid>/<name>`). */
  key: string;
  /** Display name (the uploader's file name unless the sender gave another). */
  name: string;
  size: number;
  contentType: string;
}

export interface ConversationsTable {
  id: string;
  kind: ConversationKind;
  /** Groups only; null for direct conversations. */
  title: string | null;
  created_by: string;
  /** Direct conversations only: the two user ids sorted and joined by ':'; unique, so a pair has one conversation. */
  direct_key: string | null;
  /** Highest message seq assigned so far; bumped under the row lock in the transaction that inserts the message. */
  last_seq: ColumnType<number, number | undefined, number>;
  /** Creation, then the time of the latest message: the order of "my conversations". */
  last_activity_at: ColumnType<Date, Date | undefined, Date>;
  created_at: Generated<Date>;
}

export interface ConversationMembersTable {
  conversation_id: string;
  user_id: string;
  role: MemberRole;
  joined_at: ColumnType<Date, Date | undefined, Date>;
  /** Set when the member left or was removed; a re-add clears it. */
  left_at: Date | null;
  /** Receipt pointers: only ever move forward. Unread = others' live messages with seq > last_read_seq. */
  last_read_seq: ColumnType<number, number | undefined, number>;
  last_delivered_seq: ColumnType<number, number | undefined, number>;
}

export interface MessagesTable {
  id: string;
  conversation_id: string;
  /** 1, 2, 3, ... per conversation without gaps; unique with the conversation. */
  seq: number;
  /** Null for system messages (written by the server, never through the API). */
  sender_id: string | null;
  type: MessageType;
  /** Text, or the caption of other types ('' when none). Kept after a soft delete; never shown then. */
  body: string;
  attachment: ColumnType<Attachment | null, string | null, string | null>;
  product_id: string | null;
  order_id: string | null;
  /** Sender-chosen id; unique per sender, so resending the same client message is idempotent. */
  client_id: string | null;
  created_at: Generated<Date>;
  edited_at: Date | null;
  deleted_at: Date | null;
  deleted_by: string | null;
}

/** Files uploaded through POST /v1/uploads; an attachment must name one of its sender's. */
export interface UploadsTable {
  id: string;
  owner_id: string;
  key: string;
  url: string;
  name: string;
  size: number;
  content_type: string;
  created_at: Generated<Date>;
}

export interface ChatTables {
  conversations: ConversationsTable;
  conversation_members: ConversationMembersTable;
  messages: MessagesTable;
  uploads: UploadsTable;
}
