/**
 * Db port contract: the same suite against embedded PGlite and real PostgreSQL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ColumnType, type Kysely, type Migration, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenService } from '../src/auth/tokens.js';
import { UsersService } from '../src/auth/users-service.js';
import { type Database, migrations } from '../src/database.js';
import { type DbHandle, openDb, preparedAs } from '../src/platform/db/db.js';
import { AppError } from '../src/platform/errors.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService } from './support/real-services.js';

interface CounterTable {
  counters: { id: string; n: number; big: ColumnType<number, number | undefined, number> };
}
type TestDb = Database & CounterTable;

const testMigrations: Record<string, Migration> = {
  ...migrations,
  '9999_test_counters': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('counters')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('n', 'integer', (c) => c.notNull())
        .addColumn('big', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
};

interface Target {
  open: () => Promise<DbHandle<TestDb>>;
  cleanup: () => Promise<void>;
}

function dbContract(kind: 'pglite' | 'postgres', makeTarget: () => Promise<Target>) {
  let target: Target;
  let handle: DbHandle<TestDb>;

  beforeAll(async () => {
    target = await makeTarget();
    handle = await target.open();
  });
  afterAll(async () => {
    await handle?.close();
    await target?.cleanup();
  });

  it(`opens the ${kind} adapter and runs every migration`, async () => {
    expect(handle.kind).toBe(kind);
    await handle.check();
    const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
      handle.db,
    );
    expect(applied.rows.map((r) => r.name)).toEqual(Object.keys(testMigrations).sort());
  });

  it('round-trips arrays, timestamps and bigint counts as numbers', async () => {
    const users = new UsersService(
      handle.db as unknown as Kysely<Database>,
      new TokenService('x'.repeat(32), 60),
    );
    const u = await users.register({ email: 'A@Example.com', password: 'secret-pass', displayName: ' Ann ' });
    expect(u.email).toBe('a@example.com');
    expect(u.displayName).toBe('Ann');
    expect(u.roles).toEqual(['viewer']);
    const updated = await users.setRoles(u.id, ['viewer', 'streamer', 'streamer']);
    expect(updated.roles).toEqual(['viewer', 'streamer']);
    const { count } = await handle.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll().as('count'))
      .executeTakeFirstOrThrow();
    expect(count).toBe(1);
    await handle.db
      .insertInto('counters')
      .values({ id: 'big', n: 0, big: 2 ** 40 })
      .execute();
    const big = await handle.db
      .selectFrom('counters')
      .select('big')
      .where('id', '=', 'big')
      .executeTakeFirstOrThrow();
    expect(big.big).toBe(2 ** 40);
  });

  it('rejects a duplicate email with EMAIL_TAKEN', async () => {
    const users = new UsersService(
      handle.db as unknown as Kysely<Database>,
      new TokenService('x'.repeat(32), 60),
    );
    await expect(
      users.register({ email: 'a@EXAMPLE.com', password: 'another-pass', displayName: 'B' }),
    ).rejects.toSatisfy((e) => e instanceof AppError && e.code === 'EMAIL_TAKEN');
  });

  it('runs a statement marked preparedAs with new values each time (named once per connection on PostgreSQL)', async () => {
    const prepared = await handle.db.transaction().execute(async (trx) => {
      for (const [id, n] of [
        ['prep-a', 1],
        ['prep-b', 2],
        ['prep-a', 3],
      ] as const)
        await sql`${preparedAs('test_counter_upsert')} insert into counters (id, n) values (${id}, ${n})
          on conflict (id) do update set n = counters.n + excluded.n`.execute(trx);
      // Same connection as the statements above: its prepared statements are visible here.
      return sql<{ name: string }>`select name from pg_prepared_statements`.execute(trx);
    });
    const rows = await handle.db
      .selectFrom('counters')
      .select(['id', 'n'])
      .where('id', 'like', 'prep-%')
      .orderBy('id')
      .execute();
    expect(rows).toEqual([
      { id: 'prep-a', n: 4 },
      { id: 'prep-b', n: 2 },
    ]);
    expect(prepared.rows.map((r) => r.name)).toEqual(kind === 'postgres' ? ['test_counter_upsert'] : []);
    expect(() => preparedAs('Bad Name')).toThrow(RangeError);
    await handle.db.deleteFrom('counters').where('id', 'like', 'prep-%').execute();
  });

  it('rolls back a failed transaction and keeps a committed one', async () => {
    await expect(
      handle.db.transaction().execute(async (trx) => {
        await trx.insertInto('counters').values({ id: 'rolled', n: 1 }).execute();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await handle.db.transaction().execute(async (trx) => {
      await trx.insertInto('counters').values({ id: 'kept', n: 1 }).execute();
    });
    const ids = await handle.db.selectFrom('counters').select('id').orderBy('id').execute();
    expect(ids.map((r) => r.id)).toEqual(['big', 'kept']);
  });

  it('serialises 100 concurrent read-modify-write transactions without losing an update', async () => {
    await handle.db.insertInto('counters').values({ id: 'c', n: 0 }).execute();
    await Promise.all(
      Array.from({ length: 100 }, () =>
        handle.db.transaction().execute(async (trx) => {
          const row = await trx
            .selectFrom('counters')
            .select('n')
            .where('id', '=', 'c')
            .forUpdate()
            .executeTakeFirstOrThrow();
          await trx
            .updateTable('counters')
            .set({ n: row.n + 1 })
            .where('id', '=', 'c')
            .execute();
        }),
      ),
    );
    const row = await handle.db
      .selectFrom('counters')
      .select('n')
      .where('id', '=', 'c')
      .executeTakeFirstOrThrow();
    expect(row.n).toBe(100);
  });

  it('keeps data across a close and reopen, and does not re-run migrations', async () => {
    await handle.close();
    handle = await target.open();
    const row = await handle.db
      .selectFrom('counters')
      .select('n')
      .where('id', '=', 'c')
      .executeTakeFirstOrThrow();
    expect(row.n).toBe(100);
    const user = await handle.db.selectFrom('users').select('email').executeTakeFirstOrThrow();
    expect(user.email).toBe('a@example.com');
  });
}

describe('Db port (pglite)', () => {
  dbContract('pglite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lcs-db-'));
    return {
      open: () => openDb<TestDb>({ dataDir: dir, migrations: testMigrations }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  });

  it('refuses a data directory held by another live process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lcs-db-lock-'));
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'pglite.lock'), String(process.ppid));
    await expect(openDb({ dataDir: dir, migrations })).rejects.toThrow(/in use by process/);
    rmSync(dir, { recursive: true, force: true });
  });
});

await describeWithService('Db port (postgres)', probePostgres, () => {
  dbContract('postgres', async () => {
    const { url, drop } = await createTestDatabase();
    return {
      open: () => openDb<TestDb>({ url, dataDir: '/nonexistent', migrations: testMigrations }),
      cleanup: drop,
    };
  });
});
