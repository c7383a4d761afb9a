/**
 * Flash-sale purchase route vs a trivial JSON route (/healthz) on the same
 * server, in the same run: the server runs in its own process with the Redis
 * engine and PostgreSQL (falling back to PGlite), autocannon loads it from
 * this process at 100 and 1000 connections. Also measures a sold-out sale
 * (answered from the local flag) and checks nothing was oversold.
 *
 * Every phase sends the same request shape (a buyer's bearer token and a
 * fresh Idempotency-Key, made per request by autocannon's setupRequest), the
 * trivial route included, which ignores them: the load generator shares the
 * two cores with the server, so making its own per-request work equal across
 * phases keeps the ratio about the server's routes, not about autocannon.
 *
 *   npm run bench -- flash-sale [--duration 5] [--rounds 3]
 *
 * Each connection count runs `rounds` rounds of the three routes back to back
 * (`duration` seconds each); a ratio is the median of the rounds' ratios.
 * Each phase also reports CPU per request, µs, of the server, Redis,
 * PostgreSQL, autocannon (this process) and the whole machine (from /proc).
 *
 * Profiling: BENCH_PROFILE=DIR writes the server's CPU profile to DIR
 * (summarise with `npx tsx bench/_profile-summary.ts FILE`); BENCH_ONLY=purchase
 * shortens the other phases to one second.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TokenService } from '../src/auth/tokens.js';
import { createTestDatabase } from '../test/support/postgres.js';
import { startServerProcess } from '../test/support/server-process.js';
import { CPU_PARTS, type CpuPart, load, type Run } from './_load.js';
import { median } from './_stats.js';

const log = (msg: string) => process.stderr.write(`[flash-sale] ${msg}\n`);
const PURCHASE_ROUTE = '/v1/flash-sales/:id/purchase';

interface Round {
  hello: Run;
  purchase: Run;
  soldOut: Run;
  /** The purchase phase's p99 as the server measured it (bound of its histogram bucket), ms. */
  purchaseServerP99: number | null;
}

/** The server's request-duration histogram for one route pattern: cumulative counts by upper bound (ms). */
async function routeHistogram(base: string, route: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const counts = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('http_request_duration_seconds_bucket{') || !line.includes(`route="${route}"`))
      continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (!le) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le) * 1000;
    counts.set(bound, (counts.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return counts;
}

/** The smallest bucket bound (ms) under which 99 % of the requests between two readings finished; null above the last. */
function p99Bound(before: Map<number, number>, after: Map<number, number>): number | null {
  const count = (bound: number) => (after.get(bound) ?? 0) - (before.get(bound) ?? 0);
  const total = count(Number.POSITIVE_INFINITY);
  if (total <= 0) return null;
  const bound = [...after.keys()].sort((a, b) => a - b).find((b) => count(b) >= 0.99 * total);
  return bound === undefined || bound === Number.POSITIVE_INFINITY ? null : bound;
}

interface PhaseResults {
  hello_rps: number;
  purchase_rps: number;
  sold_out_rps: number;
  /** Median over the rounds of each route's p99 latency, ms. */
  p99_ms: { hello: number; purchase: number; sold_out: number };
  /**
   * Median over the rounds of the purchases' p99 in the server's own histogram (the bound of
   * the bucket it falls in; null above 5 s): the part of `p99_ms.purchase` spent handling it.
   */
  purchase_server_p99_ms: number | null;
  /** Median over the rounds of purchase ÷ trivial route, each pair measured back to back. */
  ratio: number;
  sold_out_ratio: number;
  /** Every round's ratios, to show the spread. */
  round_ratios: number[];
  round_sold_out_ratios: number[];
  /**
   * Median CPU per request, µs, by route and part (the server process, Redis, PostgreSQL,
   * autocannon, the whole machine): less sensitive than req/s to the host's drift, and it
   * shows where a route's cost goes.
   */
  cpu_us: Record<'hello' | 'purchase' | 'sold_out', Record<CpuPart, number>>;
}

const round3 = (x: number) => Number(x.toFixed(3));
const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);
const medianCpu = (runs: Run[]) =>
  Object.fromEntries(
    CPU_PARTS.map((part) => [part, Math.round(median(runs.map((r) => r.cpuUs[part])))]),
  ) as Record<CpuPart, number>;
const cpuLine = (run: Run) => CPU_PARTS.map((part) => `${part} ${run.cpuUs[part]}`).join(', ');

/**
 * The host's speed drifts by tens of percent within minutes (other VMs), so
 * a ratio of two phases far apart measures the drift as much as the routes.
 * Each round measures the three routes back to back, and the ratio reported
 * is the median of the rounds' ratios.
 */
function summarise(rounds: Round[]): PhaseResults {
  const ratios = rounds.map((r) => r.purchase.reqPerSec / r.hello.reqPerSec);
  const soldOutRatios = rounds.map((r) => r.soldOut.reqPerSec / r.hello.reqPerSec);
  return {
    hello_rps: Math.round(median(rounds.map((r) => r.hello.reqPerSec))),
    purchase_rps: Math.round(median(rounds.map((r) => r.purchase.reqPerSec))),
    sold_out_rps: Math.round(median(rounds.map((r) => r.soldOut.reqPerSec))),
    p99_ms: {
      hello: median(rounds.map((r) => r.hello.p99)),
      purchase: median(rounds.map((r) => r.purchase.p99)),
      sold_out: median(rounds.map((r) => r.soldOut.p99)),
    },
    purchase_server_p99_ms: finiteOrNull(
      median(rounds.map((r) => r.purchaseServerP99 ?? Number.POSITIVE_INFINITY)),
    ),
    ratio: round3(median(ratios)),
    sold_out_ratio: round3(median(soldOutRatios)),
    round_ratios: ratios.map(round3),
    round_sold_out_ratios: soldOutRatios.map(round3),
    cpu_us: {
      hello: medianCpu(rounds.map((r) => r.hello)),
      purchase: medianCpu(rounds.map((r) => r.purchase)),
      sold_out: medianCpu(rounds.map((r) => r.soldOut)),
    },
  };
}

export async function main(args: string[]): Promise<void> {
  const duration = Number(args[args.indexOf('--duration') + 1]) || 5;
  const roundCount = Number(args[args.indexOf('--rounds') + 1]) || 3;
  const jwtSecret = randomUUID().repeat(2);
  const dataDir = mkdtempSync(join(tmpdir(), 'lcs-bench-'));
  let database: { url: string; drop: () => Promise<void> } | undefined;
  try {
    database = await createTestDatabase();
  } catch (err) {
    log(`PostgreSQL unavailable (${(err as Error).message}); using PGlite`);
  }
  const prefix = `bench:${randomUUID()}:`;
  log('starting server (Redis engine)');
  const server = await startServerProcess(
    {
      DATA_DIR: dataDir,
      JWT_SECRET: jwtSecret,
      REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0',
      REDIS_KEY_PREFIX: prefix,
      ...(database ? { DATABASE_URL: database.url } : {}),
      LOG_LEVEL: 'info',
      LOG_REQUESTS: 'false',
      FLASH_VELOCITY_PER_USER: '100000000',
      FLASH_VELOCITY_PER_IP: '1000000000',
      AUTH_RATE_LIMIT_PER_MINUTE: '1000000',
    },
    60_000,
    [
      // BENCH_PROFILE=DIR writes a CPU profile of the server there (open it in Chrome DevTools).
      ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
      // BENCH_NODE_ARGS="--trace-gc" adds node flags to the server.
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ],
  );
  const tokens = new TokenService(jwtSecret, 3600);
  try {
    // Fixtures through the public API where it exists; buyers are minted directly (no scrypt).
    const db = new pg.Client({ connectionString: database?.url });
    const adminEmail = `admin-${randomUUID()}@example.com`;
    const reg = await fetch(`${server.url}/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: adminEmail, password: 'bench-password', displayName: 'Bench' }),
    });
    const seller = ((await reg.json()) as { user: { id: string } }).user;
    const sellerToken = (await tokens.issue({ id: seller.id, roles: ['streamer'], displayName: 'Bench' }))
      .token;
    const product = await fetch(`${server.url}/v1/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${sellerToken}` },
      body: JSON.stringify({
        title: 'Bench sneaker',
        category: 'shoes',
        currency: 'USD',
        skus: [{ code: `B-${randomUUID().slice(0, 8)}`, name: 'One size', priceMinor: 5000, stock: 10 }],
      }),
    });
    if (product.status !== 201) throw new Error(`product: ${product.status} ${await product.text()}`);
    const skuId = ((await product.json()) as { skus: Array<{ id: string }> }).skus[0]!.id;
    const createSale = async (quantity: number) => {
      const res = await fetch(`${server.url}/v1/flash-sales`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${sellerToken}` },
        body: JSON.stringify({
          skuId,
          salePriceMinor: 1000,
          quantity,
          perUserLimit: 1000,
          reservationTtlSeconds: 3600,
          startsAt: new Date(Date.now() - 1000).toISOString(),
          endsAt: new Date(Date.now() + 3600_000).toISOString(),
        }),
      });
      if (res.status !== 201) throw new Error(`sale: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { id: string }).id;
    };
    const bigSale = await createSale(10_000_000);
    const soldOutSale = await createSale(1);
    const buyers = await Promise.all(
      Array.from(
        { length: 5000 },
        async (_, i) =>
          (await tokens.issue({ id: randomUUID(), roles: ['viewer'], displayName: `b${i}` })).token,
      ),
    );
    let n = 0;
    const purchaseRequest = {
      method: 'POST' as const,
      body: JSON.stringify({ quantity: 1 }),
      headers: () => {
        n++;
        return {
          authorization: `Bearer ${buyers[n % buyers.length]}`,
          'idempotency-key': `bench-${n}-${prefix.length}`,
        };
      },
    };
    // Sell the one unit of the sold-out sale.
    await fetch(`${server.url}/v1/flash-sales/${soldOutSale}/purchase`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...purchaseRequest.headers() },
      body: purchaseRequest.body,
    });

    const pid = server.proc.pid as number;
    log('warming up');
    const helloRequest = { method: 'GET' as const, headers: purchaseRequest.headers };
    await load(pid, `${server.url}/healthz`, 50, 2, helloRequest);
    await load(pid, `${server.url}/v1/flash-sales/${bigSale}/purchase`, 50, 2, purchaseRequest);

    const results: Record<number, PhaseResults> = {};
    for (const connections of [100, 1000]) {
      const rounds: Round[] = [];
      for (let round = 1; round <= roundCount; round++) {
        const phase = (
          name: string,
          path: string,
          request: Parameters<typeof load>[4],
          seconds = duration,
        ) => {
          log(`${connections} connections, round ${round}/${roundCount}: ${name}`);
          return load(pid, `${server.url}${path}`, connections, seconds, request);
        };
        const hello = await phase(
          'trivial route',
          '/healthz',
          helloRequest,
          process.env.BENCH_ONLY === 'purchase' ? 1 : duration,
        );
        // The server's own view of the purchases' latency, to tell its time from the queueing outside it.
        const before = await routeHistogram(server.url, PURCHASE_ROUTE);
        const purchase = await phase('purchase', `/v1/flash-sales/${bigSale}/purchase`, purchaseRequest);
        const purchaseServerP99 = p99Bound(before, await routeHistogram(server.url, PURCHASE_ROUTE));
        const soldOut = await phase(
          'sold-out purchase',
          `/v1/flash-sales/${soldOutSale}/purchase`,
          purchaseRequest,
        );
        rounds.push({ hello, purchase, soldOut, purchaseServerP99 });
        log(
          `${connections}: hello ${hello.reqPerSec.toFixed(0)} req/s, purchase ${purchase.reqPerSec.toFixed(0)} req/s (ratio ${(purchase.reqPerSec / hello.reqPerSec).toFixed(3)}, non2xx ${purchase.non2xx}), sold-out ${soldOut.reqPerSec.toFixed(0)} req/s (ratio ${(soldOut.reqPerSec / hello.reqPerSec).toFixed(3)})`,
        );
        for (const [name, run] of [
          ['hello', hello],
          ['purchase', purchase],
          ['sold-out', soldOut],
        ] as const)
          log(`${connections}: ${name} p99 ${run.p99} ms, µs/request: ${cpuLine(run)}`);
        log(`${connections}: purchase p99 as the server measured it: ≤ ${purchaseServerP99 ?? '>5000'} ms`);
      }
      results[connections] = summarise(rounds);
    }

    // Nothing oversold: units held in the Db never exceed what was on sale.
    let oversold = 0;
    if (database) {
      await db.connect();
      const rows = await db.query<{ sale_id: string; quantity: number; held: string }>(
        `select s.id as sale_id, s.quantity, coalesce(sum(r.quantity) filter (where r.status in ('reserved','paid')), 0) as held
           from flash_sales s left join flash_reservations r on r.sale_id = s.id group by s.id, s.quantity`,
      );
      for (const r of rows.rows) oversold += Math.max(0, Number(r.held) - r.quantity);
      await db.end();
    }
    const c100 = results[100]!;
    const c1000 = results[1000]!;
    console.log(
      JSON.stringify({
        bench: 'flash-sale',
        ratio: Number(Math.min(c100.ratio, c1000.ratio).toFixed(3)),
        sold_out_ratio: Number(Math.min(c100.sold_out_ratio, c1000.sold_out_ratio).toFixed(3)),
        oversold,
        db: database ? 'postgres' : 'pglite',
        duration_s: duration,
        rounds: roundCount,
        c100,
        c1000,
      }),
    );
  } finally {
    await server.stop();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
