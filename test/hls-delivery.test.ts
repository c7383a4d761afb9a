/**
 * HlsDelivery with segments handed over in memory: stored from memory while
 * the store keeps up; during an outage a few wait in memory and the rest are
 * spilled to local disk, and every one is stored, in order, once the store
 * is back (then the local files are gone).
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SegmentRecord } from '../src/live/stream-recordings.js';
import type { ObjectBody, PutOptions } from '../src/platform/object-store/object-store.js';
import { HlsDelivery } from '../workers/hls-delivery.js';
import { waitFor } from './support/server-process.js';

class FlakyStore {
  failing = false;
  readonly objects = new Map<string, Buffer>();
  readonly durable = new Map<string, boolean | undefined>();

  async put(key: string, body: ObjectBody, options?: PutOptions): Promise<void> {
    if (this.failing) throw new Error('injected outage');
    this.objects.set(key, Buffer.isBuffer(body) ? body : Buffer.from(body as string));
    this.durable.set(key, options?.durable);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.objects.delete(k);
  }
}

describe('HlsDelivery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lcs-delivery-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const open = (store: FlakyStore, records: SegmentRecord[], recording: boolean) =>
    HlsDelivery.open({
      store,
      recordings: {
        append: async (_id, record) => {
          records.push(record);
        },
        tail: async () => ({ segments: [], discontinuitiesBefore: 0 }),
      },
      streamId: 's1',
      publicId: 'p1',
      recording,
      windowSize: 5,
      targetDurationSeconds: 1,
      retryBaseMs: 20,
      retryMaxMs: 50,
      logger: {},
    });

  it('stores in-memory segments; in an outage spills all but a few to disk, then stores every one in order and removes the files', async () => {
    const store = new FlakyStore();
    const records: SegmentRecord[] = [];
    const delivery = await open(store, records, true);
    const released = new Set<number>();
    const segment = (i: number) => ({
      release: () => released.add(i),
      path: join(dir, `seg_${i}.ts`),
      data: Buffer.from(`segment ${i}`),
      key: `live/p1/run/seg_${i}.ts`,
      durationSeconds: 1,
      programDateTime: new Date(1_700_000_000_000 + i * 1000),
      init: null,
      discontinuity: i === 0,
    });

    delivery.enqueue(segment(0));
    await delivery.drain();
    expect(store.objects.get('live/p1/run/seg_0.ts')?.toString()).toBe('segment 0');
    expect(readdirSync(dir)).toEqual([]);

    store.failing = true;
    for (let i = 1; i <= 20; i++) delivery.enqueue(segment(i));
    // Eight wait in memory (the first of them is being retried); the other twelve go to disk.
    await waitFor(async () => released.size === 13, 5_000);
    expect(readdirSync(dir)).toHaveLength(12);
    expect(existsSync(join(dir, 'seg_20.ts'))).toBe(true);
    expect(existsSync(join(dir, 'seg_8.ts'))).toBe(false);
    expect([...released].sort((a, b) => a - b)).toEqual([0, ...Array.from({ length: 12 }, (_, i) => i + 9)]);

    store.failing = false;
    await delivery.drain();
    expect(records.map((r) => r.sequence)).toEqual([...Array(21).keys()]);
    for (let i = 0; i <= 20; i++)
      expect(store.objects.get(`live/p1/run/seg_${i}.ts`)?.toString()).toBe(`segment ${i}`);
    expect(readdirSync(dir)).toEqual([]);
    // Every in-memory buffer went back to the packager: stored from memory, or once on disk.
    expect(released.size).toBe(21);
    const playlist = store.objects.get('live/p1/index.m3u8')?.toString() ?? '';
    expect(playlist).toContain('seg_20.ts');
    // Recorded segments become the VOD: flushed to disk by the store.
    expect(store.durable.get('live/p1/run/seg_0.ts')).toBe(true);
    delivery.close();
  });

  it('segments of a stream without a recording are stored without a flush to disk', async () => {
    const store = new FlakyStore();
    const delivery = await open(store, [], false);
    delivery.enqueue({
      path: join(dir, 'x.ts'),
      data: Buffer.from('x'),
      key: 'live/p1/run/x.ts',
      durationSeconds: 1,
      programDateTime: null,
      init: null,
      discontinuity: true,
    });
    await delivery.drain();
    expect(store.durable.get('live/p1/run/x.ts')).toBe(false);
    delivery.close();
  });
});
