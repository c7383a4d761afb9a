/**
 * The whole relational schema, composed from each domain module's tables, and
 * every module's migrations in the order they apply.
 */
import type { Migration } from 'kysely';
import { authMigrations } from './auth/auth-migrations.js';
import type { AuthTables } from './auth/auth-tables.js';

export type Database = AuthTables;

/** Names are globally ordered by their numeric prefix; a module never reuses another's number. */
export const migrations: Record<string, Migration> = {
  ...authMigrations,
};
