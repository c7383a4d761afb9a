/**
 * Prometheus metrics of the live ingest: streams hosted, segment delivery
 * latency (file finished → stored and recorded), refused publishes.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface IngestMetrics {
  segmentDelivered(uploadMs: number): void;
  publishRefused(reason: string): void;
}

export function createIngestMetrics(registry: Registry, streams: () => number): IngestMetrics {
  new Gauge({
    name: 'live_ingest_streams',
    help: 'Live streams this instance packages (publishing or within their reconnect grace)',
    registers: [registry],
    collect() {
      this.set(streams());
    },
  });
  const upload = new Histogram({
    name: 'hls_segment_delivery_seconds',
    help: 'Time from a finished HLS segment to it being stored and recorded (includes retries)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'live_ingest_publish_refused_total',
    help: 'RTMP publish attempts refused, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  return {
    segmentDelivered: (ms) => upload.observe(ms / 1000),
    publishRefused: (reason) => refused.inc({ reason }),
  };
}
