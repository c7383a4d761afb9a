/**
 * Call figures for /metrics: calls ended (by status and reason, counted by
 * the instance that ended them), calls whose media this instance hosts, its
 * running mediasoup workers and their deaths, and the average of the latest quality sample
 * over those calls (no per-call labels: cardinality stays bounded).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Services } from '../services.js';
import { QUALITY_METRICS } from './call-quality.js';

export function registerCallMetrics(registry: Registry, services: Pick<Services, 'calls' | 'media'>): void {
  const { calls, media } = services;
  const ended = new Counter({
    name: 'calls_ended_total',
    help: 'Calls that reached a final state, by status and end reason',
    labelNames: ['status', 'reason'] as const,
    registers: [registry],
  });
  calls.on('ended', (call) => ended.inc({ status: call.status, reason: call.endReason ?? 'unknown' }));
  const deaths = new Counter({
    name: 'mediasoup_worker_deaths_total',
    help: 'mediasoup worker processes of this instance that died (each is replaced)',
    registers: [registry],
  });
  media?.sfu.pool.on('workerDied', () => deaths.inc());
  new Gauge({
    name: 'calls_media_hosted',
    help: 'Calls whose router this instance hosts',
    registers: [registry],
    collect() {
      this.set(media?.sfu.callIds().length ?? 0);
    },
  });
  new Gauge({
    name: 'mediasoup_workers',
    help: 'Running mediasoup worker processes of this instance',
    registers: [registry],
    collect() {
      this.set(media?.sfu.pool.list().length ?? 0);
    },
  });
  new Gauge({
    name: 'call_media_quality',
    help: 'Latest server-side quality sample averaged over the calls hosted here (bitrateKbps, packetLossPct, jitterMs, rttMs, score)',
    labelNames: ['metric'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const averages = media?.quality.currentAverages() ?? {};
      for (const metric of QUALITY_METRICS) {
        const v = averages[metric];
        if (v !== undefined) this.set({ metric }, v);
      }
    },
  });
}
