/**
 * Keyset paging shared by the commerce lists. Rows are ordered newest first
 * (`created_at desc, id desc`); the cursor names the last row of a page and
 * the next page starts strictly after it, so inserts between requests never
 * shift or repeat rows the way OFFSET paging would.
 *
 * The timestamp travels as text formatted by PostgreSQL (UTC, microsecond
 * precision, independent of the server's DateStyle) rather than a JS Date,
 * which would drop the microseconds and make rows created within one
 * millisecond skip or repeat across pages.
 */
import { type Expression, type RawBuilder, type SqlBool, sql } from 'kysely';
import { AppError } from '../../platform/errors.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}

export interface PageCursor {
  /** `created_at` of the last row of the previous page, ISO 8601 UTC with microseconds. */
  createdAt: string;
  id: string;
}

export interface Page<T> {
  items: T[];
  /** Pass as `cursor` to get the next page; null on the last page. */
  nextCursor: string | null;
}

/** Opaque to clients: base64url of a small JSON tuple. */
export function encodeCursor(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify([cursor.createdAt, cursor.id])).toString('base64url');
}

/** Throws VALIDATION_FAILED (field `cursor`) for anything this server did not issue. */
export function decodeCursor(cursor: string): PageCursor {
  const invalid = () => new AppError('VALIDATION_FAILED', 'cursor is invalid', { field: 'cursor' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw invalid();
  const [createdAt, id] = parsed as unknown[];
  if (typeof createdAt !== 'string' || typeof id !== 'string' || !isUuid(id)) throw invalid();
  // Checked here so a forged cursor is a 400, not a cast error inside the query.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/.test(createdAt)) throw invalid();
  return { createdAt, id };
}

/** `(created_at, id) < (cursor)` for a table alias, matching `order by created_at desc, id desc`. */
export function afterCursor(alias: string, cursor: PageCursor): Expression<SqlBool> {
  return sql<SqlBool>`(${sql.ref(`${alias}.created_at`)}, ${sql.ref(`${alias}.id`)}) < (${cursor.createdAt}::timestamptz, ${cursor.id}::uuid)`;
}

/** Selects the exact cursor timestamp of a row; alias it `cursor_ts`. */
export function cursorTimestamp(alias: string): RawBuilder<string> {
  return sql<string>`to_char(${sql.ref(`${alias}.created_at`)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

/**
 * Turns `limit + 1` fetched rows into a page: the extra row only says that
 * another page exists.
 */
export function toPage<R extends { id: string; cursor_ts: string }, T>(
  rows: R[],
  limit: number,
  map: (row: R) => T,
): Page<T> {
  const hasMore = rows.length > limit;
  const pageRows = hasMore ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    items: pageRows.map(map),
    nextCursor: hasMore && last ? encodeCursor({ createdAt: last.cursor_ts, id: last.id }) : null,
  };
}

/** Page sizes: default 20, at most 100. */
export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new AppError('VALIDATION_FAILED', 'limit must be an integer from 1 to 100', { field: 'limit' });
  return limit;
}
