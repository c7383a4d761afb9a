/**
 * What both Engine adapters share: key prefixing, the closed guard, and the
 * operations the port defines as scripts (fixed-window counters, sequenced
 * logs), which run through each adapter's own `run`.
 */
import type { EngineScript, LogReadResult, ScriptValue } from './engine.js';
import { incrByScript, logAppendScript, logKeys, logReadScript, parseLogRead } from './engine-scripts.js';
import {
  assertNonNegativeInteger,
  assertPositiveInteger,
  assertSafeInteger,
  EngineClosedError,
} from './engine-support.js';

export abstract class ScriptedEngine {
  abstract readonly kind: 'memory' | 'redis';
  protected closed = false;

  /** @param prefix prepended to every key and channel (REDIS_KEY_PREFIX). */
  constructor(protected readonly prefix: string) {}

  abstract run<R extends ScriptValue>(
    script: EngineScript<R>,
    keys: string[],
    args: Array<string | number>,
  ): Promise<R>;

  protected open(): void {
    if (this.closed) throw new EngineClosedError(this.kind);
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
