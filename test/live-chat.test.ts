/**
 * Live-stream chat and its moderation over the gateway: anonymous viewers
 * read, signed-in viewers write, moderators delete, mute, ban and set slow
 * mode; every rule is enforced on the server.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/app.js';
import { wsCodeOf } from './support/failures.js';
import { waitFor } from './support/server-process.js';
import { WsClient, WsRequestError } from './support/ws-client.js';

describe('live chat with moderation', () => {
  let t: TestApp;
  let base: string;
  const clients: WsClient[] = [];
  const connect = async (token?: string) => {
    const c = await WsClient.connect(base, token ? { token } : {});
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await createTestApp();
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    t.gateway.attach(t.app.server);
    base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.close();
  });

  async function setup() {
    const streamId = `live-${randomUUID().slice(0, 8)}`;
    const room = `stream:${streamId}`;
    const mod = await t.login(['streamer']);
    const fan = await t.login();
    const m = await connect(mod.token);
    const f = await connect(fan.token);
    const anon = await connect();
    for (const c of [m, f, anon]) await c.request('join', { room });
    return { streamId, room, mod, fan, m, f, anon };
  }

  it('anonymous viewers read; signed-in viewers write; a moderator deletes for everyone', async () => {
    const { streamId, room, m, f, anon } = await setup();
    const sent = await f.request<{ id: string; seq: number }>('live.chat.send', {
      streamId,
      body: '  love these!  ',
    });
    const [msg] = await anon.waitForEvents(room, 1, 10_000, 'chat.message');
    expect(msg!.d).toMatchObject({ id: sent.id, body: 'love these!' });
    expect(await wsCodeOf(anon.request('live.chat.send', { streamId, body: 'hi' }))).toBe('UNAUTHENTICATED');
    expect(await wsCodeOf(f.request('live.chat.delete', { streamId, messageId: sent.id }))).toBe('FORBIDDEN');
    await m.request('live.chat.delete', { streamId, messageId: sent.id });
    const [deleted] = await anon.waitForEvents(room, 1, 10_000, 'chat.message_deleted');
    expect(deleted!.d).toMatchObject({ messageId: sent.id });
    expect(await t.liveChat.messageCount(streamId)).toBe(1);
  });

  it('a muted user cannot write until the mute ends', async () => {
    const { streamId, room, fan, m, f, anon } = await setup();
    expect(await wsCodeOf(f.request('live.mute', { streamId, userId: fan.id, seconds: 60 }))).toBe(
      'FORBIDDEN',
    );
    await m.request('live.mute', { streamId, userId: fan.id, seconds: 1 });
    await anon.waitForEvents(room, 1, 10_000, 'chat.user_muted');
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: 'am I muted?' }))).toBe('CHAT_MUTED');
    await waitFor(
      async () => (await wsCodeOf(f.request('live.chat.send', { streamId, body: 'back' }))) === 'ok',
      10_000,
      200,
    );
    await m.request('live.mute', { streamId, userId: fan.id, seconds: 600 });
    await m.request('live.unmute', { streamId, userId: fan.id });
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: 'unmuted' }))).toBe('ok');
  });

  it('a banned user can neither write nor join again', async () => {
    const { streamId, room, fan, m, f } = await setup();
    await m.request('live.ban', { streamId, userId: fan.id });
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: 'hello?' }))).toBe('CHAT_BANNED');
    await f.request('leave', { room });
    expect(await wsCodeOf(f.request('join', { room }))).toBe('ROOM_FORBIDDEN');
    const again = await connect(
      (await t.tokens.issue({ id: fan.id, roles: ['viewer'], displayName: 'F' })).token,
    );
    expect(await wsCodeOf(again.request('join', { room }))).toBe('ROOM_FORBIDDEN');
    await m.request('live.unban', { streamId, userId: fan.id });
    expect(await wsCodeOf(again.request('join', { room }))).toBe('ok');
  });

  it('slow mode allows one message per window per user', async () => {
    const { streamId, m, f } = await setup();
    await m.request('live.slow_mode', { streamId, seconds: 30 });
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: 'first' }))).toBe('ok');
    const err = await f.request('live.chat.send', { streamId, body: 'second' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WsRequestError);
    expect((err as WsRequestError).code).toBe('CHAT_SLOW_MODE');
    expect((err as WsRequestError).details).toMatchObject({ slowModeSeconds: 30 });
    await m.request('live.slow_mode', { streamId, seconds: 0 });
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: 'free again' }))).toBe('ok');
  });

  it('refuses malformed moderation and chat frames', async () => {
    const { streamId, m, f } = await setup();
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: '' }))).toBe('VALIDATION_FAILED');
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: '   ' }))).toBe('VALIDATION_FAILED');
    expect(await wsCodeOf(f.request('live.chat.send', { streamId, body: 'x'.repeat(501) }))).toBe(
      'VALIDATION_FAILED',
    );
    expect(await wsCodeOf(f.request('live.chat.send', { streamId: 'bad id!', body: 'x' }))).toBe(
      'VALIDATION_FAILED',
    );
    expect(await wsCodeOf(m.request('live.mute', { streamId, userId: 'nope', seconds: 5 }))).toBe(
      'VALIDATION_FAILED',
    );
    expect(await wsCodeOf(m.request('live.mute', { streamId, userId: randomUUID(), seconds: 0 }))).toBe(
      'VALIDATION_FAILED',
    );
    expect(await wsCodeOf(m.request('live.slow_mode', { streamId, seconds: -1 }))).toBe('VALIDATION_FAILED');
    expect(await f.request('ping')).toMatchObject({ ts: expect.any(Number) });
  });
});
