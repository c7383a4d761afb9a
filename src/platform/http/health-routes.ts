/**
 * /healthz: the process is up. /readyz: every configured adapter answers;
 * 503 with the failing adapter's reason otherwise, so a load balancer takes
 * the instance out until e.g. Redis is back (no restart needed).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';

export interface ReadinessProbe {
  name: string;
  kind: string;
  check: () => Promise<void>;
}

const CHECK_TIMEOUT_MS = 2000;

async function runProbe(probe: ReadinessProbe): Promise<{ kind: string; ok: boolean; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe.check(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { kind: probe.kind, ok: true };
  } catch (err) {
    return { kind: probe.kind, ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

const CheckResult = Type.Object({
  kind: Type.String(),
  ok: Type.Boolean(),
  error: Type.Optional(Type.String()),
});
const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
  checks: Type.Record(Type.String(), CheckResult),
});

export function registerHealthRoutes(app: FastifyInstance, probes: ReadinessProbe[]): void {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
      logLevel: 'warn',
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: every configured adapter is reachable',
        response: { 200: Readiness, 503: Readiness },
      },
      logLevel: 'warn',
    },
    async (_request, reply) => {
      const results = await Promise.all(probes.map(runProbe));
      const checks = Object.fromEntries(probes.map((p, i) => [p.name, results[i]]));
      const ok = results.every((r) => r.ok);
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks });
    },
  );
}
