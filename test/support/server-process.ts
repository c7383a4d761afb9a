/**
 * Runs the real server entry point (`src/server.ts`) in a child process, the
 * way `npm start` does, and finds its port from the "server started" log line.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerProcess {
  proc: ChildProcess;
  url: string;
  /** The RTMP ingest port, when RTMP_ENABLED. */
  rtmpPort: number | null;
  /** Everything the process printed so far (stdout + stderr). */
  output: () => string;
  /** Sends a signal and resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export interface ExitedProcess {
  code: number | null;
  stderr: string;
  stdout: string;
}

/** The V8 flags `npm start` and the Docker image run the server with. */
const SERVER_NODE_FLAGS = ['--max-semi-space-size=64'];

function spawnEntry(env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  return spawn(process.execPath, [...SERVER_NODE_FLAGS, ...nodeArgs, '--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      LOG_LEVEL: 'info',
      PORT: '0',
      RTMP_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export async function startServerProcess(
  env: Record<string, string>,
  timeoutMs = 60_000,
  /** Extra node flags, e.g. --cpu-prof for benchmarks. */
  nodeArgs: string[] = [],
): Promise<ServerProcess> {
  const proc = spawnEntry(env, nodeArgs);
  let out = '';
  const started = await new Promise<{ url: string; rtmpPort: number | null }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start in ${timeoutMs} ms:\n${out}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      for (const line of out.split('\n')) {
        if (!line.includes('"server started"')) continue;
        try {
          const parsed = JSON.parse(line) as { url: string; rtmpPort?: number | null };
          clearTimeout(timer);
          resolve({ url: parsed.url, rtmpPort: parsed.rtmpPort ?? null });
          return;
        } catch {
          // a partial line; wait for more output
        }
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting:\n${out}`));
    });
  });
  return {
    proc,
    url: started.url,
    rtmpPort: started.rtmpPort,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const [code] = (await once(proc, 'exit')) as [number | null];
      return code;
    },
  };
}

/** Runs the entry point expecting it to exit (bad config, missing dependency). */
export async function runServerToExit(env: Record<string, string>): Promise<ExitedProcess> {
  const proc = spawnEntry(env);
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  return port;
}

/** A throw-away redis-server on loopback, for tests that stop and restart Redis. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
  });
  return proc;
}

export async function stopProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill(signal);
  await once(proc, 'exit');
}

/**
 * Polls `fn` until it returns true or the timeout passes; `explain` says what was seen instead
 * (its answer goes into the failure, for conditions a bare timeout would leave a mystery).
 */
export async function waitFor(
  fn: () => Promise<boolean>,
  timeoutMs = 20_000,
  intervalMs = 100,
  explain?: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const seen = explain ? await explain().catch((err: unknown) => `(explain failed: ${String(err)})`) : '';
  throw new Error(`condition not met within ${timeoutMs} ms${seen ? `: ${seen}` : ''}`);
}
