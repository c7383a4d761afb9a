/**
 * The video call panel the watch page and the support desk share: the other
 * side's video, a preview of one's own, mute, camera off, hang up, the
 * call's state and the receive quality. The numbers behind the quality line
 * are also on the remote video's `data-*` attributes (frames decoded, bytes),
 * where tools and tests can read them.
 */
import type { Call, CallSession, MediaConnectionState, ReceiveStats } from '../client-sdk/src/index.js';

const REASONS: Record<string, string> = {
  hangup: 'hung up',
  cancelled: 'cancelled',
  disconnected: 'connection lost',
  media_worker_died: 'server media failure',
};

function statusText(call: Call, media: MediaConnectionState, selfId: string): string {
  switch (call.status) {
    case 'initiated':
      return call.queuePosition
        ? `Waiting for an agent: you are #${call.queuePosition} in line`
        : 'Waiting for an agent';
    case 'ringing':
      return call.callerId === selfId ? 'Ringing…' : 'Incoming call';
    case 'active':
      if (media === 'connected') return 'Connected';
      if (media === 'reconnecting') return 'Reconnecting…';
      if (media === 'failed') return 'Media connection lost';
      return 'Connecting…';
    case 'missed':
      return 'Nobody could take the call. Please try again later.';
    case 'rejected':
      return 'The call was declined.';
    default:
      return `Call ended${call.endReason ? ` (${REASONS[call.endReason] ?? call.endReason})` : ''}`;
  }
}

function qualityText(stats: ReceiveStats): string {
  const parts: string[] = [];
  if (stats.bitrateKbps !== null) parts.push(`${Math.round(stats.bitrateKbps)} kbps`);
  if (stats.video?.fps) parts.push(`${Math.round(stats.video.fps)} fps`);
  if (stats.video?.width && stats.video.height) parts.push(`${stats.video.width}×${stats.video.height}`);
  if (stats.packetLossPct !== null) parts.push(`${stats.packetLossPct.toFixed(1)} % loss`);
  if (stats.rttMs !== null) parts.push(`${Math.round(stats.rttMs)} ms RTT`);
  return parts.join(' · ');
}

export class CallPanel {
  private session: CallSession | null = null;
  private readonly status: HTMLElement;
  private readonly remote: HTMLVideoElement;
  private readonly local: HTMLVideoElement;
  private readonly remoteState: HTMLElement;
  private readonly quality: HTMLElement;
  private readonly mute: HTMLButtonElement;
  private readonly camera: HTMLButtonElement;
  private readonly hangup: HTMLButtonElement;
  private readonly cameraSelect: HTMLSelectElement;

  constructor(
    private readonly root: HTMLElement,
    private readonly onError: (err: unknown) => void,
  ) {
    root.innerHTML = `
      <p id="call-status" class="call-status" role="status" aria-live="polite"></p>
      <div class="call-videos">
        <video id="remote-video" autoplay playsinline aria-label="The other side's video"></video>
        <video id="local-video" muted autoplay playsinline aria-label="Your camera"></video>
        <p id="remote-state" class="badge"></p>
      </div>
      <p id="call-quality" class="call-quality"></p>
      <div class="row">
        <button id="call-mute" type="button" class="secondary" aria-pressed="false">Mute</button>
        <button id="call-camera" type="button" class="secondary" aria-pressed="false">Camera off</button>
        <button id="call-hangup" type="button">Hang up</button>
        <select id="call-camera-select" aria-label="Camera" hidden></select>
      </div>`;
    const q = <T extends HTMLElement>(id: string) => root.querySelector(`#${id}`) as T;
    this.status = q('call-status');
    this.remote = q('remote-video');
    this.local = q('local-video');
    this.remoteState = q('remote-state');
    this.quality = q('call-quality');
    this.mute = q('call-mute');
    this.camera = q('call-camera');
    this.hangup = q('call-hangup');
    this.cameraSelect = q('call-camera-select');
    this.cameraSelect.addEventListener('change', () => {
      this.session?.switchDevice('video', this.cameraSelect.value).catch(onError);
    });
    this.mute.addEventListener('click', () => void this.toggle('audio'));
    this.camera.addEventListener('click', () => void this.toggle('video'));
    this.hangup.addEventListener('click', () => {
      this.session?.hangup().catch(onError);
    });
    root.hidden = true;
  }

  get active(): boolean {
    return this.session !== null;
  }

  /** Shows `session` until it ends; `onEnded` runs then (the panel stays up with the outcome). */
  show(session: CallSession, onEnded?: (call: Call) => void): void {
    this.session = session;
    this.root.hidden = false;
    this.remote.srcObject = session.remoteStream;
    this.local.srcObject = session.localStream;
    this.quality.textContent = '';
    this.remoteState.textContent = '';
    for (const button of [this.mute, this.camera, this.hangup]) button.disabled = false;
    this.syncButtons();
    const render = () => {
      this.status.textContent = statusText(session.call, session.media, session.selfId);
      this.root.dataset.status = session.call.status;
      this.root.dataset.media = session.media;
    };
    render();
    void this.listCameras(session);
    session.on('updated', render);
    session.on('queued', ({ position }) => {
      this.status.textContent = statusText(
        { ...session.call, queuePosition: position },
        session.media,
        session.selfId,
      );
    });
    session.on('media', render);
    session.on('track', () => {
      // A new MediaStream track does not restart a paused element by itself.
      this.remote.play().catch(() => undefined);
    });
    session.on('remotePaused', ({ kind, paused }) => {
      this.remoteState.textContent = paused ? (kind === 'audio' ? 'Muted' : 'Camera off') : '';
    });
    session.on('quality', (stats) => {
      this.quality.textContent = qualityText(stats);
      this.remote.dataset.framesDecoded = String(stats.video?.framesDecoded ?? 0);
      this.remote.dataset.videoBytes = String(stats.video?.bytesReceived ?? 0);
      this.remote.dataset.audioBytes = String(stats.audio?.bytesReceived ?? 0);
    });
    session.on('error', this.onError);
    if (session.localMediaError) this.onError(session.localMediaError);
    const end = (call: Call) => {
      this.session = null;
      render();
      for (const button of [this.mute, this.camera, this.hangup]) button.disabled = true;
      this.remote.srcObject = null;
      this.local.srcObject = null;
      onEnded?.(call);
    };
    session.on('ended', end);
    // Declined or cancelled while the camera was opening: it ended before it could be shown.
    if (session.over) end(session.call);
  }

  /** The cameras to choose from (labels are known once the page may use one). */
  private async listCameras(session: CallSession): Promise<void> {
    const devices = await navigator.mediaDevices?.enumerateDevices().catch(() => []);
    const cameras = (devices ?? []).filter((d) => d.kind === 'videoinput' && d.deviceId);
    const current = session.localStream?.getVideoTracks()[0]?.getSettings().deviceId;
    this.cameraSelect.replaceChildren(
      ...cameras.map((camera, i) => {
        const option = document.createElement('option');
        option.value = camera.deviceId;
        option.textContent = camera.label || `Camera ${i + 1}`;
        option.selected = camera.deviceId === current;
        return option;
      }),
    );
    this.cameraSelect.hidden = cameras.length === 0;
  }

  private async toggle(kind: 'audio' | 'video'): Promise<void> {
    const session = this.session;
    if (!session) return;
    try {
      if (kind === 'audio') await session.setMicrophoneEnabled(!session.microphoneEnabled);
      else await session.setCameraEnabled(!session.cameraEnabled);
    } catch (err) {
      this.onError(err);
    }
    this.syncButtons();
  }

  private syncButtons(): void {
    const session = this.session;
    if (!session) return;
    this.mute.textContent = session.microphoneEnabled ? 'Mute' : 'Unmute';
    this.mute.setAttribute('aria-pressed', String(!session.microphoneEnabled));
    this.camera.textContent = session.cameraEnabled ? 'Camera off' : 'Camera on';
    this.camera.setAttribute('aria-pressed', String(!session.cameraEnabled));
  }
}
