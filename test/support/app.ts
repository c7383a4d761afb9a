/**
 * Builds the real app on real adapters for HTTP tests through `app.inject`
 * (no sockets): embedded ones by default, or PostgreSQL/Redis when given.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Config, loadConfig } from '../../config/schema.js';
import { buildApp } from '../../src/app.js';
import type { Role } from '../../src/auth/permissions.js';
import { type Database, migrations } from '../../src/database.js';
import { liveMediaCacheControl } from '../../src/live/live-streams-service.js';
import { openDb } from '../../src/platform/db/db.js';
import { createEngine } from '../../src/platform/engine/create-engine.js';
import { createObjectStore } from '../../src/platform/object-store/create-object-store.js';
import { createServices, type Services, startServices, stopServices } from '../../src/services.js';

export interface TestApp extends Services {
  app: FastifyInstance;
  config: Config;
  /** Registers a user with the given roles and returns a bearer token for it. */
  login(roles?: Role[]): Promise<{ id: string; token: string }>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** PostgreSQL URL; default: PGlite in a temp dir. */
  databaseUrl?: string;
  /** Redis URL; default: the in-memory engine. */
  redisUrl?: string;
  /** Engine key prefix; give two apps the same one to make them instances of one deployment. Default: unique. */
  redisKeyPrefix?: string;
  /** Start background jobs (expiry sweeps). Default false: tests drive them with `runOnce`. */
  backgroundJobs?: boolean;
}

export async function createTestApp(
  env: Record<string, string> = {},
  options: TestAppOptions = {},
): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lcs-app-'));
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    JWT_SECRET: 'test-secret-'.padEnd(40, 'x'),
    // Calls spawn mediasoup workers: only the suites about calls turn them on.
    CALLS_ENABLED: 'false',
    ...env,
  });
  const db = await openDb<Database>({ url: options.databaseUrl, dataDir, migrations });
  const engine = createEngine({
    redisUrl: options.redisUrl,
    keyPrefix: options.redisKeyPrefix ?? `test:${randomUUID()}:`,
  });
  const objectStore = createObjectStore({
    dataDir,
    localPublicBaseUrl: 'http://localhost/media',
    localDefaultCacheControl: liveMediaCacheControl,
  });
  const logger = { error: (obj: object, msg: string) => console.error(msg, obj) };
  const services = createServices(
    config,
    { db, engine, objectStore },
    { jwtSecret: config.JWT_SECRET!, logger },
  );
  const app = await buildApp(services);
  await app.ready();
  if (options.backgroundJobs) await startServices(services);
  else {
    await services.flashSales.start();
    // Forwarded call signaling reaches an instance only once it listens on its channel.
    await services.media?.relay.start();
  }
  let counter = 0;
  return {
    ...services,
    app,
    config,
    async login(roles: Role[] = ['viewer']) {
      counter++;
      const user = await services.users.register({
        email: `user${counter}-${randomUUID()}@example.com`,
        password: 'password-123',
        displayName: `User ${counter}`,
      });
      const withRoles = roles.join() === 'viewer' ? user : await services.users.setRoles(user.id, roles);
      const session = await services.users.startSession(withRoles);
      return { id: user.id, token: session.token };
    },
    async close() {
      await app.close();
      await stopServices(services);
      await engine.close();
      await objectStore.close();
      await db.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
