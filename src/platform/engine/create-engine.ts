/**
 * Picks the Engine adapter from configuration: Redis when a URL is given
 * (several instances share state and messages), otherwise the in-memory
 * engine (one instance only).
 */
import type { Engine } from './engine.js';
import type { EngineLogger } from './engine-support.js';
import { MemoryEngine } from './memory-engine.js';
import { RedisEngine } from './redis-engine.js';

export type { EngineLogger } from './engine-support.js';

export interface CreateEngineOptions {
  /** Redis URL (`REDIS_URL`); empty or absent selects the in-memory engine. */
  redisUrl?: string;
  /** Prefix for every key and pub/sub channel (`REDIS_KEY_PREFIX`), applied by both adapters. */
  keyPrefix: string;
  /** Receives connection warnings and errors thrown by message handlers. */
  logger?: EngineLogger;
}

/** Creates the engine; Redis connects in the background, so await `check()` before serving. */
export function createEngine(options: CreateEngineOptions): Engine {
  if (options.redisUrl) {
    return new RedisEngine({ url: options.redisUrl, keyPrefix: options.keyPrefix, logger: options.logger });
  }
  return new MemoryEngine({ keyPrefix: options.keyPrefix, logger: options.logger });
}
