import type { ColumnType, Generated } from 'kysely';
import type { Role } from './permissions.js';

export interface UsersTable {
  id: string;
  /** Stored lower-cased; unique. */
  email: string;
  display_name: string;
  password_hash: string;
  roles: Role[];
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface AuthTables {
  users: UsersTable;
}
