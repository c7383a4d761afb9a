/**
 * Call quality: samples from the SFU (the worker's numbers for every stream,
 * taken periodically by the instance hosting the call) and from clients
 * (`call.stats`, what the browser's getStats saw), folded into a summary per
 * call and source (count, sum and maximum of each metric: averages without
 * keeping samples), stored with the call. The latest server sample of each
 * hosted call also feeds /metrics.
 */
import type { Kysely } from 'kysely';
import type { MediaStreamStats } from '../../media/sfu/call-media.js';
import type { Database } from '../database.js';

export const QUALITY_METRICS = ['bitrateKbps', 'packetLossPct', 'jitterMs', 'rttMs', 'score', 'fps'] as const;
export type QualityMetric = (typeof QUALITY_METRICS)[number];
export type QualitySample = Partial<Record<QualityMetric, number>>;
export type QualitySource = 'server' | 'client';

interface Accumulator {
  n: number;
  sum: number;
  max: number;
}

/** What is stored in `calls.quality`. */
export interface StoredQuality {
  server?: Partial<Record<QualityMetric, Accumulator>>;
  client?: Partial<Record<QualityMetric, Accumulator>>;
  /** Latest video resolution a client reported receiving. */
  resolution?: { width: number; height: number };
  updatedAt?: string;
}

/** What clients see: per source and metric, the average, the worst (max) and how many samples. */
export interface QualityView {
  server: Partial<Record<QualityMetric, { avg: number; max: number; samples: number }>>;
  client: Partial<Record<QualityMetric, { avg: number; max: number; samples: number }>>;
  resolution?: { width: number; height: number };
  updatedAt?: string;
}

const round = (x: number) => Math.round(x * 100) / 100;
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);

/** One server sample of a call from the worker's stream stats. */
export function serverSample(streams: MediaStreamStats[]): QualitySample {
  const incoming = streams.filter((s) => s.direction === 'in');
  const sample: QualitySample = {};
  if (streams.length === 0) return sample;
  sample.bitrateKbps = incoming.reduce((a, s) => a + s.bitrate, 0) / 1000;
  const packets = incoming.reduce((a, s) => a + s.packets, 0);
  const lost = incoming.reduce((a, s) => a + Math.max(0, s.packetsLost), 0);
  if (packets + lost > 0) sample.packetLossPct = (lost / (packets + lost)) * 100;
  // Jitter comes in RTP clock units: 90 kHz for video, 48 kHz for Opus.
  const jitter = mean(
    incoming.filter((s) => s.jitter !== undefined).map((s) => s.jitter! / (s.kind === 'video' ? 90 : 48)),
  );
  if (jitter !== undefined) sample.jitterMs = jitter;
  const rtt = mean(streams.filter((s) => s.roundTripTime !== undefined).map((s) => s.roundTripTime!));
  if (rtt !== undefined) sample.rttMs = rtt;
  const score = mean(streams.map((s) => s.score));
  if (score !== undefined) sample.score = score;
  return sample;
}

export function mergeSample(
  stored: StoredQuality | null,
  source: QualitySource,
  sample: QualitySample,
  resolution?: { width: number; height: number },
): StoredQuality {
  const next: StoredQuality = { ...(stored ?? {}) };
  const acc = { ...(next[source] ?? {}) };
  for (const metric of QUALITY_METRICS) {
    const v = sample[metric];
    if (v === undefined || !Number.isFinite(v)) continue;
    const prev = acc[metric];
    acc[metric] = prev
      ? { n: prev.n + 1, sum: prev.sum + v, max: Math.max(prev.max, v) }
      : { n: 1, sum: v, max: v };
  }
  next[source] = acc;
  if (resolution) next.resolution = resolution;
  next.updatedAt = new Date().toISOString();
  return next;
}

export function qualityView(stored: StoredQuality | null): QualityView | null {
  if (!stored) return null;
  const view = (acc: StoredQuality['server']) => {
    const out: QualityView['server'] = {};
    for (const [metric, a] of Object.entries(acc ?? {}) as Array<[QualityMetric, Accumulator]>)
      out[metric] = { avg: round(a.sum / a.n), max: round(a.max), samples: a.n };
    return out;
  };
  return {
    server: view(stored.server),
    client: view(stored.client),
    ...(stored.resolution ? { resolution: stored.resolution } : {}),
    ...(stored.updatedAt ? { updatedAt: stored.updatedAt } : {}),
  };
}

export class CallQuality {
  /** Latest server sample per call hosted here, for /metrics. */
  private readonly latest = new Map<string, QualitySample>();

  constructor(private readonly db: Kysely<Database>) {}

  /** Folds one sample into the call's stored summary (a row lock orders concurrent writers). */
  async record(
    callId: string,
    source: QualitySource,
    sample: QualitySample,
    resolution?: { width: number; height: number },
  ): Promise<void> {
    if (source === 'server') this.latest.set(callId, sample);
    await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('calls')
        .select('quality')
        .where('id', '=', callId)
        .forUpdate()
        .executeTakeFirst();
      if (!row) return;
      await trx
        .updateTable('calls')
        .set({ quality: JSON.stringify(mergeSample(row.quality, source, sample, resolution)) })
        .where('id', '=', callId)
        .execute();
    });
  }

  forget(callId: string): void {
    this.latest.delete(callId);
  }

  /** Average of the latest server samples over the calls hosted here, per metric. */
  currentAverages(): QualitySample {
    const out: QualitySample = {};
    for (const metric of QUALITY_METRICS) {
      const v = mean(
        [...this.latest.values()].map((s) => s[metric]).filter((x): x is number => x !== undefined),
      );
      if (v !== undefined) out[metric] = v;
    }
    return out;
  }
}
