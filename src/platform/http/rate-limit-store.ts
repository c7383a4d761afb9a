/**
 * A store for @fastify/rate-limit backed by the Engine, so limits hold across
 * every instance sharing Redis (and in memory for a single instance).
 */
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Engine } from '../engine/engine.js';

export function engineRateLimitStore(engine: Engine, prefix = 'ratelimit:'): FastifyRateLimitStoreCtor {
  class EngineRateLimitStore implements FastifyRateLimitStore {
    constructor(
      _options: unknown,
      private readonly keyPrefix = prefix,
    ) {}

    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow?: number,
    ): void {
      const window = timeWindow ?? 60_000;
      const fullKey = `${this.keyPrefix}${key}`;
      engine
        .incrBy(fullKey, 1, window)
        .then(async (current) => {
          const ttl = await engine.ttl(fullKey);
          callback(null, { current, ttl: ttl > 0 ? ttl : window });
        })
        .catch((err: Error) => callback(err));
    }

    child(routeOptions: {
      routeInfo?: { method?: string; url?: string };
      method?: string | string[];
      url?: string;
    }): FastifyRateLimitStore {
      const method = routeOptions.routeInfo?.method ?? String(routeOptions.method ?? '');
      const url = routeOptions.routeInfo?.url ?? routeOptions.url ?? '';
      return new EngineRateLimitStore(undefined, `${prefix}${method}${url}:`);
    }
  }
  return EngineRateLimitStore as unknown as FastifyRateLimitStoreCtor;
}
