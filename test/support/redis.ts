/** Real-Redis helpers shared by the adapter suites. */
import { Redis } from 'ioredis';
import { RedisEngine } from '../../src/platform/engine/redis-engine.js';

/** Resolves when Redis at `url` answers, for the describeWithService gate. */
export async function probeRedis(url: string): Promise<void> {
  const engine = new RedisEngine({ url, checkTimeoutMs: 2000 });
  try {
    await engine.check();
  } finally {
    await engine.close();
  }
}

/** Deletes every key a test run created under its prefix. */
export async function deleteByPrefix(url: string, prefix: string): Promise<void> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}
