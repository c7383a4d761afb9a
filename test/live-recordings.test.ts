/**
 * Recording housekeeping: a recorded stream whose ingest died before the
 * VOD gets it from the Db's segment record; recordings past the retention
 * are deleted from the object store and forgotten. Both idempotent.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaPrefix, vodPlaylistKey } from '../src/live/live-streams-service.js';
import {
  deleteExpiredRecordings,
  finishOrphanedRecordings,
  type RecordingJobsOptions,
} from '../workers/live-recordings.js';
import { createTestApp, type TestApp } from './support/app.js';

describe('recording jobs', () => {
  let t: TestApp;
  let options: RecordingJobsOptions;
  let streamer: { id: string; token: string };

  beforeAll(async () => {
    t = await createTestApp();
    streamer = await t.login(['streamer']);
    options = {
      recordings: t.recordings,
      store: t.objectStore,
      retentionDays: 30,
      orphanAfterMs: 60_000,
      windowSize: 4,
      targetDurationSeconds: 1,
      intervalMs: 60_000,
      logger: { error: () => undefined },
    };
  });
  afterAll(async () => {
    await t?.close();
  });

  /** An ended stream `endedMinutesAgo` ago with `segments` one-second segments stored per rendition ('' without a ladder). */
  const endedStream = async (endedMinutesAgo: number, segments: number, renditions = ['']) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/streams',
      headers: { authorization: `Bearer ${streamer.token}` },
      payload: { title: 'Past show' },
    });
    const publicId = (res.json() as { stream: { id: string } }).stream.id;
    const row = await t.db.db
      .updateTable('streams')
      .set({
        status: 'ended',
        started_at: sql<Date>`now() - interval '2 hours'`,
        ended_at: sql<Date>`now() - ${endedMinutesAgo} * interval '1 minute'`,
        end_reason: 'publisher_gone',
      })
      .where('public_id', '=', publicId)
      .returning('id')
      .executeTakeFirstOrThrow();
    for (const rendition of renditions)
      for (let i = 0; i < segments; i++) {
        const key = `${mediaPrefix(publicId, rendition)}run1/seg_${String(i).padStart(6, '0')}.ts`;
        await t.objectStore.put(key, Buffer.from(`segment ${i}`));
        await t.recordings.append(
          row.id,
          {
            sequence: i,
            objectKey: key,
            initKey: null,
            durationMs: 1000,
            programDateTime: new Date(Date.now() - 7_200_000 + i * 1000),
            discontinuity: i === 3,
          },
          rendition,
        );
      }
    return { streamId: row.id, publicId };
  };
  const read = async (key: string) => {
    const chunks: Buffer[] = [];
    for await (const c of (await t.objectStore.get(key))?.body ?? []) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString();
  };
  const page = async (publicId: string) =>
    (await t.app.inject({ method: 'GET', url: `/v1/streams/${publicId}` })).json() as {
      replayUrl: string | null;
    };

  it('finishes the recording of a stream whose ingest died: VOD of every segment, replay URL', async () => {
    const recent = await endedStream(0, 2);
    const orphan = await endedStream(10, 6);
    expect(await finishOrphanedRecordings(options)).toBe(1);
    const vod = await t.objectStore.get(vodPlaylistKey(orphan.publicId));
    const chunks: Buffer[] = [];
    for await (const c of vod?.body ?? []) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    expect(text.match(/^run1\/seg_\d+\.ts$/gm)).toHaveLength(6);
    expect(text.match(/^#EXT-X-DISCONTINUITY$/gm)).toHaveLength(1);
    expect(text).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
    expect((await page(orphan.publicId)).replayUrl).not.toBeNull();
    // The one that just ended is left to its own ingest.
    expect((await page(recent.publicId)).replayUrl).toBeNull();
    expect(await finishOrphanedRecordings(options)).toBe(0);
  });

  it('deletes recordings past the retention from the object store and forgets them', async () => {
    const kept = await endedStream(60, 2);
    const old = await endedStream(31 * 24 * 60, 3);
    await finishOrphanedRecordings(options);
    expect((await page(old.publicId)).replayUrl).not.toBeNull();
    expect(await deleteExpiredRecordings(options)).toBe(1);
    expect(await t.objectStore.head(vodPlaylistKey(old.publicId))).toBeNull();
    expect((await t.objectStore.list(`live/${old.publicId}/`)).items).toEqual([]);
    expect((await page(old.publicId)).replayUrl).toBeNull();
    expect((await t.objectStore.list(`live/${kept.publicId}/`)).items.length).toBeGreaterThan(0);
    expect(await deleteExpiredRecordings(options)).toBe(0);
    expect(await deleteExpiredRecordings({ ...options, retentionDays: 0 })).toBe(0);
  });

  it('finishes and deletes an ABR recording: a VOD per rendition behind a master playlist', async () => {
    const abr = await endedStream(10, 4, ['source', '240p']);
    expect(await finishOrphanedRecordings(options)).toBe(1);
    const master = await read(vodPlaylistKey(abr.publicId));
    expect(master.match(/^[^#].*$/gm)).toEqual(['source/vod.m3u8', '240p/vod.m3u8']);
    expect(master).toContain('#EXT-X-STREAM-INF:BANDWIDTH=3500000');
    for (const rendition of ['source', '240p']) {
      const vod = await read(vodPlaylistKey(abr.publicId, rendition));
      expect(vod.match(/^run1\/seg_\d+\.ts$/gm)).toHaveLength(4);
      expect(vod).toContain('#EXT-X-ENDLIST');
    }
    expect((await page(abr.publicId)).replayUrl).toContain(`live/${abr.publicId}/vod.m3u8`);

    await t.db.db
      .updateTable('streams')
      .set({ ended_at: sql<Date>`now() - interval '40 days'` })
      .where('id', '=', abr.streamId)
      .execute();
    expect(await deleteExpiredRecordings(options)).toBe(1);
    expect((await t.objectStore.list(`live/${abr.publicId}/`)).items).toEqual([]);
  });
});
