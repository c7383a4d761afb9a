/**
 * The server restarts in the middle of a live stream (Redis and the object
 * store stay up, as in production): the open watch page gets its chat and
 * its video back without a reload, and no chat message is lost, including
 * the ones sent while the page was still reconnecting.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { LiveCommerce, type WebSocketLike } from '../client-sdk/src/index.js';
import { ARTIFACTS, type LiveStack, probeLiveStack, startLiveStack } from './support/live-stack.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { deleteByPrefix, probeRedis } from './support/redis.js';
import { startPublisher } from './support/rtmp-publisher.js';
import { freePort, waitFor } from './support/server-process.js';

const videoTime = (page: Page) =>
  page.evaluate("document.getElementById('video').currentTime") as Promise<number>;
const chatLines = (page: Page) =>
  page.evaluate(
    "[...document.querySelectorAll('#chat li')].map((li) => li.lastChild.textContent)",
  ) as Promise<string[]>;

await describeWithService(
  'watch page across a server restart (Chromium, Redis, S3)',
  async () => {
    await probeLiveStack();
    await probeRedis(TEST_REDIS_URL);
  },
  () => {
    let stack: LiveStack;
    let prefix: string;

    beforeAll(async () => {
      prefix = `test:${randomUUID()}:`;
      stack = await startLiveStack({
        // Same ports after the restart: the page and the encoder reconnect to the same address.
        PORT: String(await freePort()),
        RTMP_PORT: String(await freePort()),
        REDIS_URL: TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        STREAM_RECONNECT_GRACE_MS: '60000',
      });
    });
    afterAll(async () => {
      await stack?.close();
      if (prefix) await deleteByPrefix(TEST_REDIS_URL, prefix);
    });

    it('chat and player recover without a page reload and no chat message is lost', async () => {
      const created = await stack.api<{ stream: { id: string }; streamKey: string }>('POST', '/v1/streams', {
        title: 'Restart show',
      });
      const id = created.stream.id;
      const rtmpUrl = `rtmp://127.0.0.1:${stack.server.rtmpPort}/live/${created.streamKey}`;
      let publisher = startPublisher({ url: rtmpUrl, keyframeSeconds: 1 });
      const talker = await stack.user('Talker');
      const talk = async (body: string) => {
        const sdk = new LiveCommerce({
          baseUrl: stack.server.url,
          token: () => talker.token,
          WebSocket: WebSocket as unknown as new (url: string) => WebSocketLike,
        });
        await sdk.realtime.connect();
        await sdk.liveRoom(id).send(body);
        sdk.realtime.close();
      };
      const page = await stack.browser.newPage();
      try {
        await waitFor(
          async () =>
            (await stack.api<{ hlsUrl: string | null }>('GET', `/v1/streams/${id}`)).hlsUrl !== null,
          30_000,
        );
        await page.goto(`${stack.server.url}/watch/${id}`);
        await page.evaluate('window.__sameDocument = true');
        await waitFor(async () => (await videoTime(page)) > 1, 45_000, 250);
        await talk('before the restart');
        await waitFor(async () => (await chatLines(page)).includes('before the restart'), 10_000);

        const before = stack.server.proc.pid;
        await stack.restart();
        expect(stack.server.proc.pid).not.toBe(before);
        // The encoder lost its connection; OBS reconnects by itself, our test publisher is started again.
        await publisher.kill();
        await talk('while the page reconnects 1');
        await talk('while the page reconnects 2');
        publisher = startPublisher({ url: rtmpUrl, keyframeSeconds: 1 });
        await waitFor(async () => (await chatLines(page)).length >= 3, 60_000, 250);
        await talk('after the restart');
        await waitFor(async () => (await chatLines(page)).includes('after the restart'), 20_000);
        expect(await chatLines(page)).toEqual([
          'before the restart',
          'while the page reconnects 1',
          'while the page reconnects 2',
          'after the restart',
        ]);

        const resumedAt = await videoTime(page);
        await waitFor(async () => (await videoTime(page)) > resumedAt + 2, 60_000, 250);
        expect(await page.evaluate('window.__sameDocument')).toBe(true);
        expect(await page.evaluate('document.body.dataset.realtime')).toBe('open');
        await page.screenshot({ path: join(ARTIFACTS, 'watch-after-restart.png') });
      } finally {
        await page.close();
        await publisher.kill();
      }
    });
  },
);
