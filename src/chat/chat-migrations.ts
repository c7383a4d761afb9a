import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Conversations, their members (with receipt pointers), messages and uploads.
 * Constraint names are stable: the service recognises
 * `messages_sender_client_unique` and `conversations_direct_key_unique`.
 */
export const chatMigrations: Record<string, Migration> = {
  '0200_chat_conversations_messages': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('conversations')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('title', 'text')
        .addColumn('created_by', 'uuid', (c) => c.notNull().references('users.id'))
        .addColumn('direct_key', 'text')
        .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('last_activity_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addCheckConstraint('conversations_kind', sql`kind in ('direct','group')`)
        .addCheckConstraint(
          'conversations_direct_key_kind',
          sql`(kind = 'direct') = (direct_key is not null)`,
        )
        .addCheckConstraint('conversations_last_seq_nonnegative', sql`last_seq >= 0`)
        .addUniqueConstraint('conversations_direct_key_unique', ['direct_key'])
        .execute();

      await db.schema
        .createTable('conversation_members')
        .addColumn('conversation_id', 'uuid', (c) =>
          c.notNull().references('conversations.id').onDelete('cascade'),
        )
        .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('joined_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('left_at', 'timestamptz')
        .addColumn('last_read_seq', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('last_delivered_seq', 'bigint', (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('conversation_members_pk', ['conversation_id', 'user_id'])
        .addCheckConstraint('conversation_members_role', sql`role in ('owner','member')`)
        .execute();
      // "My conversations": the active memberships of one user.
      await db.schema
        .createIndex('conversation_members_user_active')
        .on('conversation_members')
        .columns(['user_id', 'conversation_id'])
        .where(sql.ref('left_at'), 'is', null)
        .execute();

      await db.schema
        .createTable('messages')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('conversation_id', 'uuid', (c) =>
          c.notNull().references('conversations.id').onDelete('cascade'),
        )
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('sender_id', 'uuid', (c) => c.references('users.id'))
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('attachment', 'jsonb')
        .addColumn('product_id', 'uuid')
        .addColumn('order_id', 'uuid')
        .addColumn('client_id', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('edited_at', 'timestamptz')
        .addColumn('deleted_at', 'timestamptz')
        .addColumn('deleted_by', 'uuid')
        .addCheckConstraint('messages_type', sql`type in ('text','image','file','product','order','system')`)
        .addCheckConstraint('messages_seq_positive', sql`seq > 0`)
        .addCheckConstraint('messages_system_sender', sql`(type = 'system') = (sender_id is null)`)
        // History pages are range scans of this index, newest first.
        .addUniqueConstraint('messages_conversation_seq_unique', ['conversation_id', 'seq'])
        .addUniqueConstraint('messages_sender_client_unique', ['sender_id', 'client_id'])
        .execute();

      await db.schema
        .createTable('uploads')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id'))
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('content_type', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('uploads_key_unique', ['key'])
        .addUniqueConstraint('uploads_url_unique', ['url'])
        .execute();
      await db.schema
        .createIndex('uploads_owner')
        .on('uploads')
        .columns(['owner_id', 'created_at'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('uploads').execute();
      await db.schema.dropTable('messages').execute();
      await db.schema.dropTable('conversation_members').execute();
      await db.schema.dropTable('conversations').execute();
    },
  },
};
