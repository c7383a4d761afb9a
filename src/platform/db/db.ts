/**
 * The Db port: the system of record. One SQL dialect (PostgreSQL) through one
 * query builder (Kysely) over two adapters:
 *
 * - `pglite`: PGlite (Postgres in WASM) with its files under DATA_DIR, the
 *   embedded default. One process at a time; a lock file enforces it.
 * - `postgres`: a real PostgreSQL server via `pg`, chosen by DATABASE_URL.
 *
 * Kysely was chosen over drizzle-orm because it is a typed SQL builder with no
 * code generation or schema DSL to keep in sync, its migrations are plain
 * TypeScript functions that ship with the server, and a dialect is a small
 * class, which is what let PGlite sit behind the same interface as `pg`.
 *
 * Migrations run on open; Kysely's migrator takes a lock, so several
 * instances starting at once against one PostgreSQL apply each migration once.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import {
  Kysely,
  type Migration,
  Migrator,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  sql,
} from 'kysely';
import pg from 'pg';
import { PGliteDialect } from './pglite-dialect.js';

/** Type ids whose text form is parsed to a JS number by both adapters (int8/bigint: counts, sums). */
const INT8_OID = 20;

export interface OpenDbOptions {
  /** PostgreSQL URL; when absent the embedded PGlite database is used. */
  url?: string;
  /** Directory for PGlite files (the database lives in `<dataDir>/pglite`). */
  dataDir: string;
  /** Maximum connections for the `pg` pool. */
  poolSize?: number;
  /** Migrations by name; applied in name order. */
  migrations: Record<string, Migration>;
}

export interface DbHandle<DB> {
  readonly kind: 'pglite' | 'postgres';
  readonly db: Kysely<DB>;
  /** Resolves when a trivial query succeeds; rejects with the reason otherwise. */
  check(): Promise<void>;
  /** Closes the pool / the embedded database. Idempotent. */
  close(): Promise<void>;
}

/**
 * Marks a hot statement for a server-side prepared statement on PostgreSQL:
 * `sql\`${preparedAs('name')} insert ...\``. The SQL text must be the same on
 * every execution (values go in parameters, arrays included). Each pooled
 * connection then parses and plans it once instead of on every execution
 * (about 250 µs of PostgreSQL CPU per statement measured here). A SQL
 * comment, so PGlite and logs see ordinary SQL.
 */
export function preparedAs(name: string) {
  if (!/^[a-z][a-z0-9_]*$/.test(name))
    throw new RangeError(`prepared statement name ${name} must be snake_case`);
  return sql.raw(`/* prepared:${name} */`);
}

const PREPARED_MARK = /^\/\* prepared:([a-z][a-z0-9_]*) \*\//;

/**
 * The pool as Kysely's driver sees it, with one difference: a query whose SQL
 * starts with a `preparedAs` mark is sent as a named statement (pg parses a
 * name once per connection). Clients are wrapped once, so the driver's
 * per-client connection cache keeps working.
 */
function preparingPool(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let face = wrapped.get(client);
      if (!face) {
        // Kysely calls query(sql, parameters) or query(cursor); only the first can be named.
        const query = (text: unknown, values?: readonly unknown[]): unknown => {
          if (typeof text !== 'string') return client.query(text as pg.Submittable);
          const name = PREPARED_MARK.exec(text)?.[1];
          return name
            ? client.query({ name, text, values: values as unknown[] })
            : client.query(text, values as unknown[]);
        };
        face = {
          query: query as unknown as PostgresPoolClient['query'],
          release: (destroy?: boolean) => client.release(destroy),
        };
        wrapped.set(client, face);
      }
      return face;
    },
    end: () => pool.end(),
  };
}

/** Redacts the password from a connection URL for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}

export async function openDb<DB>(options: OpenDbOptions): Promise<DbHandle<DB>> {
  const handle = options.url
    ? openPostgres<DB>(options.url, options.poolSize ?? 10)
    : await openPglite<DB>(options.dataDir);
  try {
    await migrate(handle.db, options.migrations);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

function openPostgres<DB>(url: string, poolSize: number): DbHandle<DB> {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: 5000,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) });
  let closed = false;
  return {
    kind: 'postgres',
    db,
    async check() {
      try {
        await sql`select 1`.execute(db);
      } catch (err) {
        throw new Error(`postgres at ${redactUrl(url)} unreachable: ${(err as Error).message}`);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

async function openPglite<DB>(dataDir: string): Promise<DbHandle<DB>> {
  const dir = join(dataDir, 'pglite');
  mkdirSync(dir, { recursive: true });
  const releaseLock = takeDirLock(join(dataDir, 'pglite.lock'));
  let pgl: PGlite;
  try {
    pgl = new PGlite({ dataDir: dir, parsers: { [INT8_OID]: (v: string) => Number(v) } });
    await pgl.waitReady;
  } catch (err) {
    releaseLock();
    throw err;
  }
  const db = new Kysely<DB>({ dialect: new PGliteDialect(pgl) });
  let closed = false;
  return {
    kind: 'pglite',
    db,
    async check() {
      if (pgl.closed) throw new Error('embedded database is closed');
      await sql`select 1`.execute(db);
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
      releaseLock();
    },
  };
}

/**
 * PGlite must not be opened by two processes at once (it would corrupt the
 * files). A pid file guards the directory; a stale one (dead pid) is taken over.
 */
function takeDirLock(lockFile: string): () => void {
  if (existsSync(lockFile)) {
    const pid = Number(readFileSync(lockFile, 'utf8').trim());
    if (pid && pid !== process.pid && isAlive(pid))
      throw new Error(
        `the embedded database in ${lockFile.replace(/\.lock$/, '')} is in use by process ${pid}; stop it or use another DATA_DIR`,
      );
  }
  writeFileSync(lockFile, String(process.pid));
  return () => rmSync(lockFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function migrate<DB>(db: Kysely<DB>, migrations: Record<string, Migration>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    // No failed migration means the migrator could not even read its state (e.g. no connection).
    const failed = results?.find((r) => r.status === 'Error');
    const what = failed ? `database migration ${failed.migrationName}` : 'database migrations';
    throw new Error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}
