import { type ColumnDefinitionBuilder, type Kysely, type Migration, sql } from 'kysely';

export const liveMigrations: Record<string, Migration> = {
  '0300_live_streams': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('streams')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('public_id', 'text', (c) =>
          c.notNull().unique().check(sql`public_id ~ '^[A-Za-z0-9]{10}$'`),
        )
        .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id'))
        .addColumn('title', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('scheduled','live','ended')`))
        .addColumn('scheduled_at', 'timestamptz', (c) => c.notNull())
        .addColumn('started_at', 'timestamptz')
        .addColumn('ended_at', 'timestamptz')
        .addColumn('end_reason', 'text', (c) => c.check(sql`end_reason in ('publisher_gone','ingest_error')`))
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('key_prefix', 'text', (c) => c.notNull())
        .addColumn('key_revoked_at', 'timestamptz')
        .addColumn('recording', 'boolean', (c) => c.notNull().defaultTo(true))
        .addColumn('publisher_session', 'text')
        .addColumn('publisher_seen_at', 'timestamptz')
        .addColumn('media_origin_at', 'timestamptz')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addCheckConstraint(
          'streams_lifecycle',
          sql`(status = 'scheduled' and started_at is null and ended_at is null)
            or (status = 'live' and started_at is not null and ended_at is null)
            or (status = 'ended' and ended_at is not null)`,
        )
        .execute();
      await db.schema
        .createIndex('streams_owner')
        .on('streams')
        .columns(['owner_id', 'created_at'])
        .execute();
      await db.schema
        .createIndex('streams_status_scheduled')
        .on('streams')
        .columns(['status', 'scheduled_at'])
        .execute();
      await db.schema
        .createIndex('streams_live')
        .on('streams')
        .column('publisher_seen_at')
        .where(sql.ref('status'), '=', 'live')
        .execute();
      await db.schema
        .createTable('stream_products')
        .addColumn('stream_id', 'uuid', (c) => c.notNull().references('streams.id').onDelete('cascade'))
        .addColumn('product_id', 'uuid', (c) => c.notNull().references('products.id'))
        .addColumn('position', 'integer', (c) => c.notNull().check(sql`position >= 0`))
        .addPrimaryKeyConstraint('stream_products_pk', ['stream_id', 'position'])
        .addUniqueConstraint('stream_products_once', ['stream_id', 'product_id'])
        .execute();
      await db.schema
        .createTable('stream_pins')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('stream_id', 'uuid', (c) => c.notNull().references('streams.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('product','coupon')`))
        .addColumn('product_id', 'uuid', (c) => c.references('products.id'))
        .addColumn('coupon_code', 'text')
        .addColumn('media_time_ms', 'bigint', (c) => c.check(sql`media_time_ms >= 0`))
        .addColumn('pinned_by', 'uuid', (c) => c.notNull())
        .addColumn('pinned_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('unpinned_at', 'timestamptz')
        .addCheckConstraint(
          'stream_pins_target',
          sql`(kind = 'product' and product_id is not null and coupon_code is null)
            or (kind = 'coupon' and coupon_code is not null and product_id is null)`,
        )
        .execute();
      // At most one current pin per stream.
      await db.schema
        .createIndex('stream_pins_current')
        .on('stream_pins')
        .column('stream_id')
        .unique()
        .where(sql.ref('unpinned_at'), 'is', null)
        .execute();
      await db.schema
        .createIndex('stream_pins_stream')
        .on('stream_pins')
        .columns(['stream_id', 'pinned_at'])
        .execute();
    },
  },
  '0350_live_recordings': {
    async up(db: Kysely<unknown>) {
      // Streamers end a stream themselves too; the column's check is replaced to allow it.
      await sql`alter table streams drop constraint streams_end_reason_check`.execute(db);
      await sql`alter table streams add constraint streams_end_reason_check
        check (end_reason in ('publisher_gone','ingest_error','ended_by_streamer'))`.execute(db);
      await db.schema.alterTable('streams').addColumn('replay_ready_at', 'timestamptz').execute();
      await db.schema
        .createTable('stream_segments')
        .addColumn('stream_id', 'uuid', (c) => c.notNull().references('streams.id').onDelete('cascade'))
        .addColumn('sequence', 'integer', (c) => c.notNull().check(sql`sequence >= 0`))
        .addColumn('object_key', 'text', (c) => c.notNull())
        .addColumn('init_key', 'text')
        .addColumn('duration_ms', 'integer', (c) => c.notNull().check(sql`duration_ms > 0`))
        .addColumn('program_date_time', 'timestamptz')
        .addColumn('discontinuity', 'boolean', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('stream_segments_pk', ['stream_id', 'sequence'])
        .execute();
    },
  },
  '0351_stream_watch': {
    async up(db: Kysely<unknown>) {
      // Seconds watched per viewer per minute of the stream: watch time, view duration, retention.
      await db.schema
        .createTable('stream_watch')
        .addColumn('stream_id', 'uuid', (c) => c.notNull().references('streams.id').onDelete('cascade'))
        .addColumn('viewer', 'text', (c) => c.notNull())
        .addColumn('minute', 'integer', (c) => c.notNull().check(sql`minute >= 0`))
        .addColumn('seconds', 'integer', (c) => c.notNull().check(sql`seconds between 0 and 60`))
        .addPrimaryKeyConstraint('stream_watch_pk', ['stream_id', 'viewer', 'minute'])
        .execute();
    },
  },
  '0352_stream_renditions': {
    async up(db: Kysely<unknown>) {
      // Adaptive bitrate: a stream may be packaged in several renditions, each its own segment sequence.
      await db.schema
        .alterTable('streams')
        .addColumn('abr', 'boolean', (c) => c.notNull().defaultTo(false))
        .execute();
      await db.schema
        .alterTable('stream_segments')
        .addColumn('rendition', 'text', (c) => c.notNull().defaultTo(''))
        .execute();
      await db.schema.alterTable('stream_segments').dropConstraint('stream_segments_pk').execute();
      await db.schema
        .alterTable('stream_segments')
        .addPrimaryKeyConstraint('stream_segments_pk', ['stream_id', 'rendition', 'sequence'])
        .execute();
    },
  },
  '0353_stream_playback': {
    async up(db: Kysely<unknown>) {
      // Players' quality reports, summed per stream (bitrate, rebuffering, dropped frames).
      const count = (c: ColumnDefinitionBuilder) => c.notNull().defaultTo(0);
      await db.schema
        .createTable('stream_playback')
        .addColumn('stream_id', 'uuid', (c) => c.primaryKey().references('streams.id').onDelete('cascade'))
        .addColumn('reports', 'bigint', count)
        .addColumn('bitrate_kbps_sum', 'bigint', count)
        .addColumn('bitrate_reports', 'bigint', count)
        .addColumn('stalls', 'bigint', count)
        .addColumn('stall_ms', 'bigint', count)
        .addColumn('dropped_frames', 'bigint', count)
        .execute();
    },
  },
};
