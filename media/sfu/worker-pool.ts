/**
 * A pool of mediasoup workers (one process each): routers go to the worker
 * with the fewest, and a worker that dies is replaced. mediasoup closes the
 * dead worker's routers itself (their `workerclose`), which is how the calls
 * on it learn they lost their media.
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import type { types } from 'mediasoup';
import { MEDIA_CODECS } from './media-codecs.js';

type Mediasoup = typeof import('mediasoup');

/** A pino logger satisfies this. */
export interface SfuLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface WorkerPoolOptions {
  /** Path of the mediasoup-worker binary. */
  binary: string;
  /** Worker processes; 0 = one per CPU core. */
  numWorkers: number;
  /** UDP/TCP port range of this instance's transports. */
  rtcMinPort: number;
  rtcMaxPort: number;
  logger: SfuLogger;
  /** Wait before replacing a dead worker (and between failed attempts). Default 500 ms. */
  respawnDelayMs?: number;
}

export interface WorkerPoolEvents {
  /** A worker process died; its routers are closed already. A replacement follows. */
  workerDied: [pid: number, error: Error];
}

let loaded: Promise<Mediasoup> | undefined;
let loadedBinary: string | undefined;

/**
 * mediasoup reads MEDIASOUP_WORKER_BIN once, when it is first imported: set it
 * before the import. One binary per process.
 */
export function loadMediasoup(binary: string): Promise<Mediasoup> {
  if (loaded) {
    if (binary !== loadedBinary)
      throw new Error(`mediasoup is already loaded with worker ${loadedBinary}; cannot switch to ${binary}`);
    return loaded;
  }
  process.env.MEDIASOUP_WORKER_BIN = binary;
  loadedBinary = binary;
  loaded = import('mediasoup');
  return loaded;
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  private readonly workers: types.Worker[] = [];
  /** Routers per worker: the load measure for placing new ones. */
  private readonly routers = new Map<types.Worker, number>();
  private readonly size: number;
  private readonly respawnDelayMs: number;
  private starting: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {
    super();
    this.size = options.numWorkers > 0 ? options.numWorkers : availableParallelism();
    this.respawnDelayMs = options.respawnDelayMs ?? 500;
  }

  /** Spawns the workers; resolves when all run. Idempotent; rejects with the first failure. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    this.starting ??= (async () => {
      await Promise.all(Array.from({ length: this.size }, () => this.spawn()));
      this.options.logger.info(
        { workers: this.size, pids: this.workers.map((w) => w.pid) },
        'mediasoup workers started',
      );
    })();
    return this.starting;
  }

  /** A new router with the call codecs on the least-loaded worker. */
  async createRouter(appData: Record<string, unknown> = {}): Promise<types.Router> {
    await this.start();
    if (this.closed) throw new Error('worker pool is closed');
    const alive = this.workers.filter((w) => !w.closed);
    if (alive.length === 0) throw new Error('no mediasoup worker is running');
    let worker = alive[0]!;
    for (const w of alive) if ((this.routers.get(w) ?? 0) < (this.routers.get(worker) ?? 0)) worker = w;
    const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS, appData });
    this.routers.set(worker, (this.routers.get(worker) ?? 0) + 1);
    router.observer.once('close', () => {
      const n = this.routers.get(worker);
      if (n !== undefined) this.routers.set(worker, n - 1);
    });
    return router;
  }

  /** The running workers (for stats, dumps and tests). */
  list(): readonly types.Worker[] {
    return this.workers.filter((w) => !w.closed);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.starting?.catch(() => undefined);
    for (const worker of this.workers) worker.close();
    this.workers.length = 0;
    this.routers.clear();
  }

  private async spawn(): Promise<void> {
    const mediasoup = await loadMediasoup(this.options.binary);
    const worker = await mediasoup.createWorker({
      logLevel: 'warn',
      rtcMinPort: this.options.rtcMinPort,
      rtcMaxPort: this.options.rtcMaxPort,
    });
    if (this.closed) {
      worker.close();
      return;
    }
    this.workers.push(worker);
    this.routers.set(worker, 0);
    worker.on('died', (error) => this.onDied(worker, error));
  }

  private onDied(worker: types.Worker, error: Error): void {
    const index = this.workers.indexOf(worker);
    if (index >= 0) this.workers.splice(index, 1);
    this.routers.delete(worker);
    this.options.logger.error({ pid: worker.pid, err: error }, 'mediasoup worker died; replacing it');
    this.emit('workerDied', worker.pid, error);
    const respawn = () => {
      if (this.closed) return;
      this.spawn().catch((err: unknown) => {
        this.options.logger.error({ err }, 'mediasoup worker respawn failed; retrying');
        setTimeout(respawn, this.respawnDelayMs * 4).unref();
      });
    };
    setTimeout(respawn, this.respawnDelayMs).unref();
  }
}
