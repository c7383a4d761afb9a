/**
 * RTMP ingest to HLS on the ObjectStore with a real ffmpeg publisher: key
 * checks before the publish starts, segments stored before any playlist
 * names them, reconnect within the grace, pins as EXT-X-DATERANGE, the end
 * of a stream (ENDLIST, VOD, replay URL), an object-store outage that
 * delays but loses nothing, and the ABR ladder (renditions, master
 * playlists, transcode slots).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLadder } from '../media/hls/abr-ladder.js';
import { LiveIngest } from '../media/live-ingest.js';
import type { ObjectBody, ObjectStore, PutOptions } from '../src/platform/object-store/object-store.js';
import { createTestApp, type TestApp } from './support/app.js';
import { insertProduct } from './support/commerce.js';
import { startPublisher } from './support/rtmp-publisher.js';
import { waitFor } from './support/server-process.js';

type User = { id: string; token: string };

/** The app's store, with a switch to fail every write and a check on every playlist written. */
class WatchedStore implements Pick<ObjectStore, 'put' | 'deleteMany'> {
  failing = false;
  readonly stored = new Set<string>();
  /** Playlist writes that named a segment not stored before. */
  readonly violations: string[] = [];
  readonly failedPuts: string[] = [];

  constructor(private readonly inner: ObjectStore) {}

  async put(key: string, body: ObjectBody, options?: PutOptions): Promise<void> {
    if (this.failing) {
      this.failedPuts.push(key);
      throw new Error('injected S3 outage');
    }
    if (key.endsWith('.m3u8') && typeof body === 'string') {
      const dir = key.slice(0, key.lastIndexOf('/') + 1);
      for (const line of body.split('\n')) {
        const uri = line.startsWith('#EXT-X-MAP:')
          ? /URI="([^"]+)"/.exec(line)?.[1]
          : line.startsWith('#')
            ? null
            : line;
        if (uri && !this.stored.has(dir + uri)) this.violations.push(`${key} names ${uri}`);
      }
    }
    await this.inner.put(key, body, options);
    this.stored.add(key);
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.stored.delete(k);
    return this.inner.deleteMany(keys);
  }
}

describe('live ingest (RTMP → HLS → object store)', () => {
  let t: TestApp;
  let ingest: LiveIngest;
  let store: WatchedStore;
  let workDir: string;
  let streamer: User;
  const GRACE_MS = 3000;

  beforeAll(async () => {
    t = await createTestApp({ STREAM_RECONNECT_GRACE_MS: String(GRACE_MS), LIVE_ABR_LADDER: '240' });
    store = new WatchedStore(t.objectStore);
    workDir = mkdtempSync(join(tmpdir(), 'lcs-ingest-'));
    ingest = new LiveIngest({
      host: '127.0.0.1',
      port: 0,
      ffmpegPath: 'ffmpeg',
      workDir,
      segmentSeconds: 1,
      segmentType: 'mpegts',
      windowSize: 6,
      maxStreams: 10,
      // One rung and one slot: a second ABR stream at the same time goes live with its source only.
      abrLadder: parseLadder('240'),
      maxTranscodes: 1,
      uploadRetryMaxMs: 1000,
      reconnectGraceMs: GRACE_MS,
      liveStreams: t.liveStreams,
      recordings: t.recordings,
      store,
      bus: t.engine,
      logger: { info: () => undefined, warn: () => undefined, error: (o, m) => console.error(m, o) },
    });
    await ingest.start();
    streamer = await t.login(['streamer']);
  });

  afterAll(async () => {
    await ingest?.close();
    await t?.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  const rtmp = (key: string) => `rtmp://127.0.0.1:${ingest.port}/live/${key}`;
  const createStream = async (body: object = {}) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/streams',
      headers: { authorization: `Bearer ${streamer.token}` },
      payload: { title: 'Drop', ...body },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { stream: { id: string }; streamKey: string };
  };
  const text = async (key: string): Promise<string | null> => {
    const obj = await t.objectStore.get(key);
    if (!obj) return null;
    const chunks: Buffer[] = [];
    for await (const c of obj.body) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };
  const segmentsOf = (playlist: string | null) =>
    (playlist ?? '').split('\n').filter((l) => l && !l.startsWith('#'));
  const page = async (id: string) =>
    (await t.app.inject({ method: 'GET', url: `/v1/streams/${id}` })).json() as {
      status: string;
      hlsUrl: string | null;
      replayUrl: string | null;
    };

  it('a publish becomes HLS: segments stored before the playlist names them, dated, with HLS content types', async () => {
    const { stream, streamKey } = await createStream();
    const pub = startPublisher({ url: rtmp(streamKey), seconds: 30 });
    const live = `live/${stream.id}/index.m3u8`;
    await waitFor(async () => segmentsOf(await text(live)).length >= 3, 20_000);
    expect((await page(stream.id)).status).toBe('live');
    const playlist = (await text(live)) as string;
    expect(playlist).toContain('#EXT-X-PROGRAM-DATE-TIME:');
    expect(playlist).toMatch(/#EXT-X-TARGETDURATION:\d+/);
    expect(playlist).not.toContain('#EXT-X-ENDLIST');
    const first = `live/${stream.id}/${segmentsOf(playlist)[0]}`;
    const head = await t.objectStore.head(first);
    expect(head?.contentType).toBe('video/mp2t');
    expect(head?.cacheControl).toContain('immutable');
    expect((await t.objectStore.head(live))?.contentType).toBe('application/vnd.apple.mpegurl');
    const row = await t.db.db
      .selectFrom('streams')
      .select('media_origin_at')
      .where('public_id', '=', stream.id)
      .executeTakeFirstOrThrow();
    expect(row.media_origin_at).toBeInstanceOf(Date);
    expect((await pub.stop()).code).toBe(0);
    expect(store.violations).toEqual([]);
  });

  it('wrong key, revoked key and a second publisher on a live key are refused before publishing', async () => {
    const wrong = await startPublisher({ url: rtmp(`sk_${'x'.repeat(32)}`), seconds: 2 }).exited;
    expect(wrong.code).not.toBe(0);

    const revoked = await createStream();
    const res = await t.app.inject({
      method: 'POST',
      url: `/v1/streams/${revoked.stream.id}/key/revoke`,
      headers: { authorization: `Bearer ${streamer.token}` },
    });
    expect(res.statusCode).toBe(200);
    const refused = await startPublisher({ url: rtmp(revoked.streamKey), seconds: 2 }).exited;
    expect(refused.code).not.toBe(0);
    expect((await page(revoked.stream.id)).status).toBe('scheduled');

    const { stream, streamKey } = await createStream();
    const first = startPublisher({ url: rtmp(streamKey) });
    await waitFor(async () => (await page(stream.id)).status === 'live', 15_000);
    const second = await startPublisher({ url: rtmp(streamKey), seconds: 2 }).exited;
    expect(second.code).not.toBe(0);
    // The first publisher was not disturbed.
    expect(first.proc.exitCode).toBeNull();
    await first.stop();
  });

  it('a publisher that drops and reconnects within the grace continues the same stream after a discontinuity', async () => {
    const { stream, streamKey } = await createStream();
    const live = `live/${stream.id}/index.m3u8`;
    const first = startPublisher({ url: rtmp(streamKey) });
    await waitFor(async () => segmentsOf(await text(live)).length >= 2, 20_000);
    await first.kill();
    // OBS retries after a couple of seconds; by then the dropped connection has been noticed.
    await waitFor(async () => {
      const row = await t.db.db
        .selectFrom('streams')
        .select('publisher_session')
        .where('public_id', '=', stream.id)
        .executeTakeFirstOrThrow();
      return row.publisher_session === null;
    }, 10_000);
    const second = startPublisher({ url: rtmp(streamKey) });
    const afterDiscontinuity = async () =>
      segmentsOf((await text(live))?.split(/^#EXT-X-DISCONTINUITY$/m)[1] ?? null);
    await waitFor(async () => (await afterDiscontinuity()).length >= 2, 20_000);
    expect((await page(stream.id)).status).toBe('live');
    const segments = await t.db.db
      .selectFrom('stream_segments')
      .innerJoin('streams', 'streams.id', 'stream_segments.stream_id')
      .select(['sequence', 'discontinuity'])
      .where('streams.public_id', '=', stream.id)
      .orderBy('sequence')
      .execute();
    expect(segments.map((s) => s.sequence)).toEqual(segments.map((_, i) => i));
    expect(segments.filter((s) => s.discontinuity).length, JSON.stringify(segments)).toBe(1);
    await second.stop();
    expect(store.violations).toEqual([]);
  });

  it('a pin and a flash-sale start during the stream are written into the live playlist as EXT-X-DATERANGE at their moment', async () => {
    const product = await insertProduct(t.db.db, streamer.id);
    const { stream, streamKey } = await createStream({ productIds: [product.productId] });
    const live = `live/${stream.id}/index.m3u8`;
    const pub = startPublisher({ url: rtmp(streamKey) });
    await waitFor(async () => segmentsOf(await text(live)).length >= 2, 20_000);
    const pinned = await t.app.inject({
      method: 'POST',
      url: `/v1/streams/${stream.id}/pins`,
      headers: { authorization: `Bearer ${streamer.token}` },
      payload: { kind: 'product', productId: product.productId },
    });
    expect(pinned.statusCode, pinned.body).toBe(201);
    const pin = pinned.json() as { id: string; mediaTimeMs: number };
    await waitFor(async () => ((await text(live)) ?? '').includes(`ID="pin-${pin.id}"`), 15_000);
    const line = ((await text(live)) as string)
      .split('\n')
      .find((l) => l.includes(`pin-${pin.id}`)) as string;
    expect(line).toContain('CLASS="com.livecommerce.pin"');
    expect(line).toContain(`X-PRODUCT-ID="${product.productId}"`);
    const origin = (
      await t.db.db
        .selectFrom('streams')
        .select('media_origin_at')
        .where('public_id', '=', stream.id)
        .executeTakeFirstOrThrow()
    ).media_origin_at as Date;
    const start = /START-DATE="([^"]+)"/.exec(line)?.[1] as string;
    expect(new Date(start).getTime()).toBe(origin.getTime() + pin.mediaTimeMs);

    // A flash sale started in the stream is written too, at its start.
    const startsAt = new Date();
    const sale = await t.app.inject({
      method: 'POST',
      url: '/v1/flash-sales',
      headers: { authorization: `Bearer ${streamer.token}` },
      payload: {
        skuId: product.skuId,
        salePriceMinor: 500,
        quantity: 5,
        perUserLimit: 1,
        reservationTtlSeconds: 60,
        startsAt: startsAt.toISOString(),
        endsAt: new Date(startsAt.getTime() + 60_000).toISOString(),
        streamId: stream.id,
      },
    });
    expect(sale.statusCode, sale.body).toBe(201);
    const saleId = (sale.json() as { id: string }).id;
    await waitFor(async () => ((await text(live)) ?? '').includes(`ID="flash-${saleId}"`), 15_000);
    const saleLine = ((await text(live)) as string)
      .split('\n')
      .find((l) => l.includes(`flash-${saleId}`)) as string;
    expect(saleLine).toContain('CLASS="com.livecommerce.flash-sale"');
    expect(saleLine).toContain(`START-DATE="${startsAt.toISOString()}"`);
    expect(saleLine).toContain('X-QUANTITY=5');
    await pub.stop();
  });

  it('ends after the grace: the live playlist gets ENDLIST and the recording a VOD playlist of every segment', async () => {
    const { stream, streamKey } = await createStream();
    const live = `live/${stream.id}/index.m3u8`;
    const pub = startPublisher({ url: rtmp(streamKey) });
    await waitFor(async () => segmentsOf(await text(live)).length >= 3, 20_000);
    await pub.stop();
    await waitFor(async () => (await page(stream.id)).replayUrl !== null, 20_000);
    const info = await page(stream.id);
    expect(info.status).toBe('ended');
    expect(info.hlsUrl).toBeNull();
    expect(info.replayUrl).toMatch(new RegExp(`/live/${stream.id}/vod\\.m3u8$`));
    expect(await text(live)).toContain('#EXT-X-ENDLIST');
    const vod = (await text(`live/${stream.id}/vod.m3u8`)) as string;
    expect(vod).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
    expect(vod).toContain('#EXT-X-ENDLIST');
    const count = await t.db.db
      .selectFrom('stream_segments')
      .innerJoin('streams', 'streams.id', 'stream_segments.stream_id')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('streams.public_id', '=', stream.id)
      .executeTakeFirstOrThrow();
    expect(segmentsOf(vod).length).toBe(Number(count.n));
    for (const uri of segmentsOf(vod))
      expect(await t.objectStore.head(`live/${stream.id}/${uri}`)).not.toBeNull();
    // Nothing is left waiting on local disk.
    expect(readdirSync(workDir)).not.toContain(stream.id);
  });

  it('the streamer ends the stream: the publisher is dropped and the recording written at once', async () => {
    const { stream, streamKey } = await createStream();
    const live = `live/${stream.id}/index.m3u8`;
    const pub = startPublisher({ url: rtmp(streamKey) });
    await waitFor(async () => segmentsOf(await text(live)).length >= 2, 20_000);
    const res = await t.app.inject({
      method: 'POST',
      url: `/v1/streams/${stream.id}/end`,
      headers: { authorization: `Bearer ${streamer.token}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().endReason).toBe('ended_by_streamer');
    const exit = await pub.exited;
    expect(exit.code).not.toBe(0);
    await waitFor(async () => (await page(stream.id)).replayUrl !== null, 20_000);
    expect(await text(live)).toContain('#EXT-X-ENDLIST');
  });

  it('an object-store outage of 10 s while live delays segments but loses none, and no playlist names a missing one', async () => {
    const { stream, streamKey } = await createStream();
    const live = `live/${stream.id}/index.m3u8`;
    const pub = startPublisher({ url: rtmp(streamKey) });
    await waitFor(async () => segmentsOf(await text(live)).length >= 2, 20_000);
    store.failing = true;
    await new Promise((r) => setTimeout(r, 10_000));
    store.failing = false;
    expect(store.failedPuts.length).toBeGreaterThan(0);
    await pub.stop();
    await waitFor(async () => (await page(stream.id)).replayUrl !== null, 30_000);
    const vod = (await text(`live/${stream.id}/vod.m3u8`)) as string;
    const uris = segmentsOf(vod);
    // About 10 s of media were produced during the outage; all of it is in the recording.
    const total = vod
      .split('\n')
      .filter((l) => l.startsWith('#EXTINF:'))
      .reduce((sum, l) => sum + Number.parseFloat(l.slice(8)), 0);
    expect(total).toBeGreaterThan(10);
    const numbers = uris.map((u) => Number(/seg_(\d+)\.ts$/.exec(u)?.[1]));
    expect(numbers).toEqual(numbers.map((_, i) => (numbers[0] as number) + i));
    for (const uri of uris) expect(await t.objectStore.head(`live/${stream.id}/${uri}`)).not.toBeNull();
    expect(store.violations).toEqual([]);
  });

  it('an ABR stream is packaged as its source and the ladder, behind master playlists live and in the recording', async () => {
    const { stream, streamKey } = await createStream({ abr: true });
    const pub = startPublisher({ url: rtmp(streamKey), size: '640x360', keyframeSeconds: 2 });
    const master = `live/${stream.id}/index.m3u8`;
    await waitFor(async () => (await page(stream.id)).hlsUrl !== null, 30_000);
    expect((await page(stream.id)).hlsUrl).toContain(master);
    const variants = ((await text(master)) as string).split('\n');
    // Highest first; the source's bandwidth was measured from its first segment.
    expect(variants.filter((l) => !l.startsWith('#') && l)).toEqual(['source/index.m3u8', '240p/index.m3u8']);
    const bandwidths = variants
      .filter((l) => l.startsWith('#EXT-X-STREAM-INF:'))
      .map((l) => Number(/BANDWIDTH=(\d+)/.exec(l)?.[1]));
    expect(bandwidths[1]).toBe(Math.round((350 + 96) * 1000 * 1.15));
    expect(bandwidths[0]).toBeGreaterThan(0);

    // The rung is a real 240p encode, its segments dated like the source's.
    const rung = (await text(`live/${stream.id}/240p/index.m3u8`)) as string;
    expect(rung).toContain('#EXT-X-PROGRAM-DATE-TIME:');
    const segment = await t.objectStore.get(`live/${stream.id}/240p/${segmentsOf(rung)[0]}`);
    const chunks: Buffer[] = [];
    for await (const c of segment!.body) chunks.push(c as Buffer);
    const file = join(workDir, 'rung-probe.ts');
    writeFileSync(file, Buffer.concat(chunks));
    const probe = execFileSync('ffprobe', [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=height,codec_name',
      '-of',
      'csv=p=0',
      file,
    ])
      .toString()
      .trim();
    // (MPEG-TS lists the stream under its program too.)
    expect(new Set(probe.split('\n').filter(Boolean))).toEqual(new Set(['h264,240']));

    // The only transcode slot is taken: a second ABR stream goes live with its source alone.
    const second = await createStream({ abr: true });
    const pub2 = startPublisher({ url: rtmp(second.streamKey) });
    await waitFor(async () => (await page(second.stream.id)).hlsUrl !== null, 30_000);
    const secondMaster = (await text(`live/${second.stream.id}/index.m3u8`)) as string;
    expect(segmentsOf(secondMaster)).toEqual(['source/index.m3u8']);
    await pub2.stop();

    await waitFor(
      async () => segmentsOf(await text(`live/${stream.id}/240p/index.m3u8`)).length >= 3,
      20_000,
    );
    const ended = await t.app.inject({
      method: 'POST',
      url: `/v1/streams/${stream.id}/end`,
      headers: { authorization: `Bearer ${streamer.token}` },
    });
    expect(ended.statusCode, ended.body).toBe(200);
    await pub.exited;
    await waitFor(async () => (await page(stream.id)).replayUrl !== null, 30_000);
    expect((await page(stream.id)).replayUrl).toContain(`live/${stream.id}/vod.m3u8`);
    const vodMaster = (await text(`live/${stream.id}/vod.m3u8`)) as string;
    expect(segmentsOf(vodMaster)).toEqual(['source/vod.m3u8', '240p/vod.m3u8']);
    for (const rendition of ['source', '240p']) {
      const vod = (await text(`live/${stream.id}/${rendition}/vod.m3u8`)) as string;
      expect(vod).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
      expect(vod).toContain('#EXT-X-ENDLIST');
      expect(segmentsOf(vod).length).toBeGreaterThanOrEqual(3);
    }
    expect(store.violations).toEqual([]);
  });

  it('refuses an ABR stream on a server without a ladder', async () => {
    const plain = await createTestApp();
    try {
      const owner = await plain.login(['streamer']);
      const res = await plain.app.inject({
        method: 'POST',
        url: '/v1/streams',
        headers: { authorization: `Bearer ${owner.token}` },
        payload: { title: 'Drop', abr: true },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('LIVE_ABR_UNAVAILABLE');
    } finally {
      await plain.close();
    }
  });
});
