import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../src/auth/passwords.js';
import { assertCan, assertOwnerOr, can, PERMISSIONS, ROLES } from '../src/auth/permissions.js';
import { TokenService } from '../src/auth/tokens.js';
import { AppError } from '../src/platform/errors.js';
import { createTestApp, type TestApp } from './support/app.js';

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return (err as AppError).code;
  }
  return 'none';
};

describe('permissions', () => {
  const user = (...roles: Array<(typeof ROLES)[number]>) => ({ id: 'u1', roles, displayName: 'U' });

  it('every permission names only known roles, and admins hold all but none is role-less', () => {
    for (const [perm, roles] of Object.entries(PERMISSIONS)) {
      expect(roles.length, perm).toBeGreaterThan(0);
      for (const r of roles) expect(ROLES).toContain(r);
      expect(roles, perm).toContain('admin');
    }
  });

  it('grants by role', () => {
    expect(can(user('viewer'), 'shop:buy')).toBe(true);
    expect(can(user('viewer'), 'catalog:write')).toBe(false);
    expect(can(user('streamer'), 'catalog:write')).toBe(true);
    expect(can(user('agent'), 'calls:answer')).toBe(true);
    expect(can(user('streamer'), 'calls:answer')).toBe(false);
    expect(can(user('viewer', 'agent'), 'calls:answer')).toBe(true);
    expect(can(null, 'shop:buy')).toBe(false);
  });

  it('assertCan distinguishes anonymous from forbidden', () => {
    expect(codeOf(() => assertCan(null, 'shop:buy'))).toBe('UNAUTHENTICATED');
    expect(codeOf(() => assertCan(user('viewer'), 'users:manage'))).toBe('FORBIDDEN');
    expect(assertCan(user('admin'), 'users:manage').id).toBe('u1');
  });

  it('assertOwnerOr lets owners through and checks others', () => {
    expect(assertOwnerOr(user('viewer'), 'u1', 'users:manage').id).toBe('u1');
    expect(codeOf(() => assertOwnerOr(user('viewer'), 'u2', 'users:manage'))).toBe('FORBIDDEN');
  });
});

describe('passwords', () => {
  it('hash and verify, with a salt per hash', async () => {
    const a = await hashPassword('correct horse');
    const b = await hashPassword('correct horse');
    expect(a).not.toBe(b);
    expect(a).not.toContain('correct');
    expect(await verifyPassword('correct horse', a)).toBe(true);
    expect(await verifyPassword('wrong horse', a)).toBe(false);
    expect(await verifyPassword('x', 'garbage')).toBe(false);
  });
});

describe('tokens', () => {
  const tokens = new TokenService('s'.repeat(32), 60);

  it('round-trips a user', async () => {
    const { token } = await tokens.issue({ id: 'u1', roles: ['streamer'], displayName: 'S' });
    expect(await tokens.verify(token)).toEqual({ id: 'u1', roles: ['streamer'], displayName: 'S' });
  });

  it('rejects tampered, foreign and expired tokens with distinct codes', async () => {
    const { token } = await tokens.issue({ id: 'u1', roles: ['viewer'], displayName: 'V' });
    const [h, p, s] = token.split('.');
    const forged = JSON.parse(Buffer.from(p!, 'base64url').toString());
    forged.roles = ['admin'];
    const tampered = `${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`;
    await expect(tokens.verify(tampered)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const other = new TokenService('o'.repeat(32), 60);
    await expect(other.verify(token)).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    await expect(tokens.verify('not.a.jwt')).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    const { SignJWT } = await import('jose');
    const expired = await new SignJWT({ roles: ['viewer'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u1')
      .setIssuer('live-commerce-server')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 10)
      .sign(new TextEncoder().encode('s'.repeat(32)));
    await expect(tokens.verify(expired)).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
  });
});

describe('user API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ AUTH_RATE_LIMIT_PER_MINUTE: '5' });
  });
  afterAll(async () => t?.close());

  const post = (url: string, body: unknown, token?: string, ip = '10.0.0.1') =>
    t.app.inject({
      method: 'POST',
      url,
      payload: body as object,
      remoteAddress: ip,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  it('registers, logs in and answers /me', async () => {
    const reg = await post(
      '/v1/auth/register',
      { email: 'Zoe@Example.com', password: 'password-1', displayName: 'Zoe' },
      undefined,
      '10.0.1.1',
    );
    expect(reg.statusCode).toBe(201);
    expect(reg.json().user).toMatchObject({ email: 'zoe@example.com', roles: ['viewer'] });
    expect(reg.json().user.passwordHash).toBeUndefined();
    const login = await post(
      '/v1/auth/login',
      { email: 'zoe@example.com', password: 'password-1' },
      undefined,
      '10.0.1.1',
    );
    expect(login.statusCode).toBe(200);
    const me = await t.app.inject({
      url: '/v1/auth/me',
      headers: { authorization: `Bearer ${login.json().token}` },
    });
    expect(me.json()).toMatchObject({ email: 'zoe@example.com', displayName: 'Zoe' });
  });

  it('refuses a duplicate email with 409 EMAIL_TAKEN', async () => {
    const res = await post(
      '/v1/auth/register',
      { email: 'zoe@example.com', password: 'password-2', displayName: 'Z2' },
      undefined,
      '10.0.1.2',
    );
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('EMAIL_TAKEN');
  });

  it('wrong password and unknown email are the same 401', async () => {
    const a = await post(
      '/v1/auth/login',
      { email: 'zoe@example.com', password: 'nope-nope' },
      undefined,
      '10.0.2.1',
    );
    const b = await post(
      '/v1/auth/login',
      { email: 'nobody@example.com', password: 'nope-nope' },
      undefined,
      '10.0.2.1',
    );
    expect(a.statusCode).toBe(401);
    expect(a.json()).toEqual(b.json());
    expect(a.json().code).toBe('INVALID_CREDENTIALS');
  });

  it('rate-limits login attempts per IP with 429 RATE_LIMITED', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 7; i++)
      codes.push(
        (await post('/v1/auth/login', { email: 'x@example.com', password: 'pw' }, undefined, '10.9.9.9'))
          .statusCode,
      );
    expect(codes.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(codes.slice(5)).toEqual([429, 429]);
    const res = await post(
      '/v1/auth/login',
      { email: 'x@example.com', password: 'pw' },
      undefined,
      '10.9.9.9',
    );
    expect(res.json().code).toBe('RATE_LIMITED');
    expect(
      (await post('/v1/auth/login', { email: 'x@example.com', password: 'pw' }, undefined, '10.9.9.8'))
        .statusCode,
    ).toBe(401);
  });

  it('requires a token for /me and refuses bad ones', async () => {
    expect((await t.app.inject('/v1/auth/me')).json().code).toBe('UNAUTHENTICATED');
    const bad = await t.app.inject({ url: '/v1/auth/me', headers: { authorization: 'Bearer abc.def.ghi' } });
    expect(bad.statusCode).toBe(401);
    expect(bad.json().code).toBe('TOKEN_INVALID');
    // a bad credential is refused even on a public route
    expect((await t.app.inject({ url: '/healthz', headers: { authorization: 'Bearer x' } })).statusCode).toBe(
      401,
    );
  });

  it('only admins change roles and issue tokens; a role change shows in the next token', async () => {
    const admin = await t.login(['admin']);
    const viewer = await t.login(['viewer']);
    const forbidden = await t.app.inject({
      method: 'PUT',
      url: `/v1/users/${viewer.id}/roles`,
      payload: { roles: ['admin'] },
      headers: { authorization: `Bearer ${viewer.token}` },
    });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().code).toBe('FORBIDDEN');
    // The guard answers before the body is looked at: a viewer learns nothing of the schema.
    const forbiddenGarbage = await t.app.inject({
      method: 'PUT',
      url: '/v1/users/not-a-uuid/roles',
      payload: { nonsense: true },
      headers: { authorization: `Bearer ${viewer.token}` },
    });
    expect(forbiddenGarbage.json().code).toBe('FORBIDDEN');
    const ok = await t.app.inject({
      method: 'PUT',
      url: `/v1/users/${viewer.id}/roles`,
      payload: { roles: ['viewer', 'agent'] },
      headers: { authorization: `Bearer ${admin.token}` },
    });
    expect(ok.json().roles).toEqual(['viewer', 'agent']);
    const issued = await post(`/v1/users/${viewer.id}/tokens`, undefined, admin.token);
    expect(issued.statusCode).toBe(201);
    expect((await t.tokens.verify(issued.json().token)).roles).toEqual(['viewer', 'agent']);
    const bogusRole = await t.app.inject({
      method: 'PUT',
      url: `/v1/users/${viewer.id}/roles`,
      payload: { roles: ['root'] },
      headers: { authorization: `Bearer ${admin.token}` },
    });
    expect(bogusRole.statusCode).toBe(400);
    const missing = await t.app.inject({
      method: 'PUT',
      url: '/v1/users/00000000-0000-4000-8000-000000000000/roles',
      payload: { roles: ['agent'] },
      headers: { authorization: `Bearer ${admin.token}` },
    });
    expect(missing.json().code).toBe('USER_NOT_FOUND');
  });

  it('users see themselves but not others', async () => {
    const a = await t.login();
    const b = await t.login();
    expect(
      (await t.app.inject({ url: `/v1/users/${a.id}`, headers: { authorization: `Bearer ${a.token}` } }))
        .statusCode,
    ).toBe(200);
    expect(
      (await t.app.inject({ url: `/v1/users/${b.id}`, headers: { authorization: `Bearer ${a.token}` } }))
        .statusCode,
    ).toBe(403);
  });

  it('bootstrap admin is created once', async () => {
    expect(await t.users.ensureAdmin('root@example.com', 'admin-password')).toBe(true);
    expect(await t.users.ensureAdmin('root@example.com', 'admin-password')).toBe(false);
    const s = await t.users.login('root@example.com', 'admin-password');
    expect(s.user.roles).toEqual(['admin']);
  });
});

describe('AppError', () => {
  it('carries status from the catalogue', () => {
    const e = new AppError('FORBIDDEN');
    expect(e.statusCode).toBe(403);
    expect(e.toJSON()).toEqual({ code: 'FORBIDDEN', message: 'You are not allowed to do this' });
  });
});
