/**
 * Live streams through the HTTP API and the ingest-facing service calls:
 * keys shown once and stored hashed, rotation and revocation, the guarded
 * lifecycle with duplicate-publisher detection and the reconnect grace
 * period, listing order and paging, permissions, pins published to the
 * stream's room, and the stream page's data. Runs on the embedded adapters
 * and on real PostgreSQL + Redis.
 */
import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { LiveStreamsService, PublishAuth } from '../src/live/live-streams-service.js';
import { createTestApp, type TestApp } from './support/app.js';
import { couponRow, insertProduct } from './support/commerce.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService, TEST_REDIS_URL } from './support/real-services.js';
import { WsClient } from './support/ws-client.js';

type User = { id: string; token: string };
type Res = Awaited<ReturnType<TestApp['app']['inject']>>;

const codeOf = (r: Res) => [r.statusCode, r.json().code];
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function liveStreamsSuite(makeApp: () => Promise<{ t: TestApp; cleanup: () => Promise<void> }>) {
  let t: TestApp;
  let cleanup: () => Promise<void>;
  let base: string;
  let live: LiveStreamsService;
  let streamer: User;
  let rival: User;
  let admin: User;
  let viewer: User;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    ({ t, cleanup } = await makeApp());
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    t.gateway.attach(t.app.server);
    base = `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}`;
    live = t.liveStreams;
    [streamer, rival, admin, viewer] = await Promise.all([
      t.login(['streamer']),
      t.login(['streamer']),
      t.login(['admin']),
      t.login(),
    ]);
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.close();
    await cleanup?.();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const call = (
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    url: string,
    user?: User,
    payload?: object,
  ): Promise<Res> =>
    t.app.inject({
      method,
      url,
      payload,
      headers: user ? { authorization: `Bearer ${user.token}` } : {},
    });

  const createStream = async (user: User = streamer, body: object = {}) => {
    const res = await call('POST', '/v1/streams', user, { title: 'Sneaker drop', ...body });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { stream: { id: string }; rtmpUrl: string; streamKey: string };
  };
  /** One publisher's heartbeat: may it go on? */
  const touch = async (streamId: string, sessionId: string) =>
    (await live.touchPublishers([{ streamId, sessionId }])).has(streamId);
  const rowOf = (publicId: string) =>
    t.db.db.selectFrom('streams').selectAll().where('public_id', '=', publicId).executeTakeFirstOrThrow();
  /** Moves the publisher's last sighting `ms` into the past. */
  const ageSighting = (streamId: string, ms: number) =>
    t.db.db
      .updateTable('streams')
      .set({ publisher_seen_at: sql<Date>`now() - ${ms} * interval '1 millisecond'` })
      .where('id', '=', streamId)
      .execute();
  const ok = (auth: PublishAuth | null) => {
    expect(auth?.result).toBe('ok');
    return auth as Extract<PublishAuth, { result: 'ok' }>;
  };

  it('create answers the key once (RTMP URL separate); reads never show the key or its hash', async () => {
    const created = await createStream(streamer, {
      description: 'Three colourways',
      scheduledAt: '2030-01-01T18:00:00Z',
    });
    expect(created.rtmpUrl).toBe('rtmp://localhost:1935/live');
    expect(created.streamKey).toMatch(/^sk_[A-Za-z0-9]{32}$/);
    expect(created.rtmpUrl).not.toContain(created.streamKey);
    expect(created.stream).toMatchObject({
      id: expect.stringMatching(/^[A-Za-z0-9]{10}$/),
      ownerId: streamer.id,
      title: 'Sneaker drop',
      description: 'Three colourways',
      status: 'scheduled',
      scheduledAt: '2030-01-01T18:00:00.000Z',
      startedAt: null,
      recording: true,
      ingest: {
        rtmpUrl: 'rtmp://localhost:1935/live',
        keyPrefix: created.streamKey.slice(0, 7),
        keyRevokedAt: null,
      },
    });
    const publicId = created.stream.id;

    const row = await rowOf(publicId);
    expect(row.key_hash).toBe(sha256(created.streamKey));
    expect(JSON.stringify(row)).not.toContain(created.streamKey);

    for (const who of [undefined, viewer, rival, streamer, admin]) {
      const page = await call('GET', `/v1/streams/${publicId}`, who);
      expect(page.statusCode, page.body).toBe(200);
      expect(page.body).not.toContain(created.streamKey);
      expect(page.body).not.toContain(row.key_hash);
      expect(page.body).not.toContain('streamKey');
      const sees = who === streamer || who === admin;
      expect(page.json().stream.ingest === undefined).toBe(!sees);
    }
    const list = await call('GET', `/v1/streams?ownerId=${streamer.id}`);
    expect(list.body).not.toContain(created.streamKey);
    expect(list.json().items.every((s: { ingest?: unknown }) => s.ingest === undefined)).toBe(true);
  });

  it('a key authenticates; rotation invalidates the old one; revocation disables it until rotated', async () => {
    const { stream, streamKey } = await createStream();
    const auth = ok(await live.authenticatePublish(streamKey));
    expect(auth).toMatchObject({ publicId: stream.id, ownerId: streamer.id, recording: true, resume: false });
    expect(auth.streamId).toBe((await rowOf(stream.id)).id);

    // One character changed (to a different one: a key may already end in x).
    const wrongKey = `${streamKey.slice(0, -1)}${streamKey.endsWith('x') ? 'y' : 'x'}`;
    expect(await live.authenticatePublish(wrongKey)).toBeNull();
    expect(await live.authenticatePublish('sk_short')).toBeNull();
    expect(await live.authenticatePublish('')).toBeNull();

    const rotated = await call('POST', `/v1/streams/${stream.id}/key/rotate`, streamer);
    expect(rotated.statusCode, rotated.body).toBe(200);
    const newKey = rotated.json().streamKey as string;
    expect(newKey).not.toBe(streamKey);
    expect(rotated.json().stream.ingest.keyPrefix).toBe(newKey.slice(0, 7));
    expect(await live.authenticatePublish(streamKey)).toBeNull();
    ok(await live.authenticatePublish(newKey));

    const revoked = await call('POST', `/v1/streams/${stream.id}/key/revoke`, streamer);
    expect(revoked.statusCode, revoked.body).toBe(200);
    expect(revoked.json().ingest.keyRevokedAt).toEqual(expect.any(String));
    expect(revoked.body).not.toContain(newKey);
    expect(await live.authenticatePublish(newKey)).toBeNull();
    expect((await live.markLive(auth.streamId)).publishing).toBe(false);
    // idempotent: revoking again keeps the first time
    const again = await call('POST', `/v1/streams/${stream.id}/key/revoke`, streamer);
    expect(again.json().ingest.keyRevokedAt).toBe(revoked.json().ingest.keyRevokedAt);

    const fresh = (await call('POST', `/v1/streams/${stream.id}/key/rotate`, streamer)).json();
    expect(fresh.stream.ingest.keyRevokedAt).toBeNull();
    ok(await live.authenticatePublish(fresh.streamKey));
    expect(await live.authenticatePublish(newKey)).toBeNull();

    // Revoking while live: the ingest's next heartbeat is told to drop the publisher.
    expect(await live.markLive(auth.streamId, { sessionId: 'S' })).toMatchObject({ publishing: true });
    expect(await touch(auth.streamId, 'S')).toBe(true);
    await call('POST', `/v1/streams/${stream.id}/key/revoke`, streamer);
    expect(await touch(auth.streamId, 'S')).toBe(false);
    // An instance confirms all its publishers in one statement: only the revoked one is to be dropped.
    const other = await createStream();
    const otherAuth = ok(await live.authenticatePublish(other.streamKey));
    expect(await live.markLive(otherAuth.streamId, { sessionId: 'T' })).toMatchObject({ publishing: true });
    expect(
      await live.touchPublishers([
        { streamId: auth.streamId, sessionId: 'S' },
        { streamId: otherAuth.streamId, sessionId: 'T' },
        { streamId: otherAuth.streamId.replace(/.$/, (c) => (c === '0' ? '1' : '0')), sessionId: 'T' },
      ]),
    ).toEqual(new Set([otherAuth.streamId]));
    expect(await live.touchPublishers([])).toEqual(new Set());
  });

  it('lifecycle: scheduled → live → ended, guarded, idempotent, refusing a second publisher', async () => {
    const publish = vi.spyOn(t.gateway, 'publish');
    const { stream, streamKey } = await createStream();
    const { streamId } = ok(await live.authenticatePublish(streamKey));
    const room = `stream:${stream.id}`;

    // Ending a stream that never went live changes nothing.
    expect(await live.markEnded(streamId, 'publisher_gone')).toMatchObject({
      status: 'scheduled',
      changed: false,
    });

    const first = await live.markLive(streamId, { sessionId: 'A' });
    expect(first).toEqual({ streamId, publicId: stream.id, status: 'live', changed: true, publishing: true });
    expect(publish).toHaveBeenCalledWith(room, 'stream.status', {
      status: 'live',
      startedAt: expect.any(String),
    });
    const startedAt = (await rowOf(stream.id)).started_at;
    // the same session again: idempotent
    expect(await live.markLive(streamId, { sessionId: 'A' })).toMatchObject({
      changed: false,
      publishing: true,
    });
    expect((await rowOf(stream.id)).started_at).toEqual(startedAt);
    expect(publish.mock.calls.filter((c) => c[1] === 'stream.status')).toHaveLength(1);

    // a second publisher while the first is connected
    expect(await live.authenticatePublish(streamKey)).toEqual({
      result: 'already_live',
      streamId,
      publicId: stream.id,
    });
    expect(await live.markLive(streamId, { sessionId: 'B' })).toMatchObject({
      status: 'live',
      publishing: false,
    });
    expect(await touch(streamId, 'A')).toBe(true);
    expect(await touch(streamId, 'B')).toBe(false);

    // the publisher leaves: a reconnect within the grace period continues the same stream
    await live.markDisconnected(streamId, { sessionId: 'A' });
    expect(ok(await live.authenticatePublish(streamKey)).resume).toBe(true);
    expect(await live.markLive(streamId, { sessionId: 'B' })).toMatchObject({
      changed: false,
      publishing: true,
    });
    expect(await touch(streamId, 'A')).toBe(false);
    expect((await rowOf(stream.id)).started_at).toEqual(startedAt);

    // its ingest dies (no heartbeats): after two heartbeats a reconnect may take over, still within grace
    await ageSighting(streamId, 7_000);
    expect(ok(await live.authenticatePublish(streamKey)).resume).toBe(true);
    expect(await live.markLive(streamId, { sessionId: 'C' })).toMatchObject({ publishing: true });

    // Live but not playable until the ingest has stored the first playlist.
    expect((await call('GET', `/v1/streams/${stream.id}`)).json()).toMatchObject({
      status: 'live',
      hlsUrl: null,
    });
    await live.setMediaOrigin(streamId, new Date());
    const page = (await call('GET', `/v1/streams/${stream.id}`)).json();
    expect(page).toMatchObject({
      status: 'live',
      hlsUrl: `http://localhost/media/live/${stream.id}/index.m3u8`,
    });

    const ended = await live.markEnded(streamId, 'ingest_error');
    expect(ended).toMatchObject({ status: 'ended', changed: true });
    expect(publish).toHaveBeenCalledWith(room, 'stream.status', {
      status: 'ended',
      endedAt: expect.any(String),
      reason: 'ingest_error',
    });
    expect(await live.markEnded(streamId, 'publisher_gone')).toMatchObject({
      status: 'ended',
      changed: false,
    });
    expect((await rowOf(stream.id)).end_reason).toBe('ingest_error');
    // ended never goes live again, whatever the key
    expect(await live.markLive(streamId, { sessionId: 'C' })).toMatchObject({
      status: 'ended',
      publishing: false,
    });
    expect(await touch(streamId, 'C')).toBe(false);
    expect(await live.authenticatePublish(streamKey)).toEqual({
      result: 'ended',
      streamId,
      publicId: stream.id,
    });
    const after = (await call('GET', `/v1/streams/${stream.id}`)).json();
    expect(after).toMatchObject({ status: 'ended', hlsUrl: null, stream: { endReason: 'ingest_error' } });
    await expect(live.markLive(randomUUID())).rejects.toMatchObject({ code: 'STREAM_NOT_FOUND' });
  });

  it('a publisher gone for longer than the grace period ends the stream, exactly once', async () => {
    const a = await createStream();
    const b = await createStream();
    const ida = ok(await live.authenticatePublish(a.streamKey)).streamId;
    const idb = ok(await live.authenticatePublish(b.streamKey)).streamId;
    await Promise.all([live.markLive(ida), live.markLive(idb)]);
    await live.markDisconnected(ida);
    await ageSighting(ida, 11_000);
    await ageSighting(idb, 11_000); // b's ingest died without a word

    const publish = vi.spyOn(t.gateway, 'publish');
    const counts = await Promise.all([live.endAbandoned(), live.endAbandoned()]);
    expect(counts[0]! + counts[1]!).toBeGreaterThanOrEqual(2);
    for (const s of [a, b]) {
      const row = await rowOf(s.stream.id);
      expect(row).toMatchObject({ status: 'ended', end_reason: 'publisher_gone', publisher_session: null });
      expect(
        publish.mock.calls.filter((c) => c[0] === `stream:${s.stream.id}` && c[1] === 'stream.status'),
      ).toHaveLength(1);
    }
    expect(await live.authenticatePublish(a.streamKey)).toMatchObject({ result: 'ended' });

    // A late reconnect that arrives before any sweep ran still finds the stream over.
    const c = await createStream();
    const idc = ok(await live.authenticatePublish(c.streamKey)).streamId;
    await live.markLive(idc);
    await live.markDisconnected(idc);
    await ageSighting(idc, 11_000);
    expect(await live.markLive(idc)).toMatchObject({ status: 'live', publishing: false });
    expect(await live.authenticatePublish(c.streamKey)).toMatchObject({ result: 'ended' });
    expect((await rowOf(c.stream.id)).status).toBe('ended');
  });

  it('lists live streams first, then upcoming ones by start time, with stable paging', async () => {
    const owner = await t.login(['streamer']);
    const hour = 3600_000;
    const at = (h: number) => new Date(Date.now() + h * hour).toISOString();
    const later = await createStream(owner, { title: 'later', scheduledAt: at(5) });
    const soon = await createStream(owner, { title: 'soon', scheduledAt: at(1) });
    const late = await createStream(owner, { title: 'overdue', scheduledAt: at(-1) });
    const liveOld = await createStream(owner, { title: 'live-old', scheduledAt: at(-3) });
    const liveNew = await createStream(owner, { title: 'live-new', scheduledAt: at(2) });
    const over = await createStream(owner, { title: 'over' });
    for (const s of [liveOld, liveNew, over]) {
      const { streamId } = ok(await live.authenticatePublish(s.streamKey));
      await live.markLive(streamId);
    }
    await t.db.db
      .updateTable('streams')
      .set({ started_at: new Date(Date.now() - 2 * hour) })
      .where('public_id', '=', liveOld.stream.id)
      .execute();
    await live.markEnded((await rowOf(over.stream.id)).id, 'publisher_gone');

    const titles = (body: { items: Array<{ title: string }> }) => body.items.map((s) => s.title);
    const all = await call('GET', `/v1/streams?ownerId=${owner.id}`);
    expect(all.statusCode, all.body).toBe(200);
    expect(titles(all.json())).toEqual(['live-new', 'live-old', 'overdue', 'soon', 'later']);
    expect(all.json().nextCursor).toBeNull();
    expect(titles((await call('GET', `/v1/streams?ownerId=${owner.id}&status=live`)).json())).toEqual([
      'live-new',
      'live-old',
    ]);
    expect(titles((await call('GET', `/v1/streams?ownerId=${owner.id}&status=scheduled`)).json())).toEqual([
      'overdue',
      'soon',
      'later',
    ]);
    expect(titles((await call('GET', `/v1/streams?ownerId=${owner.id}&status=ended`)).json())).toEqual([
      'over',
    ]);

    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/v1/streams?ownerId=${owner.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await call('GET', url);
      expect(page.statusCode, page.body).toBe(200);
      expect(page.json().items.length).toBeLessThanOrEqual(2);
      paged.push(...titles(page.json()));
      cursor = page.json().nextCursor;
    } while (cursor);
    expect(paged).toEqual(['live-new', 'live-old', 'overdue', 'soon', 'later']);
    // every stream is public: the unfiltered list has them too
    const global = await call('GET', '/v1/streams?limit=100');
    expect(global.json().items.map((s: { id: string }) => s.id)).toEqual(
      expect.arrayContaining([soon.stream.id, later.stream.id, late.stream.id]),
    );
  });

  it('only the owner (or an admin) manages a stream; viewers cannot create one', async () => {
    const { stream } = await createStream();
    const url = `/v1/streams/${stream.id}`;
    expect(codeOf(await call('POST', '/v1/streams', viewer, { title: 'mine' }))).toEqual([403, 'FORBIDDEN']);
    expect(codeOf(await call('POST', '/v1/streams', undefined, { title: 'mine' }))).toEqual([
      401,
      'UNAUTHENTICATED',
    ]);
    for (const user of [rival, viewer]) {
      expect(codeOf(await call('PATCH', url, user, { title: 'hijacked' }))).toEqual([403, 'FORBIDDEN']);
      expect(codeOf(await call('POST', `${url}/key/rotate`, user))).toEqual([403, 'FORBIDDEN']);
      expect(codeOf(await call('POST', `${url}/key/revoke`, user))).toEqual([403, 'FORBIDDEN']);
      expect(codeOf(await call('DELETE', `${url}/pins/current`, user))).toEqual([403, 'FORBIDDEN']);
    }
    expect(codeOf(await call('PATCH', url, undefined, { title: 'x' }))).toEqual([401, 'UNAUTHENTICATED']);
    expect(codeOf(await call('POST', `${url}/key/rotate`, undefined))).toEqual([401, 'UNAUTHENTICATED']);
    const { productId } = await insertProduct(t.db.db, rival.id);
    expect(codeOf(await call('POST', `${url}/pins`, rival, { kind: 'product', productId }))).toEqual([
      403,
      'FORBIDDEN',
    ]);
    expect((await rowOf(stream.id)).title).toBe('Sneaker drop');

    const byAdmin = await call('PATCH', url, admin, { title: 'Fixed by admin' });
    expect(byAdmin.statusCode, byAdmin.body).toBe(200);
    expect(byAdmin.json().title).toBe('Fixed by admin');
    const edited = await call('PATCH', url, streamer, {
      description: 'New description',
      scheduledAt: '2031-05-05T10:00:00Z',
      recording: false,
    });
    expect(edited.json()).toMatchObject({
      title: 'Fixed by admin',
      description: 'New description',
      scheduledAt: '2031-05-05T10:00:00.000Z',
      recording: false,
    });
  });

  it('pins reach viewers in the stream room, stamped with media time; the page shows them', async () => {
    const { productId: shoeId, skuId } = await insertProduct(t.db.db, streamer.id, { priceMinor: 8999 });
    await t.db.db
      .insertInto('skus')
      .values({
        id: randomUUID(),
        product_id: shoeId,
        code: `SKU-${randomUUID().slice(0, 8)}`,
        name: 'Blue',
        price_minor: 7999,
        stock: 5,
      })
      .execute();
    await t.db.db
      .insertInto('skus')
      .values({
        id: randomUUID(),
        product_id: shoeId,
        code: `SKU-${randomUUID().slice(0, 8)}`,
        name: 'Old',
        price_minor: 100,
        stock: 5,
        active: false,
      })
      .execute();
    const { productId: capId } = await insertProduct(t.db.db, streamer.id, { priceMinor: 1500 });
    const { productId: hiddenId } = await insertProduct(t.db.db, streamer.id);
    const { stream, streamKey } = await createStream(streamer, { productIds: [capId, shoeId, hiddenId] });
    await t.db.db.updateTable('products').set({ active: false }).where('id', '=', hiddenId).execute();
    const coupon = couponRow(streamer.id, { code: `LIVE${randomUUID().slice(0, 6).toUpperCase()}` });
    await t.db.db.insertInto('coupons').values(coupon).execute();
    const room = `stream:${stream.id}`;

    const watcher = await WsClient.connect(base);
    clients.push(watcher);
    await watcher.request('join', { room });

    const { streamId } = ok(await live.authenticatePublish(streamKey));
    await live.markLive(streamId);
    await live.setMediaOrigin(streamId, new Date(Date.now() - 60_000));

    const pinned = await call('POST', `/v1/streams/${stream.id}/pins`, streamer, {
      kind: 'product',
      productId: shoeId,
    });
    expect(pinned.statusCode, pinned.body).toBe(201);
    const pin = pinned.json();
    expect(pin).toMatchObject({
      kind: 'product',
      product: { id: shoeId, title: 'Test sneaker', currency: 'USD', minPriceMinor: 7999 },
      couponCode: null,
    });
    expect(pin.mediaTimeMs).toBeGreaterThanOrEqual(60_000);
    expect(pin.mediaTimeMs).toBeLessThan(120_000);
    const [pinEvent] = await watcher.waitForEvents(room, 1, 20_000, 'stream.pin');
    expect(pinEvent!.d).toEqual(pin);

    const couponPin = await call('POST', `/v1/streams/${stream.id}/pins`, streamer, {
      kind: 'coupon',
      couponCode: coupon.code.toLowerCase(),
      mediaTimeMs: 754_000,
    });
    expect(couponPin.statusCode, couponPin.body).toBe(201);
    expect(couponPin.json()).toMatchObject({
      kind: 'coupon',
      couponCode: coupon.code,
      mediaTimeMs: 754_000,
      product: null,
    });
    await watcher.waitForEvents(room, 2, 20_000, 'stream.pin');

    const sale = await t.flashSales.create(
      { id: streamer.id, roles: ['streamer'], displayName: 'S' },
      {
        skuId,
        salePriceMinor: 4999,
        quantity: 10,
        perUserLimit: 1,
        reservationTtlSeconds: 60,
        startsAt: new Date(Date.now() - 1000).toISOString(),
        endsAt: new Date(Date.now() + 60_000).toISOString(),
        streamId: stream.id,
      },
    );
    // Not active: a later one, a stopped one, and one of another stream.
    const other = {
      skuId,
      salePriceMinor: 1,
      quantity: 1,
      perUserLimit: 1,
      reservationTtlSeconds: 60,
      endsAt: new Date(Date.now() + 120_000).toISOString(),
    };
    const asStreamer = { id: streamer.id, roles: ['streamer'] as const, displayName: 'S' };
    await t.flashSales.create(asStreamer, {
      ...other,
      startsAt: new Date(Date.now() + 60_000).toISOString(),
      streamId: stream.id,
    });
    const stopped = await t.flashSales.create(asStreamer, {
      ...other,
      startsAt: new Date(Date.now() - 500).toISOString(),
      streamId: stream.id,
    });
    await t.flashSales.stopSale(asStreamer, stopped.id);
    await t.flashSales.create(asStreamer, {
      ...other,
      startsAt: new Date(Date.now() - 100).toISOString(),
      streamId: 'someOther1',
    });

    const page = await call('GET', `/v1/streams/${stream.id}`, viewer);
    expect(page.statusCode, page.body).toBe(200);
    expect(page.json()).toMatchObject({
      status: 'live',
      hlsUrl: `http://localhost/media/live/${stream.id}/index.m3u8`,
      featuredProducts: [
        { id: capId, minPriceMinor: 1500 },
        { id: shoeId, minPriceMinor: 7999 },
      ],
      currentPin: { id: couponPin.json().id, kind: 'coupon', couponCode: coupon.code, mediaTimeMs: 754_000 },
      activeFlashSale: {
        id: sale.id,
        streamId: stream.id,
        salePriceMinor: 4999,
        remaining: 10,
        state: 'live',
      },
    });
    expect(page.json().featuredProducts).toHaveLength(2);

    const unpinned = await call('DELETE', `/v1/streams/${stream.id}/pins/current`, streamer);
    expect(unpinned.statusCode, unpinned.body).toBe(204);
    const [unpinEvent] = await watcher.waitForEvents(room, 1, 20_000, 'stream.unpin');
    expect(unpinEvent!.d).toMatchObject({ pinId: couponPin.json().id, mediaTimeMs: expect.any(Number) });
    expect((await call('GET', `/v1/streams/${stream.id}`)).json().currentPin).toBeNull();
    // idempotent, and nothing more is published
    const publish = vi.spyOn(t.gateway, 'publish');
    expect((await call('DELETE', `/v1/streams/${stream.id}/pins/current`, streamer)).statusCode).toBe(204);
    expect(publish).not.toHaveBeenCalled();

    // Featured products are replaced as a list, in order.
    const patched = await call('PATCH', `/v1/streams/${stream.id}`, streamer, { productIds: [shoeId] });
    expect(patched.statusCode, patched.body).toBe(200);
    const after = (await call('GET', `/v1/streams/${stream.id}`)).json();
    expect(after.featuredProducts.map((p: { id: string }) => p.id)).toEqual([shoeId]);
  });

  it('a pin before the ingest knows the timeline has no media time; publish failures do not undo it', async () => {
    const { productId } = await insertProduct(t.db.db, streamer.id);
    const { stream } = await createStream();
    const publish = vi.spyOn(t.gateway, 'publish').mockRejectedValueOnce(new Error('bus down'));
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const res = await call('POST', `/v1/streams/${stream.id}/pins`, streamer, { kind: 'product', productId });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().mediaTimeMs).toBeNull();
    expect(publish).toHaveBeenCalledWith(`stream:${stream.id}`, 'stream.pin', res.json());
    expect(error).toHaveBeenCalled();
    expect((await call('GET', `/v1/streams/${stream.id}`)).json().currentPin.id).toBe(res.json().id);
  });

  it('bad input gets 4xx answers with stable codes', async () => {
    const { stream, streamKey } = await createStream();
    const url = `/v1/streams/${stream.id}`;
    const post = (body: object) => call('POST', '/v1/streams', streamer, body);
    expect(codeOf(await post({ title: '' }))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await post({}))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await post({ title: 'x', streamKey: 'sk_mine' }))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await post({ title: 'x', scheduledAt: 'tomorrow' }))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await post({ title: 'x', productIds: [randomUUID()] }))).toEqual([
      404,
      'PRODUCT_NOT_FOUND',
    ]);
    const { productId: rivalHidden } = await insertProduct(t.db.db, rival.id);
    await t.db.db.updateTable('products').set({ active: false }).where('id', '=', rivalHidden).execute();
    expect(codeOf(await post({ title: 'x', productIds: [rivalHidden] }))).toEqual([404, 'PRODUCT_NOT_FOUND']);
    const dup = randomUUID();
    expect(codeOf(await post({ title: 'x', productIds: [dup, dup] }))).toEqual([400, 'VALIDATION_FAILED']);

    expect(codeOf(await call('GET', '/v1/streams/nope'))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await call('GET', '/v1/streams/AAAAAAAAAA'))).toEqual([404, 'STREAM_NOT_FOUND']);
    expect(codeOf(await call('PATCH', '/v1/streams/AAAAAAAAAA', streamer, { title: 'x' }))).toEqual([
      404,
      'STREAM_NOT_FOUND',
    ]);
    expect(codeOf(await call('GET', '/v1/streams?status=paused'))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await call('GET', '/v1/streams?cursor=garbage'))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await call('GET', '/v1/streams?limit=0'))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await call('PATCH', url, streamer, {}))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await call('PATCH', url, streamer, { status: 'live' }))).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);

    const pin = (body: object) => call('POST', `${url}/pins`, streamer, body);
    const productPin = await pin({ kind: 'product' });
    expect(codeOf(productPin)).toEqual([400, 'VALIDATION_FAILED']);
    expect(productPin.json().details.field).toBe('productId');
    expect(codeOf(await pin({ kind: 'coupon', productId: randomUUID() }))).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);
    expect(codeOf(await pin({ kind: 'banner' }))).toEqual([400, 'VALIDATION_FAILED']);
    expect(codeOf(await pin({ kind: 'product', productId: randomUUID() }))).toEqual([
      404,
      'PRODUCT_NOT_FOUND',
    ]);
    expect(codeOf(await pin({ kind: 'coupon', couponCode: 'NOPE-NOPE' }))).toEqual([404, 'COUPON_NOT_FOUND']);
    const bound = couponRow(streamer.id, { stream_id: 'elsewhere1' });
    await t.db.db.insertInto('coupons').values(bound).execute();
    expect(codeOf(await pin({ kind: 'coupon', couponCode: bound.code }))).toEqual([
      422,
      'COUPON_STREAM_MISMATCH',
    ]);
    expect(codeOf(await pin({ kind: 'coupon', couponCode: 'X', mediaTimeMs: -1 }))).toEqual([
      400,
      'VALIDATION_FAILED',
    ]);

    const { streamId } = ok(await live.authenticatePublish(streamKey));
    await live.markLive(streamId);
    expect(codeOf(await call('PATCH', url, streamer, { scheduledAt: '2031-01-01T00:00:00Z' }))).toEqual([
      409,
      'STREAM_STATE_INVALID',
    ]);
    expect(codeOf(await call('PATCH', url, streamer, { recording: false }))).toEqual([
      409,
      'STREAM_STATE_INVALID',
    ]);
    await live.markEnded(streamId, 'publisher_gone');
    const { productId } = await insertProduct(t.db.db, streamer.id);
    expect(codeOf(await pin({ kind: 'product', productId }))).toEqual([409, 'STREAM_ENDED']);
    expect(codeOf(await call('POST', `${url}/key/rotate`, streamer))).toEqual([409, 'STREAM_ENDED']);
    // the VOD's title can still be fixed
    expect((await call('PATCH', url, streamer, { title: 'Sneaker drop (replay)' })).statusCode).toBe(200);
  });

  it('the OpenAPI document describes the live routes', async () => {
    const doc = (await call('GET', '/docs/json')).json();
    expect(doc.tags.map((tag: { name: string }) => tag.name)).toContain('live');
    for (const path of [
      '/v1/streams',
      '/v1/streams/{publicId}',
      '/v1/streams/{publicId}/key/rotate',
      '/v1/streams/{publicId}/key/revoke',
      '/v1/streams/{publicId}/pins',
      '/v1/streams/{publicId}/pins/current',
    ])
      expect(doc.paths[path], path).toBeDefined();
    expect(doc.paths['/v1/streams'].post.tags).toEqual(['live']);
  });
}

describe('live streams (embedded: PGlite + memory engine)', () => {
  liveStreamsSuite(async () => ({ t: await createTestApp(), cleanup: async () => {} }));
});

await describeWithService('live streams (PostgreSQL + Redis)', probePostgres, () => {
  liveStreamsSuite(async () => {
    const { url, drop } = await createTestDatabase();
    return { t: await createTestApp({}, { databaseUrl: url, redisUrl: TEST_REDIS_URL }), cleanup: drop };
  });
});
