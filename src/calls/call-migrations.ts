import { type Kysely, type Migration, sql } from 'kysely';

export const callMigrations: Record<string, Migration> = {
  '0400_calls': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('calls')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull().check(sql`type in ('support','sales','consultation')`))
        .addColumn('status', 'text', (c) =>
          c.notNull().check(sql`status in ('initiated','ringing','active','ended','missed','rejected')`),
        )
        .addColumn('caller_id', 'uuid', (c) => c.notNull().references('users.id'))
        .addColumn('agent_id', 'uuid', (c) => c.references('users.id'))
        .addColumn('context', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('ringing_at', 'timestamptz')
        .addColumn('answered_at', 'timestamptz')
        .addColumn('ended_at', 'timestamptz')
        .addColumn('ended_by', 'uuid', (c) => c.references('users.id'))
        .addColumn('end_reason', 'text', (c) =>
          c.check(
            sql`end_reason in ('hangup','cancelled','rejected','ring_timeout','queue_timeout','disconnected','media_worker_died')`,
          ),
        )
        .addCheckConstraint(
          'calls_lifecycle',
          sql`(status = 'initiated' and agent_id is null and ended_at is null)
            or (status = 'ringing' and agent_id is not null and ringing_at is not null and ended_at is null)
            or (status = 'active' and answered_at is not null and ended_at is null)
            or (status in ('ended','missed','rejected') and ended_at is not null and end_reason is not null)`,
        )
        .execute();
      await db.schema.createIndex('calls_caller').on('calls').columns(['caller_id', 'created_at']).execute();
      await db.schema.createIndex('calls_agent').on('calls').columns(['agent_id', 'created_at']).execute();
      // The timeout sweep looks only at open calls.
      await db.schema
        .createIndex('calls_open')
        .on('calls')
        .columns(['status', 'created_at'])
        .where(sql.ref('status'), 'in', sql`('initiated','ringing','active')`)
        .execute();
    },
  },
  '0401_calls_quality': {
    async up(db: Kysely<unknown>) {
      // Quality summary per source (server, client): count, sum and max of each metric.
      await db.schema.alterTable('calls').addColumn('quality', 'jsonb').execute();
    },
  },
  '0402_calls_recording': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('calls')
        .addColumn('record', 'boolean', (c) => c.notNull().defaultTo(false))
        .execute();
      // The stored files once the call is over: [{key, url, userId, kind, bytes}].
      await db.schema.alterTable('calls').addColumn('recordings', 'jsonb').execute();
    },
  },
};
