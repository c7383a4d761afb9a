/**
 * The whole live path, end to end, with real parts only: the server process
 * (embedded Db and engine, S3 on the real server from TEST_S3_*), an ffmpeg
 * publisher with OBS-like settings over RTMP, HLS on S3 while live, and
 * headless Chromium playing it with hls.js: the video time advances without
 * a fatal error, the pin arrives over the WebSocket and as an EXT-X-DATERANGE,
 * and after the stream ends its VOD playlist plays too; a stream with the
 * ABR ladder plays through its master playlist and switches renditions.
 */

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  ARTIFACTS,
  type LiveStack,
  probeLiveStack,
  S3_PUBLIC_BASE,
  startLiveStack,
} from './support/live-stack.js';
import { describeWithService } from './support/real-services.js';
import { startPublisher } from './support/rtmp-publisher.js';
import { waitFor } from './support/server-process.js';

/** A bare player page: hls.js on a muted video, the stream's room over /ws, everything observed kept on `window.probe`. */
const PLAYER_HTML = `<!doctype html><html><head><meta charset="utf-8"><title>player</title></head>
<body><video id="v" muted autoplay playsinline width="640" height="360"></video>
<script src="/hls.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  window.probe = { fatal: null, errors: [], events: [], dateRanges: [], levels: [], level: -1 };
  const video = document.getElementById('v');
  const hls = new Hls({ lowLatencyMode: true, liveSyncDurationCount: 2 });
  window.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
    window.probe.levels = data.levels.map((l) => l.bitrate);
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
    window.probe.level = data.level;
  });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    window.probe.errors.push(data.details);
    if (data.fatal) window.probe.fatal = data.type + ':' + data.details;
  });
  hls.on(Hls.Events.LEVEL_UPDATED, (_e, data) => {
    for (const id of Object.keys(data.details.dateRanges || {}))
      if (!window.probe.dateRanges.includes(id)) window.probe.dateRanges.push(id);
  });
  hls.loadSource(q.get('src'));
  hls.attachMedia(video);
  video.play().catch(() => {});
  if (q.get('ws')) {
    const ws = new WebSocket(q.get('ws'));
    ws.onopen = () => ws.send(JSON.stringify({ t: 'join', id: 1, d: { room: 'stream:' + q.get('stream') } }));
    ws.onmessage = (m) => {
      const f = JSON.parse(m.data);
      if (f.t === 'event') window.probe.events.push({ e: f.e, d: f.d });
    };
  }
</script></body></html>`;

await describeWithService('live end to end (RTMP → S3 → Chromium/hls.js)', probeLiveStack, () => {
  let stack: LiveStack;
  let pageServer: Server;
  let pageBase: string;

  beforeAll(async () => {
    stack = await startLiveStack({ LIVE_ABR_LADDER: '240', LIVE_MAX_TRANSCODES: '2' });
    const hlsJs = readFileSync(resolve('node_modules/hls.js/dist/hls.min.js'));
    pageServer = createServer((req, res) => {
      if (req.url?.startsWith('/hls.js'))
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(hlsJs);
      else res.writeHead(200, { 'content-type': 'text/html' }).end(PLAYER_HTML);
    });
    await new Promise<void>((r) => pageServer.listen(0, '127.0.0.1', r));
    const address = pageServer.address();
    pageBase = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(async () => {
    pageServer?.close();
    await stack?.close();
  });

  const api = (method: string, path: string, body?: object) => stack.api(method, path, body);
  interface Probe {
    fatal: string | null;
    errors: string[];
    events: Array<{ e: string; d: { id?: string } }>;
    dateRanges: string[];
    /** BANDWIDTH of each level of a master playlist, in hls.js's order. */
    levels: number[];
    level: number;
    currentTime: number;
    videoHeight: number;
  }
  // A string, so this Node-side file needs no DOM types.
  const probe = (page: Page) =>
    page.evaluate(
      "({ ...window.probe, currentTime: document.getElementById('v').currentTime, videoHeight: document.getElementById('v').videoHeight })",
    ) as Promise<Probe>;

  it('OBS-like publish plays live in Chromium with hls.js, pins arrive, and the recording plays after the end', async () => {
    const product = (await api('POST', '/v1/products', {
      title: 'Trail runner',
      category: 'shoes',
      currency: 'EUR',
      skus: [{ code: 'TR-42', name: '42', priceMinor: 8900, stock: 10 }],
    })) as { id: string };
    const created = (await api('POST', '/v1/streams', { title: 'E2E drop', productIds: [product.id] })) as {
      stream: { id: string };
      rtmpUrl: string;
      streamKey: string;
    };
    const id = created.stream.id;
    const rtmpUrl = `rtmp://127.0.0.1:${stack.server.rtmpPort}/live/${created.streamKey}`;
    const publisher = startPublisher({ url: rtmpUrl, size: '640x360', fps: 30, keyframeSeconds: 2 });
    try {
      await waitFor(
        async () => ((await api('GET', `/v1/streams/${id}`)) as { hlsUrl: string | null }).hlsUrl !== null,
      );
      const hlsUrl = ((await api('GET', `/v1/streams/${id}`)) as { hlsUrl: string }).hlsUrl;
      expect(hlsUrl.startsWith(S3_PUBLIC_BASE as string)).toBe(true);
      // The playlist is on S3 once the first segments are.
      await waitFor(async () => (await fetch(hlsUrl)).ok, 30_000, 250);

      const page = await stack.browser.newPage();
      const consoleErrors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') consoleErrors.push(m.text());
      });
      const ws = `${stack.server.url.replace('http', 'ws')}/ws`;
      await page.goto(
        `${pageBase}/?src=${encodeURIComponent(hlsUrl)}&ws=${encodeURIComponent(ws)}&stream=${id}`,
      );
      await waitFor(async () => (await probe(page)).currentTime > 1, 45_000, 250);
      const t1 = (await probe(page)).currentTime;
      await waitFor(async () => (await probe(page)).currentTime > t1 + 1, 20_000, 250);

      const pin = (await api('POST', `/v1/streams/${id}/pins`, {
        kind: 'product',
        productId: product.id,
      })) as {
        id: string;
      };
      await waitFor(
        async () => (await probe(page)).events.some((e) => e.e === 'stream.pin' && e.d.id === pin.id),
        15_000,
      );
      await waitFor(async () => (await probe(page)).dateRanges.includes(`pin-${pin.id}`), 20_000, 250);
      const live = await probe(page);
      expect(live.fatal).toBeNull();
      await page.screenshot({ path: join(ARTIFACTS, 'live-player.png') });
      expect(consoleErrors).toEqual([]);
      await page.close();
    } finally {
      await publisher.stop();
    }

    await waitFor(
      async () =>
        ((await api('GET', `/v1/streams/${id}`)) as { replayUrl: string | null }).replayUrl !== null,
      30_000,
      250,
    );
    const replay = (await api('GET', `/v1/streams/${id}`)) as { status: string; replayUrl: string };
    expect(replay.status).toBe('ended');
    const vod = await (await fetch(replay.replayUrl)).text();
    expect(vod).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
    const page = await stack.browser.newPage();
    await page.goto(`${pageBase}/?src=${encodeURIComponent(replay.replayUrl)}`);
    await waitFor(async () => (await probe(page)).currentTime > 1, 30_000, 250);
    const vodProbe = await probe(page);
    expect(vodProbe.fatal).toBeNull();
    expect(vodProbe.dateRanges.some((r) => r.startsWith('pin-'))).toBe(true);
    await page.close();
  });

  it('an ABR stream plays through its master playlist in Chromium and switches to the lower rendition', async () => {
    const created = (await api('POST', '/v1/streams', { title: 'ABR drop', abr: true })) as {
      stream: { id: string };
      streamKey: string;
    };
    const id = created.stream.id;
    const publisher = startPublisher({
      url: `rtmp://127.0.0.1:${stack.server.rtmpPort}/live/${created.streamKey}`,
      size: '640x360',
      keyframeSeconds: 2,
    });
    const page = await stack.browser.newPage();
    try {
      await waitFor(
        async () => ((await api('GET', `/v1/streams/${id}`)) as { hlsUrl: string | null }).hlsUrl !== null,
        30_000,
      );
      const hlsUrl = ((await api('GET', `/v1/streams/${id}`)) as { hlsUrl: string }).hlsUrl;
      await page.goto(`${pageBase}/?src=${encodeURIComponent(hlsUrl)}`);
      await waitFor(async () => (await probe(page)).currentTime > 1, 45_000, 250);
      const { levels } = await probe(page);
      expect(levels).toHaveLength(2);
      const lowest = levels.indexOf(Math.min(...levels));
      await page.evaluate(`window.hls.currentLevel = ${lowest}`);
      await waitFor(async () => (await probe(page)).level === lowest, 20_000, 250);
      await waitFor(async () => (await probe(page)).videoHeight === 240, 20_000, 250);
      const t1 = (await probe(page)).currentTime;
      await waitFor(async () => (await probe(page)).currentTime > t1 + 1, 20_000, 250);
      expect((await probe(page)).fatal).toBeNull();
    } finally {
      await page.close();
      await publisher.stop();
    }
  });
});
