/**
 * Every route of the OpenAPI document, fed garbage (bodies of the wrong shape, broken JSON,
 * odd path parameters and query strings), answers a 4xx with a catalogued code: never a 500.
 * Every WebSocket message type likewise answers garbage with a catalogued error, never INTERNAL,
 * and the connection survives. Calls are on so that theirs are swept too (mediasoup worker).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/platform/errors.js';
import { createTestApp, type TestApp } from './support/app.js';
import { CALLS_ENV, listenCalls, probeMediasoupWorker } from './support/calls.js';
import { describeWithService } from './support/real-services.js';
import { WsClient, WsRequestError } from './support/ws-client.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const PARAMS = [
  'x',
  '00000000-0000-4000-8000-000000000000',
  'AAAAAAAAAA',
  '%2e%2e%2f',
  'a'.repeat(300),
  '%00',
];
const BODIES = [
  'null',
  '[]',
  '"text"',
  '42',
  '{}',
  '{"unknown":1}',
  '{"__proto__":{"admin":true}}',
  '{"id":{"$gt":""},"quantity":-1,"priceMinor":1e308,"email":[],"kind":null}',
  '{"broken":',
  JSON.stringify({ nested: JSON.parse(`${'['.repeat(200)}${']'.repeat(200)}`) }),
  `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
  '{"body":"hi\\u0000","title":"a\\u0000","email":"a\\u0000@b.co","\\u0000":1}',
];
const QUERIES = [
  '',
  '?limit=-1',
  '?limit=abc&before=%ff',
  '?cursor=%E0%A4%A&from=tomorrow',
  '?q=%00&limit=1%00',
];

await describeWithService(
  'bad input on every route (mediasoup worker, for the call routes)',
  probeMediasoupWorker,
  () => {
    let t: TestApp;
    let token: string;
    beforeAll(async () => {
      // The sweep is a burst far above a client's frame rate; the rate limit has its own tests.
      t = await createTestApp({ ...CALLS_ENV, WS_RATE_PER_SECOND: '100000', WS_RATE_BURST: '100000' });
      token = (await t.login(['admin'])).token;
    });
    afterAll(async () => t?.close());

    it('answers every route with a 4xx and a catalogued code, never a 500', {
      timeout: 120_000,
    }, async () => {
      const doc = (await t.app.inject('/docs/json')).json() as {
        paths: Record<string, Record<string, unknown>>;
      };
      const failures: string[] = [];
      let requests = 0;
      for (const [path, operations] of Object.entries(doc.paths)) {
        for (const method of Object.keys(operations).map((m) => m.toUpperCase() as Method)) {
          if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) continue;
          for (const param of PARAMS) {
            const url = path.replace(/\{[A-Za-z]+\}/g, param);
            const bodies = method === 'GET' || method === 'DELETE' ? [undefined] : BODIES;
            for (const [i, query] of QUERIES.entries()) {
              for (const payload of bodies) {
                for (const auth of i === 0 ? [true, false] : [true]) {
                  requests++;
                  const res = await t.app.inject({
                    method,
                    url: `${url}${query}`,
                    headers: {
                      ...(auth ? { authorization: `Bearer ${token}` } : {}),
                      ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
                      'idempotency-key': 'bad-input-sweep',
                    },
                    ...(payload === undefined ? {} : { payload }),
                  });
                  const code = (res.json() as { code?: string }).code;
                  const bad =
                    res.statusCode >= 500 ||
                    (res.statusCode >= 400 && !(ERROR_CODES as readonly string[]).includes(code ?? ''));
                  if (bad)
                    failures.push(
                      `${method} ${url}${query} ${payload ?? ''} → ${res.statusCode} ${res.body.slice(0, 200)}`,
                    );
                }
              }
            }
          }
        }
      }
      expect(requests).toBeGreaterThan(1000);
      expect(failures).toEqual([]);
    });

    it('refuses an anonymous caller on every guarded route with 401 before reading the body', async () => {
      const doc = (await t.app.inject('/docs/json')).json() as {
        paths: Record<string, Record<string, { security?: Array<Record<string, unknown>> }>>;
      };
      const wrong: string[] = [];
      let guarded = 0;
      for (const [path, operations] of Object.entries(doc.paths)) {
        for (const [method, operation] of Object.entries(operations)) {
          // Routes whose security lists `{}` also serve anonymous callers.
          const security = operation.security ?? [];
          if (security.length === 0 || security.some((s) => Object.keys(s).length === 0)) continue;
          guarded++;
          const res = await t.app.inject({
            method: method.toUpperCase() as Method,
            url: path.replace(/\{[A-Za-z]+\}/g, 'x'),
            ...(method === 'get' || method === 'delete' ? {} : { payload: { unknown: 1 } }),
          });
          if (res.statusCode !== 401)
            wrong.push(`${method.toUpperCase()} ${path} → ${res.statusCode} ${res.body}`);
        }
      }
      expect(guarded).toBeGreaterThan(50);
      expect(wrong).toEqual([]);
    });

    it('answers every WebSocket message type with a catalogued error, never INTERNAL, and keeps the connection', async () => {
      const { base } = await listenCalls(t);
      const client = await WsClient.connect(base, { token });
      const types = t.gateway.messageTypes();
      expect(types).toContain('chat.send');
      expect(types).toContain('call.join');
      const payloads: unknown[] = [
        undefined,
        null,
        [],
        'text',
        {},
        { unknown: 1 },
        { room: 'x', conversationId: 'x', streamId: '%00', callId: 'x', seq: -1, text: 'a\u0000' },
        {
          conversationId: '00000000-0000-4000-8000-000000000000',
          callId: 'AAAAAAAAAA',
          streamId: 'AAAAAAAAAA',
        },
      ];
      const failures: string[] = [];
      const codes = new Set<string>();
      try {
        for (const type of types.filter((ty) => ty !== 'auth')) {
          for (const payload of payloads) {
            const answer = await client.request(type, payload).then(
              () => null,
              (err: unknown) => err,
            );
            if (answer === null) continue;
            const code = answer instanceof WsRequestError ? answer.code : String(answer);
            codes.add(code);
            if (code === 'INTERNAL' || !(ERROR_CODES as readonly string[]).includes(code))
              failures.push(`${type} ${JSON.stringify(payload)} → ${code}`);
          }
        }
        expect(failures).toEqual([]);
        expect(codes).toContain('VALIDATION_FAILED');
        expect(codes).not.toContain('RATE_LIMITED');
        expect(await client.request('ping')).toMatchObject({ ts: expect.any(Number) });
      } finally {
        await client.close();
      }
    });
  },
);
