/**
 * Access tokens: HS256 JWTs carrying the user's id, roles and display name,
 * verified without a database round trip (HTTP and WebSocket alike).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { AppError } from '../platform/errors.js';
import { type AuthUser, ROLES, type Role } from './permissions.js';

const ISSUER = 'live-commerce-server';

export class TokenService {
  private readonly key: Uint8Array;

  /**
   * @param secret HS256 secret (32+ characters).
   * @param ttlSeconds lifetime of issued tokens.
   */
  constructor(
    secret: string,
    private readonly ttlSeconds: number,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  async issue(user: AuthUser): Promise<{ token: string; expiresAt: Date }> {
    const expiresAt = new Date(Date.now() + this.ttlSeconds * 1000);
    const token = await new SignJWT({ roles: user.roles, name: user.displayName })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(user.id)
      .setIssuer(ISSUER)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.key);
    return { token, expiresAt };
  }

  /** Verifies a token; throws TOKEN_EXPIRED or TOKEN_INVALID. */
  async verify(token: string): Promise<AuthUser> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, algorithms: ['HS256'] });
      const roles = Array.isArray(payload.roles)
        ? payload.roles.filter((r): r is Role => (ROLES as readonly unknown[]).includes(r))
        : [];
      if (typeof payload.sub !== 'string' || roles.length === 0) throw new AppError('TOKEN_INVALID');
      return { id: payload.sub, roles, displayName: typeof payload.name === 'string' ? payload.name : '' };
    } catch (err) {
      if (err instanceof AppError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new AppError('TOKEN_EXPIRED');
      throw new AppError('TOKEN_INVALID');
    }
  }
}

/**
 * The configured secret, or one generated once and kept in DATA_DIR so tokens
 * survive restarts of a development server. `generated` tells the caller to warn.
 */
export function resolveJwtSecret(
  configured: string | undefined,
  dataDir: string,
): { secret: string; generated: boolean } {
  if (configured) return { secret: configured, generated: false };
  const file = join(dataDir, 'jwt-secret');
  if (existsSync(file)) return { secret: readFileSync(file, 'utf8').trim(), generated: true };
  mkdirSync(dirname(file), { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, secret, { mode: 0o600 });
  return { secret, generated: true };
}
