/**
 * Media through the SFU layer with a real mediasoup worker and real RTP:
 * ffmpeg sends a VP8 test pattern into a call's router (a PlainTransport
 * participant), and a second participant's consumer delivers it to a UDP
 * socket in this process: nothing while the consumer is paused, then
 * packets with the consumer's payload type and SSRC once resumed. Also:
 * routers spread over the workers, and closing calls leaves no router.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Sfu } from '../media/sfu/sfu.js';
import { findWorkerBinary } from '../media/sfu/worker-binary.js';
import { serverSample } from '../src/calls/call-quality.js';
import { probeMediasoupWorker, sendVp8 } from './support/calls.js';
import { describeWithService } from './support/real-services.js';
import { until } from './support/ws-client.js';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
const binary = findWorkerBinary(process.env.MEDIASOUP_WORKER_BIN).path;

const newSfu = (numWorkers: number) =>
  new Sfu({
    binary: binary!,
    numWorkers,
    rtcMinPort: 40000,
    rtcMaxPort: 49999,
    logger: silent,
    transport: { listenIp: '127.0.0.1' },
  });

async function routerCounts(sfu: Sfu): Promise<number[]> {
  return Promise.all(sfu.pool.list().map(async (w) => (await w.dump()).routerIds.length));
}

await describeWithService('sfu (mediasoup worker)', probeMediasoupWorker, () => {
  let sfu: Sfu;
  let ffmpeg: ChildProcess | undefined;
  let sink: Socket | undefined;

  beforeAll(() => {
    sfu = newSfu(2);
  });
  afterAll(async () => {
    ffmpeg?.kill('SIGKILL');
    sink?.close();
    await sfu.close();
  });

  it('looks for the worker where scripts/mediasoup-worker.sh caches it', () => {
    const { MEDIASOUP_WORKER_BIN: _set, ...env } = process.env;
    const cached = execFileSync('sh', ['scripts/mediasoup-worker.sh', '--path'], {
      env,
      encoding: 'utf8',
    }).trim();
    const lookup = findWorkerBinary(undefined, env);
    if (existsSync(cached)) expect(lookup.path).toBe(cached);
    else expect(lookup.tried.at(-1)).toMatch(/mediasoup-worker-[\d.]+-\*$/);
    expect(findWorkerBinary('/nonexistent/worker', env)).toEqual({ tried: ['/nonexistent/worker'] });
  });

  it('places each new router on the least-loaded worker and frees them all when calls close', async () => {
    await sfu.start();
    expect(sfu.pool.list()).toHaveLength(2);
    for (const id of ['a', 'b', 'c', 'd']) await sfu.open(`spread-${id}`);
    expect(await routerCounts(sfu)).toEqual([2, 2]);
    // Concurrent opens of one call share one router.
    const [x, y] = await Promise.all([sfu.open('spread-e'), sfu.open('spread-e')]);
    expect(x).toBe(y);
    for (const id of ['a', 'b', 'c', 'd', 'e']) sfu.closeCall(`spread-${id}`);
    await until(async () => (await routerCounts(sfu)).every((n) => n === 0), 10_000);
    expect(sfu.callIds()).toEqual([]);
  });

  it('forwards RTP from a producer to a consumer only once the consumer is resumed', async () => {
    const media = await sfu.open('rtp-call');
    const ingest = await media.createPlainTransport('sender');
    const ssrc = 12345678;
    const producer = await media.produce('sender', ingest.id, 'video', {
      codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000 }],
      encodings: [{ ssrc }],
    });

    const packets: Array<{ pt: number; ssrc: number }> = [];
    sink = createSocket('udp4');
    sink.on('message', (msg) => {
      // RTP version 2; RTCP (second byte 192-223 when multiplexed, RFC 5761) is not counted.
      if (msg.length < 12 || msg[0]! >> 6 !== 2 || (msg[1]! >= 192 && msg[1]! <= 223)) return;
      packets.push({ pt: msg[1]! & 0x7f, ssrc: msg.readUInt32BE(8) });
    });
    await new Promise<void>((resolve) => sink!.bind(0, '127.0.0.1', resolve));
    const out = await media.createPlainTransport('receiver', {
      remote: { ip: '127.0.0.1', port: sink.address().port },
    });
    const consumer = await media.consume('receiver', out.id, producer.id, media.rtpCapabilities);
    expect(consumer.paused).toBe(true);

    ffmpeg = sendVp8(ingest.port, ssrc);
    // The producer receives...
    const received = async () =>
      (await media.stats()).find((st) => st.id === producer.id && st.direction === 'in')?.bytes ?? 0;
    await until(async () => (await received()) > 10_000, 30_000);
    // ...but nothing of it reaches the paused consumer (mediasoup's bandwidth probe, SSRC 1234, may).
    const outPt = consumer.rtpParameters.codecs[0]!.payloadType;
    const outSsrc = consumer.rtpParameters.encodings![0]!.ssrc;
    const forwarded = () => packets.filter((p) => p.ssrc === outSsrc);
    expect(forwarded()).toEqual([]);

    await media.resumeConsumer('receiver', consumer.id);
    await until(() => forwarded().length >= 30, 30_000);
    expect(forwarded().every((p) => p.pt === outPt)).toBe(true);
    const sent = (await media.stats()).find((st) => st.id === consumer.id);
    expect(sent).toMatchObject({
      userId: 'receiver',
      direction: 'out',
      kind: 'video',
      mimeType: 'video/VP8',
    });
    expect(sent!.packets).toBeGreaterThan(0);
    // The quality sample taken from these numbers.
    const sample = serverSample(await media.stats());
    expect(sample.bitrateKbps).toBeGreaterThan(0);
    expect(sample.score).toBeGreaterThan(0);
    expect(sample.packetLossPct).toBeGreaterThanOrEqual(0);

    // Consumers and producers go with their participant's transports, and the call's router with the call.
    media.leave('receiver');
    expect(media.counts()).toMatchObject({ peers: 1, transports: 1, producers: 1, consumers: 0 });
    sfu.closeCall('rtp-call');
    await until(async () => (await routerCounts(sfu)).every((n) => n === 0), 10_000);
  });
});
