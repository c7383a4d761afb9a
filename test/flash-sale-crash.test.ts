/**
 * A flash sale survives the server being SIGKILLed mid-storm and Redis losing
 * all its data mid-sale: units held in the Db never exceed the sale, and
 * after the Engine is rebuilt from the Db the sale ends at exactly its
 * quantity. Real server processes, real PostgreSQL, a real Redis we own.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { expect, it } from 'vitest';
import { TokenService } from '../src/auth/tokens.js';
import { pool } from './support/commerce.js';
import { createTestDatabase, probePostgres } from './support/postgres.js';
import { describeWithService } from './support/real-services.js';
import {
  freePort,
  type ServerProcess,
  startRedis,
  startServerProcess,
  stopProcess,
} from './support/server-process.js';

await describeWithService('flash sale across crashes (PostgreSQL + Redis)', probePostgres, () => {
  it('never oversells across a SIGKILL of the server and a Redis wipe, and ends at exactly its quantity', {
    timeout: 180_000,
  }, async () => {
    const database = await createTestDatabase();
    const redisPort = await freePort();
    const redis: ChildProcess = await startRedis(redisPort);
    const dataDir = mkdtempSync(join(tmpdir(), 'lcs-crash-'));
    const jwtSecret = randomUUID().repeat(2);
    const env = {
      DATA_DIR: dataDir,
      DATABASE_URL: database.url,
      REDIS_URL: `redis://127.0.0.1:${redisPort}/0`,
      JWT_SECRET: jwtSecret,
      LOG_REQUESTS: 'false',
      FLASH_VELOCITY_PER_IP: '100000000',
    };
    const db = new pg.Client({ connectionString: database.url });
    let server: ServerProcess | undefined;
    try {
      server = await startServerProcess(env);
      await db.connect();
      const tokens = new TokenService(jwtSecret, 3600);
      const sellerId = randomUUID();
      const sellerToken = (await tokens.issue({ id: sellerId, roles: ['streamer'], displayName: 'Seller' }))
        .token;
      const post = (url: string, token: string, body: unknown, key?: string) =>
        fetch(`${server!.url}${url}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            authorization: `Bearer ${token}`,
            ...(key ? { 'idempotency-key': key } : {}),
          },
          body: JSON.stringify(body),
        });
      const product = await post('/v1/products', sellerToken, {
        title: 'Crash-proof sneaker',
        category: 'shoes',
        currency: 'USD',
        skus: [{ code: `CR-${randomUUID().slice(0, 8)}`, name: 'One size', priceMinor: 5000, stock: 10 }],
      });
      expect(product.status, await product.clone().text()).toBe(201);
      const skuId = ((await product.json()) as { skus: Array<{ id: string }> }).skus[0]!.id;
      const saleRes = await post('/v1/flash-sales', sellerToken, {
        skuId,
        salePriceMinor: 1000,
        quantity: 100,
        perUserLimit: 1,
        reservationTtlSeconds: 600,
        startsAt: new Date(Date.now() - 1000).toISOString(),
        endsAt: new Date(Date.now() + 3600_000).toISOString(),
      });
      expect(saleRes.status).toBe(201);
      const saleId = ((await saleRes.json()) as { id: string }).id;

      const buyers = await Promise.all(
        Array.from(
          { length: 1200 },
          async (_, i) =>
            (await tokens.issue({ id: randomUUID(), roles: ['viewer'], displayName: `b${i}` })).token,
        ),
      );
      const held = async () =>
        Number(
          (
            await db.query<{ held: string }>(
              `select coalesce(sum(quantity), 0) as held from flash_reservations where sale_id = $1 and status in ('reserved','paid')`,
              [saleId],
            )
          ).rows[0]!.held,
        );
      /** Fires purchases; connection failures (a killed server) count as 'failed'. */
      const storm = async (tokensToUse: string[], onProgress?: (done: number) => void) => {
        let done = 0;
        const outcomes = await pool(
          tokensToUse.map((token) => async () => {
            try {
              const res = await post(
                `/v1/flash-sales/${saleId}/purchase`,
                token,
                { quantity: 1 },
                randomUUID(),
              );
              await res.arrayBuffer();
              return res.status;
            } catch {
              return 0;
            } finally {
              onProgress?.(++done);
            }
          }),
          50,
        );
        return {
          created: outcomes.filter((s) => s === 201).length,
          failed: outcomes.filter((s) => s === 0 || s >= 500).length,
        };
      };

      // Phase 1: kill -9 the server while purchases are in flight.
      let killed = false;
      const first = await storm(buyers.slice(0, 400), (done) => {
        if (done === 60 && !killed) {
          killed = true;
          server!.proc.kill('SIGKILL');
        }
      });
      expect(killed).toBe(true);
      expect(first.created).toBeGreaterThan(0);
      expect(await held()).toBeLessThanOrEqual(100);

      // Phase 2: a new process picks up the same Redis and Db.
      server = await startServerProcess(env);
      await storm(buyers.slice(400, 700));
      expect(await held()).toBeLessThanOrEqual(100);

      // Phase 3: Redis loses everything (restart without persistence); the sale is rebuilt from the Db.
      execFileSync('redis-cli', ['-p', String(redisPort), 'FLUSHALL']);
      // An instance that saw the sale sell out answers from memory for up to a second; then it asks the Engine again.
      await new Promise((r) => setTimeout(r, 1100));
      await storm(buyers.slice(0, 700)); // earlier buyers are still held to their limit after the rebuild
      expect(await held()).toBeLessThanOrEqual(100);

      // Phase 4: fresh buyers take whatever is left; the sale ends at exactly its quantity.
      await storm(buyers.slice(700));
      expect(await held()).toBe(100);
      const sale = (await (await fetch(`${server.url}/v1/flash-sales/${saleId}`)).json()) as {
        remaining: number;
      };
      expect(sale.remaining).toBe(0);
      const perUser = await db.query<{ n: string }>(
        `select count(*) as n from (select user_id from flash_reservations where sale_id = $1 and status in ('reserved','paid') group by user_id having sum(quantity) > 1) x`,
        [saleId],
      );
      expect(Number(perUser.rows[0]!.n)).toBe(0);
    } finally {
      await server?.stop('SIGKILL');
      await db.end().catch(() => undefined);
      await stopProcess(redis);
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
