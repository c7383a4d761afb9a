/** Shared fixtures of the call suites: instances that listen, RTP parameters as mediasoup-client sends them. */
import { type ChildProcess, spawn } from 'node:child_process';
import { findWorkerBinary } from '../../media/sfu/worker-binary.js';
import type { TestApp } from './app.js';

export interface CallInstance {
  t: TestApp;
  base: string;
}

/** Environment of an app with calls on: one small worker, short timeouts. */
export const CALLS_ENV = {
  CALLS_ENABLED: 'true',
  MEDIASOUP_NUM_WORKERS: '1',
  CALL_RING_TIMEOUT_MS: '60000',
  CALL_QUEUE_TIMEOUT_MS: '60000',
  CALL_DISCONNECT_GRACE_MS: '300',
  CALL_SIGNALING_TIMEOUT_MS: '3000',
};

/** Starts the app's HTTP listener and the gateway on it. */
export async function listenCalls(t: TestApp): Promise<CallInstance> {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  t.gateway.attach(t.app.server);
  return { t, base: `http://127.0.0.1:${(t.app.server.address() as { port: number }).port}` };
}

/** A VP8 camera track's RTP parameters, as mediasoup-client produces them. */
export function vp8RtpParameters(ssrc = 11111111) {
  return {
    mid: '0',
    codecs: [
      {
        mimeType: 'video/VP8',
        payloadType: 96,
        clockRate: 90000,
        rtcpFeedback: [
          { type: 'nack', parameter: '' },
          { type: 'nack', parameter: 'pli' },
          { type: 'ccm', parameter: 'fir' },
          { type: 'goog-remb', parameter: '' },
        ],
      },
    ],
    headerExtensions: [],
    encodings: [{ ssrc }],
    rtcp: { cname: `cname-${ssrc}`, reducedSize: true },
  };
}

/** An Opus microphone track's RTP parameters. */
export function opusRtpParameters(ssrc = 22222222) {
  return {
    mid: '1',
    codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: {} }],
    headerExtensions: [],
    encodings: [{ ssrc }],
    rtcp: { cname: `cname-${ssrc}`, reducedSize: true },
  };
}

/** The client half of DTLS parameters (a made-up fingerprint: enough for `connect`, no handshake follows). */
export const CLIENT_DTLS = {
  role: 'client',
  fingerprints: [
    {
      algorithm: 'sha-256',
      value:
        '82:5A:68:3D:36:C3:0A:DE:AF:E7:32:43:D2:88:83:57:AC:2D:65:E5:80:C4:B6:FB:AF:1A:A0:21:9F:6D:0C:AD',
    },
  ],
};

/** Resolves when a mediasoup worker binary is available (see scripts/mediasoup-worker.sh). */
export async function probeMediasoupWorker(): Promise<void> {
  const lookup = findWorkerBinary(process.env.MEDIASOUP_WORKER_BIN);
  if (!lookup.path)
    throw new Error(`no mediasoup worker (looked at ${lookup.tried.join(', ')}); run npm run setup`);
}

/** ffmpeg sending a small VP8 test pattern as RTP (real time, up to a minute) to 127.0.0.1:port. */
export function sendVp8(port: number, ssrc: number, payloadType = 101): ChildProcess {
  return spawn(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=15'],
      ...['-t', '60', '-an', '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k'],
      ...['-g', '15', '-ssrc', String(ssrc), '-payload_type', String(payloadType), '-f', 'rtp'],
      `rtp://127.0.0.1:${port}?pkt_size=1200`,
    ],
    { stdio: 'ignore' },
  );
}
