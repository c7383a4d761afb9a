/**
 * The SFU of one instance: the worker pool and the calls whose media this
 * instance hosts (one router each, on the least-loaded worker).
 */
import { EventEmitter } from 'node:events';
import { CallMedia, type TransportSettings } from './call-media.js';
import { WorkerPool, type WorkerPoolOptions } from './worker-pool.js';

export interface SfuOptions extends WorkerPoolOptions {
  transport: TransportSettings;
}

export interface SfuEvents {
  /** A call's media is gone without anyone ending the call (its worker died). */
  mediaLost: [callId: string, reason: 'workerDied'];
  /** Forwarded from the call's media: an event for the call's room. */
  notify: [callId: string, event: string, data: Record<string, unknown>];
  /** A call's router closed, for whatever reason. */
  callClosed: [callId: string];
}

export class Sfu extends EventEmitter<SfuEvents> {
  readonly pool: WorkerPool;
  private readonly calls = new Map<string, CallMedia>();
  private readonly opening = new Map<string, Promise<CallMedia>>();
  private closed = false;

  constructor(private readonly options: SfuOptions) {
    super();
    this.pool = new WorkerPool(options);
  }

  start(): Promise<void> {
    return this.pool.start();
  }

  get(callId: string): CallMedia | undefined {
    return this.calls.get(callId);
  }

  /** The call's media, created on first use. Concurrent callers share one router. */
  open(callId: string): Promise<CallMedia> {
    if (this.closed) return Promise.reject(new Error('sfu is closed'));
    const existing = this.calls.get(callId);
    if (existing) return Promise.resolve(existing);
    let pending = this.opening.get(callId);
    if (!pending) {
      pending = this.pool
        .createRouter({ callId })
        .then((router) => {
          const media = new CallMedia(callId, router, this.options.transport);
          this.calls.set(callId, media);
          media.on('notify', (event, data) => this.emit('notify', callId, event, data));
          media.once('closed', (reason) => {
            if (this.calls.get(callId) === media) this.calls.delete(callId);
            this.emit('callClosed', callId);
            if (reason === 'workerDied') this.emit('mediaLost', callId, reason);
          });
          return media;
        })
        .finally(() => this.opening.delete(callId));
      this.opening.set(callId, pending);
    }
    return pending;
  }

  /** Closes the call's router and everything under it. */
  closeCall(callId: string): void {
    const media = this.calls.get(callId);
    if (!media) return;
    this.calls.delete(callId);
    media.close();
  }

  /** Call ids hosted here. */
  callIds(): string[] {
    return [...this.calls.keys()];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.opening.values());
    for (const media of this.calls.values()) media.close();
    this.calls.clear();
    await this.pool.close();
  }
}
