/**
 * SFU fan-out: one VP8 producer (~1.5 Mbps) to N consumers, through our call
 * layer versus the same fan-out made directly with mediasoup, in the same run:
 *
 *   npm run bench -- sfu [--consumers 200] [--seconds 10] [--rounds 2] [--plain]
 *
 * Both sides use one mediasoup worker (the project's 3.19.3 build) and
 * PlainTransports with SRTP (AES_CM_128_HMAC_SHA1_80; `--plain` for RTP):
 * - ours: `Sfu` → `CallMedia` of one call: the sender's transport
 *   (`createPlainTransport`), `produce`, then per viewer a transport to the
 *   sink, `consume` (paused) and `resumeConsumer`; every id checked as for a
 *   client;
 * - bare: `worker.createRouter` with the same codecs, `createPlainTransport`,
 *   `produce`, `consume` + `resume` per viewer.
 * The source is ffmpeg copying a pre-encoded VP8 file in real time (`-re`,
 * looped; encoded once before the rounds, so encoding costs nothing during
 * them); the consumers all send to one UDP sink in a child process that only
 * counts packets. Neither ffmpeg nor the sink is measured.
 *
 * Each round sets a side up, lets it run 2 s, then measures `--seconds`: the
 * worker's CPU (utime + stime from /proc) plus this Node process's
 * (`process.cpuUsage`), as a percentage of one core; the sides alternate and
 * each side's median round counts. Packets the sink received per second
 * show the fan-out really ran.
 *
 * Last stdout line:
 * {"bench":"sfu","consumers":N,"cpu_ratio":R,"ours_cpu_pct","bare_cpu_pct","cpu_per_packet_ratio","srtp","sink_pps":{ours,bare}}
 * where cpu_ratio = ours ÷ bare, and cpu_per_packet_ratio the same per packet
 * the sink received (the fair figure when the worker saturates a core:
 * expected sink rate is N × ~160 packets/s).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { types } from 'mediasoup';
import { MEDIA_CODECS } from '../media/sfu/media-codecs.js';
import { Sfu } from '../media/sfu/sfu.js';
import { findWorkerBinary } from '../media/sfu/worker-binary.js';
import { loadMediasoup } from '../media/sfu/worker-pool.js';
import { cpuMs } from './_proc.js';
import { median } from './_stats.js';

const log = (msg: string) => process.stderr.write(`[sfu] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SSRC = 22334455;
const PT = 101;
const PRODUCER_RTP = {
  codecs: [{ mimeType: 'video/VP8', payloadType: PT, clockRate: 90000 }],
  encodings: [{ ssrc: SSRC }],
};

interface Args {
  consumers: number;
  seconds: number;
  rounds: number;
  srtp: boolean;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string, def: number) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : def;
  };
  return {
    consumers: get('consumers', 200),
    seconds: get('seconds', 10),
    rounds: get('rounds', 2),
    srtp: !argv.includes('--plain'),
  };
}

/** A UDP sink in its own process: counts packets, answers the count over IPC. */
async function startSink(): Promise<{ port: number; count(): Promise<number>; stop(): void }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s=require('dgram').createSocket('udp4');let n=0;s.on('message',()=>{n++});
       s.bind(0,'127.0.0.1',()=>process.send({port:s.address().port}));
       process.on('message',()=>process.send({count:n}));`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const [ready] = (await once(child, 'message')) as [{ port: number }];
  return {
    port: ready.port,
    async count() {
      child.send('count');
      const [m] = (await once(child, 'message')) as [{ count: number }];
      return m.count;
    },
    stop: () => child.kill('SIGKILL'),
  };
}

/** ffmpeg copying the pre-encoded file to the producer's transport in real time. */
function startSource(file: string, port: number, srtp?: types.SrtpParameters): ChildProcess {
  const target = srtp
    ? [
        '-srtp_out_suite',
        srtp.cryptoSuite,
        '-srtp_out_params',
        srtp.keyBase64,
        `srtp://127.0.0.1:${port}?pkt_size=1200`,
      ]
    : [`rtp://127.0.0.1:${port}?pkt_size=1200`];
  return spawn(
    'ffmpeg',
    [
      ...[
        '-hide_banner',
        '-loglevel',
        'error',
        '-re',
        '-stream_loop',
        '-1',
        '-i',
        file,
        '-an',
        '-c:v',
        'copy',
      ],
      ...['-ssrc', String(SSRC), '-payload_type', String(PT), '-f', 'rtp', ...target],
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

interface Side {
  workerPid: number;
  producerPort: number;
  srtp?: types.SrtpParameters;
  close(): Promise<void>;
}

async function setUpOurs(binary: string, args: Args, sinkPort: number): Promise<Side> {
  const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const sfu = new Sfu({
    binary,
    numWorkers: 1,
    rtcMinPort: 40000,
    rtcMaxPort: 49999,
    logger: silent,
    transport: { listenIp: '127.0.0.1', maxTransportsPerPeer: 1 },
  });
  await sfu.start();
  const media = await sfu.open('bench-call');
  const ingest = await media.createPlainTransport('sender', { srtp: args.srtp });
  const producer = await media.produce('sender', ingest.id, 'video', PRODUCER_RTP);
  for (let i = 0; i < args.consumers; i++) {
    const viewer = `viewer-${i}`;
    const out = await media.createPlainTransport(viewer, {
      remote: { ip: '127.0.0.1', port: sinkPort },
      srtp: args.srtp,
    });
    const consumer = await media.consume(viewer, out.id, producer.id, media.rtpCapabilities);
    await media.resumeConsumer(viewer, consumer.id);
  }
  return {
    workerPid: sfu.pool.list()[0]!.pid,
    producerPort: ingest.port,
    ...(ingest.srtpParameters ? { srtp: ingest.srtpParameters } : {}),
    close: () => sfu.close(),
  };
}

async function setUpBare(binary: string, args: Args, sinkPort: number): Promise<Side> {
  const mediasoup = await loadMediasoup(binary);
  const worker = await mediasoup.createWorker({ logLevel: 'warn', rtcMinPort: 40000, rtcMaxPort: 49999 });
  const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
  const srtp = args.srtp ? { enableSrtp: true, srtpCryptoSuite: 'AES_CM_128_HMAC_SHA1_80' as const } : {};
  const ingest = await router.createPlainTransport({
    listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
    rtcpMux: true,
    comedia: true,
    ...srtp,
  });
  if (ingest.srtpParameters) await ingest.connect({ srtpParameters: ingest.srtpParameters });
  const producer = await ingest.produce({ kind: 'video', rtpParameters: PRODUCER_RTP });
  for (let i = 0; i < args.consumers; i++) {
    const out = await router.createPlainTransport({
      listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
      rtcpMux: true,
      comedia: false,
      ...srtp,
    });
    await out.connect({
      ip: '127.0.0.1',
      port: sinkPort,
      ...(out.srtpParameters ? { srtpParameters: out.srtpParameters } : {}),
    });
    const consumer = await out.consume({
      producerId: producer.id,
      rtpCapabilities: router.rtpCapabilities,
      paused: true,
    });
    await consumer.resume();
  }
  return {
    workerPid: worker.pid,
    producerPort: ingest.tuple.localPort,
    ...(ingest.srtpParameters ? { srtp: ingest.srtpParameters } : {}),
    close: async () => worker.close(),
  };
}

async function round(
  name: 'ours' | 'bare',
  setUp: () => Promise<Side>,
  file: string,
  sink: Awaited<ReturnType<typeof startSink>>,
  seconds: number,
): Promise<{ cpuPct: number; pps: number }> {
  const side = await setUp();
  const source = startSource(file, side.producerPort, side.srtp);
  try {
    await sleep(2000);
    const w0 = cpuMs(side.workerPid).total;
    const n0 = process.cpuUsage();
    const p0 = await sink.count();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const elapsed = performance.now() - t0;
    const w1 = cpuMs(side.workerPid).total;
    const n = process.cpuUsage(n0);
    const p1 = await sink.count();
    const cpuPct = ((w1 - w0 + (n.user + n.system) / 1000) / elapsed) * 100;
    const pps = ((p1 - p0) * 1000) / elapsed;
    log(`${name}: ${cpuPct.toFixed(1)} % of a core, sink ${Math.round(pps)} packets/s`);
    return { cpuPct, pps };
  } finally {
    source.kill('SIGKILL');
    await side.close();
    await sleep(500);
  }
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const binary = findWorkerBinary(process.env.MEDIASOUP_WORKER_BIN).path;
  if (!binary) throw new Error('no mediasoup worker: run `npm run setup` (scripts/mediasoup-worker.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'lcs-bench-sfu-'));
  const file = join(dir, 'source.webm');
  log('encoding a 20 s 1280x720 VP8 source at 1.5 Mbps (once)');
  execFileSync('ffmpeg', [
    ...[
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=1280x720:rate=30',
      '-t',
      '20',
    ],
    ...['-c:v', 'libvpx', '-b:v', '1500k', '-minrate', '1500k', '-maxrate', '1500k', '-deadline', 'realtime'],
    ...['-cpu-used', '8', '-g', '60', file],
  ]);
  const sink = await startSink();
  const results = {
    ours: [] as Array<{ cpuPct: number; pps: number }>,
    bare: [] as Array<{ cpuPct: number; pps: number }>,
  };
  try {
    log(
      `${args.consumers} consumers, ${args.srtp ? 'SRTP' : 'plain RTP'}, ${args.rounds} rounds of ${args.seconds} s per side`,
    );
    for (let r = 0; r < args.rounds; r++) {
      // Alternate which side goes first, so drift on a shared box hits both.
      const order: Array<'ours' | 'bare'> = r % 2 ? ['ours', 'bare'] : ['bare', 'ours'];
      for (const name of order)
        results[name].push(
          await round(
            name,
            () => (name === 'ours' ? setUpOurs(binary, args, sink.port) : setUpBare(binary, args, sink.port)),
            file,
            sink,
            args.seconds,
          ),
        );
    }
  } finally {
    sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const ours = median(results.ours.map((x) => x.cpuPct));
  const bare = median(results.bare.map((x) => x.cpuPct));
  // CPU per delivered packet: when the worker saturates a core (a busy shared box), raw CPU
  // caps at ~100 % on both sides and the difference shows up as packets not delivered.
  const perPacket = (xs: Array<{ cpuPct: number; pps: number }>) => median(xs.map((x) => x.cpuPct / x.pps));
  const round2 = (x: number) => Math.round(x * 100) / 100;
  process.stdout.write(
    `${JSON.stringify({
      bench: 'sfu',
      consumers: args.consumers,
      cpu_ratio: round2(ours / bare),
      ours_cpu_pct: round2(ours),
      bare_cpu_pct: round2(bare),
      cpu_per_packet_ratio: round2(perPacket(results.ours) / perPacket(results.bare)),
      srtp: args.srtp,
      sink_pps: {
        ours: Math.round(median(results.ours.map((x) => x.pps))),
        bare: Math.round(median(results.bare.map((x) => x.pps))),
      },
    })}\n`,
  );
}
