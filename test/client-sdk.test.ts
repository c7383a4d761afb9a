/**
 * The client SDK as a package and against a running server: it builds to an
 * ESM bundle with declarations that a consumer project compiles against (and
 * a misuse does not), and its realtime client loses no chat message across a
 * dropped connection, with typed errors carrying the server's codes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  isErrorCode,
  type LiveChatMessage,
  LiveCommerce,
  LiveCommerceError,
  type WebSocketLike,
} from '../client-sdk/src/index.js';
import { buildSdk } from '../scripts/build-web.js';
import { type ServerProcess, startServerProcess, waitFor } from './support/server-process.js';

const root = resolve('.');

describe('client SDK package', () => {
  let consumer: string;
  beforeAll(async () => {
    await buildSdk();
    consumer = mkdtempSync(join(tmpdir(), 'lcs-sdk-consumer-'));
    mkdirSync(join(consumer, 'node_modules/@live-commerce'), { recursive: true });
    symlinkSync(join(root, 'client-sdk'), join(consumer, 'node_modules/@live-commerce/client-sdk'));
    // The SDK's peer dependencies, as a consumer installs them.
    symlinkSync(join(root, 'node_modules/hls.js'), join(consumer, 'node_modules/hls.js'));
    symlinkSync(join(root, 'node_modules/mediasoup-client'), join(consumer, 'node_modules/mediasoup-client'));
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ type: 'module' }));
  });
  afterAll(() => {
    if (consumer) rmSync(consumer, { recursive: true, force: true });
  });

  const tsc = (file: string, source: string): { ok: boolean; output: string } => {
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023', 'DOM'],
          strict: true,
          noEmit: true,
        },
        files: [file],
      }),
    );
    writeFileSync(join(consumer, file), source);
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', consumer], {
        encoding: 'utf8',
      });
      return { ok: true, output: '' };
    } catch (err) {
      return { ok: false, output: String((err as { stdout?: string }).stdout ?? err) };
    }
  };

  it('builds an ESM bundle with type declarations', () => {
    expect(existsSync(join(root, 'client-sdk/dist/index.js'))).toBe(true);
    expect(existsSync(join(root, 'client-sdk/dist/index.d.ts'))).toBe(true);
  });

  it('a consumer project compiles against the declarations, and a misuse does not', () => {
    const good = tsc(
      'good.ts',
      `import { isErrorCode, LiveCommerce, LivePlayer, type StreamEvents } from '@live-commerce/client-sdk';
const sdk = new LiveCommerce({ baseUrl: 'https://shop.example.com', token: () => 'x' });
const room = sdk.liveRoom('a7Kq2ZpX9b');
room.on('flash.stock', ({ saleId, remaining }) => console.log(saleId.length + remaining));
room.on('stream.pin', (pin) => console.log(pin.product?.title));
const stock: StreamEvents['flash.stock'] = { saleId: 's', remaining: 1 };
export async function buy(video: HTMLVideoElement): Promise<string | null> {
  const player = new LivePlayer(video, { src: 'https://cdn/x.m3u8' });
  player.on('metadata', (cue) => console.log(cue.attributes['product-id'], cue.startDate.getTime()));
  try {
    const r = await sdk.commerce.buyFlash('sale', 1);
    const order = await sdk.commerce.checkout({ reservations: [r.reservationId], streamId: 'a7Kq2ZpX9b' });
    return (await sdk.commerce.pay(order.id, 'test_card_ok')).status;
  } catch (err) {
    if (isErrorCode(err, 'FLASH_SOLD_OUT')) return err.code + stock.remaining;
    throw err;
  }
}
export async function callSupport(video: HTMLVideoElement): Promise<string | null> {
  const call = await sdk.calls.start({ type: 'support', context: { streamId: 'a7Kq2ZpX9b' } }, { video: true });
  video.srcObject = call.remoteStream;
  call.on('quality', (q) => console.log(q.video?.framesDecoded, q.bitrateKbps));
  call.on('queued', ({ position }) => console.log(position + 1));
  await call.setMicrophoneEnabled(false);
  return (await call.hangup()).endReason;
}
`,
    );
    expect(good.output).toBe('');
    expect(good.ok).toBe(true);

    const bad = tsc(
      'bad.ts',
      `import { LiveCommerce } from '@live-commerce/client-sdk';
const room = new LiveCommerce({ baseUrl: 'https://x' }).liveRoom('s');
room.on('flash.stock', ({ remaining }) => remaining.toUpperCase());
`,
    );
    expect(bad.ok).toBe(false);
    expect(bad.output).toContain("Property 'toUpperCase' does not exist on type 'number'");

    const badCall = tsc(
      'bad-call.ts',
      `import { LiveCommerce } from '@live-commerce/client-sdk';
await new LiveCommerce({ baseUrl: 'https://x' }).calls.start({ type: 'video' });
`,
    );
    expect(badCall.ok).toBe(false);
    expect(badCall.output).toContain(`Type '"video"' is not assignable to type 'CallType'`);
  });
});

describe('client SDK against a running server', () => {
  let server: ServerProcess;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'lcs-sdk-'));
    server = await startServerProcess({ DATA_DIR: dataDir, RTMP_ENABLED: 'false' });
  });
  afterAll(async () => {
    await server?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** A signed-in SDK in Node, with the sockets it opens kept so a test can cut them. */
  const signedIn = async (name: string) => {
    const anon = new LiveCommerce({ baseUrl: server.url });
    const email = `${name}-${Date.now()}@example.com`;
    const { token } = await anon.http.request<{ token: string }>('POST', '/v1/auth/register', {
      email,
      password: 'password-123',
      displayName: name,
    });
    const sockets: WebSocket[] = [];
    const sdk = new LiveCommerce({
      baseUrl: server.url,
      token: () => token,
      WebSocket: class extends WebSocket {
        constructor(url: string) {
          super(url);
          sockets.push(this);
        }
      } as unknown as new (
        url: string,
      ) => WebSocketLike,
    });
    return { sdk, sockets };
  };

  it('HTTP errors carry the server code and status', async () => {
    const sdk = new LiveCommerce({ baseUrl: server.url });
    const err = await sdk.commerce.flashSale('00000000-0000-4000-8000-000000000000').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LiveCommerceError);
    expect(isErrorCode(err, 'FLASH_SALE_NOT_FOUND')).toBe(true);
    expect((err as LiveCommerceError).status).toBe(404);
    const unreachable = new LiveCommerce({ baseUrl: 'http://127.0.0.1:9' });
    expect(await unreachable.commerce.streamPage('x').catch((e: LiveCommerceError) => e.code)).toBe(
      'NETWORK',
    );
  });

  it('a request refused by the connection rate limit is sent again after retryAfterMs, so none fails', async () => {
    const { sdk, sockets } = await signedIn('burst');
    await sdk.realtime.connect();
    let refused = 0;
    sockets.at(-1)?.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { t: string; code?: string };
      if (frame.t === 'error' && frame.code === 'RATE_LIMITED') refused++;
    });
    // The server's burst is WS_RATE_BURST (40) frames; 50 at once overflow it.
    const replies = await Promise.all(Array.from({ length: 50 }, () => sdk.realtime.request('ping')));
    expect(replies).toHaveLength(50);
    expect(refused).toBeGreaterThanOrEqual(10);
    sdk.realtime.close();
  });

  it('loses no live chat message across a dropped connection, and never delivers one twice', async () => {
    const streamId = 'sdkRoom001';
    const viewer = await signedIn('viewer');
    const talker = await signedIn('talker');
    const seen: string[] = [];
    const states: string[] = [];
    const room = viewer.sdk.liveRoom(streamId);
    room.on('chat.message', (m: LiveChatMessage) => seen.push(m.body));
    viewer.sdk.realtime.onState((s) => states.push(s));
    await viewer.sdk.realtime.connect();
    await room.join();
    await talker.sdk.realtime.connect();
    const talk = talker.sdk.liveRoom(streamId);
    await talk.join();

    await talk.send('one');
    await waitFor(async () => seen.includes('one'), 10_000);
    viewer.sockets.at(-1)?.terminate(); // the network drops
    // (The reconnect can be back within one poll: look at the states it went through.)
    await waitFor(async () => states.includes('reconnecting'), 10_000);
    for (const body of ['two', 'three', 'four']) await talk.send(body);
    await waitFor(async () => seen.length >= 4, 20_000);
    await talk.send('five');
    await waitFor(async () => seen.includes('five'), 20_000);
    expect(seen).toEqual(['one', 'two', 'three', 'four', 'five']);
    expect(states).toContain('reconnecting');
    expect(viewer.sockets.length).toBeGreaterThanOrEqual(2);

    const refused = await room.send('').catch((e: unknown) => e);
    expect(isErrorCode(refused, 'VALIDATION_FAILED')).toBe(true);
    viewer.sdk.realtime.close();
    talker.sdk.realtime.close();
    expect(await room.send('late').catch((e: LiveCommerceError) => e.code)).toBe('DISCONNECTED');
  });

  it('ChatClient: a direct conversation with live messages, an edit, receipts and unread counts', async () => {
    const ann = await signedIn('ann');
    const bob = await signedIn('bob');
    const bobMe = await bob.sdk.http.request<{ id: string }>('GET', '/v1/auth/me');
    await ann.sdk.realtime.connect();
    await bob.sdk.realtime.connect();
    const conversation = await ann.sdk.chat.direct(bobMe.id);
    expect(
      (await bob.sdk.chat.direct((await ann.sdk.http.request<{ id: string }>('GET', '/v1/auth/me')).id)).id,
    ).toBe(conversation.id);
    const heard: string[] = [];
    const edits: string[] = [];
    await bob.sdk.chat.open(conversation.id);
    bob.sdk.chat.on(conversation.id, 'message.created', (m) => heard.push(m.body ?? ''));
    bob.sdk.chat.on(conversation.id, 'message.edited', (m) => edits.push(m.body ?? ''));

    const first = await ann.sdk.chat.send(conversation.id, {
      body: 'is the red one in stock?',
      clientId: 'c-1',
    });
    // A resend with the same clientId (after a dropped reply) is the same message.
    expect(
      (await ann.sdk.chat.send(conversation.id, { body: 'is the red one in stock?', clientId: 'c-1' })).id,
    ).toBe(first.id);
    await ann.sdk.chat.send(conversation.id, { body: 'size 42' });
    await waitFor(async () => heard.length === 2, 10_000);
    expect(heard).toEqual(['is the red one in stock?', 'size 42']);
    await ann.sdk.chat.edit(conversation.id, first.id, 'is the blue one in stock?');
    await waitFor(async () => edits.length === 1, 10_000);

    const before = (await bob.sdk.chat.conversations()).items.find((c) => c.id === conversation.id);
    expect(before?.unread).toBe(2);
    const history = await bob.sdk.chat.history(conversation.id);
    expect(history.items.map((m) => m.body)).toEqual(['size 42', 'is the blue one in stock?']);
    expect((await bob.sdk.chat.read(conversation.id, history.items[0]?.seq ?? 0)).unread).toBe(0);
    ann.sdk.realtime.close();
    bob.sdk.realtime.close();
  });
});
