/**
 * The media side of one call: a router, and per participant their WebRTC
 * transports, producers and consumers. Every id a client sends is looked up
 * among that participant's own objects, so nobody can touch another's
 * transports or consume from outside the call; mediasoup's own refusals of
 * parameters become CALL_MEDIA_PARAMETERS_INVALID. `close()` closes the
 * router, which closes everything under it.
 */
import { EventEmitter } from 'node:events';
import type { types } from 'mediasoup';
import { AppError } from '../../src/platform/errors.js';

export interface TransportSettings {
  listenIp: string;
  /** Put in ICE candidates instead of `listenIp` (NAT, containers). */
  announcedAddress?: string;
  /** Transports per participant (send, receive, and room for a renegotiation). Default 4. */
  maxTransportsPerPeer?: number;
  /** Producers per participant (mic, camera, screen, spare). Default 4. */
  maxProducersPerPeer?: number;
  /** Consumers per participant. Default 16. */
  maxConsumersPerPeer?: number;
}

/** What a client needs to create its side of a transport. */
export interface TransportInfo {
  id: string;
  iceParameters: types.IceParameters;
  iceCandidates: types.IceCandidate[];
  dtlsParameters: types.DtlsParameters;
}

export interface ProducerInfo {
  producerId: string;
  userId: string;
  kind: types.MediaKind;
  paused: boolean;
}

export interface ConsumerInfo {
  id: string;
  producerId: string;
  kind: types.MediaKind;
  rtpParameters: types.RtpParameters;
  /** Always true: resume with `resumeConsumer` once the client's consumer exists. */
  paused: boolean;
}

/** One RTP stream's numbers from mediasoup: a producer (`in`, from a participant) or a consumer (`out`). */
export interface MediaStreamStats {
  userId: string;
  id: string;
  direction: 'in' | 'out';
  kind: types.MediaKind;
  mimeType: string;
  bytes: number;
  packets: number;
  packetsLost: number;
  /** Bits per second, as measured by the worker. */
  bitrate: number;
  /** Jitter (RTP timestamp units) of received streams. */
  jitter?: number;
  /** Round trip time in ms, when RTCP reported one. */
  roundTripTime?: number;
  /** mediasoup's 0-10 quality score. */
  score: number;
}

export interface CallMediaEvents {
  /** Something the call's room should hear (new producer, producer paused/closed). */
  notify: [event: string, data: Record<string, unknown>];
  /** The router is gone. `workerDied` when the worker process died under it. */
  closed: [reason: 'ended' | 'workerDied'];
}

/** A server-side RTP endpoint (recording, tests, benchmarks): never created through signaling. */
export interface PlainTransportInfo {
  id: string;
  ip: string;
  port: number;
  srtpParameters?: types.SrtpParameters;
}

export interface PlainTransportOptions {
  /** Where to send RTP; absent: learn it from the first packet received (comedia). */
  remote?: { ip: string; port: number };
  /** SRTP (AES_CM_128_HMAC_SHA1_80) instead of plain RTP. */
  srtp?: boolean;
}

type AnyTransport = types.WebRtcTransport | types.PlainTransport;

interface Peer {
  transports: Map<string, AnyTransport>;
  producers: Map<string, types.Producer>;
  consumers: Map<string, types.Consumer>;
}

/** mediasoup's refusals of client-supplied parameters are the client's mistake. */
function parametersRefused(err: unknown): AppError {
  const reason = err instanceof Error ? err.message.slice(0, 200) : 'invalid';
  return new AppError('CALL_MEDIA_PARAMETERS_INVALID', undefined, { reason });
}

export class CallMedia extends EventEmitter<CallMediaEvents> {
  private readonly peers = new Map<string, Peer>();
  private closedFlag = false;
  private readonly maxTransports: number;
  private readonly maxProducers: number;
  private readonly maxConsumers: number;

  constructor(
    readonly callId: string,
    readonly router: types.Router,
    private readonly settings: TransportSettings,
  ) {
    super();
    this.maxTransports = settings.maxTransportsPerPeer ?? 4;
    this.maxProducers = settings.maxProducersPerPeer ?? 4;
    this.maxConsumers = settings.maxConsumersPerPeer ?? 16;
    router.observer.once('close', () => {
      const byWorker = !this.closedFlag;
      this.closedFlag = true;
      this.peers.clear();
      this.emit('closed', byWorker ? 'workerDied' : 'ended');
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  get rtpCapabilities(): types.RtpCapabilities {
    return this.router.rtpCapabilities;
  }

  /** Producers of everyone but `userId`, for a participant who (re)joins. */
  producersFor(userId: string): ProducerInfo[] {
    const out: ProducerInfo[] = [];
    for (const [owner, peer] of this.peers)
      if (owner !== userId)
        for (const p of peer.producers.values())
          out.push({ producerId: p.id, userId: owner, kind: p.kind, paused: p.paused });
    return out;
  }

  async createTransport(userId: string, direction: 'send' | 'recv'): Promise<TransportInfo> {
    const peer = this.peer(userId);
    if (peer.transports.size >= this.maxTransports)
      throw new AppError('CALL_MEDIA_LIMIT', undefined, { transports: this.maxTransports });
    const transport = await this.router.createWebRtcTransport({
      listenInfos: (['udp', 'tcp'] as const).map((protocol) => ({
        protocol,
        ip: this.settings.listenIp,
        ...(this.settings.announcedAddress ? { announcedAddress: this.settings.announcedAddress } : {}),
      })),
      enableUdp: true,
      enableTcp: true,
      preferUdp: true,
      appData: { userId, direction },
    });
    this.assertOpen();
    peer.transports.set(transport.id, transport);
    transport.observer.once('close', () => peer.transports.delete(transport.id));
    return {
      id: transport.id,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
    };
  }

  /**
   * A PlainTransport for `userId` (an internal participant such as a
   * recorder): it produces and consumes through the same checks as WebRTC
   * ones. With `remote` it sends there at once; without, it learns the
   * address from the first packet. With `srtp` the far end encrypts and
   * decrypts with the keys in `srtpParameters`.
   */
  async createPlainTransport(
    userId: string,
    options: PlainTransportOptions = {},
  ): Promise<PlainTransportInfo> {
    const peer = this.peer(userId);
    if (peer.transports.size >= this.maxTransports)
      throw new AppError('CALL_MEDIA_LIMIT', undefined, { transports: this.maxTransports });
    const transport = await this.router.createPlainTransport({
      listenInfo: { protocol: 'udp', ip: this.settings.listenIp },
      rtcpMux: true,
      comedia: !options.remote,
      enableSrtp: options.srtp ?? false,
      appData: { userId },
    });
    this.assertOpen();
    peer.transports.set(transport.id, transport);
    transport.observer.once('close', () => peer.transports.delete(transport.id));
    // The remote side uses this transport's own SRTP keys in both directions.
    if (options.remote || transport.srtpParameters)
      await transport.connect({
        ...(options.remote ? { ip: options.remote.ip, port: options.remote.port } : {}),
        ...(transport.srtpParameters ? { srtpParameters: transport.srtpParameters } : {}),
      });
    return {
      id: transport.id,
      ip: transport.tuple.localAddress ?? transport.tuple.localIp,
      port: transport.tuple.localPort,
      ...(transport.srtpParameters ? { srtpParameters: transport.srtpParameters } : {}),
    };
  }

  async connectTransport(userId: string, transportId: string, dtlsParameters: unknown): Promise<void> {
    const transport = this.webRtcTransport(userId, transportId);
    try {
      await transport.connect({ dtlsParameters: dtlsParameters as types.DtlsParameters });
    } catch (err) {
      throw parametersRefused(err);
    }
  }

  async restartIce(userId: string, transportId: string): Promise<types.IceParameters> {
    return this.webRtcTransport(userId, transportId).restartIce();
  }

  async produce(
    userId: string,
    transportId: string,
    kind: types.MediaKind,
    rtpParameters: unknown,
  ): Promise<{ id: string }> {
    const peer = this.peer(userId);
    const transport = this.transport(userId, transportId);
    if (peer.producers.size >= this.maxProducers)
      throw new AppError('CALL_MEDIA_LIMIT', undefined, { producers: this.maxProducers });
    let producer: types.Producer;
    try {
      producer = await transport.produce({
        kind,
        rtpParameters: rtpParameters as types.RtpParameters,
        appData: { userId },
      });
    } catch (err) {
      throw parametersRefused(err);
    }
    this.assertOpen();
    peer.producers.set(producer.id, producer);
    producer.observer.once('close', () => {
      peer.producers.delete(producer.id);
      if (!this.closedFlag) this.emit('notify', 'call.producerClosed', { producerId: producer.id, userId });
    });
    this.emit('notify', 'call.newProducer', {
      producerId: producer.id,
      userId,
      kind,
      paused: producer.paused,
    });
    return { id: producer.id };
  }

  async consume(
    userId: string,
    transportId: string,
    producerId: string,
    rtpCapabilities: unknown,
  ): Promise<ConsumerInfo> {
    const peer = this.peer(userId);
    const transport = this.transport(userId, transportId);
    const owner = this.producerOwner(producerId);
    if (!owner || owner === userId) throw new AppError('CALL_PRODUCER_NOT_FOUND', undefined, { producerId });
    if (peer.consumers.size >= this.maxConsumers)
      throw new AppError('CALL_MEDIA_LIMIT', undefined, { consumers: this.maxConsumers });
    let canConsume: boolean;
    try {
      canConsume = this.router.canConsume({
        producerId,
        rtpCapabilities: rtpCapabilities as types.RtpCapabilities,
      });
    } catch (err) {
      throw parametersRefused(err);
    }
    if (!canConsume) throw new AppError('CALL_CANNOT_CONSUME', undefined, { producerId });
    let consumer: types.Consumer;
    try {
      consumer = await transport.consume({
        producerId,
        rtpCapabilities: rtpCapabilities as types.RtpCapabilities,
        // Paused until the client's consumer exists, so the first keyframe is not lost.
        paused: true,
        appData: { userId },
      });
    } catch (err) {
      throw parametersRefused(err);
    }
    this.assertOpen();
    peer.consumers.set(consumer.id, consumer);
    consumer.observer.once('close', () => peer.consumers.delete(consumer.id));
    return {
      id: consumer.id,
      producerId,
      kind: consumer.kind,
      rtpParameters: consumer.rtpParameters,
      paused: true,
    };
  }

  async resumeConsumer(userId: string, consumerId: string): Promise<void> {
    const consumer = this.peers.get(userId)?.consumers.get(consumerId);
    if (!consumer) throw new AppError('CALL_CONSUMER_NOT_FOUND', undefined, { consumerId });
    await consumer.resume();
  }

  /** Mute / camera off (`pause`) and back. */
  async setProducerPaused(userId: string, producerId: string, paused: boolean): Promise<void> {
    const producer = this.peers.get(userId)?.producers.get(producerId);
    if (!producer) throw new AppError('CALL_PRODUCER_NOT_FOUND', undefined, { producerId });
    if (paused) await producer.pause();
    else await producer.resume();
    this.emit('notify', paused ? 'call.producerPaused' : 'call.producerResumed', { producerId, userId });
  }

  /** Closes a participant's transports (and with them their producers and consumers). */
  leave(userId: string): void {
    const peer = this.peers.get(userId);
    if (!peer) return;
    this.peers.delete(userId);
    for (const transport of [...peer.transports.values()]) transport.close();
  }

  /** The worker's numbers for every producer and consumer of the call. */
  async stats(): Promise<MediaStreamStats[]> {
    const out: MediaStreamStats[] = [];
    const jobs: Array<Promise<void>> = [];
    for (const [userId, peer] of this.peers) {
      for (const producer of peer.producers.values())
        jobs.push(
          producer.getStats().then((entries) => {
            for (const e of entries)
              out.push({
                userId,
                id: producer.id,
                direction: 'in',
                kind: producer.kind,
                mimeType: e.mimeType,
                bytes: e.byteCount,
                packets: e.packetCount,
                packetsLost: e.packetsLost,
                bitrate: e.bitrate,
                jitter: e.jitter,
                ...(e.roundTripTime !== undefined ? { roundTripTime: e.roundTripTime } : {}),
                score: e.score,
              });
          }),
        );
      for (const consumer of peer.consumers.values())
        jobs.push(
          consumer.getStats().then((entries) => {
            for (const e of entries)
              if (e.type === 'outbound-rtp')
                out.push({
                  userId,
                  id: consumer.id,
                  direction: 'out',
                  kind: consumer.kind,
                  mimeType: e.mimeType,
                  bytes: e.byteCount,
                  packets: e.packetCount,
                  packetsLost: e.packetsLost,
                  bitrate: e.bitrate,
                  ...(e.roundTripTime !== undefined ? { roundTripTime: e.roundTripTime } : {}),
                  score: e.score,
                });
          }),
        );
    }
    // A stream closing meanwhile is not an error: it just has no numbers any more.
    await Promise.allSettled(jobs);
    return out;
  }

  /** Counts for stats and leak checks. */
  counts(): { peers: number; transports: number; producers: number; consumers: number } {
    let transports = 0;
    let producers = 0;
    let consumers = 0;
    for (const peer of this.peers.values()) {
      transports += peer.transports.size;
      producers += peer.producers.size;
      consumers += peer.consumers.size;
    }
    return { peers: this.peers.size, transports, producers, consumers };
  }

  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.router.close();
  }

  private assertOpen(): void {
    if (this.closedFlag) throw new AppError('CALL_STATE_INVALID', 'The call has ended');
  }

  private peer(userId: string): Peer {
    this.assertOpen();
    let peer = this.peers.get(userId);
    if (!peer) {
      peer = { transports: new Map(), producers: new Map(), consumers: new Map() };
      this.peers.set(userId, peer);
    }
    return peer;
  }

  private transport(userId: string, transportId: string): AnyTransport {
    this.assertOpen();
    const transport = this.peers.get(userId)?.transports.get(transportId);
    if (!transport) throw new AppError('CALL_TRANSPORT_NOT_FOUND', undefined, { transportId });
    return transport;
  }

  private webRtcTransport(userId: string, transportId: string): types.WebRtcTransport {
    const transport = this.transport(userId, transportId);
    if (transport.type !== 'webrtc')
      throw new AppError('CALL_TRANSPORT_NOT_FOUND', undefined, { transportId });
    return transport;
  }

  private producerOwner(producerId: string): string | undefined {
    for (const [owner, peer] of this.peers) if (peer.producers.has(producerId)) return owner;
    return undefined;
  }
}
