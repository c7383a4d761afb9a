/**
 * Recording housekeeping, on every instance (each step is idempotent, so
 * instances may race):
 * - a recorded stream that ended without a replay (its ingest died before
 *   writing the VOD) gets its final playlists from the Db's segment record;
 * - with a retention set, recordings older than it are deleted from the
 *   ObjectStore and forgotten.
 */
import { hlsPlaylistKey, vodPlaylistKey } from '../src/live/live-streams-service.js';
import type { StreamRecordings } from '../src/live/stream-recordings.js';
import type { ObjectStore } from '../src/platform/object-store/object-store.js';
import { HlsDelivery, type HlsDeliveryLogger } from './hls-delivery.js';
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
    const delivery = await HlsDelivery.open({
      store: options.store,
      recordings: options.recordings,
      streamId,
      publicId,
      recording: true,
      windowSize: options.windowSize,
      targetDurationSeconds: options.targetDurationSeconds,
      logger: options.logger,
    });
    try {
      for (const item of await options.recordings.timedMetadata(streamId)) delivery.addTimedMetadata(item);
      await delivery.finish();
      options.logger.info?.({ stream: publicId }, 'orphaned recording finished');
    } finally {
      delivery.close();
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
    keys.push(vodPlaylistKey(publicId), hlsPlaylistKey(publicId));
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
