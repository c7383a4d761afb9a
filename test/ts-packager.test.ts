/**
 * The in-process copy-transmux (FLV → MPEG-TS HLS segments): checked with
 * ffmpeg's own demuxer and decoder, on an FLV ffmpeg encoded with
 * B-frames (composition offsets), 1 s keyframes and AAC.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PackagedSegment, PackagerExit } from '../media/hls/hls-packager.js';
import { crc32Mpeg2 } from '../media/hls/mpegts-writer.js';
import { TsPackager } from '../media/hls/ts-packager.js';

const FPS = 30;
const SECONDS = 4;
const VIDEO_FORMAT = 'stream=codec_name,profile,width,height';
const AUDIO_FORMAT = 'stream=codec_name,profile,sample_rate,channels';

function probe(path: string, stream: 'v' | 'a', entries: string): string[] {
  return execFileSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', stream, '-show_entries', entries, '-of', 'csv=p=0', path],
    { encoding: 'utf8' },
  )
    .split('\n')
    .filter(Boolean);
}

/**
 * Feeds `flv` in uneven chunks (tags split across writes) and collects what the packager announces,
 * writing each segment's bytes to its path for ffprobe (the packager itself keeps them in memory).
 */
async function packageFlv(
  dir: string,
  flv: Buffer,
  { end = true, chunk = 7_919, maxSegmentBytes = undefined as number | undefined } = {},
): Promise<{ segments: PackagedSegment[]; exit: Promise<PackagerExit | null>; packager: TsPackager }> {
  const packager = new TsPackager({ dir, segmentSeconds: 1, stallTimeoutMs: 30_000, maxSegmentBytes });
  const segments: PackagedSegment[] = [];
  packager.on('segment', (s) => {
    expect(existsSync(s.path)).toBe(false);
    writeFileSync(s.path, s.data as Buffer);
    segments.push(s);
  });
  const input = await packager.start();
  for (let at = 0; at < flv.length; at += chunk) input.write(flv.subarray(at, at + chunk));
  return { segments, packager, exit: end ? packager.stop() : Promise.resolve(null) };
}

describe('TsPackager (FLV → MPEG-TS segments in process)', () => {
  let work: string;
  let flv: Buffer;
  let source: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'lcs-ts-'));
    source = join(work, 'source.flv');
    execFileSync('ffmpeg', [
      '-hide_banner', '-loglevel', 'error',
      '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${FPS}`,
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-t', String(SECONDS),
      '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '2', '-g', String(FPS), '-keyint_min', String(FPS),
      '-sc_threshold', '0', '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-b:a', '64k', '-ac', '2',
      '-f', 'flv', source,
    ]); // biome-ignore format: one ffmpeg option per pair reads best
    flv = readFileSync(source);
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('crc32Mpeg2 matches the CRC-32/MPEG-2 check value', () => {
    expect(crc32Mpeg2(Buffer.from('123456789'))).toBe(0x0376e6e7);
  });

  it('cuts 1 s segments at keyframes, dated and timed continuously, each decoding on its own without a warning', async () => {
    const dir = join(work, 'run1');
    const { segments, exit } = await packageFlv(dir, flv);
    expect(await exit).toEqual({ code: 0, signal: null, clean: true, stderr: '' });
    expect(segments.map((s) => s.file)).toEqual([
      'seg_000000.ts',
      'seg_000001.ts',
      'seg_000002.ts',
      'seg_000003.ts',
    ]);
    const total = segments.reduce((sum, s) => sum + s.durationSeconds, 0);
    expect(total).toBeCloseTo(SECONDS, 1);
    for (const [i, s] of segments.entries()) {
      if (i < segments.length - 1) expect(s.durationSeconds).toBeCloseTo(1, 2);
      const previous = segments[i - 1];
      if (previous)
        expect((s.programDateTime as Date).getTime() - (previous.programDateTime as Date).getTime()).toBe(
          Math.round(previous.durationSeconds * 1000),
        );
      // A segment alone: H.264 and AAC found, a keyframe first, and every frame decodes.
      // (ffprobe lists a TS stream once under its program and once on its own.)
      expect(new Set(probe(s.path, 'v', VIDEO_FORMAT))).toEqual(new Set(probe(source, 'v', VIDEO_FORMAT)));
      expect(new Set(probe(s.path, 'a', AUDIO_FORMAT))).toEqual(new Set(['aac,LC,48000,2']));
      expect(probe(s.path, 'v', 'packet=flags')[0]).toMatch(/^K/);
      const errors = execFileSync('ffmpeg', ['-v', 'warning', '-i', s.path, '-f', 'null', '-'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      expect(errors).toBe('');
    }
    // All together: every frame of the source, timestamps running on across segments.
    const joined = join(dir, 'all.ts');
    execFileSync('sh', ['-c', `cat ${segments.map((s) => s.path).join(' ')} > ${joined}`]);
    // ffprobe prints its fields in its own order: pts, then dts.
    const frames = probe(joined, 'v', 'packet=pts_time,dts_time').map((f) => f.split(',').map(Number));
    expect(frames).toHaveLength(FPS * SECONDS);
    const dts = frames.map(([, d]) => d as number);
    for (let i = 1; i < dts.length; i++) expect(dts[i]).toBeCloseTo((dts[i - 1] as number) + 1 / FPS, 2);
    // B-frames: presentation order differs from decode order, and PTS never precedes DTS.
    expect(frames.some(([p, d]) => (p as number) > (d as number) + 0.5 / FPS)).toBe(true);
    expect(frames.every(([p, d]) => (p as number) >= (d as number))).toBe(true);
    const sourceAudio = probe(source, 'a', 'packet=pts_time').length;
    expect(probe(joined, 'a', 'packet=pts_time').length).toBeGreaterThanOrEqual(sourceAudio - 2);
  });

  it('kill() ends the run without the open segment and reports it unclean', async () => {
    const { segments, packager } = await packageFlv(
      join(work, 'run2'),
      flv.subarray(0, Math.floor(flv.length / 2)),
      {
        end: false,
      },
    );
    packager.kill();
    const exit = await packager.stop();
    expect(exit).toMatchObject({ clean: false, stderr: 'killed' });
    expect(segments.length).toBeLessThan(2);
  });

  it('input that is not FLV, or codecs other than H.264/AAC, fail the run with the reason', async () => {
    const notFlv = await packageFlv(join(work, 'run3'), Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(await notFlv.exit).toMatchObject({ clean: false, stderr: 'not an FLV stream' });

    const header = Buffer.from([0x46, 0x4c, 0x56, 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]);
    const tag = (type: number, body: number[]) => {
      const b = Buffer.alloc(11 + body.length + 4);
      b[0] = type;
      b.writeUIntBE(body.length, 1, 3);
      Buffer.from(body).copy(b, 11);
      b.writeUInt32BE(11 + body.length, 11 + body.length);
      return b;
    };
    const hevc = await packageFlv(join(work, 'run4'), Buffer.concat([header, tag(9, [0x1c, 0, 0, 0, 0, 1])]));
    expect(await hevc.exit).toMatchObject({ clean: false, stderr: expect.stringContaining('not H.264') });
    const mp3 = await packageFlv(join(work, 'run5'), Buffer.concat([header, tag(8, [0x2f, 0xff, 0xfb])]));
    expect(await mp3.exit).toMatchObject({ clean: false, stderr: expect.stringContaining('not AAC') });
  });

  it('a segment that outgrows the memory bound (no keyframe to cut at) fails the run', async () => {
    // The source's GOP is 1 s; a bound below one GOP's size cannot be met.
    const { segments, exit } = await packageFlv(join(work, 'run7'), flv, { maxSegmentBytes: 20_000 });
    expect(await exit).toMatchObject({ clean: false, stderr: 'segment too large: no keyframe to cut at' });
    expect(segments).toEqual([]);
  });

  it('a publish that ends before its first keyframe ends clean with no segment', async () => {
    const header = flv.subarray(0, 13);
    const { segments, exit } = await packageFlv(join(work, 'run6'), header);
    expect(await exit).toMatchObject({ clean: true });
    expect(segments).toEqual([]);
  });
});
