/**
 * The HTTP surface every module shares: health, readiness, OpenAPI, metrics,
 * error mapping for bad input, media serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/platform/errors.js';
import { createTestApp, type TestApp } from './support/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ BODY_LIMIT_BYTES: '2048' });
});
afterAll(async () => t?.close());

describe('health', () => {
  it('GET /healthz is 200', async () => {
    const res = await t.app.inject('/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz reports every adapter', async () => {
    const res = await t.app.inject('/readyz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'ready',
      checks: {
        db: { kind: 'pglite', ok: true },
        engine: { kind: 'memory', ok: true },
        objectStore: { kind: 'local', ok: true },
      },
    });
  });

  it('GET /readyz is 503 with the reason when an adapter fails', async () => {
    const original = t.engine.check.bind(t.engine);
    t.engine.check = async () => {
      throw new Error('redis at redis://127.0.0.1:1 unreachable: ECONNREFUSED');
    };
    try {
      const res = await t.app.inject('/readyz');
      expect(res.statusCode).toBe(503);
      expect(res.json().checks.engine).toEqual({
        kind: 'memory',
        ok: false,
        error: 'redis at redis://127.0.0.1:1 unreachable: ECONNREFUSED',
      });
    } finally {
      t.engine.check = original;
    }
  });
});

describe('OpenAPI', () => {
  it('serves the document at /docs/json with routes, security and the error catalogue', async () => {
    const res = await t.app.inject('/docs/json');
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/healthz', '/readyz', '/v1/auth/register', '/v1/auth/login']),
    );
    expect(doc.paths['/metrics']).toBeUndefined();
    expect(doc.components.securitySchemes.bearer.scheme).toBe('bearer');
    const errorSchema = doc.components.schemas.Error;
    const code = errorSchema.properties.code;
    const codes = code.enum ?? code.anyOf.map((c: { const: string }) => c.const);
    expect(codes).toEqual(ERROR_CODES);
  });

  it('serves the UI at /docs', async () => {
    const ui = await t.app.inject('/docs');
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toContain('text/html');
    expect(ui.body).toContain('swagger');
  });
});

describe('metrics', () => {
  it('exposes default Node metrics and the HTTP histogram by route pattern', async () => {
    await t.app.inject('/healthz');
    const res = await t.app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('process_cpu_user_seconds_total');
    expect(res.body).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/healthz",status_code="200"\} \d+/,
    );
  });
});

describe('bad input gets a clear 4xx', () => {
  const register = (payload: string, contentType = 'application/json') =>
    t.app.inject({
      method: 'POST',
      url: '/v1/auth/register',
      payload,
      headers: { 'content-type': contentType },
    });

  it('malformed JSON → 400 INVALID_JSON', async () => {
    const res = await register('{"email": ');
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('INVALID_JSON');
  });

  it('empty JSON body → 400', async () => {
    const res = await register('');
    expect(res.statusCode).toBe(400);
    expect(['INVALID_JSON', 'VALIDATION_FAILED']).toContain(res.json().code);
  });

  it('wrong type → 400 VALIDATION_FAILED naming the field', async () => {
    const res = await register(JSON.stringify({ email: 'a@b.co', password: 12345678, displayName: 'A' }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: { field: 'password', location: 'body', rule: 'type' },
    });
  });

  it('missing field → 400 naming it', async () => {
    const res = await register(JSON.stringify({ email: 'a@b.co', password: 'password-1' }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: { field: 'displayName', rule: 'required' },
    });
  });

  it('unknown field → 400 naming it (not silently dropped)', async () => {
    const res = await register(
      JSON.stringify({ email: 'a@b.co', password: 'password-1', displayName: 'A', isAdmin: true }),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: { field: 'isAdmin', rule: 'additionalProperties' },
    });
  });

  it('bad format → 400', async () => {
    const res = await register(
      JSON.stringify({ email: 'not-an-email', password: 'password-1', displayName: 'A' }),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json().details.field).toBe('email');
  });

  it('oversized body → 413 BODY_TOO_LARGE', async () => {
    const res = await register(
      JSON.stringify({ email: 'a@b.co', password: 'x'.repeat(4000), displayName: 'A' }),
    );
    expect(res.statusCode).toBe(413);
    expect(res.json().code).toBe('BODY_TOO_LARGE');
  });

  it('unsupported content type → 415', async () => {
    const res = await register('email=a', 'application/x-www-form-urlencoded');
    expect(res.statusCode).toBe(415);
    expect(res.json().code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('unknown route → 404 ROUTE_NOT_FOUND', async () => {
    const res = await t.app.inject('/v1/nope?x=1');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ code: 'ROUTE_NOT_FOUND', message: 'No route GET /v1/nope' });
  });

  it('bad params → 400, not 500', async () => {
    const { token } = await t.login(['admin']);
    const res = await t.app.inject({
      url: '/v1/users/not-a-uuid',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().details).toMatchObject({ location: 'params', field: 'id' });
  });

  it('U+0000 in a body string, a key, a path parameter or a query → 400 VALIDATION_FAILED, not a database error', async () => {
    const { token } = await t.login(['admin']);
    const nulDisplayName = await register(
      JSON.stringify({ email: 'nul@example.com', password: 'password-1', displayName: 'A\u0000B' }),
    );
    expect(nulDisplayName.statusCode).toBe(400);
    expect(nulDisplayName.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: { location: 'body', field: 'displayName', rule: 'nul' },
    });
    const nulKey = await register('{"a\\u0000":1}');
    expect(nulKey.json()).toMatchObject({ code: 'VALIDATION_FAILED', details: { rule: 'nul' } });
    const nulParam = await t.app.inject({
      url: '/v1/analytics/streams/a%00b/commerce',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(nulParam.json()).toMatchObject({
      code: 'VALIDATION_FAILED',
      details: { location: 'params', field: 'streamId', rule: 'nul' },
    });
    const nulQuery = await t.app.inject({ url: '/v1/products?q=a%00' });
    expect(nulQuery.statusCode).toBe(400);
    expect(nulQuery.json().details).toMatchObject({ location: 'querystring', rule: 'nul' });
    // Text that only spells the escape is ordinary text.
    const spelled = await register(
      JSON.stringify({ email: 'spelled@example.com', password: 'password-1', displayName: 'A\\u0000B' }),
    );
    expect(spelled.statusCode).toBe(201);
  });

  it('garbage in headers and URLs never produces a 500', async () => {
    const attempts = [
      t.app.inject({ url: '/v1/auth/me', headers: { authorization: 'Bearer' } }),
      t.app.inject({ url: '/v1/auth/me', headers: { authorization: 'Basic abc' } }),
      t.app.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${'a'.repeat(5000)}` } }),
      t.app.inject({ url: '/media/%E0%A4%A' }),
      t.app.inject({ url: '/media/../../etc/passwd' }),
      t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: '[]',
        headers: { 'content-type': 'application/json' },
      }),
      t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: 'null',
        headers: { 'content-type': 'application/json' },
      }),
      t.app.inject({
        method: 'POST',
        url: '/v1/auth/login',
        payload: '{"__proto__":{"x":1}}',
        headers: { 'content-type': 'application/json' },
      }),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, res.body).toBeLessThan(500);
      expect(ERROR_CODES).toContain(res.json().code);
    }
  });
});

describe('media', () => {
  it('serves local objects with stored content type, cache headers, ETag and ranges', async () => {
    await t.objectStore.put('live/s1/index.m3u8', '#EXTM3U\n', { cacheControl: 'public, max-age=1' });
    await t.objectStore.put('live/s1/seg-00001.ts', Buffer.alloc(1000, 7));
    const playlist = await t.app.inject('/media/live/s1/index.m3u8');
    expect(playlist.statusCode).toBe(200);
    expect(playlist.headers['content-type']).toBe('application/vnd.apple.mpegurl');
    expect(playlist.headers['cache-control']).toBe('public, max-age=1');
    expect(playlist.headers['x-content-type-options']).toBe('nosniff');
    expect(playlist.body).toBe('#EXTM3U\n');

    const seg = await t.app.inject('/media/live/s1/seg-00001.ts');
    expect(seg.headers['content-type']).toBe('video/mp2t');
    expect(seg.rawPayload.length).toBe(1000);
    const etag = seg.headers.etag as string;
    expect(etag).toBeTruthy();
    const again = await t.app.inject({
      url: '/media/live/s1/seg-00001.ts',
      headers: { 'if-none-match': etag },
    });
    expect(again.statusCode).toBe(304);

    const part = await t.app.inject({
      url: '/media/live/s1/seg-00001.ts',
      headers: { range: 'bytes=10-19' },
    });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe('bytes 10-19/1000');
    expect(part.rawPayload.length).toBe(10);
    const tail = await t.app.inject({ url: '/media/live/s1/seg-00001.ts', headers: { range: 'bytes=-100' } });
    expect(tail.headers['content-range']).toBe('bytes 900-999/1000');
    const bad = await t.app.inject({ url: '/media/live/s1/seg-00001.ts', headers: { range: 'bytes=5000-' } });
    expect(bad.statusCode).toBe(416);
    expect(bad.json().code).toBe('RANGE_NOT_SATISFIABLE');

    const head = await t.app.inject({ method: 'HEAD', url: '/media/live/s1/seg-00001.ts' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('1000');
  });

  it('missing objects and invalid keys are 404', async () => {
    expect((await t.app.inject('/media/live/none.ts')).json().code).toBe('NOT_FOUND');
    expect((await t.app.inject('/media/a//b.ts')).statusCode).toBe(404);
  });
});
