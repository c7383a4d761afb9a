/**
 * Room fan-out through the whole realtime gateway vs a bare `ws` broadcast,
 * at N = 1,000 / 5,000 / 10,000 clients in one room, in the same run:
 *
 *   npm run bench -- chat-fanout [--n 1000,5000,10000] [--seconds 4] [--rounds 3] [--budget 30000] [--redis]
 *                                [--only ours|bare]   (development: one side, no JSON line)
 *
 * Three kinds of process, all on loopback:
 * - the server under test: the real entry point (`src/server.ts` via
 *   startServerProcess) with the embedded engine (no REDIS_URL) unless
 *   `--redis` (REDIS_URL = BENCH_REDIS_URL or redis://127.0.0.1:6379/0), and
 *   PostgreSQL when reachable (else PGlite);
 * - the baseline: bench/chat-fanout-bare.mjs, a bare `ws` server that frames
 *   each message once and writes the same bytes to every socket;
 * - the audience: bench/chat-fanout-clients.mjs, which opens the N
 *   connections, joins the room, publishes, and measures delivery.
 * Both servers preload bench/chat-fanout-probe.mjs (`--expose-gc --import`),
 * which on SIGUSR2 collects garbage and prints its memory figures.
 *
 * Publish path (ours): one signed-in publisher connection sends
 * `live.chat.send {streamId, body}`; the live-chat handler checks its rules in
 * the Engine and calls `gateway.publish('stream:<id>', 'chat.message', ...)`:
 * history append (assigns seq), local delivery to the room's members
 * (one PreparedFrame, written to each socket), Engine bus publish (the bus
 * copy arrives back and is dropped as a duplicate). The bare server gets the
 * finished event frame (same shape and size) and relays it.
 *
 * Each N runs on a fresh server of each kind: VmRSS with no clients, connect
 * and join N/2 and then N (VmRSS each time, right after the probe's full GC:
 * `rss_kib_per_conn` = (RSS at N − RSS at 0) / N), a warm-up broadcast, then
 * `--rounds` measured broadcasts of `--seconds` each: server CPU (utime +
 * stime of the whole process, all threads, from /proc/<pid>/stat) over a
 * round divided by messages delivered in it; the median round counts (the
 * box is shared, so single rounds swing). Messages go out at `budget / N`
 * per second (30/s at 1,000, 3/s at 10,000) so the clients process keeps
 * up; latency is client receive time minus the send timestamp inside the
 * message (same process, same clock); p50/p99 are each round's, median over
 * the rounds.
 *
 * Last stdout line: {"bench":"chat-fanout","cpu_ratio","rss_kib_per_conn","p99_ms","n":{...}};
 * the top-level numbers are those of the largest N that ran ("top_n").
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TokenService } from '../src/auth/tokens.js';
import { createTestDatabase } from '../test/support/postgres.js';
import { startServerProcess } from '../test/support/server-process.js';
import { cpuMs } from './_proc.js';
import { median } from './_stats.js';

const log = (msg: string) => process.stderr.write(`[chat-fanout] ${msg}\n`);
const root = fileURLToPath(new URL('..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssKib(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

function fdLimit(): { soft: number; hard: number } {
  const out = execFileSync('bash', ['-c', 'ulimit -Sn; ulimit -Hn']).toString().trim().split('\n');
  const parse = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: parse(out[0]), hard: parse(out[1]) };
}

/** The clients process and a request/reply helper over its IPC channel. */
class Audience {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(readonly proc: ChildProcess) {
    proc.on('message', (raw) => {
      const msg = raw as { id?: number; ok?: boolean; result?: unknown; error?: string };
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      if (msg.ok) w?.resolve(msg.result);
      else w?.reject(new Error(msg.error ?? 'clients process failed'));
    });
    proc.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`clients process exited with ${code}`));
      this.waiting.clear();
    });
  }

  /** Spawns through bash so the fd limit can be raised for >10k sockets (node cannot setrlimit). */
  static async start(nofile: number): Promise<Audience> {
    const script = `ulimit -Sn ${nofile} 2>/dev/null; exec "$0" bench/chat-fanout-clients.mjs`;
    const proc = spawn('bash', ['-c', script, process.execPath], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [ready] = (await once(proc, 'message')) as [{ ready?: boolean }];
    if (!ready.ready) throw new Error('clients process did not start');
    return new Audience(proc);
  }

  request<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, cmd, ...args });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.disconnect();
    await Promise.race([once(this.proc, 'exit'), sleep(5000)]);
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

interface BroadcastResult {
  expected: number;
  delivered: number;
  publishErrors: number;
  publishErrorCodes: string[];
  replies: number;
  foreign: number;
  sentMs: number;
  elapsedMs: number;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
}

interface PhaseResult {
  connected: number;
  connect_failed: number;
  connect_ms: number;
  rss0_kib: number;
  rssN_kib: number;
  /** VmRSS delta per connection, both ends after full GCs in the server (the probe). */
  rss_kib_per_conn: number;
  /** V8 heap used + external delta per connection, after full GCs. */
  heap_kib_per_conn: number;
  /** VmRSS growth per connection from N/2 to N connections (after GC at both ends). */
  rss_kib_per_conn_second_half: number;
  heap_kib_per_conn_second_half: number;
  /** V8 heap committed (heapTotal) growth per connection. */
  heap_total_kib_per_conn: number;
  messages: number;
  rounds: number;
  rate_per_s: number;
  delivered: number;
  expected: number;
  publish_errors: number;
  /** Server CPU over all measured rounds. */
  cpu_ms: number;
  cpu_user_ms: number;
  cpu_sys_ms: number;
  /** Median over the rounds of server CPU / messages delivered. */
  cpu_us_per_delivery: number;
  cpu_us_per_delivery_rounds: number[];
  /** CPU time of the server / of the clients process over a round's wall time (1 = one core); median. */
  server_cpu_share: number;
  clients_cpu_share: number;
  /** Median over the rounds of each round's latency percentiles. */
  p50_ms: number | null;
  p99_ms: number | null;
  p99_ms_rounds: Array<number | null>;
  max_ms: number;
}

interface RoundResult {
  delivered: number;
  expected: number;
  publish_errors: number;
  cpu_ms: number;
  cpu_user_ms: number;
  cpu_sys_ms: number;
  cpu_us_per_delivery: number;
  server_cpu_share: number;
  clients_cpu_share: number;
  p50_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  elapsed_ms: number;
}

interface Target {
  kind: 'ours' | 'bare';
  pid: number;
  /** ws:// URL of the members' endpoint. */
  memberUrl: string;
  /** ws:// URL the publisher connects to. */
  publisherUrl: string;
  /** Everything the server printed on stdout so far (probe lines included). */
  output: () => string;
  stop: () => Promise<void>;
}

interface Probe {
  rssKib: number;
  heapUsedKib: number;
  heapTotalKib: number;
  externalKib: number;
  gc: boolean;
}

const PROBE = fileURLToPath(new URL('./chat-fanout-probe.mjs', import.meta.url));
const PROBE_ARGS = ['--expose-gc', '--import', pathToFileURL(PROBE).href];

/** Asks the server's probe for a collected heap (SIGUSR2) and reads VmRSS once it has answered. */
async function probe(target: Target): Promise<Probe & { vmRssKib: number }> {
  const count = () => target.output().split('{"chatFanoutProbe":').length - 1;
  const before = count();
  process.kill(target.pid, 'SIGUSR2');
  const deadline = Date.now() + 15_000;
  while (count() <= before) {
    if (Date.now() > deadline) throw new Error(`${target.kind}: no probe answer`);
    await sleep(50);
  }
  const text = target.output();
  const line = text.slice(text.lastIndexOf('{"chatFanoutProbe":')).split('\n')[0]!;
  const p = (JSON.parse(line) as { chatFanoutProbe: Probe }).chatFanoutProbe;
  if (!p.gc) throw new Error(`${target.kind}: the probe has no gc() (--expose-gc missing)`);
  return { ...p, vmRssKib: rssKib(target.pid) };
}

async function startOurs(options: {
  jwtSecret: string;
  redis: boolean;
  maxN: number;
  profileDir: string | undefined;
}): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lcs-fanout-'));
  // PostgreSQL when there is one (as in production): embedded PGlite runs inside the server
  // process and adds ~350 MiB to its RSS, memory the connections' growth would be read against.
  let database: { url: string; drop: () => Promise<void> } | undefined;
  try {
    database = await createTestDatabase();
  } catch (err) {
    log(`PostgreSQL unavailable (${(err as Error).message}); using PGlite`);
  }
  const server = await startServerProcess(
    {
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      JWT_SECRET: options.jwtSecret,
      LOG_LEVEL: 'info',
      LOG_REQUESTS: 'false',
      ...(database ? { DATABASE_URL: database.url } : {}),
      // Only the publisher sends more than a join; it must not be rate limited.
      WS_RATE_PER_SECOND: '100000',
      WS_RATE_BURST: '100000',
      ...(options.redis
        ? {
            REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0',
            REDIS_KEY_PREFIX: `bench:${randomUUID()}:`,
          }
        : {}),
    },
    60_000,
    [...PROBE_ARGS, ...(options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : [])],
  );
  const pid = server.proc.pid!;
  raiseFdLimit(pid, options.maxN);
  const ws = `${server.url.replace(/^http/, 'ws')}/ws`;
  return {
    kind: 'ours',
    pid,
    memberUrl: ws,
    publisherUrl: ws,
    output: () => server.output(),
    async stop() {
      await server.stop('SIGTERM');
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function startBare(maxN: number): Promise<Target> {
  const proc = spawn(process.execPath, [...PROBE_ARGS, 'bench/chat-fanout-bare.mjs'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`bare server exited with ${code}`)));
  });
  raiseFdLimit(proc.pid!, maxN);
  return {
    kind: 'bare',
    pid: proc.pid!,
    memberUrl: `ws://127.0.0.1:${port}/ws`,
    publisherUrl: `ws://127.0.0.1:${port}/pub`,
    output: () => out,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await Promise.race([once(proc, 'exit'), sleep(5000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}

/** A server needs an fd per client; raise its soft limit with prlimit when ours is too low. */
function raiseFdLimit(pid: number, n: number): void {
  const { soft, hard } = fdLimit();
  if (soft >= n + 1024) return;
  const want = Math.min(hard, n + 4096);
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${want}:${hard}`]);
  } catch (err) {
    log(`could not raise the fd limit of ${pid} to ${want}: ${(err as Error).message}`);
  }
}

async function phase(
  target: Target,
  audience: Audience,
  n: number,
  opts: { seconds: number; rounds: number; budget: number; streamId: string; token: string },
): Promise<PhaseResult> {
  const room = `stream:${opts.streamId}`;
  await sleep(500);
  const p0 = await probe(target);
  log(`${target.kind} N=${n}: connecting (RSS ${(p0.vmRssKib / 1024).toFixed(1)} MiB after GC)`);
  // In two halves: the second half's growth is the marginal cost of a connection, once whatever
  // memory the process freed after start-up (and reuses first) has been taken up.
  type Connected = { connected: number; failed: number; ms: number };
  const half = Math.floor(n / 2);
  const c1 = await audience.request<Connected>('connect', { url: target.memberUrl, room, n: half });
  await sleep(500);
  const pHalf = await probe(target);
  const c2 = await audience.request<Connected>('connect', { url: target.memberUrl, room, n: n - half });
  const conn = { connected: c1.connected + c2.connected, failed: c1.failed + c2.failed, ms: c1.ms + c2.ms };
  await sleep(1000);
  const pN = await probe(target);
  const perConn = (a: number, b: number) => round((b - a) / conn.connected, 2);
  const perConn2 = (a: number, b: number) => round((b - a) / Math.max(1, c2.connected), 2);
  const mem = (p: Probe & { vmRssKib: number }) =>
    `rss ${p.vmRssKib} heapUsed ${p.heapUsedKib} heapTotal ${p.heapTotalKib} external ${p.externalKib}`;
  log(`${target.kind} N=${n} memory KiB: 0: ${mem(p0)} | N/2: ${mem(pHalf)} | N: ${mem(pN)}`);
  log(
    `${target.kind} N=${n}: ${conn.connected} joined in ${conn.ms} ms (${conn.failed} failed), RSS ${(pHalf.vmRssKib / 1024).toFixed(1)} MiB at N/2, ${(pN.vmRssKib / 1024).toFixed(1)} MiB at N (after GC)`,
  );
  if (conn.connected === 0) throw new Error(`${target.kind}: no client could join`);
  const rate = Math.min(100, opts.budget / n);
  const count = Math.max(10, Math.round(rate * opts.seconds));
  const common = {
    target: target.kind,
    url: target.publisherUrl,
    token: target.kind === 'ours' ? opts.token : undefined,
    room,
    streamId: opts.streamId,
    rate,
  };
  await audience.request<BroadcastResult>('broadcast', {
    ...common,
    count: Math.max(5, Math.round(rate * 1.5)),
    tag: 'warmup',
  });
  // Several measured rounds on the same connections; the median resists the other work on the box.
  const rounds: RoundResult[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const cpu0 = cpuMs(target.pid);
    const clientsCpu0 = cpuMs(audience.proc.pid!);
    const b = await audience.request<BroadcastResult>('broadcast', { ...common, count, tag: `round${r}` });
    const cpu1 = cpuMs(target.pid);
    const cpu = cpu1.total - cpu0.total;
    const clientsCpu = cpuMs(audience.proc.pid!).total - clientsCpu0.total;
    rounds.push({
      delivered: b.delivered,
      expected: b.expected,
      publish_errors: b.publishErrors,
      cpu_ms: round(cpu, 0),
      cpu_user_ms: round(cpu1.user - cpu0.user, 0),
      cpu_sys_ms: round(cpu1.sys - cpu0.sys, 0),
      cpu_us_per_delivery: round((cpu * 1000) / Math.max(1, b.delivered), 3),
      server_cpu_share: round(cpu / Math.max(1, b.elapsedMs), 2),
      clients_cpu_share: round(clientsCpu / Math.max(1, b.elapsedMs), 2),
      p50_ms: b.p50_ms,
      p99_ms: b.p99_ms,
      max_ms: b.max_ms,
      elapsed_ms: b.elapsedMs,
    });
    if (b.publishErrors)
      log(`${target.kind} N=${n}: ${b.publishErrors} publish errors: ${b.publishErrorCodes.join(',')}`);
  }
  await audience.request('close');
  const sum = (f: (r: RoundResult) => number) => rounds.reduce((a, r) => a + f(r), 0);
  const med = (f: (r: RoundResult) => number | null) => median(rounds.map(f));
  const result: PhaseResult = {
    connected: conn.connected,
    connect_failed: conn.failed,
    connect_ms: conn.ms,
    rss0_kib: p0.vmRssKib,
    rssN_kib: pN.vmRssKib,
    rss_kib_per_conn: perConn(p0.vmRssKib, pN.vmRssKib),
    heap_kib_per_conn: perConn(p0.heapUsedKib + p0.externalKib, pN.heapUsedKib + pN.externalKib),
    rss_kib_per_conn_second_half: perConn2(pHalf.vmRssKib, pN.vmRssKib),
    heap_kib_per_conn_second_half: perConn2(
      pHalf.heapUsedKib + pHalf.externalKib,
      pN.heapUsedKib + pN.externalKib,
    ),
    heap_total_kib_per_conn: perConn(p0.heapTotalKib, pN.heapTotalKib),
    messages: count,
    rounds: rounds.length,
    rate_per_s: round(rate, 2),
    delivered: sum((r) => r.delivered),
    expected: sum((r) => r.expected),
    publish_errors: sum((r) => r.publish_errors),
    cpu_ms: sum((r) => r.cpu_ms),
    cpu_user_ms: sum((r) => r.cpu_user_ms),
    cpu_sys_ms: sum((r) => r.cpu_sys_ms),
    cpu_us_per_delivery: med((r) => r.cpu_us_per_delivery)!,
    cpu_us_per_delivery_rounds: rounds.map((r) => r.cpu_us_per_delivery),
    server_cpu_share: med((r) => r.server_cpu_share)!,
    clients_cpu_share: med((r) => r.clients_cpu_share)!,
    p50_ms: med((r) => r.p50_ms),
    p99_ms: med((r) => r.p99_ms),
    p99_ms_rounds: rounds.map((r) => r.p99_ms),
    max_ms: Math.max(...rounds.map((r) => r.max_ms ?? 0)),
  };
  log(
    `${target.kind} N=${n}: ${result.delivered}/${result.expected} delivered in ${rounds.length} rounds, ` +
      `CPU ${result.cpu_us_per_delivery} µs/delivery (median; rounds ${result.cpu_us_per_delivery_rounds.join(' / ')}; ` +
      `server ${result.server_cpu_share} / clients ${result.clients_cpu_share} cores), ` +
      `p50 ${result.p50_ms} ms, p99 ${result.p99_ms} ms, ${result.rss_kib_per_conn} KiB/conn`,
  );
  return result;
}

function round(v: number, digits: number): number {
  return Number(v.toFixed(digits));
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function main(args: string[]): Promise<void> {
  const ns = (argValue(args, '--n') ?? '1000,5000,10000').split(',').map(Number);
  const seconds = Number(argValue(args, '--seconds')) || 4;
  const roundCount = Number(argValue(args, '--rounds')) || 3;
  const budget = Number(argValue(args, '--budget')) || 30_000;
  const redis = args.includes('--redis');
  // Development aid: run one side only (no ratio then).
  const only = argValue(args, '--only');
  const profileDir = process.env.BENCH_PROFILE;
  const maxN = Math.max(...ns);
  const limit = fdLimit();
  log(
    `fd limit ${limit.soft} (hard ${limit.hard}); N = ${ns.join(', ')}; engine ${redis ? 'redis' : 'embedded'}`,
  );
  if (limit.hard < maxN + 256) throw new Error(`hard fd limit ${limit.hard} is too low for ${maxN} clients`);

  const jwtSecret = randomUUID().repeat(2);
  const tokens = new TokenService(jwtSecret, 3600);
  const { token } = await tokens.issue({
    id: randomUUID(),
    roles: ['viewer'],
    displayName: 'Bench publisher',
  });
  const audience = await Audience.start(Math.max(limit.soft, Math.min(limit.hard, maxN + 4096)));
  const results: Record<string, { ours: PhaseResult; bare: PhaseResult; cpu_ratio: number }> = {};
  const failed: Record<string, string> = {};
  const started = Date.now();
  try {
    for (const n of ns) {
      const streamId = `bench-${randomUUID().slice(0, 8)}`;
      const opts = { seconds, rounds: roundCount, budget, streamId, token };
      try {
        let oursResult: PhaseResult | undefined;
        let bareResult: PhaseResult | undefined;
        if (only !== 'bare') {
          log(`N=${n}: starting the server (${redis ? 'Redis' : 'embedded'} engine)`);
          const ours = await startOurs({ jwtSecret, redis, maxN, profileDir });
          try {
            oursResult = await phase(ours, audience, n, opts);
          } finally {
            await ours.stop();
          }
        }
        if (only !== 'ours') {
          const bare = await startBare(maxN);
          try {
            bareResult = await phase(bare, audience, n, opts);
          } finally {
            await bare.stop();
          }
        }
        if (!oursResult || !bareResult) continue;
        const ratio = oursResult.cpu_us_per_delivery / bareResult.cpu_us_per_delivery;
        results[n] = { ours: oursResult, bare: bareResult, cpu_ratio: round(ratio, 3) };
        log(`N=${n}: cpu_ratio ${ratio.toFixed(3)}`);
      } catch (err) {
        // The top-level numbers then come from the largest N that did run.
        failed[n] = (err as Error).message;
        log(`N=${n} failed: ${(err as Error).stack ?? err}`);
        await audience.request('close').catch(() => undefined);
      }
    }
  } finally {
    await audience.stop();
  }
  if (only) return;
  if (Object.keys(results).length === 0) throw new Error(`no N succeeded: ${JSON.stringify(failed)}`);
  const top = Math.max(...Object.keys(results).map(Number));
  const t = results[top]!;
  const lost = Object.values(results).some(
    (r) => r.ours.delivered < r.ours.expected || r.bare.delivered < r.bare.expected,
  );
  console.log(
    JSON.stringify({
      bench: 'chat-fanout',
      cpu_ratio: t.cpu_ratio,
      rss_kib_per_conn: t.ours.rss_kib_per_conn,
      p99_ms: t.ours.p99_ms,
      top_n: top,
      engine: redis ? 'redis' : 'embedded',
      lost_messages: lost,
      ...(Object.keys(failed).length ? { failed } : {}),
      duration_s: Math.round((Date.now() - started) / 1000),
      n: Object.fromEntries(
        Object.entries(results).map(([n, r]) => [
          n,
          {
            cpu_ratio: r.cpu_ratio,
            rss_kib_per_conn: r.ours.rss_kib_per_conn,
            bare_rss_kib_per_conn: r.bare.rss_kib_per_conn,
            // Cross-check independent of the free memory a fresh server of ours starts with: the bare
            // server's RSS per connection plus the extra live JS heap ours keeps per connection.
            rss_kib_per_conn_via_bare: round(
              r.bare.rss_kib_per_conn + r.ours.heap_kib_per_conn - r.bare.heap_kib_per_conn,
              2,
            ),
            heap_kib_per_conn: r.ours.heap_kib_per_conn,
            bare_heap_kib_per_conn: r.bare.heap_kib_per_conn,
            p99_ms: r.ours.p99_ms,
            bare_p99_ms: r.bare.p99_ms,
            ours: r.ours,
            bare: r.bare,
          },
        ]),
      ),
    }),
  );
}
