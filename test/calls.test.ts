/**
 * Video calls on one instance (embedded database, in-memory engine, a real
 * mediasoup worker): the lifecycle over HTTP and its events over WebSocket,
 * agent availability and the support queue, timeouts, a vanished client, a
 * killed worker, and the `call.*` signaling with bad input. After every
 * call ends, mediasoup's own dumps show no router left.
 */
import { spawnSync } from 'node:child_process';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config/schema.js';
import { StartupError, startServer } from '../src/server.js';
import { createTestApp, type TestApp } from './support/app.js';
import {
  CALLS_ENV,
  type CallInstance,
  CLIENT_DTLS,
  listenCalls,
  opusRtpParameters,
  probeMediasoupWorker,
  sendVp8,
  vp8RtpParameters,
} from './support/calls.js';
import { wsCodeOf } from './support/failures.js';
import { describeWithService } from './support/real-services.js';
import { until, WsClient } from './support/ws-client.js';

async function streamToBuffer(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

type Quality = {
  server: Record<string, { avg: number; max: number; samples: number } | undefined>;
  client: Record<string, { avg: number; max: number; samples: number } | undefined>;
  resolution?: { width: number; height: number };
};

interface CallBody {
  id: string;
  status: string;
  agentId: string | null;
  endedBy: string | null;
  endReason: string | null;
  queuePosition?: number;
  durationMs: number | null;
  quality: Quality | null;
  recordings: unknown[];
  context: Record<string, unknown>;
}

await describeWithService('video calls (mediasoup worker)', probeMediasoupWorker, () => {
  let inst: CallInstance;
  let t: TestApp;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    t = await createTestApp(CALLS_ENV);
    inst = await listenCalls(t);
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.close();
  });

  const auth = (token: string) => ({ authorization: `Bearer ${token}` });

  async function api<T = CallBody>(
    method: 'GET' | 'POST' | 'PUT',
    url: string,
    token: string,
    payload?: unknown,
  ): Promise<{ status: number; body: T & { code?: string } }> {
    const res = await t.app.inject({ method, url, headers: auth(token), ...(payload ? { payload } : {}) });
    return { status: res.statusCode, body: res.json() };
  }

  const startCall = async (token: string, payload: unknown = { type: 'support' }) => {
    const res = await api<{ call: CallBody; iceServers: unknown[] }>('POST', '/v1/calls', token, payload);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.call;
  };
  const getCall = async (token: string, id: string) => (await api('GET', `/v1/calls/${id}`, token)).body;
  const setAvailability = async (token: string, status: string) =>
    api<{ status: string }>('PUT', '/v1/calls/availability', token, { status });

  const connect = async (token: string) => {
    const c = await WsClient.connect(inst.base, { token });
    clients.push(c);
    return c;
  };

  /** Every agent this suite made goes away, so calls of one test do not ring another's agent. */
  const agents: Array<{ token: string }> = [];
  const newAgent = async () => {
    for (const a of agents) await setAvailability(a.token, 'away');
    const agent = await t.login(['agent']);
    agents.push(agent);
    return agent;
  };

  /** Real RTP into a call's router: a server-side participant for `userId`, fed VP8 by ffmpeg. */
  async function feedVp8(callId: string, userId: string, ssrc: number) {
    const media = t.media!.sfu.get(callId)!;
    const ingest = await media.createPlainTransport(userId);
    await media.produce(userId, ingest.id, 'video', {
      codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000 }],
      encodings: [{ ssrc }],
    });
    return sendVp8(ingest.port, ssrc);
  }

  async function routerCount(): Promise<number> {
    let n = 0;
    for (const worker of t.media!.sfu.pool.list()) n += (await worker.dump()).routerIds.length;
    return n;
  }

  describe('lifecycle', () => {
    it('queues support calls with their position and rings the longest-idle agent once one is online', async () => {
      const agent = await newAgent();
      const shopper1 = await t.login();
      const shopper2 = await t.login();
      const first = await startCall(shopper1.token, {
        type: 'support',
        context: { streamId: 'a7Kq2ZpX9b', cart: [{ skuId: crypto.randomUUID(), quantity: 2 }] },
      });
      const second = await startCall(shopper2.token);
      expect(first).toMatchObject({ status: 'initiated', agentId: null, queuePosition: 1 });
      expect(second).toMatchObject({ status: 'initiated', queuePosition: 2 });
      // The support desk's view of the line: agents only, oldest first, with the caller's context.
      const line = await api<{ items: Array<{ call: CallBody; position: number }> }>(
        'GET',
        '/v1/calls/queue',
        agent.token,
      );
      expect(line.body.items.map((q) => [q.call.id, q.position])).toEqual([
        [first.id, 1],
        [second.id, 2],
      ]);
      expect(line.body.items[0]?.call.context).toMatchObject({ streamId: 'a7Kq2ZpX9b' });
      expect((await api('GET', '/v1/calls/queue', shopper1.token)).body.code).toBe('FORBIDDEN');

      const caller2 = await connect(shopper2.token);
      await caller2.request('join', { room: `call:${second.id}` });
      const agentWs = await connect(agent.token);
      await agentWs.request('join', { room: `agent:${agent.id}` });

      expect((await setAvailability(agent.token, 'online')).body.status).toBe('busy');
      const [ringing] = await agentWs.waitForEvents(`agent:${agent.id}`, 1, 20_000, 'call.ringing');
      expect(ringing!.d).toMatchObject({ call: { id: first.id, status: 'ringing', agentId: agent.id } });
      const [queued] = await caller2.waitForEvents(`call:${second.id}`, 1, 20_000, 'call.queued');
      expect(queued!.d).toEqual({ callId: second.id, position: 1 });
      expect(
        (
          await api<{ items: Array<{ call: CallBody }> }>('GET', '/v1/calls/queue', agent.token)
        ).body.items.map((q) => q.call.id),
      ).toEqual([second.id]);
      expect(await getCall(shopper2.token, second.id)).toMatchObject({
        status: 'initiated',
        queuePosition: 1,
      });

      const answered = await api<{ call: CallBody }>('POST', `/v1/calls/${first.id}/answer`, agent.token);
      expect(answered.body.call.status).toBe('active');
      // Going online in the middle of a call keeps the agent busy.
      expect((await setAvailability(agent.token, 'online')).body.status).toBe('busy');
      const hung = await api('POST', `/v1/calls/${first.id}/hangup`, agent.token);
      expect(hung.body).toMatchObject({ status: 'ended', endedBy: agent.id, endReason: 'hangup' });
      expect(hung.body.durationMs).toBeGreaterThanOrEqual(0);

      // The agent is free again and takes the next waiting call.
      const updated = await caller2.waitFor(
        (f) => f.t === 'event' && f.room === `call:${second.id}` && f.e === 'call.updated',
      );
      expect(updated.d).toMatchObject({ call: { id: second.id, status: 'ringing', agentId: agent.id } });
      await api('POST', `/v1/calls/${second.id}/hangup`, shopper2.token);
      expect(await getCall(shopper2.token, second.id)).toMatchObject({
        status: 'ended',
        endReason: 'cancelled',
        endedBy: shopper2.id,
      });
      expect((await api<{ status: string }>('GET', '/v1/calls/availability', agent.token)).body.status).toBe(
        'online',
      );
      const history = await api<{ items: CallBody[] }>('GET', '/v1/calls', agent.token);
      expect(history.body.items.map((c) => c.id)).toEqual([second.id, first.id]);
    });

    it('does not ring an agent for their own support call', async () => {
      const agent = await newAgent();
      expect((await setAvailability(agent.token, 'online')).body.status).toBe('online');
      const own = await startCall(agent.token);
      expect(own).toMatchObject({ status: 'initiated', agentId: null, queuePosition: 1 });
      const other = await newAgent();
      await setAvailability(other.token, 'online');
      expect(await getCall(agent.token, own.id)).toMatchObject({ status: 'ringing', agentId: other.id });
      await api('POST', `/v1/calls/${own.id}/hangup`, agent.token);
    });

    it('ends a call nobody answers as missed (ring timeout) and one nobody takes as missed (queue timeout)', async () => {
      const agent = await newAgent();
      const shopper = await t.login();
      await setAvailability(agent.token, 'online');
      const rung = await startCall(shopper.token);
      expect(rung).toMatchObject({ status: 'ringing', agentId: agent.id });
      expect(await t.calls.expireDue()).toBe(0);
      expect(await t.calls.expireDue(Date.now() + t.config.CALL_RING_TIMEOUT_MS + 1000)).toBe(1);
      expect(await getCall(shopper.token, rung.id)).toMatchObject({
        status: 'missed',
        endReason: 'ring_timeout',
        endedBy: null,
      });
      // An agent who let it ring out is set away, so the next call does not ring them again.
      expect(await t.calls.availability({ id: agent.id, roles: ['agent'], displayName: '' })).toBe('away');

      const waiting = await startCall(shopper.token);
      expect(waiting.status).toBe('initiated');
      await t.calls.expireDue(Date.now() + t.config.CALL_QUEUE_TIMEOUT_MS + 1000);
      expect(await getCall(shopper.token, waiting.id)).toMatchObject({
        status: 'missed',
        endReason: 'queue_timeout',
      });
      // A missed call left the queue: an agent coming online is not rung for it.
      await setAvailability(agent.token, 'online');
      expect(await getCall(shopper.token, waiting.id)).toMatchObject({ status: 'missed' });
    });

    it('lets the callee reject, and only the callee answer', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const stranger = await t.login();
      const call = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id });
      expect(call).toMatchObject({ status: 'ringing', agentId: streamer.id });
      expect((await api('POST', `/v1/calls/${call.id}/answer`, shopper.token)).body.code).toBe(
        'CALL_AGENT_ONLY',
      );
      expect((await api('POST', `/v1/calls/${call.id}/answer`, stranger.token)).body.code).toBe(
        'CALL_NOT_FOUND',
      );
      expect((await api('GET', `/v1/calls/${call.id}`, stranger.token)).status).toBe(404);
      const rejected = await api('POST', `/v1/calls/${call.id}/reject`, streamer.token);
      expect(rejected.body).toMatchObject({
        status: 'rejected',
        endReason: 'rejected',
        endedBy: streamer.id,
      });
      const late = await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      expect([late.status, late.body.code]).toEqual([409, 'CALL_STATE_INVALID']);
      // Nobody can be called directly unless they take calls.
      const viewer = await t.login();
      const bad = await api('POST', '/v1/calls', shopper.token, {
        type: 'consultation',
        calleeId: viewer.id,
      });
      expect([bad.status, bad.body.code]).toEqual([400, 'CALL_CALLEE_INVALID']);
      const badType = await api('POST', '/v1/calls', shopper.token, { type: 'video' });
      expect([badType.status, badType.body.code]).toEqual([400, 'VALIDATION_FAILED']);
    });

    it('lets the caller hang up an active call', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const call = await startCall(shopper.token, { type: 'consultation', calleeId: streamer.id });
      await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      const hung = await api('POST', `/v1/calls/${call.id}/hangup`, shopper.token);
      expect(hung.body).toMatchObject({ status: 'ended', endReason: 'hangup', endedBy: shopper.id });
      const again = await api('POST', `/v1/calls/${call.id}/hangup`, shopper.token);
      expect(again.body.code).toBe('CALL_STATE_INVALID');
    });

    it('ends the call when a participant’s socket closes and they do not come back', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const call = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id });
      await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      const agentWs = await connect(streamer.token);
      await agentWs.request('join', { room: `call:${call.id}` });
      const callerWs = await connect(shopper.token);
      await callerWs.request('join', { room: `call:${call.id}` });
      await callerWs.request('call.join', { callId: call.id });
      expect(await routerCount()).toBe(1);
      callerWs.terminate();
      const ended = await agentWs.waitFor(
        (f) =>
          f.t === 'event' && f.e === 'call.updated' && (f.d as { call: CallBody }).call.status === 'ended',
        20_000,
      );
      expect((ended.d as { call: CallBody }).call).toMatchObject({
        endReason: 'disconnected',
        endedBy: shopper.id,
      });
      await until(async () => (await routerCount()) === 0, 10_000);
    });

    it('ends an active call whose participant is not in its room (their instance died, or they never joined)', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const call = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id });
      const callerWs = await connect(shopper.token);
      await callerWs.request('join', { room: `call:${call.id}` });
      await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      const job = t.jobs.find((j) => j.name === 'call-abandoned')!;
      // The callee answered over HTTP and never joined: absent from the first sweep that sees the
      // call (after the grace time since the answer), ended once absent for the grace time.
      await until(async () => {
        await job.runOnce();
        return (await getCall(shopper.token, call.id)).status === 'ended';
      }, 20_000);
      expect(await getCall(shopper.token, call.id)).toMatchObject({
        endReason: 'disconnected',
        endedBy: streamer.id,
      });
    });

    it('ends the calls of a worker that died with a reason, and new calls work on its replacement', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const call = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id });
      await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      const ws = await connect(shopper.token);
      await ws.request('join', { room: `call:${call.id}` });
      await ws.request('call.join', { callId: call.id });
      const [worker] = t.media!.sfu.pool.list();
      process.kill(worker!.pid, 'SIGKILL');
      const ended = await ws.waitFor(
        (f) =>
          f.t === 'event' && f.e === 'call.updated' && (f.d as { call: CallBody }).call.status === 'ended',
        20_000,
      );
      expect((ended.d as { call: CallBody }).call).toMatchObject({
        endReason: 'media_worker_died',
        endedBy: null,
      });
      await until(() => t.media!.sfu.pool.list().some((w) => w.pid !== worker!.pid), 20_000);
      expect((await t.app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(
        /^mediasoup_worker_deaths_total 1$/m,
      );

      const next = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id });
      const joined = await ws.request<{ rtpCapabilities: { codecs: unknown[] } }>('call.join', {
        callId: next.id,
      });
      expect(joined.rtpCapabilities.codecs.length).toBeGreaterThan(0);
      await api('POST', `/v1/calls/${next.id}/hangup`, shopper.token);
      await until(async () => (await routerCount()) === 0, 10_000);
    });
  });

  describe('signaling', () => {
    it('produces, consumes paused then resumed, mutes, restarts ICE; refuses bad ids, strangers and bad parameters; frees everything at the end', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const stranger = await t.login();
      const call = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id });
      const caller = await connect(shopper.token);
      const agent = await connect(streamer.token);
      const other = await connect(stranger.token);
      const room = `call:${call.id}`;
      await caller.request('join', { room });
      await agent.request('join', { room });
      expect(await wsCodeOf(other.request('join', { room }))).toBe('ROOM_FORBIDDEN');
      expect(await wsCodeOf(other.request('call.join', { callId: call.id }))).toBe('CALL_NOT_FOUND');
      expect(await wsCodeOf(caller.request('call.join', { callId: crypto.randomUUID() }))).toBe(
        'CALL_NOT_FOUND',
      );

      // Before answering, the callee gets no media; the caller may set theirs up.
      expect(await wsCodeOf(agent.request('call.join', { callId: call.id }))).toBe('CALL_STATE_INVALID');
      await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      const joined = await caller.request<{
        rtpCapabilities: { codecs: Array<{ mimeType: string }> };
        iceServers: unknown[];
      }>('call.join', { callId: call.id });
      const mimeTypes = joined.rtpCapabilities.codecs.map((c) => c.mimeType);
      expect(mimeTypes).toEqual(expect.arrayContaining(['audio/opus', 'video/VP8', 'video/H264']));
      expect(joined.iceServers).toEqual([]);

      type Transport = {
        id: string;
        iceParameters: { usernameFragment: string };
        iceCandidates: Array<{ ip?: string; address?: string }>;
      };
      const send = await caller.request<Transport>('call.createTransport', {
        callId: call.id,
        direction: 'send',
      });
      expect(send.iceCandidates.length).toBeGreaterThan(0);
      expect(send.iceCandidates.every((c) => (c.address ?? c.ip) === '127.0.0.1')).toBe(true);
      await caller.request('call.connectTransport', {
        callId: call.id,
        transportId: send.id,
        dtlsParameters: CLIENT_DTLS,
      });

      // Bad input: unknown transport, another participant's transport, malformed parameters.
      const agentRecv = await agent.request<Transport>('call.createTransport', {
        callId: call.id,
        direction: 'recv',
      });
      const fakeId = crypto.randomUUID();
      expect(
        await wsCodeOf(
          caller.request('call.produce', {
            callId: call.id,
            transportId: fakeId,
            kind: 'video',
            rtpParameters: vp8RtpParameters(),
          }),
        ),
      ).toBe('CALL_TRANSPORT_NOT_FOUND');
      expect(
        await wsCodeOf(
          caller.request('call.produce', {
            callId: call.id,
            transportId: agentRecv.id,
            kind: 'video',
            rtpParameters: vp8RtpParameters(),
          }),
        ),
      ).toBe('CALL_TRANSPORT_NOT_FOUND');
      expect(
        await wsCodeOf(
          caller.request('call.produce', {
            callId: call.id,
            transportId: send.id,
            kind: 'video',
            rtpParameters: {
              codecs: [{ mimeType: 'video/NOPE', payloadType: 300 }],
              encodings: [{ ssrc: 1 }],
            },
          }),
        ),
      ).toBe('CALL_MEDIA_PARAMETERS_INVALID');
      expect(
        await wsCodeOf(
          caller.request('call.produce', {
            callId: call.id,
            transportId: send.id,
            kind: 'video',
            rtpParameters: { codecs: [] },
          }),
        ),
      ).toBe('VALIDATION_FAILED');
      expect(
        await wsCodeOf(
          caller.request('call.connectTransport', {
            callId: call.id,
            transportId: send.id,
            dtlsParameters: { fingerprints: [{ algorithm: 'md0', value: 'x' }] },
          }),
        ),
      ).toBe('CALL_MEDIA_PARAMETERS_INVALID');

      const video = await caller.request<{ id: string }>('call.produce', {
        callId: call.id,
        transportId: send.id,
        kind: 'video',
        rtpParameters: vp8RtpParameters(),
      });
      const audio = await caller.request<{ id: string }>('call.produce', {
        callId: call.id,
        transportId: send.id,
        kind: 'audio',
        rtpParameters: opusRtpParameters(),
      });
      const announced = await agent.waitForEvents(room, 2, 20_000, 'call.newProducer');
      expect(announced.map((f) => f.d)).toEqual([
        { producerId: video.id, userId: shopper.id, kind: 'video', paused: false },
        { producerId: audio.id, userId: shopper.id, kind: 'audio', paused: false },
      ]);
      // A late joiner learns the producers from call.join.
      const agentJoin = await agent.request<{ producers: Array<{ producerId: string }> }>('call.join', {
        callId: call.id,
      });
      expect(agentJoin.producers.map((p) => p.producerId).sort()).toEqual([video.id, audio.id].sort());

      const consumer = await agent.request<{
        id: string;
        paused: boolean;
        kind: string;
        rtpParameters: { codecs: Array<{ mimeType: string }> };
      }>('call.consume', {
        callId: call.id,
        transportId: agentRecv.id,
        producerId: video.id,
        rtpCapabilities: joined.rtpCapabilities,
      });
      expect(consumer).toMatchObject({ paused: true, kind: 'video' });
      expect(consumer.rtpParameters.codecs[0]!.mimeType).toBe('video/VP8');
      expect(
        await wsCodeOf(
          agent.request('call.consume', {
            callId: call.id,
            transportId: agentRecv.id,
            producerId: fakeId,
            rtpCapabilities: joined.rtpCapabilities,
          }),
        ),
      ).toBe('CALL_PRODUCER_NOT_FOUND');
      expect(
        await wsCodeOf(
          agent.request('call.consume', {
            callId: call.id,
            transportId: agentRecv.id,
            producerId: audio.id,
            rtpCapabilities: {
              codecs: [{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000, preferredPayloadType: 96 }],
            },
          }),
        ),
      ).toBe('CALL_CANNOT_CONSUME');
      expect(
        await wsCodeOf(caller.request('call.resumeConsumer', { callId: call.id, consumerId: consumer.id })),
      ).toBe('CALL_CONSUMER_NOT_FOUND');
      await agent.request('call.resumeConsumer', { callId: call.id, consumerId: consumer.id });

      expect(
        await wsCodeOf(agent.request('call.pauseProducer', { callId: call.id, producerId: video.id })),
      ).toBe('CALL_PRODUCER_NOT_FOUND');
      await caller.request('call.pauseProducer', { callId: call.id, producerId: audio.id });
      await caller.request('call.resumeProducer', { callId: call.id, producerId: audio.id });
      const muted = await agent.waitForEvents(room, 1, 20_000, 'call.producerPaused');
      expect(muted[0]!.d).toEqual({ producerId: audio.id, userId: shopper.id });
      await agent.waitForEvents(room, 1, 20_000, 'call.producerResumed');

      const restarted = await caller.request<{ iceParameters: { usernameFragment: string } }>(
        'call.restartIce',
        {
          callId: call.id,
          transportId: send.id,
        },
      );
      expect(restarted.iceParameters.usernameFragment).not.toBe(send.iceParameters.usernameFragment);

      const sfuCall = t.media!.sfu.get(call.id)!;
      expect(sfuCall.counts()).toEqual({ peers: 2, transports: 2, producers: 2, consumers: 1 });
      const dump = await sfuCall.router.dump();
      expect(dump.transportIds).toHaveLength(2);

      // Leaving closes one's own transports (the consumer of the other's media goes with the producer).
      await caller.request('call.leave', { callId: call.id });
      await agent.waitForEvents(room, 2, 20_000, 'call.producerClosed');
      expect(sfuCall.counts()).toEqual({ peers: 1, transports: 1, producers: 0, consumers: 0 });

      await api('POST', `/v1/calls/${call.id}/hangup`, shopper.token);
      expect(
        await wsCodeOf(caller.request('call.createTransport', { callId: call.id, direction: 'send' })),
      ).toBe('CALL_STATE_INVALID');
      await until(async () => (await routerCount()) === 0, 10_000);
      expect(t.media!.sfu.callIds()).toEqual([]);
    });
  });

  describe('quality', () => {
    it('stores server samples and client reports with the call and shows them in /metrics', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const call = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id });
      await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      const ws = await connect(shopper.token);
      await ws.request('call.join', { callId: call.id });
      const ffmpeg = await feedVp8(call.id, shopper.id, 4242);
      try {
        const job = t.jobs.find((j) => j.name === 'call-quality')!;
        await until(async () => {
          await job.runOnce();
          const { quality } = await getCall(shopper.token, call.id);
          return (quality?.server.bitrateKbps?.avg ?? 0) > 0;
        }, 30_000);
      } finally {
        ffmpeg.kill('SIGKILL');
      }
      await ws.request('call.stats', {
        callId: call.id,
        rttMs: 40,
        packetLossPct: 1,
        fps: 15,
        width: 320,
        height: 240,
      });
      await ws.request('call.stats', { callId: call.id, rttMs: 60 });
      expect(await wsCodeOf(ws.request('call.stats', { callId: call.id, packetLossPct: 150 }))).toBe(
        'VALIDATION_FAILED',
      );
      const quality = (await getCall(shopper.token, call.id)).quality!;
      expect(quality.client.rttMs).toEqual({ avg: 50, max: 60, samples: 2 });
      expect(quality.client.fps).toEqual({ avg: 15, max: 15, samples: 1 });
      expect(quality.resolution).toEqual({ width: 320, height: 240 });
      expect(quality.server.score!.avg).toBeGreaterThan(0);

      const metrics = async () => (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
      const before = await metrics();
      expect(before).toMatch(/^calls_media_hosted 1$/m);
      expect(before).toMatch(/^mediasoup_workers 1$/m);
      expect(
        Number(/^call_media_quality\{metric="bitrateKbps"\} ([\d.]+)$/m.exec(before)?.[1]),
      ).toBeGreaterThan(0);
      await api('POST', `/v1/calls/${call.id}/hangup`, shopper.token);
      expect(await metrics()).toMatch(/^calls_ended_total\{status="ended",reason="hangup"\} [1-9]\d*$/m);
      // The ended call still shows its summary.
      expect((await getCall(shopper.token, call.id)).quality!.server.bitrateKbps!.samples).toBeGreaterThan(0);
    });
  });

  describe('analytics', () => {
    it('sums up each agent’s calls and outcomes, and answer rate and wait per type', async () => {
      const agent = await t.login(['agent']);
      const shopper = await t.login();
      const admin = await t.login(['admin']);
      const sales = async () =>
        (await startCall(shopper.token, { type: 'consultation', calleeId: agent.id })).id;
      const answered = await sales();
      await api('POST', `/v1/calls/${answered}/answer`, agent.token);
      await api('POST', `/v1/calls/${answered}/hangup`, shopper.token);
      await api('POST', `/v1/calls/${await sales()}/reject`, agent.token);
      const unanswered = await sales();
      await t.calls.expireDue(Date.now() + t.config.CALL_RING_TIMEOUT_MS + 1000);
      expect((await getCall(shopper.token, unanswered)).status).toBe('missed');

      type Analytics = {
        byAgent: Array<Record<string, unknown>>;
        byType: Array<{
          type: string;
          calls: number;
          answered: number;
          answerRate: number;
          avgWaitMs: number | null;
        }>;
      };
      const own = (await api<Analytics>('GET', '/v1/calls/analytics', agent.token)).body;
      expect(own.byAgent).toEqual([
        {
          agentId: agent.id,
          calls: 3,
          answered: 1,
          missed: 1,
          rejected: 1,
          talkTimeMs: expect.any(Number),
          avgDurationMs: expect.any(Number),
          avgQualityScore: null,
        },
      ]);
      expect(own.byType.find((r) => r.type === 'consultation')).toMatchObject({
        calls: 3,
        answered: 1,
        answerRate: 0.33,
        avgWaitMs: expect.any(Number),
      });
      const asAdmin = await api<Analytics>('GET', `/v1/calls/analytics?agentId=${agent.id}`, admin.token);
      expect(asAdmin.body.byAgent).toEqual(own.byAgent);
      expect((await api('GET', '/v1/calls/analytics', shopper.token)).status).toBe(403);
    });
  });

  describe('recording', () => {
    it('records each track of a call that asked for it and stores the files when it ends', async () => {
      const streamer = await t.login(['streamer']);
      const shopper = await t.login();
      const call = await startCall(shopper.token, { type: 'sales', calleeId: streamer.id, record: true });
      expect(call).toMatchObject({ record: true, recordings: [] });
      const agentWs = await connect(streamer.token);
      await agentWs.request('join', { room: `agent:${streamer.id}` });
      await api('POST', `/v1/calls/${call.id}/answer`, streamer.token);
      const ws = await connect(shopper.token);
      await ws.request('join', { room: `call:${call.id}` });
      await ws.request('call.join', { callId: call.id });
      const media = t.media!.sfu.get(call.id)!;
      const ffmpeg = await feedVp8(call.id, shopper.id, 5151);
      try {
        // The recorder's consumer is resumed and sending to its ffmpeg.
        await until(async () => {
          const sent = (await media.stats()).find((st) => st.userId === 'recorder' && st.direction === 'out');
          return (sent?.bytes ?? 0) > 120_000;
        }, 30_000);
      } finally {
        ffmpeg.kill('SIGKILL');
      }
      await api('POST', `/v1/calls/${call.id}/hangup`, shopper.token);
      const recorded = await ws.waitFor((f) => f.t === 'event' && f.e === 'call.recorded', 30_000);
      const recordings = (
        recorded.d as { recordings: Array<{ key: string; kind: string; userId: string; bytes: number }> }
      ).recordings;
      expect(recordings).toHaveLength(1);
      expect(recordings[0]).toMatchObject({ kind: 'video', userId: shopper.id });
      expect((await getCall(shopper.token, call.id)).recordings).toEqual(recordings);
      const stored = await t.objectStore.get(recordings[0]!.key);
      expect(stored?.size).toBe(recordings[0]!.bytes);
      // A real Matroska file with the VP8 track (the seconds the recorder saw).
      const probe = spawnSync(
        'ffprobe',
        ['-v', 'error', '-show_entries', 'stream=codec_name:format=duration', '-of', 'json', '-i', 'pipe:0'],
        { input: await streamToBuffer(stored!.body) },
      );
      const probed = JSON.parse(probe.stdout.toString()) as {
        streams: Array<{ codec_name: string }>;
        format: { duration?: string };
      };
      expect(probed.streams.map((st) => st.codec_name)).toEqual(['vp8']);
      // Remuxed with its index: the duration is known.
      expect(Number(probed.format.duration)).toBeGreaterThan(1);
    });
  });

  describe('api', () => {
    it('documents the call routes in OpenAPI and answers CALLS_DISABLED when calls are off', async () => {
      const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
        paths: Record<string, unknown>;
        tags: Array<{ name: string }>;
      };
      for (const path of [
        '/v1/calls',
        '/v1/calls/{id}',
        '/v1/calls/{id}/answer',
        '/v1/calls/{id}/reject',
        '/v1/calls/{id}/hangup',
        '/v1/calls/availability',
        '/v1/calls/analytics',
      ])
        expect(doc.paths).toHaveProperty([path]);
      expect(doc.tags.map((tag) => tag.name)).toContain('calls');
      const off = await createTestApp({ CALLS_ENABLED: 'false' });
      try {
        const user = await off.login();
        const res = await off.app.inject({
          method: 'POST',
          url: '/v1/calls',
          headers: auth(user.token),
          payload: { type: 'support' },
        });
        expect([res.statusCode, res.json().code]).toEqual([503, 'CALLS_DISABLED']);
        expect(off.media).toBeUndefined();
      } finally {
        await off.close();
      }
    });
  });

  describe('start-up', () => {
    it('refuses to start with calls on and no worker, in one line naming the fix', async () => {
      const config = loadConfig({
        MEDIASOUP_WORKER_BIN: '/nonexistent/mediasoup-worker',
        DATA_DIR: '/tmp/unused',
      });
      const error = await startServer(config, t.app.log as never).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(StartupError);
      const message = (error as Error).message;
      expect(message).not.toContain('\n');
      expect(message).toMatch(
        /no mediasoup worker binary.*npm run setup.*MEDIASOUP_WORKER_BIN.*CALLS_ENABLED=false/,
      );
    });
  });
});
