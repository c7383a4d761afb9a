/**
 * Server-side recording of calls started with `record: true` (both parties
 * see `record` on the call). On the instance hosting the call's router,
 * every producer gets a recording consumer on a PlainTransport to a local
 * ffmpeg that copies the RTP into a Matroska file (no transcoding); when the
 * call's router closes, ffmpeg finalizes the file, it is uploaded to the
 * ObjectStore under `calls/<callId>/`, listed in the call's `recordings`
 * and announced with `call.recorded` in the call's room.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { types } from 'mediasoup';
import type { Sfu } from '../../media/sfu/sfu.js';
import type { Database } from '../database.js';
import type { ObjectStore } from '../platform/object-store/object-store.js';
import type { CallRecording } from './call-tables.js';
import type { CallsLogger } from './calls-service.js';

/** The participant id the recording consumers belong to (never a user id: those are UUIDs). */
export const RECORDER_ID = 'recorder';

export interface CallRecorderOptions {
  db: Kysely<Database>;
  sfu: Sfu;
  objectStore: ObjectStore;
  logger: CallsLogger;
  /** Told when a call's files are stored. */
  onRecorded: (callId: string, recordings: CallRecording[]) => void;
  /** How long ffmpeg may take to finish a file once asked to stop. Default 5000 ms. */
  finishTimeoutMs?: number;
}

interface Track {
  userId: string;
  kind: types.MediaKind;
  /** Path prefix of the track's files: .sdp, .live.mkv (ffmpeg's), .mkv (final). */
  file: string;
  ffmpeg: ChildProcess;
  exited: Promise<unknown>;
}

/** A free UDP port on loopback for ffmpeg to listen on (it is closed again at once). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** An SDP for ffmpeg describing the one RTP stream it receives. */
export function recordingSdp(port: number, kind: types.MediaKind, codec: types.RtpCodecParameters): string {
  const name = codec.mimeType.split('/')[1];
  const channels = codec.channels && codec.channels > 1 ? `/${codec.channels}` : '';
  const fmtp = Object.entries(codec.parameters ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(';');
  return [
    'v=0',
    'o=- 0 0 IN IP4 127.0.0.1',
    's=call recording',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=${kind} ${port} RTP/AVP ${codec.payloadType}`,
    `a=rtpmap:${codec.payloadType} ${name}/${codec.clockRate}${channels}`,
    ...(fmtp ? [`a=fmtp:${codec.payloadType} ${fmtp}`] : []),
    'a=recvonly',
    '',
  ].join('\r\n');
}

export class CallRecorder {
  private readonly tracks = new Map<string, Track[]>();
  private readonly finishing = new Map<string, Promise<void>>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'lcs-recordings-'));
  private readonly finishTimeoutMs: number;

  constructor(private readonly options: CallRecorderOptions) {
    this.finishTimeoutMs = options.finishTimeoutMs ?? 5000;
  }

  /** A producer appeared in a call hosted here: record it if the call asked for it. */
  async onProducer(callId: string, producer: { producerId: string; userId: string; kind: types.MediaKind }) {
    const row = await this.options.db
      .selectFrom('calls')
      .select('record')
      .where('id', '=', callId)
      .executeTakeFirst();
    const media = this.options.sfu.get(callId);
    if (!row?.record || !media) return;
    const port = await freeUdpPort();
    const transport = await media.createPlainTransport(RECORDER_ID, { remote: { ip: '127.0.0.1', port } });
    const consumer = await media.consume(
      RECORDER_ID,
      transport.id,
      producer.producerId,
      media.rtpCapabilities,
    );
    const codec = consumer.rtpParameters.codecs[0]!;
    const base = join(this.dir, `${callId}-${producer.producerId}`);
    writeFileSync(`${base}.sdp`, recordingSdp(port, producer.kind, codec));
    const ffmpeg = spawn(
      'ffmpeg',
      [
        ...['-hide_banner', '-loglevel', 'error', '-nostdin', '-protocol_whitelist', 'file,udp,rtp'],
        // Probe 1 s of RTP (default 5 s) so a short call still gets its file started.
        ...['-analyzeduration', '1000000', '-i', `${base}.sdp`, '-c', 'copy', '-f', 'matroska'],
        // Written as it comes (a cluster a second, flushed), so whatever way ffmpeg ends
        // the file holds everything received; `finish` remuxes it to add the index.
        ...['-live', '1', '-cluster_time_limit', '1000', '-flush_packets', '1', '-y', `${base}.live.mkv`],
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    ffmpeg.stderr?.on('data', (d: Buffer) =>
      this.options.logger.warn({ callId, ffmpeg: d.toString().slice(0, 300) }, 'recording ffmpeg says'),
    );
    const track: Track = {
      userId: producer.userId,
      kind: producer.kind,
      file: base,
      ffmpeg,
      exited: once(ffmpeg, 'exit').catch(() => undefined),
    };
    const list = this.tracks.get(callId) ?? [];
    list.push(track);
    this.tracks.set(callId, list);
    // Resume once ffmpeg listens, so the key frame mediasoup asks for on resume is not lost.
    await new Promise((r) => setTimeout(r, 500));
    if (!media.closed) await media.resumeConsumer(RECORDER_ID, consumer.id);
  }

  /** The call's router closed: finish its files, store them, list them on the call. */
  finish(callId: string): Promise<void> {
    const tracks = this.tracks.get(callId);
    if (!tracks) return this.finishing.get(callId) ?? Promise.resolve();
    this.tracks.delete(callId);
    const done = this.store(callId, tracks).finally(() => this.finishing.delete(callId));
    this.finishing.set(callId, done);
    return done;
  }

  private async store(callId: string, tracks: Track[]): Promise<void> {
    const recordings: CallRecording[] = [];
    for (const [i, track] of tracks.entries()) {
      await this.stop(track);
      const file = await this.finalize(track.file);
      const bytes = file ? statSync(file).size : 0;
      if (file && bytes > 0) {
        const key = `calls/${callId}/${track.userId}-${track.kind}-${i + 1}.mkv`;
        await this.options.objectStore.put(key, createReadStream(file), {
          contentType: track.kind === 'video' ? 'video/x-matroska' : 'audio/x-matroska',
        });
        recordings.push({
          key,
          url: this.options.objectStore.publicUrl(key),
          userId: track.userId,
          kind: track.kind,
          bytes,
        });
      }
      for (const ext of ['.sdp', '.live.mkv', '.mkv']) rmSync(`${track.file}${ext}`, { force: true });
    }
    await this.options.db
      .updateTable('calls')
      .set({ recordings: JSON.stringify(recordings) })
      .where('id', '=', callId)
      .execute();
    this.options.onRecorded(callId, recordings);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.tracks.keys()].map((id) => this.finish(id)));
    await Promise.allSettled(this.finishing.values());
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * The recorded file with its index (duration, cues), remuxed from the live-written one;
   * that one itself if the remux fails; undefined if nothing was written.
   */
  private async finalize(base: string): Promise<string | undefined> {
    const live = `${base}.live.mkv`;
    if (!existsSync(live) || statSync(live).size === 0) return undefined;
    const remux = spawn(
      'ffmpeg',
      ['-v', 'error', '-nostdin', '-i', live, '-c', 'copy', '-y', `${base}.mkv`],
      {
        stdio: 'ignore',
      },
    );
    const [code] = (await once(remux, 'exit')) as [number | null];
    return code === 0 ? `${base}.mkv` : live;
  }

  /**
   * SIGTERM asks ffmpeg to finish the file, but while it waits for RTP that no longer
   * comes only a second signal interrupts the read (a third would abort it); SIGKILL,
   * which loses the file, only if it still hangs.
   */
  private async stop(track: Track): Promise<void> {
    if (track.ffmpeg.exitCode !== null) return;
    track.ffmpeg.kill('SIGTERM');
    const again = setTimeout(() => track.ffmpeg.kill('SIGTERM'), 500);
    const timer = setTimeout(() => track.ffmpeg.kill('SIGKILL'), this.finishTimeoutMs);
    await track.exited;
    clearTimeout(again);
    clearTimeout(timer);
  }
}
