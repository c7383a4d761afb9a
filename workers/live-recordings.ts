/**
 * Recording housekeeping, on every instance (each step is idempotent, so
 * instances may race):
 * - a recorded stream that ended without a replay (its ingest died before
 *   writing the VOD) gets its final playlists from the Db's segment record;
 * - with a retention set, recordings older than it are deleted from the
 *   ObjectStore and forgotten.
 */

import { renditionBandwidth, SOURCE_RENDITION } from '../media/hls/abr-ladder.js';
import { hlsPlaylistKey, vodPlaylistKey } from '../src/live/live-streams-service.js';
import type { StreamRecordings } from '../src/live/stream-recordings.js';
import type { ObjectStore } from '../src/platform/object-store/object-store.js';
import {
  finishStreamMedia,
  HlsDelivery,
  type HlsDeliveryLogger,
  type RenditionDelivery,
} from './hls-delivery.js';
import { type JobLogger, PeriodicJob } from './periodic-job.js';

export interface RecordingJobsOptions {
  recordings: StreamRecordings;
  store: Pick<ObjectStore, 'put' | 'deleteMany'>;
  /** Days a recording is kept after its stream ends; 0 keeps it forever. */
  retentionDays: number;
  /** An ended stream without a replay this long is taken as orphaned (its ingest would have finished by then). */
  orphanAfterMs: number;
  /** Live playlist length and target duration, as the ingest writes them. */
  windowSize: number;
  targetDurationSeconds: number;
  intervalMs: number;
  logger: JobLogger & HlsDeliveryLogger;
}

export async function finishOrphanedRecordings(options: RecordingJobsOptions): Promise<number> {
  const streams = await options.recordings.unfinished(options.orphanAfterMs);
  for (const { streamId, publicId } of streams) {
    const renditions: RenditionDelivery[] = [];
    // Every rendition the stream had ('' alone without a ladder), the source first.
    const names = (await options.recordings.renditions(streamId)).sort(
      (a, b) => Number(b === SOURCE_RENDITION) - Number(a === SOURCE_RENDITION),
    );
    try {
      for (const name of names) {
        const delivery = await HlsDelivery.open({
          store: options.store,
          recordings: options.recordings,
          streamId,
          publicId,
          rendition: name,
          recording: true,
          windowSize: options.windowSize,
          targetDurationSeconds: options.targetDurationSeconds,
          logger: options.logger,
        });
        for (const item of await options.recordings.timedMetadata(streamId)) delivery.addTimedMetadata(item);
        renditions.push({ name, delivery, bandwidth: renditionBandwidth(name) });
      }
      await finishStreamMedia(renditions, {
        store: options.store,
        recordings: options.recordings,
        streamId,
        publicId,
        recording: true,
      });
      options.logger.info?.({ stream: publicId }, 'orphaned recording finished');
    } finally {
      for (const r of renditions) r.delivery.close();
    }
  }
  return streams.length;
}

export async function deleteExpiredRecordings(options: RecordingJobsOptions): Promise<number> {
  if (options.retentionDays <= 0) return 0;
  const cutoff = new Date(Date.now() - options.retentionDays * 86_400_000);
  const streams = await options.recordings.expired(cutoff);
  for (const { streamId, publicId } of streams) {
    const keys = await options.recordings.objectKeys(streamId);
    for (const name of new Set(['', ...(await options.recordings.renditions(streamId))]))
      keys.push(vodPlaylistKey(publicId, name), hlsPlaylistKey(publicId, name));
    for (let i = 0; i < keys.length; i += 1000) await options.store.deleteMany(keys.slice(i, i + 1000));
    await options.recordings.forget(streamId);
    options.logger.info?.({ stream: publicId, objects: keys.length }, 'recording deleted (retention)');
  }
  return streams.length;
}

export function recordingJobs(options: RecordingJobsOptions): PeriodicJob[] {
  return [
    new PeriodicJob(
      'recording-finish-orphans',
      options.intervalMs,
      () => finishOrphanedRecordings(options),
      options.logger,
    ),
    new PeriodicJob(
      'recording-retention',
      options.intervalMs,
      () => deleteExpiredRecordings(options),
      options.logger,
    ),
  ];
}
