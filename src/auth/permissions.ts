/**
 * Roles and what they may do. Every permission check in the server goes
 * through `can` / `assertCan`, so the whole policy is this one table.
 */
import { AppError } from '../platform/errors.js';

export const ROLES = ['viewer', 'streamer', 'agent', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = {
  /** Create and edit products and flash sales. */
  'catalog:write': ['streamer', 'admin'],
  /** Create, schedule and run live streams. */
  'streams:manage': ['streamer', 'admin'],
  /** Delete messages, mute and ban in public rooms. */
  'chat:moderate': ['streamer', 'admin'],
  /** Take support calls and see caller context. */
  'calls:answer': ['agent', 'admin'],
  /** See every agent's call analytics. */
  'calls:read-any': ['admin'],
  /** Buy, chat, watch. Every signed-in user. */
  'shop:buy': ['viewer', 'streamer', 'agent', 'admin'],
  /** See and change other users and their roles. */
  'users:manage': ['admin'],
  /** See any order and analytics. */
  'orders:read-any': ['admin'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

/** The authenticated caller, as carried by an access token. */
export interface AuthUser {
  id: string;
  roles: readonly Role[];
  displayName: string;
}

export function can(user: AuthUser | null | undefined, permission: Permission): boolean {
  if (!user) return false;
  const allowed: readonly Role[] = PERMISSIONS[permission];
  return user.roles.some((role) => allowed.includes(role));
}

/** Throws UNAUTHENTICATED without a user, FORBIDDEN when the user lacks the permission. */
export function assertCan(user: AuthUser | null | undefined, permission: Permission): AuthUser {
  if (!user) throw new AppError('UNAUTHENTICATED');
  if (!can(user, permission))
    throw new AppError('FORBIDDEN', `This needs the ${permission} permission`, { permission });
  return user;
}

/** Owners may act on their own resources; others need the permission. */
export function assertOwnerOr(
  user: AuthUser | null | undefined,
  ownerId: string,
  permission: Permission,
): AuthUser {
  if (!user) throw new AppError('UNAUTHENTICATED');
  if (user.id === ownerId) return user;
  return assertCan(user, permission);
}
