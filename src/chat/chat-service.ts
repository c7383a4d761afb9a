/**
 * Chat: direct and group conversations, messages with a per-conversation
 * sequence, edits and soft deletes, delivery and read receipts.
 *
 * Ordering: a message's `seq` comes from `update conversations set last_seq =
 * last_seq + 1 ... returning last_seq` in the transaction that inserts it, so
 * the conversation row lock serializes senders of one conversation: seqs are
 * 1, 2, 3, ... without gaps or duplicates, and they commit in seq order (a
 * reader that sees seq N sees every seq below it). History pages are keyset
 * ranges on seq, so they stay stable however many messages arrive meanwhile.
 *
 * Receipts are two pointers per member (`last_delivered_seq`,
 * `last_read_seq`) that only move forward; unread counts are derived from
 * them, so every device of a user sees the same number.
 *
 * Every change publishes an event through a `RoomPublisher` after its
 * transaction commits: `conv:<id>` gets conversation events, `user:<id>`
 * personal notifications. A failed publish does not undo the change (it is
 * reported to `onPublishError`); clients catch up from history.
 *
 * Visibility: only active members see a conversation; to anyone else it does
 * not exist (CHAT_CONVERSATION_NOT_FOUND), so ids cannot be probed.
 */
import { randomUUID } from 'node:crypto';
import { type Kysely, type Selectable, sql } from 'kysely';
import { type AuthUser, can } from '../auth/permissions.js';
import { decodeCursor, encodeCursor, isUuid } from '../commerce/catalog/paging.js';
import type { Database } from '../database.js';
import { AppError } from '../platform/errors.js';
import type {
  Attachment,
  ConversationKind,
  ConversationMembersTable,
  ConversationsTable,
  MemberRole,
  MessagesTable,
  MessageType,
} from './chat-tables.js';
import { conversationRoom, type RoomPublisher, userRoom } from './room-publisher.js';

/** Longest text body or caption, in characters (Unicode code points). */
export const MAX_BODY_LENGTH = 4000;
export const MAX_TITLE_LENGTH = 100;
export const MAX_ATTACHMENT_NAME_LENGTH = 255;
export const CLIENT_ID_PATTERN = '^[A-Za-z0-9._:-]{1,64}$';
export const DEFAULT_MAX_GROUP_MEMBERS = 256;
/** Most user ids one add-members call may name. */
export const MAX_MEMBERS_PER_CALL = 100;
export const HISTORY_DEFAULT_LIMIT = 50;
export const PAGE_MAX_LIMIT = 100;
export const CONVERSATIONS_DEFAULT_LIMIT = 20;

/** Types a user may send; `system` messages come from the server only. */
export const SENDABLE_MESSAGE_TYPES = ['text', 'image', 'file', 'product', 'order'] as const;
export type SendableMessageType = (typeof SENDABLE_MESSAGE_TYPES)[number];

/** Events published to `conv:<id>` and `user:<id>`. */
export const CHAT_EVENTS = {
  messageCreated: 'message.created',
  messageEdited: 'message.edited',
  messageDeleted: 'message.deleted',
  receiptRead: 'receipt.read',
  receiptDelivered: 'receipt.delivered',
  memberAdded: 'member.added',
  memberRemoved: 'member.removed',
  /** user room: a new message in one of your conversations, with your unread count there. */
  notifyMessage: 'notify.message',
  /** user room: your read pointer moved (on any of your devices), with the new unread count. */
  notifyRead: 'notify.read',
  /** user room: you were added to or removed from a conversation (join or leave its room). */
  notifyConversation: 'notify.conversation',
} as const;

/** What the sender supplies for an image/file message: the result of POST /v1/uploads. */
export interface AttachmentInput {
  url: string;
  /** If given, must match the upload. */
  key?: string;
  /** Display name; default: the uploaded file's name. */
  name?: string;
  /** If given, must match the upload. */
  size?: number;
  /** If given, must match the upload. */
  contentType?: string;
}

export interface SendMessageInput {
  type: SendableMessageType;
  /** Required for text (1..4000 characters, not only whitespace); an optional caption otherwise. */
  body?: string;
  /** image and file: required. */
  attachment?: AttachmentInput;
  /** product: an active product. */
  productId?: string;
  /** order: one of the sender's orders. */
  orderId?: string;
  /** Sender-chosen id (`CLIENT_ID_PATTERN`); resending the same one returns the first message. */
  clientId?: string;
}

export interface MessageView {
  id: string;
  conversationId: string;
  seq: number;
  /** null for system messages. */
  senderId: string | null;
  type: MessageType;
  /** '' once deleted. */
  body: string;
  attachment: Attachment | null;
  productId: string | null;
  orderId: string | null;
  clientId: string | null;
  createdAt: string;
  editedAt: string | null;
  deletedAt: string | null;
  deletedBy: string | null;
  /** Current members other than the sender whose read pointer has reached this message. */
  readBy: number;
  /** Same for delivery (reading implies delivery). */
  deliveredTo: number;
  /** Every current member other than the sender has read it (in a direct chat: the other person has). */
  readByAll: boolean;
}

export interface MemberView {
  userId: string;
  displayName: string;
  role: MemberRole;
  joinedAt: string;
  lastReadSeq: number;
  lastDeliveredSeq: number;
}

export interface ConversationView {
  id: string;
  kind: ConversationKind;
  title: string | null;
  createdBy: string;
  createdAt: string;
  /** Creation or latest message, whichever is later. */
  lastActivityAt: string;
  /** seq of the latest message (0 when none). */
  lastSeq: number;
  /** Current members, earliest joined first (the owner first among those who joined together). */
  members: MemberView[];
  /** The caller's unread messages: others' (and system) messages after the caller's read pointer, not deleted. */
  unread: number;
  lastMessage: MessageView | null;
}

export interface ConversationPage {
  items: ConversationView[];
  nextCursor: string | null;
}

export interface MessagePage {
  /** Newest first. */
  items: MessageView[];
  /** Pass as `before` for the next (older) page; null when there is none. */
  nextBefore: number | null;
  /** seq of the conversation's latest message when the page was read. */
  lastSeq: number;
}

export interface ReceiptState {
  conversationId: string;
  userId: string;
  lastReadSeq: number;
  lastDeliveredSeq: number;
  unread: number;
}

export interface ChatServiceOptions {
  /** Where events go after each change commits. */
  publisher: RoomPublisher;
  /** Largest group, creator included. Default 256. */
  maxGroupMembers?: number;
  /** Told about a publish that failed after its change committed (the change stands). */
  onPublishError?: (err: unknown, room: string, event: string) => void;
}

type ConversationRow = Selectable<ConversationsTable>;
type MemberRow = Selectable<ConversationMembersTable>;
type MessageRow = Selectable<MessagesTable>;
type Executor = Kysely<Database>;
type Publication = [room: string, event: string, data: unknown];

interface Pointer {
  userId: string;
  lastReadSeq: number;
  lastDeliveredSeq: number;
}

/** Thrown inside a send transaction to roll back the seq bump when the clientId already exists. */
class ReplaySignal extends Error {}

const CLIENT_ID_RE = new RegExp(CLIENT_ID_PATTERN);

function invalid(field: string, message: string, rule: string): AppError {
  return new AppError('VALIDATION_FAILED', `${field} ${message}`, { location: 'body', field, rule });
}

/** Length in Unicode code points, as JSON Schema's maxLength counts it. */
function charLength(value: string): number {
  let n = 0;
  for (const _ of value) n++;
  return n;
}

/**
 * A text field: a string of at most `max` characters, and (when required) not
 * empty or only whitespace. (U+0000 is refused before any handler runs: see
 * findNulCharacter.)
 */
function checkText(value: unknown, field: string, max: number, required: boolean): string {
  if (value === undefined || value === null) {
    if (required) throw invalid(field, 'is required', 'required');
    return '';
  }
  if (typeof value !== 'string') throw invalid(field, 'must be a string', 'type');
  if (charLength(value) > max) throw invalid(field, `must be at most ${max} characters`, 'maxLength');
  if (required && value.trim() === '') throw invalid(field, 'must not be empty', 'minLength');
  return value;
}

function checkUuid(value: unknown, field: string): string {
  if (typeof value !== 'string' || !isUuid(value)) throw invalid(field, 'must be a UUID', 'format');
  return value.toLowerCase();
}

function checkUserIds(value: unknown, field: string, min: number, max: number): string[] {
  if (!Array.isArray(value)) throw invalid(field, 'must be an array of user ids', 'type');
  if (value.length < min) throw invalid(field, `must have at least ${min} item(s)`, 'minItems');
  if (value.length > max) throw invalid(field, `must have at most ${max} items`, 'maxItems');
  return [...new Set(value.map((v, i) => checkUuid(v, `${field}.${i}`)))];
}

function checkSeq(seq: unknown): number {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)
    throw invalid('seq', 'must be an integer >= 0', 'minimum');
  return seq;
}

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null;
}

function receipts(seq: number, senderId: string | null, pointers: readonly Pointer[]) {
  let others = 0;
  let readBy = 0;
  let deliveredTo = 0;
  for (const p of pointers) {
    if (p.userId === senderId) continue;
    others++;
    if (p.lastReadSeq >= seq) readBy++;
    if (Math.max(p.lastDeliveredSeq, p.lastReadSeq) >= seq) deliveredTo++;
  }
  return { readBy, deliveredTo, readByAll: others > 0 && readBy === others };
}

export function toMessageView(row: MessageRow, pointers: readonly Pointer[] = []): MessageView {
  const deleted = row.deleted_at !== null;
  return {
    id: row.id,
    conversationId: row.conversation_id,
    seq: row.seq,
    senderId: row.sender_id,
    type: row.type,
    body: deleted ? '' : row.body,
    attachment: deleted ? null : row.attachment,
    productId: deleted ? null : row.product_id,
    orderId: deleted ? null : row.order_id,
    clientId: row.client_id,
    createdAt: row.created_at.toISOString(),
    editedAt: iso(row.edited_at),
    deletedAt: iso(row.deleted_at),
    deletedBy: row.deleted_by,
    ...receipts(row.seq, row.sender_id, pointers),
  };
}

/** A member's unread count: others' and system messages after `readSeq` that are not deleted. */
function unreadCount(db: Executor, conversationId: string, userId: string, readSeq: number) {
  return db
    .selectFrom('messages')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('conversation_id', '=', conversationId)
    .where('seq', '>', readSeq)
    .where('deleted_at', 'is', null)
    .where((eb) => eb.or([eb('sender_id', 'is', null), eb('sender_id', '!=', userId)]))
    .executeTakeFirstOrThrow()
    .then((r) => Number(r.n));
}

/** Exact text of `last_activity_at` for cursors (JS Dates would drop the microseconds). */
const activityCursorTs = sql<string>`to_char(c.last_activity_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

export class ChatService {
  private readonly publisher: RoomPublisher;
  private readonly maxGroupMembers: number;
  private readonly onPublishError: (err: unknown, room: string, event: string) => void;

  constructor(
    private readonly db: Kysely<Database>,
    options: ChatServiceOptions,
  ) {
    this.publisher = options.publisher;
    this.maxGroupMembers = options.maxGroupMembers ?? DEFAULT_MAX_GROUP_MEMBERS;
    this.onPublishError = options.onPublishError ?? (() => {});
  }

  // ---------------------------------------------------------------- conversations

  /**
   * The 1:1 conversation between the caller and `otherUserId`, created on
   * first use. Idempotent, also under concurrent calls from either side:
   * `direct_key` (the sorted pair) is unique.
   */
  async createDirect(
    user: AuthUser,
    otherUserId: string,
  ): Promise<{ conversation: ConversationView; created: boolean }> {
    const other = checkUuid(otherUserId, 'userId');
    if (other === user.id) throw invalid('userId', 'must be someone else', 'not');
    const directKey = [user.id, other].sort().join(':');
    const existing = await this.findDirect(directKey);
    if (existing) return { conversation: await this.view(user.id, existing), created: false };
    await this.assertUsersExist([other]);

    const id = randomUUID();
    const created = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .insertInto('conversations')
        .values({ id, kind: 'direct', title: null, created_by: user.id, direct_key: directKey })
        .onConflict((oc) => oc.column('direct_key').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!row) return false;
      await trx
        .insertInto('conversation_members')
        .values([user.id, other].map((userId) => ({ conversation_id: id, user_id: userId, role: 'member' })))
        .execute();
      return true;
    });
    if (!created) {
      const winner = await this.findDirect(directKey);
      if (!winner) throw new AppError('INTERNAL', 'direct conversation vanished');
      return { conversation: await this.view(user.id, winner), created: false };
    }
    await this.publish([
      [userRoom(other), CHAT_EVENTS.notifyConversation, { conversationId: id, reason: 'added', by: user.id }],
    ]);
    return { conversation: await this.view(user.id, id), created: true };
  }

  /** A group owned by the caller, with `memberIds` (duplicates and the caller ignored) as members. */
  async createGroup(
    user: AuthUser,
    input: { title: string; memberIds?: string[] },
  ): Promise<ConversationView> {
    const title = checkText(input.title, 'title', MAX_TITLE_LENGTH, true).trim();
    const others = checkUserIds(input.memberIds ?? [], 'memberIds', 0, this.maxGroupMembers).filter(
      (id) => id !== user.id,
    );
    if (others.length + 1 > this.maxGroupMembers)
      throw new AppError('CHAT_GROUP_FULL', undefined, { maxMembers: this.maxGroupMembers });
    await this.assertUsersExist(others);
    const id = randomUUID();
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('conversations')
        .values({ id, kind: 'group', title, created_by: user.id, direct_key: null })
        .execute();
      await trx
        .insertInto('conversation_members')
        .values([
          { conversation_id: id, user_id: user.id, role: 'owner' as const },
          ...others.map((userId) => ({ conversation_id: id, user_id: userId, role: 'member' as const })),
        ])
        .execute();
    });
    await this.publish(
      others.map((userId) => [
        userRoom(userId),
        CHAT_EVENTS.notifyConversation,
        { conversationId: id, reason: 'added', by: user.id },
      ]),
    );
    return this.view(user.id, id);
  }

  /**
   * Adds users to a group (owner only). Already active members are left as
   * they are; a former member is re-admitted. New members start with their
   * pointers at the latest message, so earlier history is not "unread".
   */
  async addMembers(user: AuthUser, conversationId: string, userIds: string[]): Promise<ConversationView> {
    const ids = checkUserIds(userIds, 'userIds', 1, MAX_MEMBERS_PER_CALL);
    const { conversation, member } = await this.activeMember(this.db, user.id, conversationId);
    if (conversation.kind !== 'group') throw new AppError('CHAT_NOT_GROUP');
    if (member.role !== 'owner') throw new AppError('CHAT_NOT_OWNER');
    await this.assertUsersExist(ids);

    const added = await this.db.transaction().execute(async (trx) => {
      // The row lock serializes membership changes, so the size limit holds under concurrency.
      const locked = await trx
        .selectFrom('conversations')
        .select('last_seq')
        .where('id', '=', conversation.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const active = await trx
        .selectFrom('conversation_members')
        .select('user_id')
        .where('conversation_id', '=', conversation.id)
        .where('left_at', 'is', null)
        .execute();
      const activeIds = new Set(active.map((m) => m.user_id));
      const toAdd = ids.filter((id) => !activeIds.has(id));
      if (toAdd.length === 0) return [];
      if (activeIds.size + toAdd.length > this.maxGroupMembers)
        throw new AppError('CHAT_GROUP_FULL', undefined, { maxMembers: this.maxGroupMembers });
      await trx
        .insertInto('conversation_members')
        .values(
          toAdd.map((userId) => ({
            conversation_id: conversation.id,
            user_id: userId,
            role: 'member' as const,
            last_read_seq: locked.last_seq,
            last_delivered_seq: locked.last_seq,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['conversation_id', 'user_id']).doUpdateSet({
            role: 'member',
            left_at: null,
            joined_at: sql<Date>`now()`,
            last_read_seq: sql<number>`greatest(conversation_members.last_read_seq, excluded.last_read_seq)`,
            last_delivered_seq: sql<number>`greatest(conversation_members.last_delivered_seq, excluded.last_delivered_seq)`,
          }),
        )
        .execute();
      return toAdd;
    });
    if (added.length > 0)
      await this.publish([
        [
          conversationRoom(conversation.id),
          CHAT_EVENTS.memberAdded,
          { conversationId: conversation.id, userIds: added, addedBy: user.id },
        ],
        ...added.map(
          (userId): Publication => [
            userRoom(userId),
            CHAT_EVENTS.notifyConversation,
            { conversationId: conversation.id, reason: 'added', by: user.id },
          ],
        ),
      ]);
    return this.view(user.id, conversation.id);
  }

  /** Removes a member from a group (owner only); removing yourself is `leave`. */
  async removeMember(user: AuthUser, conversationId: string, userId: string): Promise<void> {
    const target = typeof userId === 'string' && isUuid(userId) ? userId.toLowerCase() : undefined;
    if (target === user.id) return this.leave(user, conversationId);
    const { conversation, member } = await this.activeMember(this.db, user.id, conversationId);
    if (conversation.kind !== 'group') throw new AppError('CHAT_NOT_GROUP');
    if (member.role !== 'owner') throw new AppError('CHAT_NOT_OWNER');
    if (!target) throw new AppError('CHAT_MEMBER_NOT_FOUND', undefined, { userId });
    const removed = await this.db
      .updateTable('conversation_members')
      .set({ left_at: new Date() })
      .where('conversation_id', '=', conversation.id)
      .where('user_id', '=', target)
      .where('left_at', 'is', null)
      .executeTakeFirst();
    if (Number(removed.numUpdatedRows) === 0)
      throw new AppError('CHAT_MEMBER_NOT_FOUND', undefined, { userId: target });
    await this.publish([
      [
        conversationRoom(conversation.id),
        CHAT_EVENTS.memberRemoved,
        { conversationId: conversation.id, userId: target, removedBy: user.id, newOwnerId: null },
      ],
      [
        userRoom(target),
        CHAT_EVENTS.notifyConversation,
        { conversationId: conversation.id, reason: 'removed', by: user.id },
      ],
    ]);
  }

  /**
   * Leaves a group. An owner who leaves hands ownership to the member who
   * joined earliest. Direct conversations cannot be left.
   */
  async leave(user: AuthUser, conversationId: string): Promise<void> {
    const { conversation } = await this.activeMember(this.db, user.id, conversationId);
    if (conversation.kind !== 'group') throw new AppError('CHAT_NOT_GROUP');
    const result = await this.db.transaction().execute(async (trx) => {
      await trx
        .selectFrom('conversations')
        .select('id')
        .where('id', '=', conversation.id)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const me = await trx
        .updateTable('conversation_members')
        .set({ left_at: new Date(), role: 'member' })
        .where('conversation_id', '=', conversation.id)
        .where('user_id', '=', user.id)
        .where('left_at', 'is', null)
        .returning('role')
        .executeTakeFirst();
      if (!me) return undefined; // a concurrent leave won
      const owner = await trx
        .selectFrom('conversation_members')
        .select('user_id')
        .where('conversation_id', '=', conversation.id)
        .where('left_at', 'is', null)
        .where('role', '=', 'owner')
        .executeTakeFirst();
      if (owner) return { newOwnerId: null };
      const heir = await trx
        .selectFrom('conversation_members')
        .select('user_id')
        .where('conversation_id', '=', conversation.id)
        .where('left_at', 'is', null)
        .orderBy('joined_at')
        .orderBy('user_id')
        .executeTakeFirst();
      if (!heir) return { newOwnerId: null };
      await trx
        .updateTable('conversation_members')
        .set({ role: 'owner' })
        .where('conversation_id', '=', conversation.id)
        .where('user_id', '=', heir.user_id)
        .execute();
      return { newOwnerId: heir.user_id };
    });
    if (!result) return;
    await this.publish([
      [
        conversationRoom(conversation.id),
        CHAT_EVENTS.memberRemoved,
        {
          conversationId: conversation.id,
          userId: user.id,
          removedBy: user.id,
          newOwnerId: result.newOwnerId,
        },
      ],
    ]);
  }

  /** The caller's conversations, most recent activity first, with unread counts and last messages. */
  async listConversations(
    user: AuthUser,
    query: { limit?: number; cursor?: string } = {},
  ): Promise<ConversationPage> {
    const limit = query.limit ?? CONVERSATIONS_DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_MAX_LIMIT)
      throw new AppError('VALIDATION_FAILED', `limit must be an integer from 1 to ${PAGE_MAX_LIMIT}`, {
        field: 'limit',
      });
    let q = this.db
      .selectFrom('conversation_members as m')
      .innerJoin('conversations as c', 'c.id', 'm.conversation_id')
      .select(['c.id', activityCursorTs.as('cursor_ts')])
      .where('m.user_id', '=', user.id)
      .where('m.left_at', 'is', null);
    if (query.cursor) {
      const cursor = decodeCursor(query.cursor);
      q = q.where(
        sql<boolean>`(c.last_activity_at, c.id) < (${cursor.createdAt}::timestamptz, ${cursor.id}::uuid)`,
      );
    }
    const rows = await q
      .orderBy('c.last_activity_at', 'desc')
      .orderBy('c.id', 'desc')
      .limit(limit + 1)
      .execute();
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const items = await this.views(
      user.id,
      page.map((r) => r.id),
    );
    return {
      items,
      nextCursor:
        rows.length > limit && last ? encodeCursor({ createdAt: last.cursor_ts, id: last.id }) : null,
    };
  }

  async getConversation(user: AuthUser, conversationId: string): Promise<ConversationView> {
    const { conversation } = await this.activeMember(this.db, user.id, conversationId);
    return this.view(user.id, conversation.id);
  }

  /** For the gateway's `conv:<id>` room authorizer: is the user a current member? */
  async isMember(userId: string, conversationId: string): Promise<boolean> {
    if (!isUuid(userId) || !isUuid(conversationId)) return false;
    const row = await this.db
      .selectFrom('conversation_members')
      .select('user_id')
      .where('conversation_id', '=', conversationId.toLowerCase())
      .where('user_id', '=', userId.toLowerCase())
      .where('left_at', 'is', null)
      .executeTakeFirst();
    return row !== undefined;
  }

  // ---------------------------------------------------------------- messages

  /**
   * Sends a message as the caller (a current member). With a `clientId`, a
   * resend of the same message returns the first one (`replayed: true`) and
   * publishes nothing; the same clientId with other content is refused.
   */
  async sendMessage(
    user: AuthUser,
    conversationId: string,
    input: SendMessageInput,
  ): Promise<{ message: MessageView; replayed: boolean }> {
    // Membership first: to an outsider the conversation does not exist, whatever the message says.
    const { conversation } = await this.activeMember(this.db, user.id, conversationId);
    const fields = await this.checkMessage(user, input);
    const clientId = input.clientId;
    if (clientId !== undefined) {
      const replay = await this.replay(user, conversationId, clientId, fields);
      if (replay) return replay;
    }
    let row: MessageRow;
    try {
      row = await this.insertMessage(conversation.id, user.id, fields, clientId ?? null);
    } catch (err) {
      if (err instanceof ReplaySignal && clientId !== undefined) {
        const replay = await this.replay(user, conversationId, clientId, fields);
        if (replay) return replay;
      }
      throw err;
    }
    const message = toMessageView(row);
    await this.publishNewMessage(message);
    return { message, replayed: false };
  }

  /** A system message (membership notes, order updates, ...): the server's own, never the API's. */
  async postSystemMessage(conversationId: string, body: string): Promise<MessageView> {
    const text = checkText(body, 'body', MAX_BODY_LENGTH, true);
    if (!isUuid(conversationId)) throw new AppError('CHAT_CONVERSATION_NOT_FOUND');
    const exists = await this.db
      .selectFrom('conversations')
      .select('id')
      .where('id', '=', conversationId.toLowerCase())
      .executeTakeFirst();
    if (!exists) throw new AppError('CHAT_CONVERSATION_NOT_FOUND');
    const row = await this.insertMessage(
      exists.id,
      null,
      { type: 'system', body: text, attachment: null, product_id: null, order_id: null },
      null,
    );
    const message = toMessageView(row);
    await this.publishNewMessage(message);
    return message;
  }

  /** Newest first; `before` (a seq) pages back. Deleted messages stay in place as tombstones. */
  async history(
    user: AuthUser,
    conversationId: string,
    query: { before?: number; limit?: number } = {},
  ): Promise<MessagePage> {
    const limit = query.limit ?? HISTORY_DEFAULT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_MAX_LIMIT)
      throw new AppError('VALIDATION_FAILED', `limit must be an integer from 1 to ${PAGE_MAX_LIMIT}`, {
        field: 'limit',
      });
    if (query.before !== undefined && (!Number.isSafeInteger(query.before) || query.before < 1))
      throw new AppError('VALIDATION_FAILED', 'before must be an integer >= 1', { field: 'before' });
    const { conversation } = await this.activeMember(this.db, user.id, conversationId);
    let q = this.db.selectFrom('messages').selectAll().where('conversation_id', '=', conversation.id);
    if (query.before !== undefined) q = q.where('seq', '<', query.before);
    const rows = await q
      .orderBy('seq', 'desc')
      .limit(limit + 1)
      .execute();
    const pointers = await this.pointers(conversation.id);
    const page = rows.slice(0, limit);
    return {
      items: page.map((r) => toMessageView(r, pointers)),
      nextBefore: rows.length > limit ? (page[page.length - 1]?.seq ?? null) : null,
      lastSeq: Math.max(conversation.last_seq, rows[0]?.seq ?? 0),
    };
  }

  /** Replaces the text of the caller's own, live text message. */
  async editMessage(
    user: AuthUser,
    conversationId: string,
    messageId: string,
    body: string,
  ): Promise<MessageView> {
    const text = checkText(body, 'body', MAX_BODY_LENGTH, true);
    const { conversation } = await this.activeMember(this.db, user.id, conversationId);
    const message = await this.message(conversation.id, messageId);
    if (message.sender_id !== user.id) throw new AppError('CHAT_NOT_SENDER');
    if (message.deleted_at) throw new AppError('CHAT_MESSAGE_DELETED');
    if (message.type !== 'text')
      throw new AppError('CHAT_MESSAGE_NOT_EDITABLE', undefined, { type: message.type });
    const updated = await this.db
      .updateTable('messages')
      .set({ body: text, edited_at: new Date() })
      .where('id', '=', message.id)
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!updated) throw new AppError('CHAT_MESSAGE_DELETED');
    const view = toMessageView(updated, await this.pointers(conversation.id));
    await this.publish([[conversationRoom(conversation.id), CHAT_EVENTS.messageEdited, view]]);
    return view;
  }

  /**
   * Soft-deletes a message: its sender, or a member holding `chat:moderate`.
   * The row stays (seq has no holes; moderators keep evidence) but its
   * content is never shown again. Deleting twice returns the tombstone.
   */
  async deleteMessage(user: AuthUser, conversationId: string, messageId: string): Promise<MessageView> {
    const { conversation } = await this.activeMember(this.db, user.id, conversationId);
    const message = await this.message(conversation.id, messageId);
    const pointers = await this.pointers(conversation.id);
    if (message.deleted_at) return toMessageView(message, pointers);
    if (message.sender_id !== user.id && !can(user, 'chat:moderate'))
      throw new AppError('CHAT_NOT_SENDER', 'Only the sender or a moderator may delete this message');
    const updated = await this.db
      .updateTable('messages')
      .set({ deleted_at: new Date(), deleted_by: user.id })
      .where('id', '=', message.id)
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!updated) return toMessageView(await this.message(conversation.id, message.id), pointers);
    const view = toMessageView(updated, pointers);
    await this.publish([
      [
        conversationRoom(conversation.id),
        CHAT_EVENTS.messageDeleted,
        {
          conversationId: conversation.id,
          messageId: view.id,
          seq: view.seq,
          deletedBy: view.deletedBy,
          deletedAt: view.deletedAt,
        },
      ],
    ]);
    return view;
  }

  // ---------------------------------------------------------------- receipts

  /** Moves the caller's read pointer (and delivery with it) forward to `seq`; never backwards. */
  markRead(user: AuthUser, conversationId: string, seq: number): Promise<ReceiptState> {
    return this.advance(user, conversationId, seq, 'read');
  }

  /** Moves the caller's delivery pointer forward to `seq`; never backwards. */
  markDelivered(user: AuthUser, conversationId: string, seq: number): Promise<ReceiptState> {
    return this.advance(user, conversationId, seq, 'delivered');
  }

  private async advance(
    user: AuthUser,
    conversationId: string,
    rawSeq: number,
    kind: 'read' | 'delivered',
  ): Promise<ReceiptState> {
    const seq = checkSeq(rawSeq);
    const { conversation } = await this.activeMember(this.db, user.id, conversationId);
    if (seq > conversation.last_seq)
      throw new AppError('CHAT_SEQ_OUT_OF_RANGE', undefined, { seq, lastSeq: conversation.last_seq });
    const base = this.db
      .updateTable('conversation_members')
      .where('conversation_id', '=', conversation.id)
      .where('user_id', '=', user.id)
      .where('left_at', 'is', null);
    // Conditional on the pointer being behind: concurrent calls can only move it forward.
    const moved =
      kind === 'read'
        ? await base
            .set({
              last_read_seq: seq,
              last_delivered_seq: sql<number>`greatest(last_delivered_seq, ${seq})`,
            })
            .where('last_read_seq', '<', seq)
            .returning(['last_read_seq', 'last_delivered_seq'])
            .executeTakeFirst()
        : await base
            .set({ last_delivered_seq: seq })
            .where('last_delivered_seq', '<', seq)
            .returning(['last_read_seq', 'last_delivered_seq'])
            .executeTakeFirst();
    const pointers =
      moved ??
      (await this.db
        .selectFrom('conversation_members')
        .select(['last_read_seq', 'last_delivered_seq'])
        .where('conversation_id', '=', conversation.id)
        .where('user_id', '=', user.id)
        .executeTakeFirstOrThrow());
    const state: ReceiptState = {
      conversationId: conversation.id,
      userId: user.id,
      lastReadSeq: pointers.last_read_seq,
      lastDeliveredSeq: pointers.last_delivered_seq,
      unread: await unreadCount(this.db, conversation.id, user.id, pointers.last_read_seq),
    };
    if (moved) {
      const receipt = {
        conversationId: state.conversationId,
        userId: state.userId,
        lastReadSeq: state.lastReadSeq,
        lastDeliveredSeq: state.lastDeliveredSeq,
      };
      await this.publish(
        kind === 'read'
          ? [
              [conversationRoom(conversation.id), CHAT_EVENTS.receiptRead, receipt],
              [
                userRoom(user.id),
                CHAT_EVENTS.notifyRead,
                {
                  conversationId: state.conversationId,
                  lastReadSeq: state.lastReadSeq,
                  unread: state.unread,
                },
              ],
            ]
          : [[conversationRoom(conversation.id), CHAT_EVENTS.receiptDelivered, receipt]],
      );
    }
    return state;
  }

  // ---------------------------------------------------------------- internals

  /** The conversation and the caller's active membership, or CHAT_CONVERSATION_NOT_FOUND. */
  private async activeMember(
    db: Executor,
    userId: string,
    conversationId: string,
  ): Promise<{ conversation: ConversationRow; member: MemberRow }> {
    if (typeof conversationId !== 'string' || !isUuid(conversationId))
      throw new AppError('CHAT_CONVERSATION_NOT_FOUND');
    const row = await db
      .selectFrom('conversation_members as m')
      .innerJoin('conversations as c', 'c.id', 'm.conversation_id')
      .selectAll('c')
      .select([
        'm.user_id',
        'm.role',
        'm.joined_at',
        'm.left_at',
        'm.last_read_seq',
        'm.last_delivered_seq',
        'm.conversation_id',
      ])
      .where('m.conversation_id', '=', conversationId.toLowerCase())
      .where('m.user_id', '=', userId)
      .where('m.left_at', 'is', null)
      .executeTakeFirst();
    if (!row) throw new AppError('CHAT_CONVERSATION_NOT_FOUND');
    return {
      conversation: {
        id: row.id,
        kind: row.kind,
        title: row.title,
        created_by: row.created_by,
        direct_key: row.direct_key,
        last_seq: row.last_seq,
        last_activity_at: row.last_activity_at,
        created_at: row.created_at,
      },
      member: {
        conversation_id: row.conversation_id,
        user_id: row.user_id,
        role: row.role,
        joined_at: row.joined_at,
        left_at: row.left_at,
        last_read_seq: row.last_read_seq,
        last_delivered_seq: row.last_delivered_seq,
      },
    };
  }

  private async message(conversationId: string, messageId: string): Promise<MessageRow> {
    if (typeof messageId !== 'string' || !isUuid(messageId)) throw new AppError('CHAT_MESSAGE_NOT_FOUND');
    const row = await this.db
      .selectFrom('messages')
      .selectAll()
      .where('id', '=', messageId.toLowerCase())
      .where('conversation_id', '=', conversationId)
      .executeTakeFirst();
    if (!row) throw new AppError('CHAT_MESSAGE_NOT_FOUND');
    return row;
  }

  private async findDirect(directKey: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('conversations')
      .select('id')
      .where('direct_key', '=', directKey)
      .executeTakeFirst();
    return row?.id;
  }

  private async assertUsersExist(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const found = await this.db.selectFrom('users').select('id').where('id', 'in', ids).execute();
    const known = new Set(found.map((u) => u.id));
    const missing = ids.filter((id) => !known.has(id));
    if (missing.length > 0) throw new AppError('USER_NOT_FOUND', undefined, { userIds: missing });
  }

  /** Read pointers of the current members. */
  private async pointers(conversationId: string): Promise<Pointer[]> {
    const rows = await this.db
      .selectFrom('conversation_members')
      .select(['user_id', 'last_read_seq', 'last_delivered_seq'])
      .where('conversation_id', '=', conversationId)
      .where('left_at', 'is', null)
      .execute();
    return rows.map((r) => ({
      userId: r.user_id,
      lastReadSeq: r.last_read_seq,
      lastDeliveredSeq: r.last_delivered_seq,
    }));
  }

  /**
   * Validates a message against its type's rules and resolves what it refers
   * to (the upload behind an attachment, the product, the order).
   */
  private async checkMessage(user: AuthUser, input: SendMessageInput): Promise<MessageFields> {
    if (typeof input !== 'object' || input === null) throw invalid('message', 'must be an object', 'type');
    const type = input.type as string;
    if (!(SENDABLE_MESSAGE_TYPES as readonly string[]).includes(type))
      throw invalid('type', `must be one of ${SENDABLE_MESSAGE_TYPES.join(', ')}`, 'enum');
    if (
      input.clientId !== undefined &&
      (typeof input.clientId !== 'string' || !CLIENT_ID_RE.test(input.clientId))
    )
      throw invalid('clientId', 'must be 1-64 characters of A-Z a-z 0-9 . _ : -', 'pattern');
    const body = checkText(input.body, 'body', MAX_BODY_LENGTH, type === 'text');
    const only = (allowed: Array<'attachment' | 'productId' | 'orderId'>) => {
      for (const field of ['attachment', 'productId', 'orderId'] as const)
        if (input[field] !== undefined && !allowed.includes(field))
          throw invalid(field, `is not allowed in a ${type} message`, 'not');
    };
    const fields: MessageFields = {
      type: type as SendableMessageType,
      body,
      attachment: null,
      product_id: null,
      order_id: null,
    };
    switch (type) {
      case 'text':
        only([]);
        break;
      case 'image':
      case 'file':
        only(['attachment']);
        fields.attachment = await this.checkAttachment(user, input.attachment, type);
        break;
      case 'product': {
        only(['productId']);
        if (input.productId === undefined) throw invalid('productId', 'is required', 'required');
        const productId = checkUuid(input.productId, 'productId');
        const product = await this.db
          .selectFrom('products')
          .select(['id', 'active'])
          .where('id', '=', productId)
          .executeTakeFirst();
        // Inactive products are hidden from shoppers, here as in the catalog.
        if (!product?.active) throw new AppError('PRODUCT_NOT_FOUND', undefined, { productId });
        fields.product_id = product.id;
        break;
      }
      case 'order': {
        only(['orderId']);
        if (input.orderId === undefined) throw invalid('orderId', 'is required', 'required');
        const orderId = checkUuid(input.orderId, 'orderId');
        const order = await this.db
          .selectFrom('orders')
          .select(['id', 'user_id'])
          .where('id', '=', orderId)
          .executeTakeFirst();
        // Someone else's order is "not found": order ids must not be probeable.
        if (!order || order.user_id !== user.id)
          throw new AppError('ORDER_NOT_FOUND', undefined, { orderId });
        fields.order_id = order.id;
        break;
      }
    }
    return fields;
  }

  /** An attachment must be one of the sender's own uploads (POST /v1/uploads); image messages need an image. */
  private async checkAttachment(
    user: AuthUser,
    input: AttachmentInput | undefined,
    type: 'image' | 'file',
  ): Promise<Attachment> {
    if (input === undefined || input === null) throw invalid('attachment', 'is required', 'required');
    if (typeof input !== 'object' || typeof input.url !== 'string')
      throw invalid('attachment.url', 'is required', 'required');
    const upload = await this.db
      .selectFrom('uploads')
      .selectAll()
      .where('url', '=', input.url)
      .executeTakeFirst();
    const refuse = (reason: string) =>
      new AppError('CHAT_ATTACHMENT_INVALID', `The attachment ${reason}`, { field: 'attachment', reason });
    if (!upload || upload.owner_id !== user.id)
      throw refuse('is not one of your uploads to this server (upload it with POST /v1/uploads first)');
    if (input.key !== undefined && input.key !== upload.key) throw refuse('key does not match the upload');
    if (input.size !== undefined && input.size !== upload.size)
      throw refuse('size does not match the upload');
    if (input.contentType !== undefined && input.contentType !== upload.content_type)
      throw refuse('contentType does not match the upload');
    if (type === 'image' && !upload.content_type.startsWith('image/'))
      throw refuse(`is ${upload.content_type}, not an image; send it as a file`);
    const name =
      input.name === undefined
        ? upload.name
        : checkText(input.name, 'attachment.name', MAX_ATTACHMENT_NAME_LENGTH, true).trim();
    return { url: upload.url, key: upload.key, name, size: upload.size, contentType: upload.content_type };
  }

  /**
   * The message the caller already sent with `clientId`, if any: returned as
   * a replay when it is the same message, refused when the clientId was used
   * for something else.
   */
  private async replay(
    user: AuthUser,
    conversationId: string,
    clientId: string,
    fields: MessageFields,
  ): Promise<{ message: MessageView; replayed: true } | undefined> {
    const row = await this.db
      .selectFrom('messages')
      .selectAll()
      .where('sender_id', '=', user.id)
      .where('client_id', '=', clientId)
      .executeTakeFirst();
    if (!row) return undefined;
    const same =
      isUuid(conversationId) &&
      row.conversation_id === conversationId.toLowerCase() &&
      row.type === fields.type &&
      (row.edited_at !== null || row.body === fields.body) &&
      row.product_id === fields.product_id &&
      row.order_id === fields.order_id &&
      (row.attachment?.url ?? null) === (fields.attachment?.url ?? null);
    if (!same) throw new AppError('CHAT_CLIENT_ID_REUSED', undefined, { clientId });
    // Still a member? A former member's resend must not reveal the conversation.
    const { conversation } = await this.activeMember(this.db, user.id, row.conversation_id);
    return { message: toMessageView(row, await this.pointers(conversation.id)), replayed: true };
  }

  /**
   * Takes the next seq and inserts the message in one transaction. A clientId
   * that already exists rolls the whole thing back (seq included) with a
   * ReplaySignal; concurrent inserts of one clientId wait on its unique index.
   */
  private async insertMessage(
    conversationId: string,
    senderId: string | null,
    fields: MessageFields,
    clientId: string | null,
  ): Promise<MessageRow> {
    return this.db.transaction().execute(async (trx) => {
      const bumped = await trx
        .updateTable('conversations')
        .set((eb) => ({ last_seq: eb('last_seq', '+', 1), last_activity_at: sql<Date>`now()` }))
        .where('id', '=', conversationId)
        .returning('last_seq')
        .executeTakeFirstOrThrow();
      if (senderId !== null) {
        // Re-checked under the conversation lock: a member removed meanwhile cannot post.
        const member = await trx
          .selectFrom('conversation_members')
          .select('user_id')
          .where('conversation_id', '=', conversationId)
          .where('user_id', '=', senderId)
          .where('left_at', 'is', null)
          .executeTakeFirst();
        if (!member) throw new AppError('CHAT_CONVERSATION_NOT_FOUND');
      }
      const row = await trx
        .insertInto('messages')
        .values({
          id: randomUUID(),
          conversation_id: conversationId,
          seq: bumped.last_seq,
          sender_id: senderId,
          type: fields.type,
          body: fields.body,
          attachment: fields.attachment ? JSON.stringify(fields.attachment) : null,
          product_id: fields.product_id,
          order_id: fields.order_id,
          client_id: clientId,
          edited_at: null,
          deleted_at: null,
          deleted_by: null,
        })
        .onConflict((oc) => oc.columns(['sender_id', 'client_id']).doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!row) throw new ReplaySignal();
      return row;
    });
  }

  /** message.created to the conversation, then notify.message with the unread count to every other member. */
  private async publishNewMessage(message: MessageView): Promise<void> {
    // Every recipient's unread count in one statement (groups have up to CHAT_GROUP_MAX_MEMBERS).
    let q = this.db
      .selectFrom('conversation_members as m')
      .select((eb) => [
        'm.user_id',
        eb
          .selectFrom('messages as x')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('x.conversation_id', '=', 'm.conversation_id')
          .whereRef('x.seq', '>', 'm.last_read_seq')
          .where('x.deleted_at', 'is', null)
          .where((w) => w.or([w('x.sender_id', 'is', null), w('x.sender_id', '!=', w.ref('m.user_id'))]))
          .as('unread'),
      ])
      .where('m.conversation_id', '=', message.conversationId)
      .where('m.left_at', 'is', null);
    if (message.senderId !== null) q = q.where('m.user_id', '!=', message.senderId);
    const recipients = await q.orderBy('m.user_id').execute();
    const unread = recipients.map((m) => Number(m.unread ?? 0));
    const preview = [...message.body].slice(0, 120).join('');
    await this.publish([
      [conversationRoom(message.conversationId), CHAT_EVENTS.messageCreated, message],
      ...recipients.map(
        (m, i): Publication => [
          userRoom(m.user_id),
          CHAT_EVENTS.notifyMessage,
          {
            conversationId: message.conversationId,
            messageId: message.id,
            seq: message.seq,
            senderId: message.senderId,
            type: message.type,
            preview,
            unread: unread[i] ?? 0,
          },
        ],
      ),
    ]);
  }

  private async publish(publications: Publication[]): Promise<void> {
    await Promise.all(
      publications.map(async ([room, event, data]) => {
        try {
          await this.publisher.publish(room, event, data);
        } catch (err) {
          this.onPublishError(err, room, event);
        }
      }),
    );
  }

  private async view(userId: string, conversationId: string): Promise<ConversationView> {
    const [view] = await this.views(userId, [conversationId]);
    if (!view) throw new AppError('CHAT_CONVERSATION_NOT_FOUND');
    return view;
  }

  /** Conversation views for `userId` (an active member of each), in the order of `ids`. */
  private async views(userId: string, ids: string[]): Promise<ConversationView[]> {
    if (ids.length === 0) return [];
    const conversations = await this.db
      .selectFrom('conversations as c')
      .innerJoin('conversation_members as me', (j) =>
        j.onRef('me.conversation_id', '=', 'c.id').on('me.user_id', '=', userId).on('me.left_at', 'is', null),
      )
      .selectAll('c')
      .select((eb) =>
        eb
          .selectFrom('messages as x')
          .select(eb.fn.countAll<number>().as('n'))
          .whereRef('x.conversation_id', '=', 'c.id')
          .whereRef('x.seq', '>', 'me.last_read_seq')
          .where('x.deleted_at', 'is', null)
          .where((w) => w.or([w('x.sender_id', 'is', null), w('x.sender_id', '!=', userId)]))
          .as('unread'),
      )
      .where('c.id', 'in', ids)
      .execute();
    const members = await this.db
      .selectFrom('conversation_members as m')
      .innerJoin('users as u', 'u.id', 'm.user_id')
      .select([
        'm.conversation_id',
        'm.user_id',
        'u.display_name',
        'm.role',
        'm.joined_at',
        'm.last_read_seq',
        'm.last_delivered_seq',
      ])
      .where('m.conversation_id', 'in', ids)
      .where('m.left_at', 'is', null)
      .orderBy('m.joined_at')
      // Members who joined together (a group's creation): the owner first.
      .orderBy(sql`m.role = 'owner'`, 'desc')
      .orderBy('m.user_id')
      .execute();
    const lastMessages = await this.db
      .selectFrom('messages as x')
      .innerJoin('conversations as c', (j) =>
        j.onRef('c.id', '=', 'x.conversation_id').onRef('x.seq', '=', 'c.last_seq'),
      )
      .selectAll('x')
      .where('c.id', 'in', ids)
      .execute();
    const byId = new Map(conversations.map((c) => [c.id, c]));
    const lastById = new Map(lastMessages.map((m) => [m.conversation_id, m]));
    const out: ConversationView[] = [];
    for (const id of ids) {
      const c = byId.get(id);
      if (!c) continue;
      const mine = members.filter((m) => m.conversation_id === id);
      const pointers = mine.map((m) => ({
        userId: m.user_id,
        lastReadSeq: m.last_read_seq,
        lastDeliveredSeq: m.last_delivered_seq,
      }));
      const last = lastById.get(id);
      out.push({
        id: c.id,
        kind: c.kind,
        title: c.title,
        createdBy: c.created_by,
        createdAt: c.created_at.toISOString(),
        lastActivityAt: c.last_activity_at.toISOString(),
        lastSeq: c.last_seq,
        members: mine.map((m) => ({
          userId: m.user_id,
          displayName: m.display_name,
          role: m.role,
          joinedAt: m.joined_at.toISOString(),
          lastReadSeq: m.last_read_seq,
          lastDeliveredSeq: m.last_delivered_seq,
        })),
        unread: Number(c.unread ?? 0),
        lastMessage: last ? toMessageView(last, pointers) : null,
      });
    }
    return out;
  }
}

/** A message's content columns, checked and resolved. */
interface MessageFields {
  type: MessageType;
  body: string;
  attachment: Attachment | null;
  product_id: string | null;
  order_id: string | null;
}
