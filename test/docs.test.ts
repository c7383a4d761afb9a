/**
 * The user docs against the code: a route added without a word in docs/api.md, or a WebSocket
 * message type without one in docs/protocol.md, fails here.
 * (docs/configuration.md has its own check in config.test.ts.) Calls are on, so their routes
 * are in the OpenAPI document too; that needs the mediasoup worker.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { CALLS_ENV, probeMediasoupWorker } from './support/calls.js';
import { describeWithService } from './support/real-services.js';

const apiDoc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8');
const protocolDoc = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8');

await describeWithService(
  'docs/api.md and docs/protocol.md (mediasoup worker, for the call routes)',
  probeMediasoupWorker,
  () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp(CALLS_ENV);
    });
    afterAll(async () => t?.close());

    it('docs/api.md names every path of the OpenAPI document', async () => {
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

    it('docs/protocol.md names every WebSocket message type', () => {
      const types = t.gateway.messageTypes();
      expect(types).toContain('call.join');
      expect(types.filter((type) => !protocolDoc.includes(`\`${type}\``))).toEqual([]);
    });
  },
);
