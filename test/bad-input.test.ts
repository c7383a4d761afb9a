/**
 * Every route of the OpenAPI document, fed garbage (bodies of the wrong shape, broken JSON,
 * odd path parameters and query strings), answers a 4xx with a catalogued code: never a 500.
 * Calls are on so that their routes are swept too; that needs the mediasoup worker.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ERROR_CODES } from '../src/platform/errors.js';
import { createTestApp, type TestApp } from './support/app.js';
import { CALLS_ENV, probeMediasoupWorker } from './support/calls.js';
import { describeWithService } from './support/real-services.js';

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
      t = await createTestApp(CALLS_ENV);
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
  },
);
