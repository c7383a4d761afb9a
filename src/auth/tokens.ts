/**
 * Access tokens: HS256 JWTs carrying the user's id, roles and display name,
 * verified without a database round trip (HTTP and WebSocket alike).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SignJWT } from 'jose';
import { AppError } from '../platform/errors.js';
import { type AuthUser, ROLES, type Role } from './permissions.js';

const ISSUER = 'live-commerce-server';
/** Verified tokens kept in memory; a hot route sees the same few thousand tokens again and again. */
const CACHE_SIZE = 20_000;

interface CachedToken {
  user: AuthUser;
  expiresAtMs: number;
}

export class TokenService {
  private readonly key: Uint8Array;
  private readonly cache = new Map<string, CachedToken>();

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

  /**
   * Verifies a token; throws TOKEN_EXPIRED or TOKEN_INVALID. HS256 is checked
   * with node:crypto synchronously (the WebCrypto path costs more than a whole
   * flash-sale purchase), and verified tokens are cached until they expire.
   */
  async verify(token: string): Promise<AuthUser> {
    return this.verifySync(token);
  }

  verifySync(token: string): AuthUser {
    const cached = this.cache.get(token);
    if (cached) {
      if (cached.expiresAtMs > Date.now()) return cached.user;
      this.cache.delete(token);
      throw new AppError('TOKEN_EXPIRED');
    }
    const parts = token.split('.');
    if (parts.length !== 3 || token.length > 4096) throw new AppError('TOKEN_INVALID');
    const [header, payload, signature] = parts as [string, string, string];
    const expected = createHmac('sha256', this.key).update(`${header}.${payload}`).digest();
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new AppError('TOKEN_INVALID');
    let claims: {
      alg?: unknown;
      sub?: unknown;
      iss?: unknown;
      exp?: unknown;
      nbf?: unknown;
      roles?: unknown;
      name?: unknown;
    };
    try {
      const h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown };
      claims = { ...JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')), alg: h.alg };
    } catch {
      throw new AppError('TOKEN_INVALID');
    }
    const now = Date.now() / 1000;
    if (
      claims.alg !== 'HS256' ||
      claims.iss !== ISSUER ||
      typeof claims.sub !== 'string' ||
      typeof claims.exp !== 'number'
    )
      throw new AppError('TOKEN_INVALID');
    if (typeof claims.nbf === 'number' && claims.nbf > now) throw new AppError('TOKEN_INVALID');
    if (claims.exp <= now) throw new AppError('TOKEN_EXPIRED');
    const roles = Array.isArray(claims.roles)
      ? claims.roles.filter((r): r is Role => (ROLES as readonly unknown[]).includes(r))
      : [];
    if (roles.length === 0) throw new AppError('TOKEN_INVALID');
    const user: AuthUser = {
      id: claims.sub,
      roles,
      displayName: typeof claims.name === 'string' ? claims.name : '',
    };
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(token, { user, expiresAtMs: claims.exp * 1000 });
    return user;
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
