/**
 * docker/: no Docker engine runs here, so the compose file is checked with
 * the compose client alone (`docker compose config`, or docker-compose v1),
 * and the app's environment in it must pass the server's own config schema.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../config/schema.js';
import { REQUIRE_REAL_SERVICES } from './support/real-services.js';

const composePath = new URL('../docker/compose.yml', import.meta.url).pathname;
const dockerfile = readFileSync(new URL('../docker/Dockerfile', import.meta.url), 'utf8');

function composeClient(): string[] | undefined {
  if (spawnSync('docker', ['compose', 'version']).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version']).status === 0) return ['docker-compose'];
  return undefined;
}

interface ComposeFile {
  services: Record<string, { environment?: Record<string, string>; image?: string; build?: unknown }>;
}

describe('docker', () => {
  const client = composeClient();

  it('the compose client accepts docker/compose.yml', () => {
    if (!client) {
      if (REQUIRE_REAL_SERVICES)
        throw new Error('no compose client (docker compose or docker-compose) installed');
      console.warn('SKIP compose validation: no compose client installed');
      return;
    }
    const [cmd, ...args] = client;
    const out = execFileSync(cmd!, [...args, '-f', composePath, 'config'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const resolved = parse(out) as ComposeFile;
    expect(Object.keys(resolved.services).sort()).toEqual([
      'app',
      'coturn',
      'minio',
      'minio-init',
      'postgres',
      'redis',
    ]);
  });

  it("the app's environment passes the server's config schema and points at the other services", () => {
    const compose = parse(readFileSync(composePath, 'utf8')) as ComposeFile;
    const env = Object.fromEntries(
      Object.entries(compose.services.app?.environment ?? {}).map(([k, v]) => [
        k,
        // ${VAR:-default} → default, as compose resolves it with an empty environment
        String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1'),
      ]),
    );
    const config = loadConfig(env);
    expect(config.HOST).toBe('0.0.0.0');
    expect(config.DATABASE_URL).toContain('@postgres:5432/');
    expect(config.REDIS_URL).toBe('redis://redis:6379/0');
    expect(config.S3_ENDPOINT).toBe('http://minio:9000');
    expect(config.S3_FORCE_PATH_STYLE).toBe(true);
  });

  it('the Dockerfile is multi-stage, runs as non-root and ships ffmpeg', () => {
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/apt-get install[^\n]*ffmpeg/);
    expect(dockerfile).toMatch(/npm ci/);
  });
});
