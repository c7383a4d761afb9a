/**
 * The web apps in real headless Chromium, built only on the client SDK.
 * Watch: a streamer goes live (ffmpeg over RTMP), a signed-in viewer
 * watches, chats, sees the pinned product card when the video reaches the
 * pin, buys in a flash sale with live stock, buys the pinned product with a
 * coupon, asks for an agent (who rejects the first call and answers the second,
 * both while the viewer's camera is still opening) with video on the support
 * desk; on a phone-sized screen too.
 * Studio: a streamer signs in, schedules a stream, goes live with the key it
 * shows, pins, starts a flash sale, moderates chat, ends the show.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  ARTIFACTS,
  type LiveStack,
  probeLiveStack,
  startLiveStack,
  watchForProblems,
} from './support/live-stack.js';
import { describeWithService } from './support/real-services.js';
import { startPublisher } from './support/rtmp-publisher.js';
import { waitFor } from './support/server-process.js';

const videoTime = (page: Page) =>
  page.evaluate("document.getElementById('video').currentTime") as Promise<number>;
/** What the call panel says it receives (the SDK's getStats numbers on the remote video). */
const receiving = async (page: Page) => {
  const video = page.locator('#remote-video');
  const attrs = ['data-frames-decoded', 'data-video-bytes', 'data-audio-bytes'];
  return (await Promise.all(attrs.map(async (a) => `${a}=${await video.getAttribute(a)}`))).join(' ');
};
const text = async (page: Page, selector: string) =>
  ((await page.locator(selector).textContent()) ?? '').trim();

await describeWithService('web apps (Chromium, client SDK)', probeLiveStack, () => {
  let stack: LiveStack;

  beforeAll(async () => {
    stack = await startLiveStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('a viewer watches, chats, sees the pin in sync, buys in a flash sale and with a coupon, and talks to an agent', async () => {
    const product = await stack.api<{ id: string; skus: Array<{ id: string }> }>('POST', '/v1/products', {
      title: 'Trail runner',
      category: 'shoes',
      currency: 'EUR',
      skus: [{ code: 'TR-42', name: '42', priceMinor: 8900, stock: 10 }],
    });
    const created = await stack.api<{ stream: { id: string }; streamKey: string }>('POST', '/v1/streams', {
      title: 'Sneaker drop',
      productIds: [product.id],
    });
    const id = created.stream.id;
    const viewer = await stack.user('Vera Viewer');
    const publisher = startPublisher({
      url: `rtmp://127.0.0.1:${stack.server.rtmpPort}/live/${created.streamKey}`,
      size: '640x360',
      keyframeSeconds: 2,
    });
    const page = await stack.browser.newPage();
    const problems: string[] = [];
    // The wrong coupon code is looked up on purpose.
    watchForProblems(page, problems, [{ status: 404, path: '/v1/coupons/validate' }]);
    try {
      await waitFor(
        async () => (await stack.api<{ hlsUrl: string | null }>('GET', `/v1/streams/${id}`)).hlsUrl !== null,
      );
      await page.addInitScript(`localStorage.setItem('lc.token', ${JSON.stringify(viewer.token)})`);
      // After holdCamera() the viewer's camera opens only at openCamera(), as a real one waits
      // for the permission prompt: the agent answers (or rejects) while it is still opening.
      await page.addInitScript(`{
        const devices = navigator.mediaDevices;
        const open = devices.getUserMedia.bind(devices);
        let held = null;
        window.cameraStreams = [];
        window.holdCamera = () => {
          held = new Promise((resolve) => { window.openCamera = () => { held = null; resolve(); }; });
        };
        devices.getUserMedia = async (constraints) => {
          if (held) await held;
          const stream = await open(constraints);
          window.cameraStreams.push(stream);
          return stream;
        };
      }`);
      await page.goto(`${stack.server.url}/watch/${id}`);
      await waitFor(async () => (await videoTime(page)) > 1, 45_000, 250);
      expect(await text(page, '#status')).toBe('LIVE');
      expect(await text(page, '#title')).toBe('Sneaker drop');
      await waitFor(async () => (await text(page, '#me')).includes('Vera Viewer'), 10_000);
      expect(await page.getByRole('button', { name: 'Sign in' }).isVisible()).toBe(false);

      for (let i = 0; i < 3; i++) await page.getByRole('button', { name: 'Like' }).click();
      await waitFor(
        async () =>
          (await stack.api<{ audience: { likes: number } }>('GET', `/v1/streams/${id}`)).audience.likes === 3,
        10_000,
      );
      expect(await text(page, '#likes')).toBe('3');
      await page.getByLabel('Chat message', { exact: true }).fill('hello from the front row');
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await waitFor(async () => (await text(page, '#chat')).includes('hello from the front row'), 10_000);

      await stack.api('POST', `/v1/streams/${id}/pins`, { kind: 'product', productId: product.id });
      await page.locator('#pin').waitFor({ state: 'visible', timeout: 30_000 });
      expect(await text(page, '#pin-title')).toBe('Trail runner');

      const startsAt = new Date();
      await stack.api('POST', '/v1/flash-sales', {
        skuId: product.skus[0]?.id,
        salePriceMinor: 4900,
        quantity: 3,
        perUserLimit: 1,
        reservationTtlSeconds: 120,
        startsAt: startsAt.toISOString(),
        endsAt: new Date(startsAt.getTime() + 120_000).toISOString(),
        streamId: id,
      });
      await page.locator('#sale').waitFor({ state: 'visible', timeout: 15_000 });
      expect(await text(page, '#sale-stock')).toBe('3');
      await page.getByRole('button', { name: 'Buy now' }).click();
      await waitFor(async () => (await text(page, '#notice')).includes('paid'), 20_000);
      await waitFor(async () => (await text(page, '#sale-stock')) === '2', 10_000);
      const orders = await stack.api<Array<{ status: string; streamId: string | null }>>(
        'GET',
        '/v1/orders',
        undefined,
        viewer.token,
      );
      expect(orders.map((o) => [o.status, o.streamId])).toEqual([['paid', id]]);

      // A coupon: a wrong code is explained, a good one shows the saving and the pinned product is bought with it.
      await stack.api('POST', '/v1/coupons', {
        code: 'FRONTROW10',
        type: 'percentage',
        percentOff: 10,
        productIds: [product.id],
      });
      await page.getByLabel('Coupon code').fill('NOSUCHCODE');
      await page.getByRole('button', { name: 'Apply' }).click();
      await waitFor(async () => (await text(page, '#coupon-status')) === 'No such coupon.', 10_000);
      await page.getByLabel('Coupon code').fill('frontrow10');
      await page.getByRole('button', { name: 'Apply' }).click();
      await waitFor(
        async () => (await text(page, '#coupon-status')).startsWith('FRONTROW10: −€8.90'),
        10_000,
      );
      await page.getByRole('button', { name: 'Buy', exact: true }).click();
      // The order's total adds the shipping fee: the discount is what the coupon changed.
      const couponOrder = async () =>
        (
          await stack.api<Array<{ status: string; couponCode: string | null; discountMinor: number }>>(
            'GET',
            '/v1/orders',
            undefined,
            viewer.token,
          )
        ).find((o) => o.couponCode === 'FRONTROW10');
      await waitFor(async () => (await couponOrder())?.status === 'paid', 20_000);
      expect(await couponOrder()).toMatchObject({ status: 'paid', discountMinor: 890 });
      expect(await text(page, '#notice')).toContain('paid');
      await page.screenshot({ path: join(ARTIFACTS, 'watch-desktop.png') });

      // The viewer asks for an agent; the agent answers on the support desk, sees where the
      // call comes from, and both see each other's video until the viewer hangs up.
      const agent = await stack.user('Agnes Agent');
      await stack.api('PUT', `/v1/users/${agent.id}/roles`, { roles: ['agent'] });
      const desk = await (await stack.browser.newContext()).newPage();
      watchForProblems(desk, problems);
      await desk.goto(`${stack.server.url}/support`);
      await desk.getByLabel('Email').fill(agent.email);
      await desk.getByLabel('Password').fill(agent.password);
      await desk.getByRole('button', { name: 'Sign in' }).click();
      await desk.getByRole('button', { name: 'Go online' }).click();
      await waitFor(async () => (await text(desk, '#availability')) === 'online', 10_000);

      // The agent rejects the first call while the viewer's camera is still opening: the
      // viewer is told, the camera is let go as soon as it opens, and they can call again.
      await page.evaluate('window.holdCamera()');
      await page.getByRole('button', { name: 'Talk to an agent' }).click();
      await desk.locator('#ringing').waitFor({ state: 'visible', timeout: 15_000 });
      await desk.getByRole('button', { name: 'Reject' }).click();
      await desk.locator('#ringing').waitFor({ state: 'hidden', timeout: 10_000 });
      await page.evaluate('window.openCamera()');
      await waitFor(async () => (await text(page, '#call-status')) === 'The call was declined.', 10_000);
      await page
        .getByRole('button', { name: 'Talk to an agent' })
        .waitFor({ state: 'visible', timeout: 10_000 });
      expect(
        await page.evaluate(
          'window.cameraStreams.length === 1 && window.cameraStreams[0].getTracks().every((t) => t.readyState === "ended")',
        ),
      ).toBe(true);
      await waitFor(async () => (await text(desk, '#availability')) === 'online', 10_000);

      await page.evaluate('window.holdCamera()');
      await page.getByRole('button', { name: 'Talk to an agent' }).click();
      await desk.locator('#ringing').waitFor({ state: 'visible', timeout: 15_000 });
      await waitFor(async () => {
        const context = await text(desk, '#ringing-context');
        return context.includes('Sneaker drop') && context.includes('Trail runner');
      }, 10_000);
      await desk.getByRole('button', { name: 'Answer' }).click();
      // The call is active and the agent sends before the viewer's camera is open; the
      // viewer's media must still reach the agent once it is.
      await waitFor(async () => (await text(desk, '#call-status')) === 'Connected', 20_000, 200);
      // (The viewer's panel still shows the first call: the second is shown once its camera is open.)
      expect(await text(page, '#call-status')).toBe('The call was declined.');
      await page.evaluate('window.openCamera()');
      for (const p of [page, desk])
        await waitFor(async () => (await text(p, '#call-status')) === 'Connected', 20_000, 200);
      for (const [name, p] of [
        ['viewer', page],
        ['agent', desk],
      ] as const)
        await waitFor(
          async () =>
            Number(await p.locator('#remote-video').getAttribute('data-frames-decoded')) > 0 &&
            Number(await p.locator('#remote-video').getAttribute('data-audio-bytes')) > 0,
          30_000,
          250,
          async () =>
            `${name} receives ${await receiving(p)}, shows "${await text(p, '#call-status')}" / "${await text(p, '#call-quality')}"; console errors: ${JSON.stringify(problems)}`,
        );
      await desk.screenshot({ path: join(ARTIFACTS, 'support-desk.png'), fullPage: true });
      expect(await desk.locator('#remote-video').isVisible()).toBe(true);
      expect(await text(desk, '#call-context')).toContain('Sneaker drop');
      await page.getByRole('button', { name: 'Hang up' }).click();
      for (const p of [page, desk])
        await waitFor(async () => (await text(p, '#call-status')).startsWith('Call ended'), 15_000);
      await waitFor(async () => (await text(desk, '#history')).includes('ended (hangup)'), 10_000);
      await desk.setViewportSize({ width: 390, height: 844 });
      await desk.screenshot({ path: join(ARTIFACTS, 'support-desk-phone.png'), fullPage: true });
      expect(await desk.getByRole('button', { name: 'Go online' }).isVisible()).toBe(true);
      expect(await desk.getByRole('table').isVisible()).toBe(true);
      await desk.context().close();

      // The player reported watch time and playback quality (every 15 s of playback) for the analytics.
      type Analytics = { watch: { totalSeconds: number }; playback: { reports: number } };
      await waitFor(
        async () => (await stack.api<Analytics>('GET', `/v1/streams/${id}/analytics`)).playback.reports >= 1,
        30_000,
      );
      const analytics = await stack.api<Analytics>('GET', `/v1/streams/${id}/analytics`);
      expect(analytics.watch.totalSeconds).toBeGreaterThanOrEqual(10);

      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: join(ARTIFACTS, 'watch-phone.png'), fullPage: true });
      expect(await page.locator('#video').isVisible()).toBe(true);
      expect(await page.getByRole('button', { name: 'Buy now' }).isVisible()).toBe(true);
      expect(problems, problems.join('\n')).toEqual([]);
    } finally {
      await page.close();
      await publisher.stop();
    }
  });

  it('a streamer runs a show from the studio: schedule, go live, pin, flash sale, moderate, end', async () => {
    const streamer = await stack.user('Sam Streamer');
    await stack.api('PUT', `/v1/users/${streamer.id}/roles`, { roles: ['viewer', 'streamer'] });
    await stack.api(
      'POST',
      '/v1/products',
      {
        title: 'Canvas tote',
        category: 'bags',
        currency: 'EUR',
        skus: [{ code: 'CT-1', name: 'one size', priceMinor: 2500, stock: 50 }],
      },
      (
        await stack.api<{ token: string }>(
          'POST',
          '/v1/auth/login',
          { email: streamer.email, password: streamer.password },
          '',
        )
      ).token,
    );
    const page = await stack.browser.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (err) => problems.push(err.message));
    let publisher: ReturnType<typeof startPublisher> | null = null;
    try {
      await page.goto(`${stack.server.url}/studio`);
      await page.getByLabel('Email').fill(streamer.email);
      await page.getByLabel('Password').fill(streamer.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#streams').waitFor({ state: 'visible', timeout: 15_000 });

      await page.getByLabel('Stream title').fill('Tote tuesday');
      await page.getByRole('button', { name: 'Create stream' }).click();
      await page.locator('#console').waitFor({ state: 'visible', timeout: 15_000 });
      const server = await page.locator('#obs-server').inputValue();
      const key = await page.locator('#obs-key').inputValue();
      // The port the ingest really listens on (RTMP_PORT=0 here: one picked at start).
      expect(server).toMatch(new RegExp(`^rtmp://[^/]+:${stack.server.rtmpPort}/live$`));
      expect(key).toMatch(/^sk_/);
      expect(await text(page, '#console-status')).toBe('scheduled');

      publisher = startPublisher({
        url: `rtmp://127.0.0.1:${stack.server.rtmpPort}/live/${key}`,
        keyframeSeconds: 1,
      });
      await waitFor(async () => (await text(page, '#console-status')) === 'live', 30_000);

      await page.getByRole('button', { name: 'Pin Canvas tote' }).click();
      await waitFor(async () => (await text(page, '#notice')).includes('Pinned Canvas tote'), 10_000);
      await page.getByLabel('Sale price').fill('19.99');
      await page.getByRole('button', { name: 'Start flash sale' }).click();
      await waitFor(async () => (await text(page, '#notice')).includes('Flash sale started'), 10_000);

      const { stream } = await stack
        .api<{ items: Array<{ id: string; title: string }> }>('GET', '/v1/streams?status=live')
        .then((p) => ({
          stream: p.items.find((s) => s.title === 'Tote tuesday') as { id: string },
        }));
      const page2 = await stack.api<{
        currentPin: { product: { title: string } } | null;
        activeFlashSale: { salePriceMinor: number } | null;
      }>('GET', `/v1/streams/${stream.id}`);
      expect(page2.currentPin?.product.title).toBe('Canvas tote');
      expect(page2.activeFlashSale?.salePriceMinor).toBe(1999);

      // A viewer's rude message is deleted from the studio.
      const troll = await stack.user('Troll');
      const socket = new WebSocket(`${stack.server.url.replace('http', 'ws')}/ws?token=${troll.token}`);
      await new Promise((r) => socket.once('open', r));
      socket.send(
        JSON.stringify({ t: 'live.chat.send', id: 1, d: { streamId: stream.id, body: 'rude words' } }),
      );
      await waitFor(async () => (await text(page, '#chat')).includes('rude words'), 10_000);
      await page.getByRole('button', { name: 'Delete message from Troll' }).click();
      await waitFor(async () => !(await text(page, '#chat')).includes('rude words'), 10_000);
      socket.close();

      await page.screenshot({ path: join(ARTIFACTS, 'studio-live.png'), fullPage: true });
      await page.getByRole('button', { name: 'End stream' }).click();
      await waitFor(async () => (await text(page, '#console-status')) === 'ended', 15_000);
      await waitFor(
        async () =>
          (await stack.api<{ replayUrl: string | null }>('GET', `/v1/streams/${stream.id}`)).replayUrl !==
          null,
        30_000,
      );
      await page.getByRole('button', { name: 'All streams' }).click();
      await page.getByRole('link', { name: 'Replay' }).first().waitFor({ timeout: 10_000 });
      await page.getByRole('button', { name: 'Analytics of Tote tuesday' }).click();
      await page.locator('#report').waitFor({ state: 'visible', timeout: 10_000 });
      expect(await text(page, '#report-figures')).toContain('Chat messages1');
      expect(await page.locator('#retention polyline').count()).toBe(1);
      await page.screenshot({ path: join(ARTIFACTS, 'studio-analytics.png'), fullPage: true });
      expect(problems, problems.join('\n')).toEqual([]);
    } finally {
      await page.close();
      await publisher?.kill();
    }
  });
});
