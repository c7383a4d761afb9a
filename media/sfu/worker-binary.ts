/**
 * Where the mediasoup-worker binary is. mediasoup's own install would put
 * one into node_modules (downloaded from GitHub, often unreachable); the
 * project's recipe `scripts/mediasoup-worker.sh` caches one under
 * ~/.cache/mediasoup-worker instead. Looked for in that order after an
 * explicit MEDIASOUP_WORKER_BIN, so `npm run setup && npm start` works
 * without exporting anything.
 */
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface WorkerBinaryLookup {
  /** The first executable candidate, if any. */
  path?: string;
  /** Every place looked at, for the start-up error. */
  tried: string[];
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** mediasoup's package directory (its package.json is not exported, so go from the entry point). */
function mediasoupDir(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mediasoup')), '..', '..');
  } catch {
    return undefined;
  }
}

/** The installed mediasoup version, e.g. `3.19.3`. */
export function mediasoupVersion(): string | undefined {
  const dir = mediasoupDir();
  if (!dir) return undefined;
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** The recipe's cache directory (same rule as scripts/mediasoup-worker.sh). */
export function workerCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.MEDIASOUP_WORKER_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'mediasoup-worker')
  );
}

export function findWorkerBinary(
  configured: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): WorkerBinaryLookup {
  if (configured) return executable(configured) ? { path: configured, tried: [] } : { tried: [configured] };
  const tried: string[] = [];
  const dir = mediasoupDir();
  if (dir) {
    const built = join(dir, 'worker', 'out', 'Release', 'mediasoup-worker');
    tried.push(built);
    if (executable(built)) return { path: built, tried };
  }
  const version = mediasoupVersion();
  const cache = workerCacheDir(env);
  tried.push(join(cache, `mediasoup-worker-${version ?? '*'}-*`));
  if (version) {
    let names: string[] = [];
    try {
      names = readdirSync(cache);
    } catch {
      // no cache yet
    }
    // The recipe names builds mediasoup-worker-<version>-<os><release>-<arch>-<recipe>.
    const candidates = names
      .filter((n) => n.startsWith(`mediasoup-worker-${version}-`) && !n.includes('.tmp.'))
      .sort()
      .reverse();
    for (const name of candidates) {
      const path = join(cache, name);
      if (executable(path)) return { path, tried };
    }
  }
  return { tried };
}
