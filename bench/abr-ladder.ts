/**
 * What a rung of the ABR ladder costs: the server's own packager (media/hls)
 * turns the same pre-encoded 720p30 FLV (x264 3 Mbit/s, 2 s keyframes, AAC)
 * into HLS, once by copying (the baseline, what every stream costs) and once
 * per rung by transcoding, each at full speed; CPU seconds of ffmpeg per
 * second of media is the share of a core one live stream needs.
 *
 *   npm run bench -- abr-ladder [--ladder 480,360] [--seconds 20]
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type AbrRung, parseLadder } from '../media/hls/abr-ladder.js';
import { HlsPackager } from '../media/hls/hls-packager.js';
import { childrenCpuMs } from './_proc.js';

const log = (msg: string) => process.stderr.write(`[abr-ladder] ${msg}\n`);

/** Cores one live stream needs for this rendition (ffmpeg CPU seconds per media second). */
async function cores(input: string, dir: string, seconds: number, encode?: AbrRung): Promise<number> {
  const packager = new HlsPackager({
    ffmpegPath: process.env.FFMPEG_PATH ?? 'ffmpeg',
    dir,
    segmentSeconds: 1,
    segmentType: 'mpegts',
    stallTimeoutMs: 120_000,
    encode,
  });
  let segments = 0;
  packager.on('segment', () => segments++);
  const before = childrenCpuMs();
  await pipeline(createReadStream(input), await packager.start());
  const exit = await packager.stop(120_000);
  if (!exit?.clean) throw new Error(`ffmpeg failed: ${exit?.stderr}`);
  const cpu = (childrenCpuMs() - before) / 1000;
  log(`${encode?.name ?? 'copy'}: ${segments} segments, ${cpu.toFixed(2)} CPU s for ${seconds} s of media`);
  return cpu / seconds;
}

export async function main(args: string[]): Promise<void> {
  const arg = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const ladder = parseLadder(arg('--ladder') ?? '480,360');
  const seconds = Number(arg('--seconds') ?? 20);
  const dir = mkdtempSync(join(tmpdir(), 'lcs-abr-bench-'));
  try {
    const input = join(dir, 'source.flv');
    log(`encoding a ${seconds} s 720p30 source`);
    execFileSync('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30'],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(seconds)],
      ...['-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '3000k', '-g', '60', '-pix_fmt', 'yuv420p'],
      ...['-c:a', 'aac', '-b:a', '128k', '-f', 'flv', input],
    ]);
    const copy = await cores(input, join(dir, 'copy'), seconds);
    const rungs: Record<string, { cores: number; ratio_to_copy: number }> = {};
    for (const rung of ladder) {
      const c = await cores(input, join(dir, rung.name), seconds, rung);
      rungs[rung.name] = { cores: Number(c.toFixed(3)), ratio_to_copy: Number((c / copy).toFixed(1)) };
    }
    const ladderCores = Object.values(rungs).reduce((sum, r) => sum + r.cores, 0);
    process.stdout.write(
      `${JSON.stringify({
        bench: 'abr-ladder',
        media_s: seconds,
        copy_cores: Number(copy.toFixed(4)),
        rungs,
        ladder_cores: Number(ladderCores.toFixed(3)),
        ratio: Number(((copy + ladderCores) / copy).toFixed(1)),
      })}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
