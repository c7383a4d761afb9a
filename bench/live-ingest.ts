/**
 * `npm run bench -- live-ingest [K] [SECONDS]`: K streams of a pre-encoded
 * 720p input (1 s keyframes, copied, never re-encoded) published over RTMP
 * through the whole pipeline (our RTMP ingest, the in-process MPEG-TS
 * packager, delivery to the object store with its Db record) versus, in the
 * same run, the same K inputs through bare `ffmpeg -c copy -f hls` to a local
 * directory.
 *
 * Both sides run at the same time and are measured over the same window:
 * this host's speed drifts by tens of percent from one minute to the next
 * (other VMs), so two phases one after the other measured that drift as
 * much as the pipeline (the same code gave 0.9–1.6). Together they use well
 * under the two cores, and whatever the host does hits both alike.
 *
 * cpu_ratio = CPU of the server process and its children (ffmpeg, when
 * a stream needs one; the idle mediasoup workers) over a steady window ÷
 * CPU of the K bare ffmpeg processes over that window. The publishers
 * (OBS's part) are counted on neither side.
 * first_segment_s: publish start → the stream's playlist (hence its first
 * segment) readable in the object store; the slowest stream (and the median).
 * Streams start 250 ms apart, then the bare ffmpegs, as far apart. upload_p95_ms: segment finished →
 * stored and recorded, from the server's /metrics histogram (interpolated).
 *
 * Last stdout line: {"bench":"live-ingest","streams":K,"cpu_ratio":R,"first_segment_s":F,"upload_p95_ms":U,...}
 *
 * Looking inside: BENCH_PROFILE_DIR=DIR writes the server's CPU profile there;
 * BENCH_NODE_ARGS="--trace-gc" adds node flags to the server;
 * BENCH_SERVER_LOG=FILE keeps what the server printed (its GC trace included).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPublisher } from '../test/support/rtmp-publisher.js';
import { startServerProcess } from '../test/support/server-process.js';
import { cpuMsOf, processTree } from './_proc.js';

const log = (msg: string) => process.stderr.write(`[live-ingest] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STAGGER_MS = 250;
/** 720p30 H.264 (x264 veryfast, 1 s GOP) + AAC 48 kHz, encoded once and cached. */
function prepareInput(): string {
  const dir = join(tmpdir(), 'lcs-bench-media');
  const file = join(dir, 'input-720p-gop1s.flv');
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  log('encoding the 720p input once (about half a minute)…');
  execFileSync('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-y'],
    ...[
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=1280x720:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=48000',
    ],
    ...['-t', '30', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-b:v', '2500k'],
    ...['-g', '30', '-keyint_min', '30', '-sc_threshold', '0', '-c:a', 'aac', '-ar', '48000', '-b:a', '128k'],
    `${file}.tmp.flv`,
  ]);
  execFileSync('mv', [`${file}.tmp.flv`, file]);
  return file;
}

/** p-quantile of a Prometheus histogram (cumulative buckets), interpolated inside the bucket. */
function histogramQuantile(metrics: string, name: string, q: number): number | null {
  const buckets: Array<[number, number]> = [];
  for (const line of metrics.split('\n')) {
    const m = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+(?:\\.\\d+)?)`).exec(line);
    if (m) buckets.push([m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])]);
  }
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(1, count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

function bareFfmpeg(input: string, dir: string): ChildProcess {
  mkdirSync(dir, { recursive: true });
  return spawn(
    'ffmpeg',
    [
      ...['-hide_banner', '-nostats', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', input],
      ...['-map', '0', '-c', 'copy', '-f', 'hls', '-hls_time', '1', '-hls_list_size', '8'],
      ...['-hls_flags', 'temp_file+program_date_time+independent_segments+delete_segments'],
      join(dir, 'index.m3u8'),
    ],
    { stdio: 'ignore' },
  );
}

export async function main(args: string[]): Promise<void> {
  const streams = Number(args[0] ?? 20);
  const seconds = Number(args[1] ?? 30);
  const warmup = 6;
  const input = prepareInput();
  const dataDir = mkdtempSync(join(tmpdir(), 'lcs-bench-ingest-'));
  try {
    // --- the pipeline
    const server = await startServerProcess(
      {
        DATA_DIR: dataDir,
        ADMIN_EMAIL: 'bench@example.com',
        ADMIN_PASSWORD: 'bench-password-123',
        LIVE_MAX_STREAMS: String(streams + 5),
      },
      60_000,
      [
        ...(process.env.BENCH_PROFILE_DIR
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
          : []),
        ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      ],
    );
    const login = await fetch(`${server.url}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.com', password: 'bench-password-123' }),
    });
    const { token } = (await login.json()) as { token: string };
    const created: Array<{ id: string; key: string }> = [];
    for (let i = 0; i < streams; i++) {
      const res = await fetch(`${server.url}/v1/streams`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: `bench ${i}` }),
      });
      const body = (await res.json()) as { stream: { id: string }; streamKey: string };
      created.push({ id: body.stream.id, key: body.streamKey });
    }
    log(
      `${streams} publishers through the pipeline and ${streams} bare ffmpeg -c copy -f hls, for ${seconds} s`,
    );
    const objects = join(dataDir, 'objects');
    const bareDir = join(dataDir, 'bare');
    const firstSegment: number[] = [];
    const publishers: Array<{ poll: NodeJS.Timeout; pub: ReturnType<typeof startPublisher> }> = [];
    const bare: ChildProcess[] = [];
    for (const [i, { id, key }] of created.entries()) {
      // Streams go live one after another (a quarter second apart), as shows do, not in one instant.
      if (i > 0) await sleep(STAGGER_MS);
      const started = performance.now();
      const playlist = join(objects, 'live', id, 'index.m3u8');
      const poll = setInterval(() => {
        if (existsSync(playlist)) {
          firstSegment.push((performance.now() - started) / 1000);
          clearInterval(poll);
        }
      }, 10);
      publishers.push({
        poll,
        pub: startPublisher({ url: `rtmp://127.0.0.1:${server.rtmpPort}/live/${key}`, inputFile: input }),
      });
    }
    // The baseline starts once every stream is live, so that first_segment_s measures the
    // pipeline on a box as quiet as before; from then on both run and are measured together.
    for (let waited = 0; firstSegment.length < streams && waited < 10_000; waited += 50) await sleep(50);
    for (let i = 0; i < streams; i++) {
      if (i > 0) await sleep(STAGGER_MS);
      bare.push(bareFfmpeg(input, join(bareDir, String(i))));
    }
    await sleep(warmup * 1000);
    const window = seconds - warmup - 2;
    const pipelinePids = processTree(server.proc.pid as number);
    const serverPid = server.proc.pid as number;
    const barePids = bare.map((p) => p.pid as number);
    const p0 = cpuMsOf(pipelinePids);
    const s0 = cpuMsOf([serverPid]);
    const k0 = cpuMsOf([serverPid], 'system');
    const b0 = cpuMsOf(barePids);
    await sleep(window * 1000);
    const pipelineCpu = cpuMsOf(pipelinePids) - p0;
    const serverCpu = cpuMsOf([serverPid]) - s0;
    const serverSys = cpuMsOf([serverPid], 'system') - k0;
    const bareCpu = cpuMsOf(barePids) - b0;
    const transmuxers = pipelinePids.length - 1;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const uploadP95 = histogramQuantile(metrics, 'hls_segment_delivery_seconds', 0.95);
    const delivered = Number(/^hls_segment_delivery_seconds_count (\d+)/m.exec(metrics)?.[1] ?? 0);
    await sleep(2000);
    for (const p of bare) p.kill('SIGINT');
    for (const { pub, poll } of publishers) {
      clearInterval(poll);
      await pub.stop();
    }
    await Promise.all(bare.map((p) => (p.exitCode === null ? new Promise((r) => p.once('close', r)) : null)));
    if (process.env.BENCH_SERVER_LOG) writeFileSync(process.env.BENCH_SERVER_LOG, server.output());
    await server.stop();

    // Real time: a 1 s-GOP input yields one segment a second per stream.
    const expected = streams * (seconds - 1);
    const sorted = [...firstSegment].sort((a, b) => a - b);
    const result = {
      bench: 'live-ingest',
      streams,
      cpu_ratio: Number((pipelineCpu / bareCpu).toFixed(3)),
      first_segment_s: Number((sorted.at(-1) ?? Number.NaN).toFixed(2)),
      first_segment_median_s: Number((sorted[Math.floor(sorted.length / 2)] ?? Number.NaN).toFixed(2)),
      upload_p95_ms: uploadP95 === null ? null : Number((uploadP95 * 1000).toFixed(1)),
      pipeline_cpu_pct_of_core: Number(((pipelineCpu / (window * 1000)) * 100).toFixed(1)),
      server_cpu_pct_of_core: Number(((serverCpu / (window * 1000)) * 100).toFixed(1)),
      server_sys_pct_of_core: Number(((serverSys / (window * 1000)) * 100).toFixed(1)),
      bare_cpu_pct_of_core: Number(((bareCpu / (window * 1000)) * 100).toFixed(1)),
      transmuxers,
      segments_delivered: delivered,
      realtime: firstSegment.length === streams && delivered >= expected * 0.8,
      window_s: window,
    };
    log(`segments delivered ${delivered} (≈${expected} in real time)`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
