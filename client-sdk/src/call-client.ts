/**
 * Video calls with support agents and streamers, on mediasoup-client.
 *
 * `CallClient` (`sdk.calls`) starts, answers and rejects calls, lists them,
 * and sets an agent's availability and watches what rings for them. A
 * `CallSession` is one call with its media: the camera and microphone sent
 * to the server's SFU, the other side's tracks received, mute and camera
 * off, device switching, quality reports, and recovery from network changes
 * (ICE restart) and from WebSocket reconnects (the server drops a
 * participant's transports when their socket leaves, so they are rebuilt).
 * The signaling it speaks is in docs/protocol.md (`call.*`).
 */
import { Device, type types } from 'mediasoup-client';
import { Emitter } from './emitter.js';
import { LiveCommerceError } from './errors.js';
import type { HttpClient } from './http.js';
import type { RealtimeClient, RoomEvent } from './realtime-client.js';

export type CallType = 'support' | 'sales' | 'consultation';
export type CallStatus = 'initiated' | 'ringing' | 'active' | 'ended' | 'missed' | 'rejected';
export type AgentStatus = 'online' | 'busy' | 'away';
export type MediaKind = 'audio' | 'video';

/** What the shopper was looking at when they called. */
export interface CallContext {
  streamId?: string;
  productId?: string;
  cart?: Array<{ skuId: string; quantity: number }>;
}

export interface QualityStat {
  avg: number;
  max: number;
  samples: number;
}

/** A call as `GET /v1/calls/{id}` answers it. */
export interface Call {
  id: string;
  type: CallType;
  status: CallStatus;
  callerId: string;
  /** Who it rings or rang; null while queued. */
  agentId: string | null;
  context: CallContext;
  createdAt: string;
  ringingAt: string | null;
  answeredAt: string | null;
  endedAt: string | null;
  endedBy: string | null;
  endReason: string | null;
  durationMs: number | null;
  /** Place in the support queue while `initiated`. */
  queuePosition?: number;
  quality: {
    server: Record<string, QualityStat>;
    client: Record<string, QualityStat>;
    resolution?: { width: number; height: number };
  } | null;
  record: boolean;
  recordings: Array<{ key: string; url: string; userId: string; kind: MediaKind; bytes: number }>;
}

/** An RTCIceServer with the short-lived TURN credentials the server minted. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

export interface StartCallInput {
  /** `support` goes to the next free agent; `sales` and `consultation` ring `calleeId`. */
  type: CallType;
  calleeId?: string;
  context?: CallContext;
  /** Record on the server (the callee is told before answering). */
  record?: boolean;
}

export interface CallMediaOptions {
  /** Microphone: on (default), off, or constraints. */
  audio?: boolean | MediaTrackConstraints;
  /** Camera: on (default), off, or constraints. */
  video?: boolean | MediaTrackConstraints;
  /** Send this stream's tracks instead of asking `getUserMedia`. */
  stream?: MediaStream;
  /** How often receive quality is measured (`quality`) and reported to the server. Default 5 s. */
  statsIntervalMs?: number;
}

/** What this side receives, from `getStats()` of the receiving transport. */
export interface ReceiveStats {
  audio: {
    bytesReceived: number;
    packetsReceived: number;
    packetsLost: number;
    jitterMs: number | null;
  } | null;
  video: {
    bytesReceived: number;
    packetsReceived: number;
    packetsLost: number;
    framesDecoded: number;
    fps: number | null;
    width: number | null;
    height: number | null;
  } | null;
  /** Round trip time of the selected candidate pair. */
  rttMs: number | null;
  /** Received bitrate since the previous measurement (null on the first). */
  bitrateKbps: number | null;
  packetLossPct: number | null;
}

export interface RemoteTrack {
  producerId: string;
  userId: string;
  kind: MediaKind;
  track: MediaStreamTrack;
  /** Muted (audio) or camera off (video) on the other side. */
  paused: boolean;
}

/** `connecting` until media flows, `reconnecting` while ICE restarts or the socket is back, `failed` when it gave up. */
export type MediaConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'failed' | 'closed';

export interface CallSessionEvents {
  /** The call changed (ringing, answered, …): the call as the server has it. */
  updated: Call;
  /** Place in the support queue while waiting for an agent. */
  queued: { position: number };
  /** A track of the other side arrived; it is also in `remoteStream`. */
  track: RemoteTrack;
  /** A track of the other side is gone (they left or the media is being rebuilt). */
  trackEnded: { producerId: string; kind: MediaKind };
  /** The other side muted (or turned the camera off) or back on. */
  remotePaused: { producerId: string; kind: MediaKind; paused: boolean };
  media: MediaConnectionState;
  /** Every `statsIntervalMs` while media is up. */
  quality: ReceiveStats;
  /** The call is over (ended, missed, rejected): media is closed. */
  ended: Call;
  /** Something failed that the session could not recover by itself. */
  error: LiveCommerceError;
}

const OVER: readonly CallStatus[] = ['ended', 'missed', 'rejected'];
/** Retries of media set-up while the instance hosting the call is being replaced (its claim lapses in ≤ 15 s). */
const MEDIA_RETRY_MS = 2000;
const MEDIA_RETRIES = 10;
/** A transport `disconnected` this long gets an ICE restart (it often recovers by itself first). */
const ICE_DISCONNECTED_GRACE_MS = 2000;
const ICE_RESTARTS = 3;

interface TransportInfo {
  id: string;
  iceParameters: types.IceParameters;
  iceCandidates: types.IceCandidate[];
  dtlsParameters: types.DtlsParameters;
}

interface ProducerInfo {
  producerId: string;
  userId: string;
  kind: MediaKind;
  paused: boolean;
}

const toError = (err: unknown, code = 'MEDIA_FAILED'): LiveCommerceError =>
  err instanceof LiveCommerceError
    ? err
    : new LiveCommerceError(code, err instanceof Error ? err.message : String(err));

/** One call and its media. Create it with `CallClient.start` or `CallClient.answer`. */
export class CallSession extends Emitter<CallSessionEvents> {
  /** The other side's tracks, for a <video> element's `srcObject`. */
  readonly remoteStream: MediaStream = new MediaStream();
  private localStreamValue: MediaStream | null = null;
  private localMediaErrorValue: LiveCommerceError | null = null;
  private device: Device | null = null;
  private sendTransport: types.Transport | null = null;
  private recvTransport: types.Transport | null = null;
  private readonly producers = new Map<MediaKind, types.Producer>();
  private readonly consumers = new Map<string, types.Consumer>();
  /** The other side's producers the server told us about, consumed once the receive transport is up. */
  private readonly remoteProducers = new Map<string, ProducerInfo>();
  private readonly enabled: Record<MediaKind, boolean> = { audio: true, video: true };
  private mediaState: MediaConnectionState = 'idle';
  private connecting: Promise<void> | null = null;
  /**
   * Set once the camera and microphone are settled (granted, refused or not asked for). A
   * `call.updated` that arrives while the browser is still opening them must not start media:
   * transports built then would carry no tracks, and the other side would see and hear nothing.
   */
  private localMediaSettled = false;
  private mediaRetries = 0;
  private iceRestarts = 0;
  private iceTimer: ReturnType<typeof setTimeout> | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private lastBytes: { bytes: number; at: number } | null = null;
  private readonly unsubscribe: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly realtime: RealtimeClient,
    private readonly http: HttpClient,
    private callValue: Call,
    /** The signed-in user's id (the caller's or the callee's). */
    readonly selfId: string,
    private readonly mediaOptions: CallMediaOptions = {},
  ) {
    super();
  }

  get id(): string {
    return this.callValue.id;
  }

  /** The call as last heard from the server. */
  get call(): Call {
    return this.callValue;
  }

  /** This side's camera and microphone (for a muted preview), once acquired. */
  get localStream(): MediaStream | null {
    return this.localStreamValue;
  }

  /**
   * Why the camera and microphone could not be opened (`MEDIA_DEVICE`: none, or not allowed),
   * or null. The call goes on receive-only. Known when `start` or `answer` returns.
   */
  get localMediaError(): LiveCommerceError | null {
    return this.localMediaErrorValue;
  }

  get media(): MediaConnectionState {
    return this.mediaState;
  }

  /**
   * The call is over. It can be so already when `start` or `answer` returns (it ended while
   * the camera and microphone were opening, and `ended` was emitted then): check this as
   * well as listening for `ended`.
   */
  get over(): boolean {
    return OVER.includes(this.callValue.status);
  }

  get microphoneEnabled(): boolean {
    return this.enabled.audio;
  }

  get cameraEnabled(): boolean {
    return this.enabled.video;
  }

  /** Joins the call's room, gets the camera and microphone, and sets up media as soon as the call allows it. */
  async open(): Promise<void> {
    const room = `call:${this.id}`;
    const mine =
      <D>(handler: (data: D) => void) =>
      (ev: RoomEvent) => {
        if (ev.room === room) handler(ev.data as D);
      };
    this.unsubscribe.push(
      this.realtime.on(
        'call.updated',
        mine<{ call: Call }>(({ call }) => this.onCall(call)),
      ),
      this.realtime.on(
        'call.queued',
        mine<{ position: number }>(({ position }) => this.emit('queued', { position })),
      ),
      this.realtime.on(
        'call.newProducer',
        mine<ProducerInfo>((p) => this.addRemoteProducer(p)),
      ),
      this.realtime.on(
        'call.producerClosed',
        mine<{ producerId: string }>(({ producerId }) => this.dropConsumer(producerId)),
      ),
      this.realtime.on(
        'call.producerPaused',
        mine<{ producerId: string }>(({ producerId }) => this.onRemotePaused(producerId, true)),
      ),
      this.realtime.on(
        'call.producerResumed',
        mine<{ producerId: string }>(({ producerId }) => this.onRemotePaused(producerId, false)),
      ),
      this.realtime.onState((state) => this.onConnectionState(state)),
    );
    const onNetworkChange = () => void this.restartIce();
    globalThis.addEventListener?.('online', onNetworkChange);
    const connection = (globalThis.navigator as { connection?: EventTarget } | undefined)?.connection;
    connection?.addEventListener('change', onNetworkChange);
    this.unsubscribe.push(() => {
      globalThis.removeEventListener?.('online', onNetworkChange);
      connection?.removeEventListener('change', onNetworkChange);
    });
    await this.realtime.connect();
    await this.realtime.join(room);
    await this.acquireLocalMedia();
    if (this.closed) {
      // The call ended while the camera was opening: let go of it at once.
      for (const track of this.localStreamValue?.getTracks() ?? []) track.stop();
      return;
    }
    this.localMediaSettled = true;
    this.onCall(this.callValue);
  }

  /** Mute or unmute the microphone (the other side gets `remotePaused`). */
  setMicrophoneEnabled(enabled: boolean): Promise<void> {
    return this.setEnabled('audio', enabled);
  }

  /** Turn the camera off or on. */
  setCameraEnabled(enabled: boolean): Promise<void> {
    return this.setEnabled('video', enabled);
  }

  /** Sends from another camera or microphone (a `deviceId` from `navigator.mediaDevices.enumerateDevices()`). */
  async switchDevice(kind: MediaKind, deviceId: string): Promise<void> {
    this.assertOpen();
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId } } });
    } catch (err) {
      throw toError(err, 'MEDIA_DEVICE');
    }
    const track = kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    if (!track) throw new LiveCommerceError('MEDIA_DEVICE', `No ${kind} track from that device`);
    track.enabled = this.enabled[kind];
    // The new track is sent before the old one stops, so the other side never sees a gap.
    const producer = this.producers.get(kind);
    if (producer) await producer.replaceTrack({ track });
    else if (this.sendTransport) await this.produce(track);
    const local = this.localStreamValue ?? new MediaStream();
    this.localStreamValue = local;
    for (const old of kind === 'audio' ? local.getAudioTracks() : local.getVideoTracks()) {
      local.removeTrack(old);
      old.stop();
    }
    local.addTrack(track);
  }

  /** Restarts ICE on both transports (after a network change, or when a transport failed). */
  async restartIce(): Promise<void> {
    if (this.closed || this.connecting) return;
    const transports = [this.sendTransport, this.recvTransport].filter((t): t is types.Transport => !!t);
    if (transports.length === 0) return;
    this.setMedia('reconnecting');
    try {
      for (const transport of transports) {
        const { iceParameters } = await this.realtime.request<{ iceParameters: types.IceParameters }>(
          'call.restartIce',
          { callId: this.id, transportId: transport.id },
        );
        await transport.restartIce({ iceParameters });
      }
      // A restart on a live path does not always change the connection state: say so ourselves.
      if (transports.every((t) => t.connectionState === 'connected')) this.setMedia('connected');
    } catch (err) {
      this.emit('error', toError(err));
    }
  }

  /** Measures what this side receives (also sent to the server as `call.stats` while the call is active). */
  async receiveStats(): Promise<ReceiveStats> {
    const stats: ReceiveStats = {
      audio: null,
      video: null,
      rttMs: null,
      bitrateKbps: null,
      packetLossPct: null,
    };
    const transport = this.recvTransport;
    if (!transport || transport.closed) return stats;
    const report = await transport.getStats();
    let bytes = 0;
    report.forEach((s: Record<string, unknown>) => {
      const num = (key: string) => (typeof s[key] === 'number' ? (s[key] as number) : null);
      // mediasoup's bandwidth probe arrives on a stream of its own (mid "probator") carrying
      // padding only: it is not the other side's media.
      if (s.type === 'inbound-rtp' && (s.kind === 'audio' || s.kind === 'video') && s.mid !== 'probator') {
        const common = {
          bytesReceived: num('bytesReceived') ?? 0,
          packetsReceived: num('packetsReceived') ?? 0,
          packetsLost: Math.max(0, num('packetsLost') ?? 0),
        };
        bytes += common.bytesReceived;
        // After a consumer is rebuilt the old stream's counters may linger: keep the busiest.
        const current = s.kind === 'audio' ? stats.audio : stats.video;
        if (current && current.packetsReceived >= common.packetsReceived) return;
        if (s.kind === 'audio') {
          const jitter = num('jitter');
          stats.audio = { ...common, jitterMs: jitter === null ? null : jitter * 1000 };
        } else {
          stats.video = {
            ...common,
            framesDecoded: num('framesDecoded') ?? 0,
            fps: num('framesPerSecond'),
            width: num('frameWidth'),
            height: num('frameHeight'),
          };
        }
      } else if (
        s.type === 'candidate-pair' &&
        s.state === 'succeeded' &&
        num('currentRoundTripTime') !== null
      ) {
        stats.rttMs = (num('currentRoundTripTime') as number) * 1000;
      }
    });
    const now = Date.now();
    if (this.lastBytes && now > this.lastBytes.at)
      stats.bitrateKbps = Math.max(0, ((bytes - this.lastBytes.bytes) * 8) / (now - this.lastBytes.at));
    this.lastBytes = { bytes, at: now };
    const received = (stats.audio?.packetsReceived ?? 0) + (stats.video?.packetsReceived ?? 0);
    const lost = (stats.audio?.packetsLost ?? 0) + (stats.video?.packetsLost ?? 0);
    if (received + lost > 0) stats.packetLossPct = (lost / (received + lost)) * 100;
    return stats;
  }

  /** Hangs up (or, before an answer, cancels) the call and closes its media. */
  async hangup(): Promise<Call> {
    try {
      const call = await this.http.request<Call>('POST', `/v1/calls/${this.id}/hangup`);
      this.onCall(call);
      return call;
    } finally {
      this.close();
    }
  }

  /** Closes this side's media and leaves the call's room (the call goes on until someone hangs up). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribe.splice(0)) off();
    this.teardownMedia();
    this.realtime.request('call.leave', { callId: this.id }).catch(() => undefined);
    this.realtime.leave(`call:${this.id}`).catch(() => undefined);
    for (const track of this.localStreamValue?.getTracks() ?? []) track.stop();
    this.setMedia('closed');
  }

  private onCall(call: Call): void {
    this.callValue = call;
    this.emit('updated', call);
    if (call.status === 'initiated' && call.queuePosition)
      this.emit('queued', { position: call.queuePosition });
    if (OVER.includes(call.status)) {
      if (!this.closed) this.close();
      this.emit('ended', call);
      this.removeAllListeners();
      return;
    }
    // While it rings only the caller may set media up, so it flows the moment the callee answers.
    const mayConnect =
      call.status === 'active' || (call.status === 'ringing' && call.callerId === this.selfId);
    if (mayConnect && this.localMediaSettled && !this.sendTransport && !this.connecting)
      void this.connectMedia();
  }

  private async acquireLocalMedia(): Promise<void> {
    const { audio = true, video = true, stream } = this.mediaOptions;
    if (stream) {
      this.localStreamValue = stream;
      return;
    }
    if (!audio && !video) return;
    try {
      this.localStreamValue = await navigator.mediaDevices.getUserMedia({ audio, video });
    } catch (err) {
      // Receive-only is still a call: the other side can show and tell. (Not an `error` event:
      // this happens before `start` or `answer` returns, when nobody can listen yet.)
      this.localMediaErrorValue = toError(err, 'MEDIA_DEVICE');
    }
  }

  private connectMedia(): Promise<void> {
    this.connecting = (async () => {
      this.setMedia(this.mediaState === 'idle' ? 'connecting' : 'reconnecting');
      try {
        const joined = await this.realtime.request<{
          rtpCapabilities: types.RtpCapabilities;
          producers: ProducerInfo[];
          iceServers: IceServer[];
        }>('call.join', { callId: this.id });
        if (!this.device) {
          const device = new Device();
          await device.load({ routerRtpCapabilities: joined.rtpCapabilities });
          this.device = device;
        }
        for (const p of joined.producers) this.remoteProducers.set(p.producerId, p);
        this.recvTransport = await this.createTransport('recv', joined.iceServers);
        this.sendTransport = await this.createTransport('send', joined.iceServers);
        for (const track of this.localStreamValue?.getTracks() ?? []) await this.produce(track);
        for (const p of this.remoteProducers.values()) await this.consume(p);
        this.mediaRetries = 0;
        this.startStats();
      } catch (err) {
        this.teardownMedia();
        const error = toError(err);
        const retry =
          ['CALL_MEDIA_UNAVAILABLE', 'DISCONNECTED', 'TIMEOUT'].includes(error.code) &&
          this.mediaRetries < MEDIA_RETRIES;
        if (this.closed) return;
        if (!retry) {
          this.setMedia('failed');
          this.emit('error', error);
          return;
        }
        this.mediaRetries += 1;
        this.setMedia('reconnecting');
        setTimeout(() => {
          if (!this.closed && !this.sendTransport && !this.connecting) void this.connectMedia();
        }, MEDIA_RETRY_MS);
      } finally {
        this.connecting = null;
      }
    })();
    return this.connecting;
  }

  private async createTransport(
    direction: 'send' | 'recv',
    iceServers: IceServer[],
  ): Promise<types.Transport> {
    const device = this.device as Device;
    const info = await this.realtime.request<TransportInfo>('call.createTransport', {
      callId: this.id,
      direction,
    });
    const options = { ...info, iceServers };
    const transport =
      direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      this.realtime
        .request('call.connectTransport', { callId: this.id, transportId: transport.id, dtlsParameters })
        .then(() => callback(), errback);
    });
    if (direction === 'send')
      transport.on('produce', ({ kind, rtpParameters }, callback, errback) => {
        this.realtime
          .request<{ id: string }>('call.produce', {
            callId: this.id,
            transportId: transport.id,
            kind,
            rtpParameters,
          })
          .then(({ id }) => callback({ id }), errback);
      });
    transport.on('connectionstatechange', (state) => this.onTransportState(transport, state));
    return transport;
  }

  private async produce(track: MediaStreamTrack): Promise<void> {
    const transport = this.sendTransport;
    const kind = track.kind as MediaKind;
    if (!transport || !this.device?.canProduce(kind)) return;
    track.enabled = this.enabled[kind];
    const producer = await transport.produce({ track, stopTracks: false });
    this.producers.set(kind, producer);
    if (!this.enabled[kind]) await this.signalPaused(producer, true);
  }

  private addRemoteProducer(p: ProducerInfo): void {
    if (p.userId === this.selfId) return;
    this.remoteProducers.set(p.producerId, p);
    if (this.recvTransport && !this.connecting)
      this.consume(p).catch((err: unknown) => this.emit('error', toError(err)));
  }

  private async consume(p: ProducerInfo): Promise<void> {
    const transport = this.recvTransport;
    if (!transport || !this.device || this.consumers.has(p.producerId)) return;
    const reply = await this.realtime.request<{
      id: string;
      producerId: string;
      kind: MediaKind;
      rtpParameters: types.RtpParameters;
    }>('call.consume', {
      callId: this.id,
      transportId: transport.id,
      producerId: p.producerId,
      rtpCapabilities: this.device.rtpCapabilities,
    });
    if (this.consumers.has(p.producerId)) return;
    const consumer = await transport.consume(reply);
    this.consumers.set(p.producerId, consumer);
    this.remoteStream.addTrack(consumer.track);
    // Created paused on the server so that the first keyframe is not lost: resume now that it is wired up.
    await this.realtime.request('call.resumeConsumer', { callId: this.id, consumerId: consumer.id });
    this.emit('track', {
      producerId: p.producerId,
      userId: p.userId,
      kind: p.kind,
      track: consumer.track,
      paused: p.paused,
    });
  }

  private dropConsumer(producerId: string): void {
    this.remoteProducers.delete(producerId);
    const consumer = this.consumers.get(producerId);
    if (!consumer) return;
    this.consumers.delete(producerId);
    this.remoteStream.removeTrack(consumer.track);
    consumer.close();
    this.emit('trackEnded', { producerId, kind: consumer.kind as MediaKind });
  }

  private onRemotePaused(producerId: string, paused: boolean): void {
    const p = this.remoteProducers.get(producerId);
    if (!p) return;
    p.paused = paused;
    this.emit('remotePaused', { producerId, kind: p.kind, paused });
  }

  private async setEnabled(kind: MediaKind, enabled: boolean): Promise<void> {
    this.assertOpen();
    this.enabled[kind] = enabled;
    for (const track of this.localStreamValue?.getTracks() ?? [])
      if (track.kind === kind) track.enabled = enabled;
    const producer = this.producers.get(kind);
    if (producer) await this.signalPaused(producer, !enabled);
  }

  private async signalPaused(producer: types.Producer, paused: boolean): Promise<void> {
    if (paused) producer.pause();
    else producer.resume();
    await this.realtime.request(paused ? 'call.pauseProducer' : 'call.resumeProducer', {
      callId: this.id,
      producerId: producer.id,
    });
  }

  private onTransportState(transport: types.Transport, state: string): void {
    if (transport !== this.sendTransport && transport !== this.recvTransport) return;
    if (state === 'connected') {
      this.iceRestarts = 0;
      if (this.iceTimer) clearTimeout(this.iceTimer);
      this.iceTimer = null;
      this.setMedia('connected');
    } else if (state === 'disconnected' || state === 'failed') {
      this.setMedia('reconnecting');
      if (this.iceTimer) return;
      this.iceTimer = setTimeout(
        () => {
          this.iceTimer = null;
          if (this.iceRestarts >= ICE_RESTARTS) {
            this.setMedia('failed');
            this.emit(
              'error',
              new LiveCommerceError('MEDIA_FAILED', 'The media connection could not be restored'),
            );
            return;
          }
          this.iceRestarts += 1;
          void this.restartIce();
        },
        state === 'failed' ? 0 : ICE_DISCONNECTED_GRACE_MS,
      );
    }
  }

  /** After a WebSocket reconnect the server has dropped this side's transports: build them again. */
  private onConnectionState(state: string): void {
    if (this.closed) return;
    if (state === 'reconnecting' && this.sendTransport) this.setMedia('reconnecting');
    if (state !== 'open' || !this.sendTransport) return;
    this.teardownMedia();
    this.onCall(this.callValue);
  }

  private startStats(): void {
    if (this.statsTimer) return;
    this.statsTimer = setInterval(() => void this.reportStats(), this.mediaOptions.statsIntervalMs ?? 5000);
  }

  private async reportStats(): Promise<void> {
    const stats = await this.receiveStats().catch(() => null);
    if (!stats || this.closed) return;
    this.emit('quality', stats);
    if (this.callValue.status !== 'active') return;
    const sample: Record<string, number | string> = { callId: this.id };
    if (stats.bitrateKbps !== null) sample.bitrateKbps = stats.bitrateKbps;
    if (stats.packetLossPct !== null) sample.packetLossPct = stats.packetLossPct;
    if (stats.audio?.jitterMs != null) sample.jitterMs = stats.audio.jitterMs;
    if (stats.rttMs !== null) sample.rttMs = stats.rttMs;
    if (stats.video?.fps != null) sample.fps = stats.video.fps;
    if (stats.video?.width && stats.video.height) {
      sample.width = stats.video.width;
      sample.height = stats.video.height;
    }
    await this.realtime.request('call.stats', sample).catch(() => undefined);
  }

  private teardownMedia(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    if (this.iceTimer) clearTimeout(this.iceTimer);
    this.iceTimer = null;
    for (const producerId of [...this.consumers.keys()]) {
      const info = this.remoteProducers.get(producerId);
      this.dropConsumer(producerId);
      // Still the other side's: consumed again once the media is rebuilt.
      if (info) this.remoteProducers.set(producerId, info);
    }
    this.producers.clear();
    this.sendTransport?.close();
    this.recvTransport?.close();
    this.sendTransport = null;
    this.recvTransport = null;
    this.lastBytes = null;
  }

  private setMedia(state: MediaConnectionState): void {
    if (this.mediaState === state || this.mediaState === 'closed') return;
    this.mediaState = state;
    this.emit('media', state);
  }

  private assertOpen(): void {
    if (this.closed) throw new LiveCommerceError('CLOSED', 'The call session is closed');
  }
}

export interface QueuedCall {
  call: Call;
  position: number;
}

/** Calls over HTTP and the realtime connection. */
export class CallClient {
  constructor(
    private readonly http: HttpClient,
    private readonly realtime: RealtimeClient,
  ) {}

  /**
   * Starts a call and its session: a support call waits for a free agent (`queued`), the
   * others ring `calleeId`. Errors: `CALL_CALLEE_INVALID`, `CALLS_DISABLED`, `UNAUTHENTICATED`.
   */
  async start(input: StartCallInput, media: CallMediaOptions = {}): Promise<CallSession> {
    const { call } = await this.http.request<{ call: Call; iceServers: IceServer[] }>(
      'POST',
      '/v1/calls',
      input,
    );
    return this.openSession(call, call.callerId, media);
  }

  /** Answers a call ringing for me and opens its session. Errors: `CALL_STATE_INVALID` (too late), `CALL_AGENT_ONLY`. */
  async answer(callId: string, media: CallMediaOptions = {}): Promise<CallSession> {
    const { call } = await this.http.request<{ call: Call; iceServers: IceServer[] }>(
      'POST',
      `/v1/calls/${encodeURIComponent(callId)}/answer`,
    );
    return this.openSession(call, call.agentId as string, media);
  }

  reject(callId: string): Promise<Call> {
    return this.http.request('POST', `/v1/calls/${encodeURIComponent(callId)}/reject`);
  }

  get(callId: string): Promise<Call> {
    return this.http.request('GET', `/v1/calls/${encodeURIComponent(callId)}`);
  }

  /** My calls (made or taken), newest first; page with `before` = the last `createdAt`. */
  async history(query: { limit?: number; before?: string } = {}): Promise<Call[]> {
    return (await this.http.request<{ items: Call[] }>('GET', '/v1/calls', undefined, { query })).items;
  }

  /** Support calls waiting for a free agent, oldest first (agents). */
  async queue(): Promise<QueuedCall[]> {
    return (await this.http.request<{ items: QueuedCall[] }>('GET', '/v1/calls/queue')).items;
  }

  async availability(): Promise<AgentStatus> {
    return (await this.http.request<{ status: AgentStatus }>('GET', '/v1/calls/availability')).status;
  }

  /** online: support calls may ring me (a waiting one at once); busy, away: they do not. */
  async setAvailability(status: AgentStatus): Promise<AgentStatus> {
    return (await this.http.request<{ status: AgentStatus }>('PUT', '/v1/calls/availability', { status }))
      .status;
  }

  /**
   * Calls ringing for `userId` (the signed-in agent or streamer): `ringing` when one starts,
   * `updated` as it changes (answered elsewhere, cancelled, missed). Returns the unsubscribe function.
   */
  async watchIncoming(
    userId: string,
    handler: (event: { type: 'ringing' | 'updated'; call: Call }) => void,
  ): Promise<() => void> {
    const room = `agent:${userId}`;
    const offs = (['call.ringing', 'call.updated'] as const).map((name) =>
      this.realtime.on<{ call: Call }>(name, (ev) => {
        if (ev.room === room)
          handler({ type: name === 'call.ringing' ? 'ringing' : 'updated', call: ev.data.call });
      }),
    );
    await this.realtime.connect();
    await this.realtime.join(room);
    return () => {
      for (const off of offs) off();
      this.realtime.leave(room).catch(() => undefined);
    };
  }

  private async openSession(call: Call, selfId: string, media: CallMediaOptions): Promise<CallSession> {
    const session = new CallSession(this.realtime, this.http, call, selfId, media);
    await session.open();
    return session;
  }
}
