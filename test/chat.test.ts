/**
 * Chat through the HTTP API: direct and group conversations, messages with a
 * gap-free per-conversation seq, idempotent resends, receipts and unread
 * counts across devices, edit/delete rules, uploads, and every event the
 * service publishes (recorded by a fake RoomPublisher, checked to come after
 * the commit). Runs on PGlite + memory engine and on PostgreSQL + Redis.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import type { Role } from '../src/auth/permissions.js';
import { ChatService, type MessageView } from '../src/chat/chat-service.js';
import type { RoomPublisher } from '../src/chat/room-publisher.js';
import { createTestApp, type TestApp } from './support/app.js';
import { insertProduct, pool } from './support/commerce.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';

const MAX_GROUP = 5;
const UPLOAD_LIMIT = 4096;
const ENV = { UPLOAD_MAX_BYTES: String(UPLOAD_LIMIT) };

interface Published {
  room: string;
  event: string;
  data: Record<string, unknown>;
  /** For message.created: was the message visible to another connection when it was published? */
  committed?: boolean;
}

/** Records every publication; for new messages it checks the row is already committed. */
class RecordingPublisher implements RoomPublisher {
  events: Published[] = [];
  constructor(private readonly isCommitted: (messageId: string) => Promise<boolean>) {}

  async publish(room: string, event: string, data: unknown): Promise<void> {
    const entry: Published = { room, event, data: structuredClone(data) as Record<string, unknown> };
    this.events.push(entry);
    if (event === 'message.created') entry.committed = await this.isCommitted(entry.data.id as string);
  }

  in(room: string, event?: string): Published[] {
    return this.events.filter((e) => e.room === room && (event === undefined || e.event === event));
  }

  clear(): void {
    this.events = [];
  }
}

const PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.alloc(64, 1),
]);
const PDF = Buffer.from('%PDF-1.4\n% test document\n');

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

function chatSuite(makeApp: () => Promise<{ t: TestApp; cleanup: () => Promise<void> }>) {
  let t: TestApp;
  let cleanup: () => Promise<void>;
  let app: FastifyInstance;
  let pub: RecordingPublisher;
  let chat: ChatService;

  beforeAll(async () => {
    ({ t, cleanup } = await makeApp());
    const db = t.db.db;
    pub = new RecordingPublisher(
      async (id) =>
        (await db.selectFrom('messages').select('id').where('id', '=', id).executeTakeFirst()) !== undefined,
    );
    chat = new ChatService(db, { publisher: pub, maxGroupMembers: MAX_GROUP });
    // The real app on the same services, with the recording publisher in place of the Engine one.
    app = await buildApp({ ...t, chat });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
    await cleanup?.();
  });

  const call = (method: Method, url: string, token: string | undefined, payload?: unknown) =>
    app.inject({
      method,
      url,
      ...(payload === undefined ? {} : { payload: payload as object }),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  const login = (roles?: Role[]) => t.login(roles);
  const direct = async (a: { token: string }, b: { id: string }) => {
    const res = await call('POST', '/v1/conversations', a.token, { kind: 'direct', userId: b.id });
    expect([200, 201], res.body).toContain(res.statusCode);
    return res.json().id as string;
  };
  const group = async (owner: { token: string }, members: Array<{ id: string }>, title = 'Crew') => {
    const res = await call('POST', '/v1/conversations', owner.token, {
      kind: 'group',
      title,
      memberIds: members.map((m) => m.id),
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().id as string;
  };
  const send = (token: string, conversationId: string, body: object) =>
    call('POST', `/v1/conversations/${conversationId}/messages`, token, body);
  const text = async (token: string, conversationId: string, body: string) => {
    const res = await send(token, conversationId, { type: 'text', body });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as MessageView;
  };
  const history = async (token: string, conversationId: string, query = '') => {
    const res = await call('GET', `/v1/conversations/${conversationId}/messages${query}`, token);
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { items: MessageView[]; nextBefore: number | null; lastSeq: number };
  };
  const messageCount = async (conversationId: string) =>
    Number(
      (
        await t.db.db
          .selectFrom('messages')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('conversation_id', '=', conversationId)
          .executeTakeFirstOrThrow()
      ).n,
    );
  const upload = (token: string | undefined, bytes: Buffer, contentType: string, name?: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/uploads',
      payload: bytes,
      headers: {
        'content-type': contentType,
        ...(name === undefined ? {} : { 'x-file-name': name }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
    });

  describe('conversations', () => {
    it('a direct conversation is created once per pair, whoever asks and however often', async () => {
      const [a, b] = [await login(), await login()];
      pub.clear();
      const first = await call('POST', '/v1/conversations', a.token, { kind: 'direct', userId: b.id });
      expect(first.statusCode, first.body).toBe(201);
      const again = await call('POST', '/v1/conversations', a.token, { kind: 'direct', userId: b.id });
      const reverse = await call('POST', '/v1/conversations', b.token, { kind: 'direct', userId: a.id });
      expect(again.statusCode).toBe(200);
      expect(reverse.statusCode).toBe(200);
      expect(again.json().id).toBe(first.json().id);
      expect(reverse.json().id).toBe(first.json().id);
      expect(first.json()).toMatchObject({
        kind: 'direct',
        title: null,
        createdBy: a.id,
        lastSeq: 0,
        unread: 0,
      });
      expect(
        first
          .json()
          .members.map((m: { userId: string }) => m.userId)
          .sort(),
      ).toEqual([a.id, b.id].sort());
      expect(pub.in(`user:${b.id}`, 'notify.conversation')).toHaveLength(1);

      // Concurrent first contact from both sides still makes one conversation.
      const [c, d] = [await login(), await login()];
      const racing = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          i % 2
            ? call('POST', '/v1/conversations', c.token, { kind: 'direct', userId: d.id })
            : call('POST', '/v1/conversations', d.token, { kind: 'direct', userId: c.id }),
        ),
      );
      expect(racing.filter((r) => r.statusCode === 201)).toHaveLength(1);
      expect(new Set(racing.map((r) => r.json().id)).size).toBe(1);
    });

    it('refuses a direct conversation with yourself, an unknown user or a malformed id', async () => {
      const a = await login();
      const self = await call('POST', '/v1/conversations', a.token, { kind: 'direct', userId: a.id });
      expect(self.statusCode).toBe(400);
      expect(self.json()).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'userId' } });
      const unknown = await call('POST', '/v1/conversations', a.token, {
        kind: 'direct',
        userId: randomUUID(),
      });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.json().code).toBe('USER_NOT_FOUND');
      const malformed = await call('POST', '/v1/conversations', a.token, { kind: 'direct', userId: 'bob' });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().code).toBe('VALIDATION_FAILED');
      const missing = await call('POST', '/v1/conversations', a.token, { kind: 'direct' });
      expect(missing.json()).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'userId' } });
      const groupWithoutTitle = await call('POST', '/v1/conversations', a.token, { kind: 'group' });
      expect(groupWithoutTitle.json()).toMatchObject({
        code: 'VALIDATION_FAILED',
        details: { field: 'title' },
      });
      const extra = await call('POST', '/v1/conversations', a.token, {
        kind: 'group',
        title: 'x',
        admin: true,
      });
      expect(extra.statusCode).toBe(400);
      expect(extra.json().code).toBe('VALIDATION_FAILED');
      const anonymous = await call('POST', '/v1/conversations', undefined, { kind: 'group', title: 'x' });
      expect(anonymous.statusCode).toBe(401);
    });

    it('groups: owner adds and removes members, members cannot, events go to the room and to users', async () => {
      const [owner, m1, m2, m3] = [await login(), await login(), await login(), await login()];
      pub.clear();
      const id = await group(owner, [m1, m1, owner]);
      const created = await call('GET', `/v1/conversations/${id}`, owner.token);
      expect(created.json().members).toEqual([
        expect.objectContaining({ userId: owner.id, role: 'owner' }),
        expect.objectContaining({ userId: m1.id, role: 'member' }),
      ]);
      expect(pub.in(`user:${m1.id}`, 'notify.conversation')).toHaveLength(1);

      const byMember = await call('POST', `/v1/conversations/${id}/members`, m1.token, { userIds: [m2.id] });
      expect(byMember.statusCode).toBe(403);
      expect(byMember.json().code).toBe('CHAT_NOT_OWNER');

      await text(owner.token, id, 'before m2 joined');
      const added = await call('POST', `/v1/conversations/${id}/members`, owner.token, {
        userIds: [m2.id, m3.id, m1.id],
      });
      expect(added.statusCode, added.body).toBe(200);
      expect(added.json().members).toHaveLength(4);
      const [event] = pub.in(`conv:${id}`, 'member.added');
      expect(event?.data).toEqual({ conversationId: id, userIds: [m2.id, m3.id], addedBy: owner.id });
      expect(pub.in(`user:${m2.id}`, 'notify.conversation')).toHaveLength(1);
      // New members see history, but what came before them is not unread.
      const m2View = await call('GET', `/v1/conversations/${id}`, m2.token);
      expect(m2View.json().unread).toBe(0);
      expect((await history(m2.token, id)).items).toHaveLength(1);

      const removeByMember = await call('DELETE', `/v1/conversations/${id}/members/${m3.id}`, m1.token);
      expect(removeByMember.statusCode).toBe(403);
      const removed = await call('DELETE', `/v1/conversations/${id}/members/${m3.id}`, owner.token);
      expect(removed.statusCode).toBe(204);
      expect(pub.in(`conv:${id}`, 'member.removed')[0]?.data).toMatchObject({
        conversationId: id,
        userId: m3.id,
        removedBy: owner.id,
      });
      for (const url of [`/v1/conversations/${id}`, `/v1/conversations/${id}/messages`]) {
        const res = await call('GET', url, m3.token);
        expect(res.statusCode).toBe(404);
        expect(res.json().code).toBe('CHAT_CONVERSATION_NOT_FOUND');
      }
      expect(await chat.isMember(m3.id, id)).toBe(false);
      expect(await chat.isMember(m2.id, id)).toBe(true);
      const again = await call('DELETE', `/v1/conversations/${id}/members/${m3.id}`, owner.token);
      expect(again.statusCode).toBe(404);
      expect(again.json().code).toBe('CHAT_MEMBER_NOT_FOUND');

      // The owner leaves: the earliest-joined remaining member takes over.
      const left = await call('DELETE', `/v1/conversations/${id}/members/${owner.id}`, owner.token);
      expect(left.statusCode).toBe(204);
      expect(pub.in(`conv:${id}`, 'member.removed').at(-1)?.data).toMatchObject({
        userId: owner.id,
        newOwnerId: m1.id,
      });
      const after = await call('GET', `/v1/conversations/${id}`, m1.token);
      expect(after.json().members.find((m: { userId: string }) => m.userId === m1.id).role).toBe('owner');
      expect((await call('GET', `/v1/conversations/${id}`, owner.token)).statusCode).toBe(404);
    });

    it('a group has a member limit; direct conversations have fixed members', async () => {
      const owner = await login();
      const others = await Promise.all(Array.from({ length: MAX_GROUP }, () => login()));
      const tooBig = await call('POST', '/v1/conversations', owner.token, {
        kind: 'group',
        title: 'big',
        memberIds: others.map((o) => o.id),
      });
      expect(tooBig.statusCode).toBe(409);
      expect(tooBig.json().code).toBe('CHAT_GROUP_FULL');
      const id = await group(owner, others.slice(0, MAX_GROUP - 2));
      const overflow = await call('POST', `/v1/conversations/${id}/members`, owner.token, {
        userIds: others.slice(MAX_GROUP - 2).map((o) => o.id),
      });
      expect(overflow.statusCode).toBe(409);
      expect(overflow.json().code).toBe('CHAT_GROUP_FULL');

      const dm = await direct(owner, others[0]!);
      const add = await call('POST', `/v1/conversations/${dm}/members`, owner.token, {
        userIds: [others[1]!.id],
      });
      expect(add.statusCode).toBe(409);
      expect(add.json().code).toBe('CHAT_NOT_GROUP');
      const leave = await call('DELETE', `/v1/conversations/${dm}/members/${owner.id}`, owner.token);
      expect(leave.json().code).toBe('CHAT_NOT_GROUP');
    });

    it('lists my conversations by latest activity with unread counts, last messages and cursor pages', async () => {
      const me = await login();
      const peers = await Promise.all([login(), login(), login()]);
      const ids: string[] = [];
      for (const p of peers) ids.push(await direct(me, p));
      await text(peers[0]!.token, ids[0]!, 'oldest conversation, newest message');
      const page1 = await call('GET', '/v1/conversations?limit=2', me.token);
      expect(page1.statusCode, page1.body).toBe(200);
      const body1 = page1.json();
      expect(body1.items.map((c: { id: string }) => c.id)).toEqual([ids[0], ids[2]]);
      expect(body1.items[0]).toMatchObject({
        unread: 1,
        lastSeq: 1,
        lastMessage: { body: 'oldest conversation, newest message', seq: 1 },
      });
      expect(body1.nextCursor).toEqual(expect.any(String));
      const page2 = await call('GET', `/v1/conversations?limit=2&cursor=${body1.nextCursor}`, me.token);
      expect(page2.json().items.map((c: { id: string }) => c.id)).toEqual([ids[1]]);
      expect(page2.json().nextCursor).toBeNull();
      const bad = await call('GET', '/v1/conversations?cursor=nonsense', me.token);
      expect(bad.statusCode).toBe(400);
      expect((await call('GET', '/v1/conversations?limit=101', me.token)).statusCode).toBe(400);
    });
  });

  describe('messages', () => {
    it('sends a text message: stored with seq 1, published to the room after commit, members notified', async () => {
      const [a, b, c] = [await login(), await login(), await login()];
      const id = await group(a, [b, c]);
      pub.clear();
      const res = await send(a.token, id, { type: 'text', body: 'hello 👋', clientId: 'c-1' });
      expect(res.statusCode, res.body).toBe(201);
      const message = res.json();
      expect(message).toMatchObject({
        conversationId: id,
        seq: 1,
        senderId: a.id,
        type: 'text',
        body: 'hello 👋',
        clientId: 'c-1',
        readBy: 0,
        readByAll: false,
        deletedAt: null,
      });
      const created = pub.in(`conv:${id}`, 'message.created');
      expect(created).toHaveLength(1);
      expect(created[0]?.data).toMatchObject({ id: message.id, seq: 1, body: 'hello 👋' });
      expect(created[0]?.committed).toBe(true);
      for (const other of [b, c])
        expect(pub.in(`user:${other.id}`, 'notify.message').map((e) => e.data)).toEqual([
          expect.objectContaining({ conversationId: id, messageId: message.id, seq: 1, unread: 1 }),
        ]);
      expect(pub.in(`user:${a.id}`, 'notify.message')).toHaveLength(0);
    });

    it('100 concurrent sends get seqs 1..100; paging newest-first has no gaps or repeats while more arrive', async () => {
      const [a, b] = [await login(), await login()];
      const id = await direct(a, b);
      pub.clear();
      const sent = await pool(
        Array.from(
          { length: 100 },
          (_, i) => () => send(i % 2 ? a.token : b.token, id, { type: 'text', body: `m${i}` }),
        ),
        100,
      );
      expect(sent.every((r) => r.statusCode === 201)).toBe(true);
      const seqs = sent.map((r) => r.json().seq as number).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(pub.in(`conv:${id}`, 'message.created').every((e) => e.committed)).toBe(true);

      const first = await history(a.token, id, '?limit=17');
      expect(first.items.map((m) => m.seq)).toEqual(Array.from({ length: 17 }, (_, i) => 100 - i));
      expect(first.lastSeq).toBe(100);
      const seen = first.items.map((m) => m.seq);
      const more = pool(
        Array.from({ length: 50 }, (_, i) => () => send(a.token, id, { type: 'text', body: `late ${i}` })),
        10,
      );
      let before = first.nextBefore;
      while (before !== null) {
        const page = await history(b.token, id, `?limit=17&before=${before}`);
        seen.push(...page.items.map((m) => m.seq));
        before = page.nextBefore;
      }
      expect((await more).every((r) => r.statusCode === 201)).toBe(true);
      expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => 100 - i));
      const all = await history(a.token, id, '?limit=100');
      expect(all.items.map((m) => m.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 150 - i));
      expect(await messageCount(id)).toBe(150);
      const bad = await call('GET', `/v1/conversations/${id}/messages?before=0`, a.token);
      expect(bad.statusCode).toBe(400);
      expect((await call('GET', `/v1/conversations/${id}/messages?limit=101`, a.token)).statusCode).toBe(400);
    });

    it('a resend with the same clientId returns the first message and publishes nothing; other content is refused', async () => {
      const [a, b] = [await login(), await login()];
      const id = await direct(a, b);
      await text(a.token, id, 'first');
      pub.clear();
      const clientId = `c-${randomUUID()}`;
      const responses = await Promise.all(
        Array.from({ length: 20 }, () => send(a.token, id, { type: 'text', body: 'once', clientId })),
      );
      expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(1);
      expect(responses.every((r) => [200, 201].includes(r.statusCode))).toBe(true);
      expect(new Set(responses.map((r) => r.json().id)).size).toBe(1);
      expect(responses[0]?.json().seq).toBe(2);
      expect(pub.in(`conv:${id}`, 'message.created')).toHaveLength(1);

      const reused = await send(a.token, id, { type: 'text', body: 'something else', clientId });
      expect(reused.statusCode).toBe(422);
      expect(reused.json().code).toBe('CHAT_CLIENT_ID_REUSED');
      // The other sender's clientIds are their own.
      expect((await send(b.token, id, { type: 'text', body: 'mine', clientId })).statusCode).toBe(201);
      // No seq was burnt by the replays.
      expect((await text(a.token, id, 'next')).seq).toBe(4);
    });

    it('outsiders get 404 for the conversation and its messages, and nothing is stored', async () => {
      const [a, b, outsider] = [await login(), await login(), await login()];
      const id = await direct(a, b);
      const m = await text(a.token, id, 'private');
      const attempts = [
        call('GET', `/v1/conversations/${id}`, outsider.token),
        call('GET', `/v1/conversations/${id}/messages`, outsider.token),
        send(outsider.token, id, { type: 'text', body: 'let me in' }),
        send(outsider.token, id, { type: 'product', productId: randomUUID() }),
        send(outsider.token, id, { type: 'order', orderId: randomUUID() }),
        call('PATCH', `/v1/conversations/${id}/messages/${m.id}`, outsider.token, { body: 'x' }),
        call('DELETE', `/v1/conversations/${id}/messages/${m.id}`, outsider.token),
        call('POST', `/v1/conversations/${id}/read`, outsider.token, { seq: 1 }),
        call('POST', `/v1/conversations/${id}/delivered`, outsider.token, { seq: 1 }),
        call('POST', `/v1/conversations/${id}/members`, outsider.token, { userIds: [outsider.id] }),
        call('GET', `/v1/conversations/${randomUUID()}`, a.token),
      ];
      for (const res of await Promise.all(attempts)) {
        expect(res.statusCode, res.body).toBe(404);
        expect(res.json().code).toBe('CHAT_CONVERSATION_NOT_FOUND');
      }
      expect(await messageCount(id)).toBe(1);
      expect((await history(a.token, id)).items[0]?.body).toBe('private');
      expect(await chat.isMember(outsider.id, id)).toBe(false);
      expect(await chat.isMember(outsider.id, 'not-a-uuid')).toBe(false);

      const malformed = await call('GET', '/v1/conversations/not-a-uuid', a.token);
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().code).toBe('VALIDATION_FAILED');
      const badMessageId = await call('PATCH', `/v1/conversations/${id}/messages/123`, a.token, {
        body: 'x',
      });
      expect(badMessageId.statusCode).toBe(400);
      const unknownMessage = await call(
        'DELETE',
        `/v1/conversations/${id}/messages/${randomUUID()}`,
        a.token,
      );
      expect(unknownMessage.statusCode).toBe(404);
      expect(unknownMessage.json().code).toBe('CHAT_MESSAGE_NOT_FOUND');
    });

    it('bad messages get a clear 4xx with a stable code and nothing is stored', async () => {
      const [a, b, seller] = [await login(), await login(), await login(['streamer'])];
      const id = await direct(a, b);
      const { productId: inactive } = await insertProduct(t.db.db, seller.id);
      await t.db.db.updateTable('products').set({ active: false }).where('id', '=', inactive).execute();
      const othersOrder = randomUUID();
      await t.db.db
        .insertInto('orders')
        .values({
          id: othersOrder,
          user_id: b.id,
          status: 'pending_payment',
          currency: 'USD',
          subtotal_minor: 100,
          discount_minor: 0,
          shipping_minor: 0,
          total_minor: 100,
          coupon_id: null,
          stream_id: null,
          stream_media_time_ms: null,
          payment_ref: null,
          expires_at: new Date(Date.now() + 60_000),
          paid_at: null,
        })
        .execute();
      const bUpload = (await upload(b.token, PNG, 'image/png', 'b.png')).json();
      const aPdf = (await upload(a.token, PDF, 'application/pdf', 'doc.pdf')).json();
      pub.clear();

      const cases: Array<[object, number, string, string?]> = [
        [{ type: 'text', body: '' }, 400, 'VALIDATION_FAILED', 'body'],
        [{ type: 'text', body: '   \n ' }, 400, 'VALIDATION_FAILED', 'body'],
        [{ type: 'text' }, 400, 'VALIDATION_FAILED', 'body'],
        [{ type: 'text', body: 'x'.repeat(4001) }, 400, 'VALIDATION_FAILED', 'body'],
        [{ type: 'text', body: 'nul \u0000 inside' }, 400, 'VALIDATION_FAILED', 'body'],
        [{ type: 'sticker', body: 'hi' }, 400, 'VALIDATION_FAILED', 'type'],
        [{ type: 'system', body: 'I am the server' }, 400, 'VALIDATION_FAILED', 'type'],
        [{ type: 'text', body: 'hi', color: 'red' }, 400, 'VALIDATION_FAILED', 'color'],
        [{ type: 'text', body: 'hi', productId: randomUUID() }, 400, 'VALIDATION_FAILED', 'productId'],
        [{ type: 'text', body: 'hi', clientId: 'has spaces' }, 400, 'VALIDATION_FAILED', 'clientId'],
        [{ type: 'image' }, 400, 'VALIDATION_FAILED', 'attachment'],
        [
          { type: 'image', attachment: { url: 'https://evil.example.com/x.png' } },
          422,
          'CHAT_ATTACHMENT_INVALID',
        ],
        [{ type: 'image', attachment: { url: bUpload.url } }, 422, 'CHAT_ATTACHMENT_INVALID'],
        [{ type: 'image', attachment: { url: aPdf.url } }, 422, 'CHAT_ATTACHMENT_INVALID'],
        [{ type: 'file', attachment: { url: aPdf.url, size: 1 } }, 422, 'CHAT_ATTACHMENT_INVALID'],
        [{ type: 'file', attachment: { url: aPdf.url, evil: 1 } }, 400, 'VALIDATION_FAILED'],
        [{ type: 'product', productId: randomUUID() }, 404, 'PRODUCT_NOT_FOUND'],
        [{ type: 'product', productId: inactive }, 404, 'PRODUCT_NOT_FOUND'],
        [{ type: 'product', productId: 'shoe' }, 400, 'VALIDATION_FAILED', 'productId'],
        [{ type: 'product' }, 400, 'VALIDATION_FAILED', 'productId'],
        [{ type: 'order', orderId: othersOrder }, 404, 'ORDER_NOT_FOUND'],
        [{ type: 'order', orderId: randomUUID() }, 404, 'ORDER_NOT_FOUND'],
      ];
      for (const [body, status, code, field] of cases) {
        const res = await send(a.token, id, body);
        expect(res.statusCode, `${JSON.stringify(body).slice(0, 80)} → ${res.body}`).toBe(status);
        expect(res.json().code).toBe(code);
        if (field) expect(res.json().details.field).toBe(field);
      }
      const notJson = await app.inject({
        method: 'POST',
        url: `/v1/conversations/${id}/messages`,
        payload: '{"type": "text", "body": ',
        headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' },
      });
      expect(notJson.json().code).toBe('INVALID_JSON');
      expect(await messageCount(id)).toBe(0);
      expect(pub.events).toHaveLength(0);
      const view = await call('GET', `/v1/conversations/${id}`, a.token);
      expect(view.json().lastSeq).toBe(0);

      // The limits are inclusive: 4000 characters (an emoji is one) is fine.
      const longest = await send(a.token, id, { type: 'text', body: `${'x'.repeat(3999)}🎉` });
      expect(longest.statusCode, longest.body).toBe(201);
      // The service refuses system messages from users whatever the transport.
      await expect(
        chat.sendMessage({ id: a.id, roles: ['viewer'], displayName: 'A' }, id, {
          type: 'system' as 'text',
          body: 'x',
        }),
      ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    });

    it('product, order, image and file messages carry their references', async () => {
      const [a, b, seller] = [await login(), await login(), await login(['streamer'])];
      const id = await direct(a, b);
      const { productId } = await insertProduct(t.db.db, seller.id);
      const orderId = randomUUID();
      await t.db.db
        .insertInto('orders')
        .values({
          id: orderId,
          user_id: a.id,
          status: 'paid',
          currency: 'USD',
          subtotal_minor: 100,
          discount_minor: 0,
          shipping_minor: 0,
          total_minor: 100,
          coupon_id: null,
          stream_id: null,
          stream_media_time_ms: null,
          payment_ref: null,
          expires_at: new Date(Date.now() + 60_000),
          paid_at: new Date(),
        })
        .execute();
      const product = await send(a.token, id, { type: 'product', productId, body: 'this one?' });
      expect(product.statusCode, product.body).toBe(201);
      expect(product.json()).toMatchObject({ type: 'product', productId, body: 'this one?' });
      const order = await send(a.token, id, { type: 'order', orderId });
      expect(order.statusCode, order.body).toBe(201);
      expect(order.json()).toMatchObject({ type: 'order', orderId, body: '' });

      const up = await upload(a.token, PNG, 'image/png', 'red shoe.png');
      expect(up.statusCode, up.body).toBe(201);
      // The upload answer can be passed as the attachment as it is.
      const image = await send(a.token, id, { type: 'image', attachment: up.json(), body: 'look' });
      expect(image.statusCode, image.body).toBe(201);
      expect(image.json().attachment).toEqual({
        url: up.json().url,
        key: up.json().key,
        name: 'red shoe.png',
        size: PNG.length,
        contentType: 'image/png',
      });
      const pdf = (await upload(a.token, PDF, 'application/pdf', 'invoice.pdf')).json();
      const file = await send(a.token, id, {
        type: 'file',
        attachment: { url: pdf.url, name: 'Invoice May.pdf' },
      });
      expect(file.statusCode, file.body).toBe(201);
      expect(file.json().attachment).toMatchObject({
        name: 'Invoice May.pdf',
        contentType: 'application/pdf',
      });
      // An image may also go as a file.
      expect((await send(a.token, id, { type: 'file', attachment: { url: up.json().url } })).statusCode).toBe(
        201,
      );
    });

    it('edit: sender only, text only, not deleted; delete: sender or a member moderator; others see it live', async () => {
      const [a, b, mod, outsiderMod] = [
        await login(),
        await login(),
        await login(['streamer']),
        await login(['streamer']),
      ];
      const id = await group(a, [b, mod]);
      const m = await text(a.token, id, 'orginal');
      pub.clear();

      const byOther = await call('PATCH', `/v1/conversations/${id}/messages/${m.id}`, b.token, {
        body: 'hacked',
      });
      expect(byOther.statusCode).toBe(403);
      expect(byOther.json().code).toBe('CHAT_NOT_SENDER');
      const byMod = await call('PATCH', `/v1/conversations/${id}/messages/${m.id}`, mod.token, { body: 'x' });
      expect(byMod.statusCode).toBe(403);
      const empty = await call('PATCH', `/v1/conversations/${id}/messages/${m.id}`, a.token, { body: ' ' });
      expect(empty.statusCode).toBe(400);
      const unknownField = await call('PATCH', `/v1/conversations/${id}/messages/${m.id}`, a.token, {
        body: 'x',
        type: 'image',
      });
      expect(unknownField.statusCode).toBe(400);
      expect(pub.events).toHaveLength(0);

      const edited = await call('PATCH', `/v1/conversations/${id}/messages/${m.id}`, a.token, {
        body: 'original',
      });
      expect(edited.statusCode, edited.body).toBe(200);
      expect(edited.json()).toMatchObject({ body: 'original', editedAt: expect.any(String), seq: m.seq });
      expect(pub.in(`conv:${id}`, 'message.edited').map((e) => e.data)).toEqual([
        expect.objectContaining({ id: m.id, body: 'original' }),
      ]);

      const up = (await upload(a.token, PNG, 'image/png', 'p.png')).json();
      const image = (await send(a.token, id, { type: 'image', attachment: { url: up.url } })).json();
      const editImage = await call('PATCH', `/v1/conversations/${id}/messages/${image.id}`, a.token, {
        body: 'caption',
      });
      expect(editImage.statusCode).toBe(409);
      expect(editImage.json().code).toBe('CHAT_MESSAGE_NOT_EDITABLE');

      const delByOther = await call('DELETE', `/v1/conversations/${id}/messages/${m.id}`, b.token);
      expect(delByOther.statusCode).toBe(403);
      expect(delByOther.json().code).toBe('CHAT_NOT_SENDER');
      const delByOutsiderMod = await call(
        'DELETE',
        `/v1/conversations/${id}/messages/${m.id}`,
        outsiderMod.token,
      );
      expect(delByOutsiderMod.statusCode).toBe(404);
      pub.clear();
      const deleted = await call('DELETE', `/v1/conversations/${id}/messages/${m.id}`, mod.token);
      expect(deleted.statusCode, deleted.body).toBe(200);
      expect(deleted.json()).toMatchObject({
        id: m.id,
        body: '',
        deletedBy: mod.id,
        deletedAt: expect.any(String),
      });
      expect(pub.in(`conv:${id}`, 'message.deleted').map((e) => e.data)).toEqual([
        { conversationId: id, messageId: m.id, seq: m.seq, deletedBy: mod.id, deletedAt: expect.any(String) },
      ]);
      const twice = await call('DELETE', `/v1/conversations/${id}/messages/${m.id}`, a.token);
      expect(twice.statusCode).toBe(200);
      expect(pub.in(`conv:${id}`, 'message.deleted')).toHaveLength(1);
      const editDeleted = await call('PATCH', `/v1/conversations/${id}/messages/${m.id}`, a.token, {
        body: 'x',
      });
      expect(editDeleted.statusCode).toBe(409);
      expect(editDeleted.json().code).toBe('CHAT_MESSAGE_DELETED');

      const ownDelete = await call('DELETE', `/v1/conversations/${id}/messages/${image.id}`, a.token);
      expect(ownDelete.statusCode).toBe(200);
      expect(ownDelete.json().attachment).toBeNull();
      const items = (await history(b.token, id)).items;
      expect(items.map((i) => [i.seq, i.body, i.deletedAt !== null])).toEqual([
        [image.seq, '', true],
        [m.seq, '', true],
      ]);
    });
  });

  describe('receipts and unread counts', () => {
    it('unread counts come from the Db pointers, so two devices of one user agree', async () => {
      const [a, b] = [await login(), await login()];
      const bPhone = b.token;
      const bLaptop = (await t.tokens.issue({ id: b.id, roles: ['viewer'], displayName: 'B' })).token;
      const id = await direct(a, b);
      for (const body of ['one', 'two', 'three']) await text(a.token, id, body);
      const unreadOn = async (token: string) =>
        (await call('GET', '/v1/conversations', token)).json().items.find((c: { id: string }) => c.id === id)
          .unread as number;
      expect(await unreadOn(bPhone)).toBe(3);
      expect(await unreadOn(bLaptop)).toBe(3);
      expect(await unreadOn(a.token)).toBe(0);

      pub.clear();
      const read = await call('POST', `/v1/conversations/${id}/read`, bLaptop, { seq: 2 });
      expect(read.statusCode, read.body).toBe(200);
      expect(read.json()).toEqual({
        conversationId: id,
        userId: b.id,
        lastReadSeq: 2,
        lastDeliveredSeq: 2,
        unread: 1,
      });
      expect(await unreadOn(bPhone)).toBe(1);
      expect(pub.in(`user:${b.id}`, 'notify.read').map((e) => e.data)).toEqual([
        { conversationId: id, lastReadSeq: 2, unread: 1 },
      ]);
      expect(pub.in(`conv:${id}`, 'receipt.read').map((e) => e.data)).toEqual([
        { conversationId: id, userId: b.id, lastReadSeq: 2, lastDeliveredSeq: 2 },
      ]);

      // A new message and a deletion: counts follow on every device.
      const four = await text(a.token, id, 'four');
      expect(pub.in(`user:${b.id}`, 'notify.message').at(-1)?.data).toMatchObject({ seq: 4, unread: 2 });
      await call('DELETE', `/v1/conversations/${id}/messages/${four.id}`, a.token);
      expect(await unreadOn(bLaptop)).toBe(1);
      await call('POST', `/v1/conversations/${id}/read`, bPhone, { seq: 4 });
      expect(await unreadOn(bLaptop)).toBe(0);
      expect(await unreadOn(bPhone)).toBe(0);
    });

    it('pointers only move forward, even with concurrent updates; read implies delivered; readByAll in history', async () => {
      const [a, b] = [await login(), await login()];
      const id = await direct(a, b);
      for (let i = 0; i < 5; i++) await text(a.token, id, `m${i}`);
      pub.clear();
      const delivered = await call('POST', `/v1/conversations/${id}/delivered`, b.token, { seq: 4 });
      expect(delivered.json()).toMatchObject({ lastDeliveredSeq: 4, lastReadSeq: 0, unread: 5 });
      expect(pub.in(`conv:${id}`, 'receipt.delivered').map((e) => e.data)).toEqual([
        { conversationId: id, userId: b.id, lastReadSeq: 0, lastDeliveredSeq: 4 },
      ]);
      const read = await call('POST', `/v1/conversations/${id}/read`, b.token, { seq: 3 });
      expect(read.json()).toMatchObject({ lastReadSeq: 3, lastDeliveredSeq: 4, unread: 2 });
      pub.clear();
      const backwards = await call('POST', `/v1/conversations/${id}/read`, b.token, { seq: 1 });
      expect(backwards.statusCode).toBe(200);
      expect(backwards.json()).toMatchObject({ lastReadSeq: 3, lastDeliveredSeq: 4 });
      const deliveredBack = await call('POST', `/v1/conversations/${id}/delivered`, b.token, { seq: 2 });
      expect(deliveredBack.json()).toMatchObject({ lastDeliveredSeq: 4 });
      expect(pub.events).toHaveLength(0); // nothing moved, nothing published

      // Concurrent reads from several devices: the pointer ends at the highest.
      await Promise.all(
        [5, 4, 2, 5, 3].map((seq) => call('POST', `/v1/conversations/${id}/read`, b.token, { seq })),
      );
      const state = await call('GET', `/v1/conversations/${id}`, b.token);
      const mine = state.json().members.find((m: { userId: string }) => m.userId === b.id);
      expect(mine).toMatchObject({ lastReadSeq: 5, lastDeliveredSeq: 5 });
      expect(pub.in(`conv:${id}`, 'receipt.read').length).toBeGreaterThanOrEqual(1);
      expect(pub.in(`conv:${id}`, 'receipt.read').every((e) => (e.data.lastReadSeq as number) > 3)).toBe(
        true,
      );

      const beyond = await call('POST', `/v1/conversations/${id}/read`, b.token, { seq: 6 });
      expect(beyond.statusCode).toBe(400);
      expect(beyond.json()).toMatchObject({ code: 'CHAT_SEQ_OUT_OF_RANGE', details: { lastSeq: 5 } });
      for (const payload of [{ seq: -1 }, { seq: '3' }, {}, { seq: 1, extra: true }]) {
        const res = await call('POST', `/v1/conversations/${id}/read`, b.token, payload);
        expect(res.statusCode).toBe(400);
        expect(res.json().code).toBe('VALIDATION_FAILED');
      }

      await text(a.token, id, 'unread one');
      const items = (await history(a.token, id)).items;
      expect(items.map((m) => [m.seq, m.readByAll, m.readBy])).toEqual([
        [6, false, 0],
        [5, true, 1],
        [4, true, 1],
        [3, true, 1],
        [2, true, 1],
        [1, true, 1],
      ]);
      // Anyone in the conversation sees the same receipts.
      expect((await history(b.token, id)).items[1]).toMatchObject({ readByAll: true, deliveredTo: 1 });
    });

    it('group receipts count the members who have read', async () => {
      const [a, b, c] = [await login(), await login(), await login()];
      const id = await group(a, [b, c]);
      const m = await text(a.token, id, 'who read this?');
      await call('POST', `/v1/conversations/${id}/read`, b.token, { seq: m.seq });
      await call('POST', `/v1/conversations/${id}/delivered`, c.token, { seq: m.seq });
      let [item] = (await history(a.token, id)).items;
      expect(item).toMatchObject({ readBy: 1, deliveredTo: 2, readByAll: false });
      await chat.markRead({ id: c.id, roles: ['viewer'], displayName: 'C' }, id, m.seq);
      [item] = (await history(a.token, id)).items;
      expect(item).toMatchObject({ readBy: 2, deliveredTo: 2, readByAll: true });
    });
  });

  describe('uploads', () => {
    it('stores an allowed file under uploads/<userId>/ and serves it back', async () => {
      const a = await login();
      const res = await upload(a.token, PNG, 'image/png', encodeURIComponent('Été à la plage.png'));
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json();
      expect(body).toMatchObject({ size: PNG.length, contentType: 'image/png', name: 'Été à la plage.png' });
      expect(body.key).toMatch(new RegExp(`^uploads/${a.id}/[0-9a-f-]{36}/Ete_a_la_plage\\.png$`));
      expect(body.url).toBe(t.objectStore.publicUrl(body.key));
      const served = await app.inject(`/media/${body.key}`);
      expect(served.statusCode).toBe(200);
      expect(served.headers['content-type']).toBe('image/png');
      expect(served.rawPayload.equals(PNG)).toBe(true);

      const txt = await upload(
        a.token,
        Buffer.from('notes ✓'),
        'text/plain; charset=utf-8',
        '../../etc/passwd',
      );
      expect(txt.statusCode, txt.body).toBe(201);
      expect(txt.json()).toMatchObject({ name: 'passwd', contentType: 'text/plain' });
      expect(txt.json().key).toMatch(/\/passwd\.txt$/);
      const unnamed = await upload(a.token, PDF, 'application/pdf');
      expect(unnamed.json().name).toBe('upload.pdf');
    });

    it('refuses other types, mismatched content, empty and oversized bodies, anonymous callers', async () => {
      const a = await login();
      const cases: Array<[Buffer, string, number, string]> = [
        [Buffer.from('{"a":1}'), 'application/json', 415, 'UPLOAD_TYPE_UNSUPPORTED'],
        [Buffer.from('<svg onload="alert(1)"/>'), 'image/svg+xml', 415, 'UPLOAD_TYPE_UNSUPPORTED'],
        [Buffer.from('<html><script>alert(1)</script>'), 'image/png', 415, 'UPLOAD_TYPE_UNSUPPORTED'],
        [Buffer.from([0xff, 0xfe, 0x00, 0x41]), 'text/plain', 415, 'UPLOAD_TYPE_UNSUPPORTED'],
        [Buffer.alloc(0), 'image/png', 400, 'UPLOAD_EMPTY'],
        [Buffer.concat([PNG, Buffer.alloc(UPLOAD_LIMIT)]), 'image/png', 413, 'UPLOAD_TOO_LARGE'],
      ];
      for (const [bytes, type, status, code] of cases) {
        const res = await upload(a.token, bytes, type, 'f');
        expect(res.statusCode, `${type}: ${res.body}`).toBe(status);
        expect(res.json().code).toBe(code);
      }
      // Without a Content-Length the parser's limit still applies.
      const chunked = await app.inject({
        method: 'POST',
        url: '/v1/uploads',
        payload: Readable.from([PNG, Buffer.alloc(UPLOAD_LIMIT)]),
        headers: { authorization: `Bearer ${a.token}`, 'content-type': 'image/png' },
      });
      expect(chunked.statusCode).toBe(413);
      expect(chunked.json().code).toBe('UPLOAD_TOO_LARGE');
      const exact = await upload(
        a.token,
        Buffer.concat([PNG, Buffer.alloc(UPLOAD_LIMIT - PNG.length)]),
        'image/png',
      );
      expect(exact.statusCode, exact.body).toBe(201);

      const anonymous = await upload(undefined, PNG, 'image/png', 'a.png');
      expect(anonymous.statusCode).toBe(401);
      const badName = await upload(a.token, PNG, 'image/png', 'a%0Ab.png');
      expect(badName.statusCode).toBe(400);
      expect(badName.json().code).toBe('UPLOAD_NAME_INVALID');
      const rows = await t.db.db.selectFrom('uploads').select('id').where('owner_id', '=', a.id).execute();
      expect(rows).toHaveLength(1);
    });
  });

  describe('wiring', () => {
    it('a failing publisher does not fail the change; system messages come from the server', async () => {
      const [a, b] = [await login(), await login()];
      const id = await direct(a, b);
      const failures: string[] = [];
      const broken = new ChatService(t.db.db, {
        publisher: {
          publish: async () => {
            throw new Error('bus down');
          },
        },
        onPublishError: (_err, room, event) => failures.push(`${room} ${event}`),
      });
      const user = { id: a.id, roles: ['viewer' as const], displayName: 'A' };
      const { message } = await broken.sendMessage(user, id, { type: 'text', body: 'still stored' });
      expect(message.seq).toBe(1);
      expect(failures).toEqual([`conv:${id} message.created`, `user:${b.id} notify.message`]);

      pub.clear();
      const system = await chat.postSystemMessage(id, 'Order #42 shipped');
      expect(system).toMatchObject({ seq: 2, senderId: null, type: 'system' });
      expect(pub.in(`user:${a.id}`, 'notify.message')).toHaveLength(1);
      expect(pub.in(`user:${b.id}`, 'notify.message')[0]?.data).toMatchObject({ unread: 2 });
    });

    it('documents every chat route in OpenAPI with the chat tag, examples and error responses', async () => {
      const doc = (await app.inject('/docs/json')).json();
      const routes: Array<[string, string]> = [
        ['/v1/conversations', 'post'],
        ['/v1/conversations', 'get'],
        ['/v1/conversations/{id}', 'get'],
        ['/v1/conversations/{id}/members', 'post'],
        ['/v1/conversations/{id}/members/{userId}', 'delete'],
        ['/v1/conversations/{id}/messages', 'post'],
        ['/v1/conversations/{id}/messages', 'get'],
        ['/v1/conversations/{id}/messages/{messageId}', 'patch'],
        ['/v1/conversations/{id}/messages/{messageId}', 'delete'],
        ['/v1/conversations/{id}/read', 'post'],
        ['/v1/conversations/{id}/delivered', 'post'],
        ['/v1/uploads', 'post'],
      ];
      for (const [path, method] of routes) {
        const op = doc.paths[path]?.[method];
        expect(op, `${method} ${path}`).toBeDefined();
        expect(op.tags).toEqual(['chat']);
        expect(op.security).toEqual([{ bearer: [] }]);
        expect(Object.keys(op.responses)).toContain('401');
      }
      expect(doc.tags.map((tag: { name: string }) => tag.name)).toContain('chat');
      expect(JSON.stringify(doc.paths['/v1/conversations/{id}/messages'].post.requestBody)).toContain(
        'examples',
      );
      expect(Object.keys(doc.paths['/v1/uploads'].post.requestBody.content)).toEqual(
        expect.arrayContaining(['image/png', 'application/pdf', 'text/plain']),
      );
      expect(doc.components.schemas.ChatMessage.examples).toBeDefined();
      expect(doc.components.schemas.ChatConversation.examples).toBeDefined();
    });
  });
}

describe('chat (embedded: PGlite + memory engine)', () => {
  chatSuite(async () => ({ t: await createTestApp(ENV), cleanup: async () => {} }));
});

await describeWithService('chat (PostgreSQL + Redis)', probePostgres, () => {
  chatSuite(async () => {
    const { url, drop } = await createTestDatabase();
    return { t: await createTestApp(ENV, { databaseUrl: url, redisUrl: TEST_REDIS_URL }), cleanup: drop };
  });
});
