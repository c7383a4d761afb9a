/**
 * The user docs against the code: a route added without a word in docs/api.md fails here.
 * (docs/configuration.md has its own check in config.test.ts.) Calls are on, so their routes
 * are in the OpenAPI document too; that needs the mediasoup worker.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { CALLS_ENV, probeMediasoupWorker } from './support/calls.js';
import { describeWithService } from './support/real-services.js';

const apiDoc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8');

await describeWithService('docs/api.md (mediasoup worker, for the call routes)', probeMediasoupWorker, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(CALLS_ENV);
  });
  afterAll(async () => t?.close());

  it('names every path of the OpenAPI document', async () => {
    const doc = (await t.app.inject('/docs/json')).json() as { paths: Record<string, unknown> };
    const paths = Object.keys(doc.paths);
    expect(paths).toContain('/v1/calls');
    expect(paths).toContain('/v1/flash-sales/{id}/purchase');
    // Parameter names may differ (`{id}` in the prose, `{publicId}` in a schema).
    const shape = (text: string) => text.replace(/\{[A-Za-z]+\}/g, '{}');
    const documented = shape(apiDoc);
    const missing = paths.filter((path) => !documented.includes(shape(path)));
    expect(missing).toEqual([]);
  });
});
