/**
 * A job that runs every `intervalMs` on every instance, never overlapping
 * itself. Jobs must be safe to run on several instances at once (the
 * commerce sweeps are: each expiry is handed out by one atomic step).
 */
export interface JobLogger {
  error(obj: object, msg: string): void;
}

export class PeriodicJob {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;

  /**
   * @param name shown in logs.
   * @param intervalMs pause between the end of one run and the start of the next.
   * @param run the work; a rejection is logged and the job goes on.
   */
  constructor(
    readonly name: string,
    private readonly intervalMs: number,
    private readonly run: () => Promise<unknown>,
    private readonly logger: JobLogger,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  /** Runs once now (tests, and callers that need the effect immediately). */
  async runOnce(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.run()
      .then(() => undefined)
      .catch((err: unknown) => this.logger.error({ err, job: this.name }, 'background job failed'))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  /** Stops scheduling and waits for a run in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runOnce().then(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }
}
