/**
 * Builds the real app on embedded adapters in a temp directory, for HTTP tests
 * through `app.inject` (no sockets).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Config, loadConfig } from '../../config/schema.js';
import { buildApp } from '../../src/app.js';
import { TokenService } from '../../src/auth/tokens.js';
import { UsersService } from '../../src/auth/users-service.js';
import { type Database, migrations } from '../../src/database.js';
import { type DbHandle, openDb } from '../../src/platform/db/db.js';
import { createEngine } from '../../src/platform/engine/create-engine.js';
import type { Engine } from '../../src/platform/engine/engine.js';
import { createObjectStore } from '../../src/platform/object-store/create-object-store.js';
import type { ObjectStore } from '../../src/platform/object-store/object-store.js';

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  db: DbHandle<Database>;
  engine: Engine;
  objectStore: ObjectStore;
  users: UsersService;
  tokens: TokenService;
  /** Registers a user with the given roles and returns a bearer token for it. */
  login(roles?: Array<'viewer' | 'streamer' | 'agent' | 'admin'>): Promise<{ id: string; token: string }>;
  close(): Promise<void>;
}

let counter = 0;

export async function createTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lcs-app-'));
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    JWT_SECRET: 'test-secret-'.padEnd(40, 'x'),
    ...env,
  });
  const db = await openDb<Database>({ dataDir, migrations });
  const engine = createEngine({ keyPrefix: 'test:' });
  const objectStore = createObjectStore({ dataDir, localPublicBaseUrl: 'http://localhost/media' });
  const tokens = new TokenService(config.JWT_SECRET!, config.JWT_TTL_SECONDS);
  const users = new UsersService(db.db, tokens);
  const app = await buildApp({ config, db, engine, objectStore, tokens, users });
  await app.ready();
  return {
    app,
    config,
    db,
    engine,
    objectStore,
    users,
    tokens,
    async login(roles = ['viewer']) {
      counter++;
      const user = await users.register({
        email: `user${counter}-${Date.now()}@example.com`,
        password: 'password-123',
        displayName: `User ${counter}`,
      });
      const withRoles = roles.join() === 'viewer' ? user : await users.setRoles(user.id, roles);
      const session = await users.startSession(withRoles);
      return { id: user.id, token: session.token };
    },
    async close() {
      await app.close();
      await engine.close();
      await objectStore.close();
      await db.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
