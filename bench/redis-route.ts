/**
 * The floor under any route that calls Redis, on this machine: a bare
 * Fastify route that makes one Redis Lua call (one INCR), against a bare
 * Fastify JSON route on the same server, in the same run — the reference
 * the flash-sale issue quotes ("a bare fastify route plus one Redis Lua call
 * measured 0.74–0.80 here"). Same harness as `flash-sale`: the server in its
 * own process, autocannon here, the same request shape on both routes (a
 * bearer header and a fresh Idempotency-Key, a JSON body on the POST),
 * rounds of the two routes back to back at 100 and 1000 connections, ratio =
 * median of the rounds' ratios, CPU per request by part.
 *
 *   npm run bench -- redis-route [--duration 5] [--rounds 3]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { load } from './_load.js';
import { median } from './_stats.js';

const log = (msg: string) => process.stderr.write(`[redis-route] ${msg}\n`);

export async function main(args: string[]): Promise<void> {
  const duration = Number(args[args.indexOf('--duration') + 1]) || 5;
  const roundCount = Number(args[args.indexOf('--rounds') + 1]) || 3;
  const entry = fileURLToPath(new URL('./_redis-route-server.ts', import.meta.url));
  const server = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: {
      PATH: process.env.PATH ?? '',
      REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const [line] = (await once(createInterface({ input: server.stdout! }), 'line')) as [string];
    const { port } = JSON.parse(line) as { port: number };
    const pid = server.pid as number;
    const base = `http://127.0.0.1:${port}`;
    let n = 0;
    const headers = () => {
      n++;
      return { authorization: `Bearer token-${n % 5000}`, 'idempotency-key': `bench-${n}` };
    };
    const hello = { method: 'GET' as const, headers };
    const lua = { method: 'POST' as const, body: JSON.stringify({ quantity: 1 }), headers };
    log('warming up');
    await load(pid, `${base}/hello`, 50, 2, hello);
    await load(pid, `${base}/lua`, 50, 2, lua);
    const out: Record<string, unknown> = {};
    const ratios: number[] = [];
    for (const connections of [100, 1000]) {
      const rounds = [];
      for (let round = 1; round <= roundCount; round++) {
        const h = await load(pid, `${base}/hello`, connections, duration, hello);
        const l = await load(pid, `${base}/lua`, connections, duration, lua);
        rounds.push({ h, l, ratio: l.reqPerSec / h.reqPerSec });
        log(
          `${connections}: hello ${h.reqPerSec.toFixed(0)} req/s, lua ${l.reqPerSec.toFixed(0)} req/s (ratio ${(l.reqPerSec / h.reqPerSec).toFixed(3)}); µs/request hello server ${h.cpuUs.server} machine ${h.cpuUs.machine}, lua server ${l.cpuUs.server} redis ${l.cpuUs.redis} machine ${l.cpuUs.machine}`,
        );
      }
      const ratio = Number(median(rounds.map((r) => r.ratio)).toFixed(3));
      ratios.push(ratio);
      out[`c${connections}`] = {
        hello_rps: Math.round(median(rounds.map((r) => r.h.reqPerSec))),
        lua_rps: Math.round(median(rounds.map((r) => r.l.reqPerSec))),
        ratio,
        round_ratios: rounds.map((r) => Number(r.ratio.toFixed(3))),
        machine_us: {
          hello: Math.round(median(rounds.map((r) => r.h.cpuUs.machine))),
          lua: Math.round(median(rounds.map((r) => r.l.cpuUs.machine))),
        },
      };
    }
    console.log(
      JSON.stringify({
        bench: 'redis-route',
        ratio: Math.min(...ratios),
        duration_s: duration,
        rounds: roundCount,
        ...out,
      }),
    );
  } finally {
    server.kill('SIGTERM');
    if (server.exitCode === null) await once(server, 'exit');
  }
}
