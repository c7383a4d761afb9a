/** The chat module's public surface. */
export * from './chat-migrations.js';
export * from './chat-routes.js';
export * from './chat-service.js';
export type {
  Attachment,
  ChatTables,
  ConversationKind,
  ConversationMembersTable,
  ConversationsTable,
  MemberRole,
  MessagesTable,
  MessageType,
  UploadsTable,
} from './chat-tables.js';
export * from './room-publisher.js';
export * from './upload-routes.js';
export * from './uploads-service.js';
