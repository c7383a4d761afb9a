/**
 * Prometheus metrics at /metrics: Node's default metrics plus an HTTP request
 * histogram labelled by route pattern (never the raw URL, to bound cardinality).
 */
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export function registerMetrics(app: FastifyInstance, registry: Registry): void {
  // One registry per services graph; an app built twice on it (tests) shares the histogram.
  const existing = registry.getSingleMetric('http_request_duration_seconds') as
    | Histogram<'method' | 'route' | 'status_code'>
    | undefined;
  const histogram =
    existing ??
    new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by method, route pattern and status code',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });

  app.addHook('onResponse', async (request, reply) => {
    histogram.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}

/** A counter in `registry` (shared when an app is built twice on it), as a function that adds one. */
export function counter(registry: Registry, name: string, help: string): () => void {
  const metric =
    (registry.getSingleMetric(name) as Counter | undefined) ??
    new Counter({ name, help, registers: [registry] });
  return () => metric.inc();
}
