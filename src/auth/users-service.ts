/**
 * Users: registration, login, roles. Holds the rules; routes stay thin.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { Database } from '../database.js';
import { AppError } from '../platform/errors.js';
import type { UsersTable } from './auth-tables.js';
import { hashPassword, verifyPassword } from './passwords.js';
import type { AuthUser, Role } from './permissions.js';
import type { TokenService } from './tokens.js';

export interface PublicUser {
  id: string;
  email: string;
  displayName: string;
  roles: Role[];
  createdAt: string;
}

export interface Session {
  user: PublicUser;
  token: string;
  expiresAt: string;
}

/** A verifier that costs the same as a real one, so unknown emails take as long as wrong passwords. */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

function toPublic(row: Selectable<UsersTable>): PublicUser {
  return {
    id: row.id,
    email: row.email,
    displayName: row.display_name,
    roles: row.roles,
    createdAt: row.created_at.toISOString(),
  };
}

function toAuthUser(user: PublicUser): AuthUser {
  return { id: user.id, roles: user.roles, displayName: user.displayName };
}

export class UsersService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly tokens: TokenService,
  ) {}

  async register(input: {
    email: string;
    password: string;
    displayName: string;
    roles?: Role[];
  }): Promise<PublicUser> {
    const email = input.email.trim().toLowerCase();
    const passwordHash = await hashPassword(input.password);
    const row = await this.db
      .insertInto('users')
      .values({
        id: randomUUID(),
        email,
        display_name: input.displayName.trim(),
        password_hash: passwordHash,
        roles: input.roles ?? ['viewer'],
      })
      .onConflict((oc) => oc.column('email').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new AppError('EMAIL_TAKEN');
    return toPublic(row);
  }

  async login(emailInput: string, password: string): Promise<Session> {
    const row = await this.db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', emailInput.trim().toLowerCase())
      .executeTakeFirst();
    const ok = await verifyPassword(password, row?.password_hash ?? DUMMY_HASH);
    if (!row || !ok) throw new AppError('INVALID_CREDENTIALS');
    return this.startSession(toPublic(row));
  }

  async startSession(user: PublicUser): Promise<Session> {
    const { token, expiresAt } = await this.tokens.issue(toAuthUser(user));
    return { user, token, expiresAt: expiresAt.toISOString() };
  }

  async get(id: string): Promise<PublicUser> {
    const row = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new AppError('USER_NOT_FOUND');
    return toPublic(row);
  }

  async setRoles(id: string, roles: Role[]): Promise<PublicUser> {
    const unique = [...new Set(roles)];
    const row = await this.db
      .updateTable('users')
      .set({ roles: unique, updated_at: new Date() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new AppError('USER_NOT_FOUND');
    return toPublic(row);
  }

  /** Creates the bootstrap admin from configuration unless a user with that email exists. */
  async ensureAdmin(email: string, password: string): Promise<boolean> {
    try {
      await this.register({ email, password, displayName: 'Administrator', roles: ['admin'] });
      return true;
    } catch (err) {
      if (err instanceof AppError && err.code === 'EMAIL_TAKEN') return false;
      throw err;
    }
  }
}
