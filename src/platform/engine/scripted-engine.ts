/**
 * What both Engine adapters share: key prefixing, the closed guard, and the
 * operations the port defines as scripts (fixed-window counters, sequenced
 * logs), which run through each adapter's own `run`.
 */
import type { EngineScript, LogReadResult, MessageHandler, ScriptValue } from './engine.js';
import { incrByScript, logAppendScript, logKeys, logReadScript, parseLogRead } from './engine-scripts.js';
import {
  assertNonNegativeInteger,
  assertPositiveInteger,
  assertSafeInteger,
  EngineClosedError,
  type EngineLogger,
} from './engine-support.js';

export abstract class ScriptedEngine {
  abstract readonly kind: 'memory' | 'redis';
  protected closed = false;

  /**
   * @param prefix prepended to every key and channel (REDIS_KEY_PREFIX).
   * @param logger receives errors thrown by message handlers.
   */
  constructor(
    protected readonly prefix: string,
    protected readonly logger?: EngineLogger,
  ) {}

  abstract run<R extends ScriptValue>(
    script: EngineScript<R>,
    keys: string[],
    args: Array<string | number>,
  ): Promise<R>;

  protected open(): void {
    if (this.closed) throw new EngineClosedError(this.kind);
  }

  /** Calls a subscriber; one handler throwing must not keep the message from the others. */
  protected deliver(handler: MessageHandler, message: string, channel: string): void {
    try {
      handler(message, channel);
    } catch (err) {
      this.logger?.error({ err, channel }, 'engine message handler threw');
    }
  }

  protected k(key: string): string {
    return this.prefix + key;
  }

  async incrBy(key: string, by: number, ttlMs?: number): Promise<number> {
    assertSafeInteger('by', by);
    if (ttlMs !== undefined) assertPositiveInteger('ttlMs', ttlMs);
    return this.run(incrByScript, [key], [by, ttlMs ?? 0]);
  }

  async logAppend(key: string, data: string, options: { maxLen: number; ttlMs: number }): Promise<number> {
    assertPositiveInteger('maxLen', options.maxLen);
    assertPositiveInteger('ttlMs', options.ttlMs);
    return this.run(logAppendScript, logKeys(key), [data, options.maxLen, options.ttlMs]);
  }

  async logRead(key: string, afterSeq: number, limit: number): Promise<LogReadResult> {
    assertNonNegativeInteger('afterSeq', afterSeq);
    assertNonNegativeInteger('limit', limit);
    return parseLogRead(await this.run(logReadScript, logKeys(key), [afterSeq, limit]));
  }
}
