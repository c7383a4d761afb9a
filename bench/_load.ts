/**
 * One autocannon phase against a server in another process, with what it
 * cost: req/s, p99, and CPU per request of the server, Redis, PostgreSQL,
 * autocannon (this process) and the whole machine, read from /proc around
 * the phase. Shared by the HTTP benchmarks.
 */
import autocannon from 'autocannon';
import { cpuMs, cpuMsBetween, cpuMsByPid, machineBusyMs } from './_proc.js';

export interface Run {
  reqPerSec: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** CPU per request, µs, of each part, and of the whole machine (those and anything else). */
  cpuUs: Record<CpuPart, number>;
}

export const CPU_PARTS = ['server', 'redis', 'postgres', 'autocannon', 'machine'] as const;
export type CpuPart = (typeof CPU_PARTS)[number];

interface CpuSample {
  server: number;
  redis: Map<number, number>;
  postgres: Map<number, number>;
  autocannon: number;
  machine: number;
}

const cpuNow = (serverPid: number): CpuSample => ({
  server: cpuMs(serverPid).total,
  redis: cpuMsByPid('redis-server'),
  postgres: cpuMsByPid('postgres'),
  autocannon: cpuMs(process.pid).total,
  machine: machineBusyMs(),
});

const cpuUsed = (a: CpuSample, b: CpuSample): Record<CpuPart, number> => ({
  server: b.server - a.server,
  redis: cpuMsBetween(a.redis, b.redis),
  postgres: cpuMsBetween(a.postgres, b.postgres),
  autocannon: b.autocannon - a.autocannon,
  machine: b.machine - a.machine,
});

export async function load(
  serverPid: number,
  url: string,
  connections: number,
  duration: number,
  request: { method: 'GET' | 'POST'; body?: string; headers: () => Record<string, string> },
): Promise<Run> {
  const cpu0 = cpuNow(serverPid);
  const result = await autocannon({
    url,
    connections,
    duration,
    pipelining: 1,
    method: request.method,
    requests: [
      {
        method: request.method,
        body: request.body,
        setupRequest: (req: autocannon.Request) => ({
          ...req,
          headers: {
            ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
            ...request.headers(),
          },
        }),
      },
    ],
  });
  const requests = Math.max(1, result.requests.total);
  const used = cpuUsed(cpu0, cpuNow(serverPid));
  return {
    reqPerSec: result.requests.average,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    cpuUs: Object.fromEntries(
      CPU_PARTS.map((part) => [part, Math.round((used[part] * 1000) / requests)]),
    ) as Record<CpuPart, number>,
  };
}
