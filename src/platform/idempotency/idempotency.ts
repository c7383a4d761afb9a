/**
 * Idempotency for mutating requests. The outcome of a request is stored with
 * its key in the same transaction as the change it made, so a retry either
 * sees the stored outcome or (if the first attempt rolled back) runs again;
 * concurrent attempts with one key wait on the key's unique index and then
 * read the winner's outcome. No window exists in which two can both act.
 */
import { createHash } from 'node:crypto';
import { type ColumnType, type Generated, type Kysely, type Migration, sql, type Transaction } from 'kysely';
import { AppError } from '../errors.js';

export interface IdempotencyKeysTable {
  /** What kind of request (e.g. `orders.create`); keys are unique per scope and user. */
  scope: string;
  user_id: string;
  key: string;
  /** Hash of the request's meaningful content; a reuse with other content is refused. */
  request_hash: string;
  status_code: number;
  response: ColumnType<unknown, string, string>;
  created_at: Generated<Date>;
}

export interface IdempotencyTables {
  idempotency_keys: IdempotencyKeysTable;
}

export const idempotencyMigrations: Record<string, Migration> = {
  '0010_idempotency_keys': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('user_id', 'uuid', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        .addColumn('status_code', 'integer', (c) => c.notNull())
        .addColumn('response', 'jsonb', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['scope', 'user_id', 'key'])
        .execute();
      await db.schema
        .createIndex('idempotency_keys_created')
        .on('idempotency_keys')
        .column('created_at')
        .execute();
    },
  },
};

/** Keys are client-chosen: 8-200 printable characters (UUIDs fit). */
const KEY_PATTERN = /^[A-Za-z0-9._:-]{8,200}$/;

export function parseIdempotencyKey(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) throw new AppError('IDEMPOTENCY_KEY_REQUIRED');
  if (!KEY_PATTERN.test(value))
    throw new AppError('VALIDATION_FAILED', 'Idempotency-Key must be 8-200 characters of [A-Za-z0-9._:-]', {
      location: 'headers',
      field: 'idempotency-key',
      rule: 'pattern',
    });
  return value;
}

export function hashRequest(payload: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(payload ?? null))
    .digest('base64url');
}

export interface IdempotentOutcome<T> {
  statusCode: number;
  body: T;
  /** True when this is a stored outcome of an earlier attempt. */
  replayed: boolean;
}

/**
 * Runs `work` in a transaction at most once per (scope, user, key). Errors
 * thrown by `work` roll everything back, so the key stays free for a retry.
 */
export async function runIdempotent<DB extends IdempotencyTables, T>(
  db: Kysely<DB>,
  id: { scope: string; userId: string; key: string; requestHash: string },
  work: (trx: Transaction<DB>) => Promise<{ statusCode: number; body: T }>,
): Promise<IdempotentOutcome<T>> {
  const kdb = db as unknown as Kysely<IdempotencyTables>;
  const stored = await readStored<T>(kdb, id);
  if (stored) return stored;
  try {
    return await db.transaction().execute(async (trx) => {
      const t = trx as unknown as Transaction<IdempotencyTables>;
      // Claim the key first: a concurrent attempt blocks here until we commit or roll back.
      const claimed = await t
        .insertInto('idempotency_keys')
        .values({
          scope: id.scope,
          user_id: id.userId,
          key: id.key,
          request_hash: id.requestHash,
          status_code: 0,
          response: 'null',
        })
        .onConflict((oc) => oc.columns(['scope', 'user_id', 'key']).doNothing())
        .returning('key')
        .executeTakeFirst();
      if (!claimed) throw new KeyTakenSignal();
      const outcome = await work(trx);
      await t
        .updateTable('idempotency_keys')
        .set({ status_code: outcome.statusCode, response: JSON.stringify(outcome.body) })
        .where('scope', '=', id.scope)
        .where('user_id', '=', id.userId)
        .where('key', '=', id.key)
        .execute();
      return { ...outcome, replayed: false };
    });
  } catch (err) {
    if (!(err instanceof KeyTakenSignal)) throw err;
    const winner = await readStored<T>(kdb, id);
    if (!winner)
      throw new AppError('CONFLICT', 'A request with this Idempotency-Key is still in progress; retry');
    return winner;
  }
}

class KeyTakenSignal extends Error {}

async function readStored<T>(
  db: Kysely<IdempotencyTables>,
  id: { scope: string; userId: string; key: string; requestHash: string },
): Promise<IdempotentOutcome<T> | undefined> {
  const row = await db
    .selectFrom('idempotency_keys')
    .select(['request_hash', 'status_code', 'response'])
    .where('scope', '=', id.scope)
    .where('user_id', '=', id.userId)
    .where('key', '=', id.key)
    .executeTakeFirst();
  if (!row || row.status_code === 0) return undefined;
  if (row.request_hash !== id.requestHash) throw new AppError('IDEMPOTENCY_KEY_REUSED');
  return { statusCode: row.status_code, body: row.response as T, replayed: true };
}
