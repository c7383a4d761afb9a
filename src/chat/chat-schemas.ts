import { Type } from '@sinclair/typebox';
import {
  CLIENT_ID_PATTERN,
  CONVERSATIONS_DEFAULT_LIMIT,
  HISTORY_DEFAULT_LIMIT,
  MAX_ATTACHMENT_NAME_LENGTH,
  MAX_BODY_LENGTH,
  MAX_MEMBERS_PER_CALL,
  MAX_TITLE_LENGTH,
  PAGE_MAX_LIMIT,
  SENDABLE_MESSAGE_TYPES,
} from './chat-service.js';
import { MESSAGE_TYPES } from './chat-tables.js';
import { UPLOAD_CONTENT_TYPE_LIST } from './uploads-service.js';

const Uuid = Type.String({ format: 'uuid' });
const DateTime = Type.String({ format: 'date-time' });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Seq = Type.Integer({ minimum: 0, description: 'Per-conversation message sequence number' });

const ids = {
  conversation: '3f0c2b9e-6a1d-4c7e-8f5a-1b2c3d4e5f60',
  message: '8c1d2e3f-4a5b-4c6d-9e7f-0a1b2c3d4e5f',
  alice: '5a1e2c3d-4b5f-4e6a-8b7c-9d0e1f2a3b44',
  bob: '6b2f3d4e-5c6a-4f7b-9c8d-0e1f2a3b4c55',
  product: '0b6f4c0e-3d0f-4a8e-9a1e-5c2d7b9f1a22',
};
const uploadUrl = `http://localhost:8080/media/uploads/${ids.alice}/2d7e0f7a-1111-4c2a-9b3c-4d5e6f708192/shoe.jpg`;

const attachmentExample = {
  url: uploadUrl,
  key: `uploads/${ids.alice}/2d7e0f7a-1111-4c2a-9b3c-4d5e6f708192/shoe.jpg`,
  name: 'shoe.jpg',
  size: 48213,
  contentType: 'image/jpeg',
};

export const AttachmentSchema = Type.Object(
  {
    url: Type.String(),
    key: Type.String(),
    name: Type.String(),
    size: Type.Integer(),
    contentType: Type.String(),
  },
  {
    $id: 'ChatAttachment',
    description: 'A file uploaded with POST /v1/uploads',
    examples: [attachmentExample],
  },
);

const messageExample = {
  id: ids.message,
  conversationId: ids.conversation,
  seq: 42,
  senderId: ids.alice,
  type: 'text',
  body: 'Is the red one still in stock?',
  attachment: null,
  productId: null,
  orderId: null,
  clientId: 'm-1714567890-1',
  createdAt: '2025-05-01T12:00:00.000Z',
  editedAt: null,
  deletedAt: null,
  deletedBy: null,
  readBy: 1,
  deliveredTo: 1,
  readByAll: true,
};

export const MessageSchema = Type.Object(
  {
    id: Uuid,
    conversationId: Uuid,
    seq: Type.Integer({ minimum: 1, description: '1, 2, 3, ... per conversation, without gaps' }),
    senderId: Nullable(Uuid),
    type: Type.Union(
      MESSAGE_TYPES.map((t) => Type.Literal(t)),
      { description: '`system` messages come from the server' },
    ),
    body: Type.String({ description: "Text, or the caption of other types; '' once deleted" }),
    attachment: Type.Union([Type.Ref(AttachmentSchema), Type.Null()]),
    productId: Nullable(Uuid),
    orderId: Nullable(Uuid),
    clientId: Nullable(Type.String()),
    createdAt: DateTime,
    editedAt: Nullable(DateTime),
    deletedAt: Nullable(DateTime),
    deletedBy: Nullable(Uuid),
    readBy: Type.Integer({ description: 'Current members other than the sender who have read it' }),
    deliveredTo: Type.Integer({ description: 'Current members other than the sender it was delivered to' }),
    readByAll: Type.Boolean({
      description: 'Every other current member has read it (direct chats: the other person has)',
    }),
  },
  { $id: 'ChatMessage', examples: [messageExample] },
);

const MemberSchema = Type.Object({
  userId: Uuid,
  displayName: Type.String(),
  role: Type.Union([Type.Literal('owner'), Type.Literal('member')]),
  joinedAt: DateTime,
  lastReadSeq: Seq,
  lastDeliveredSeq: Seq,
});

const conversationExample = {
  id: ids.conversation,
  kind: 'direct',
  title: null,
  createdBy: ids.alice,
  createdAt: '2025-05-01T11:00:00.000Z',
  lastActivityAt: '2025-05-01T12:00:00.000Z',
  lastSeq: 42,
  members: [
    {
      userId: ids.alice,
      displayName: 'Alice',
      role: 'member',
      joinedAt: '2025-05-01T11:00:00.000Z',
      lastReadSeq: 42,
      lastDeliveredSeq: 42,
    },
    {
      userId: ids.bob,
      displayName: 'Bob',
      role: 'member',
      joinedAt: '2025-05-01T11:00:00.000Z',
      lastReadSeq: 42,
      lastDeliveredSeq: 42,
    },
  ],
  unread: 0,
  lastMessage: messageExample,
};

export const ConversationSchema = Type.Object(
  {
    id: Uuid,
    kind: Type.Union([Type.Literal('direct'), Type.Literal('group')]),
    title: Nullable(Type.String()),
    createdBy: Uuid,
    createdAt: DateTime,
    lastActivityAt: DateTime,
    lastSeq: Seq,
    members: Type.Array(MemberSchema, { description: 'Current members, earliest joined first' }),
    unread: Type.Integer({
      minimum: 0,
      description: "Others' messages after your read pointer that are not deleted (the same on every device)",
    }),
    lastMessage: Type.Union([Type.Ref(MessageSchema), Type.Null()]),
  },
  { $id: 'ChatConversation', examples: [conversationExample] },
);

export const ConversationPageSchema = Type.Object(
  {
    items: Type.Array(Type.Ref(ConversationSchema)),
    nextCursor: Nullable(Type.String({ description: 'Pass as `cursor` for the next page' })),
  },
  { $id: 'ChatConversationPage', examples: [{ items: [conversationExample], nextCursor: null }] },
);

export const MessagePageSchema = Type.Object(
  {
    items: Type.Array(Type.Ref(MessageSchema), { description: 'Newest first' }),
    nextBefore: Type.Union([Type.Integer(), Type.Null()], {
      description: 'Pass as `before` for the next (older) page; null on the last page',
    }),
    lastSeq: Seq,
  },
  { $id: 'ChatMessagePage', examples: [{ items: [messageExample], nextBefore: 42, lastSeq: 42 }] },
);

export const ReceiptStateSchema = Type.Object(
  {
    conversationId: Uuid,
    userId: Uuid,
    lastReadSeq: Seq,
    lastDeliveredSeq: Seq,
    unread: Type.Integer({ minimum: 0 }),
  },
  {
    $id: 'ChatReceiptState',
    examples: [
      { conversationId: ids.conversation, userId: ids.bob, lastReadSeq: 42, lastDeliveredSeq: 42, unread: 0 },
    ],
  },
);

export const UploadSchema = Type.Object(
  {
    url: Type.String({ description: 'Put this in a message attachment' }),
    key: Type.String(),
    name: Type.String(),
    size: Type.Integer(),
    contentType: Type.Union(UPLOAD_CONTENT_TYPE_LIST.map((t) => Type.Literal(t))),
  },
  { $id: 'Upload', examples: [attachmentExample] },
);

export const CreateConversationBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('direct'), Type.Literal('group')]),
    userId: Type.Optional(
      Type.String({ format: 'uuid', description: 'direct: the other person (required; not yourself)' }),
    ),
    title: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_TITLE_LENGTH,
        description: 'group: required',
      }),
    ),
    memberIds: Type.Optional(
      Type.Array(Uuid, {
        maxItems: MAX_MEMBERS_PER_CALL,
        description: 'group: the other members (you become the owner)',
      }),
    ),
  },
  {
    additionalProperties: false,
    examples: [
      { kind: 'direct', userId: ids.bob },
      { kind: 'group', title: 'Sneaker drop crew', memberIds: [ids.bob] },
    ],
  },
);

export const ListConversationsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: PAGE_MAX_LIMIT, default: CONVERSATIONS_DEFAULT_LIMIT }),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'From the previous page' })),
  },
  { additionalProperties: false },
);

export const ConversationParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export const MemberParams = Type.Object({ id: Uuid, userId: Uuid }, { additionalProperties: false });
export const MessageParams = Type.Object({ id: Uuid, messageId: Uuid }, { additionalProperties: false });

export const AddMembersBody = Type.Object(
  { userIds: Type.Array(Uuid, { minItems: 1, maxItems: MAX_MEMBERS_PER_CALL }) },
  { additionalProperties: false, examples: [{ userIds: [ids.bob] }] },
);

export const SendMessageBody = Type.Object(
  {
    type: Type.Union(
      SENDABLE_MESSAGE_TYPES.map((t) => Type.Literal(t)),
      { description: 'What the message carries; each type has its own required field' },
    ),
    body: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_BODY_LENGTH,
        description: 'text: required, not only whitespace; other types: optional caption',
      }),
    ),
    attachment: Type.Optional(
      Type.Object(
        {
          url: Type.String({ minLength: 1, maxLength: 2048, description: 'url from POST /v1/uploads' }),
          key: Type.Optional(Type.String({ maxLength: 1024 })),
          name: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_ATTACHMENT_NAME_LENGTH })),
          size: Type.Optional(Type.Integer({ minimum: 0 })),
          contentType: Type.Optional(Type.String({ maxLength: 100 })),
        },
        {
          additionalProperties: false,
          description:
            'image/file: required; one of your own uploads (the upload answer can be passed as is)',
        },
      ),
    ),
    productId: Type.Optional(Type.String({ format: 'uuid', description: 'product: an active product' })),
    orderId: Type.Optional(Type.String({ format: 'uuid', description: 'order: one of your orders' })),
    clientId: Type.Optional(
      Type.String({
        pattern: CLIENT_ID_PATTERN,
        description:
          'Your id for the message; resending with the same clientId returns the first message (200)',
      }),
    ),
  },
  {
    additionalProperties: false,
    examples: [
      { type: 'text', body: 'Is the red one still in stock?', clientId: 'm-1714567890-1' },
      { type: 'image', attachment: { url: uploadUrl }, body: 'This one?' },
      { type: 'product', productId: ids.product },
    ],
  },
);

export const HistoryQuery = Type.Object(
  {
    before: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Only messages with a smaller seq (from `nextBefore`)' }),
    ),
    limit: Type.Integer({ minimum: 1, maximum: PAGE_MAX_LIMIT, default: HISTORY_DEFAULT_LIMIT }),
  },
  { additionalProperties: false },
);

export const EditMessageBody = Type.Object(
  { body: Type.String({ minLength: 1, maxLength: MAX_BODY_LENGTH }) },
  { additionalProperties: false, examples: [{ body: 'Is the blue one still in stock?' }] },
);

export const ReceiptBody = Type.Object(
  { seq: Type.Integer({ minimum: 0, description: 'Pointer moves here unless it is already further' }) },
  { additionalProperties: false, examples: [{ seq: 42 }] },
);
