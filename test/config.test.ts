import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigDocs } from '../config/docs.js';
import { ConfigError, ConfigSchema, loadConfig, publicBaseUrl } from '../config/schema.js';

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('has a documented default or is optional for every variable', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(8080);
    expect(config.HOST).toBe('127.0.0.1');
    expect(config.DATA_DIR).toBe('./data');
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.S3_BUCKET).toBeUndefined();
    for (const [name, schema] of Object.entries(ConfigSchema.properties)) {
      expect((schema as { description?: string }).description, name).toBeTruthy();
    }
  });

  it('coerces numbers and booleans from text and treats empty as unset', () => {
    const config = loadConfig({ PORT: '9000', TRUST_PROXY: 'yes', METRICS_ENABLED: '0', REDIS_URL: '' });
    expect(config.PORT).toBe(9000);
    expect(config.TRUST_PROXY).toBe(true);
    expect(config.METRICS_ENABLED).toBe(false);
    expect(config.REDIS_URL).toBeUndefined();
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT must be a number, got "abc"'],
    [{ PORT: '70000' }, 'PORT must be an integer from 0 to 65535, got "70000"'],
    [{ PORT: '80.5' }, 'PORT must be an integer from 0 to 65535, got "80.5"'],
    [
      { LOG_LEVEL: 'loud' },
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ],
    [{ TRUST_PROXY: 'maybe' }, 'TRUST_PROXY must be true or false, got "maybe"'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL must be a URL, got "localhost:6379"'],
    [{ S3_BUCKET: 'Bad_Bucket' }, 'S3_BUCKET must be a string matching'],
    [{ ADMIN_EMAIL: 'nope' }, 'ADMIN_EMAIL must be a string holding an email address, got "nope"'],
  ])('rejects %o with one clear line', (env, expected) => {
    const message = errorOf(env);
    expect(message).toContain(expected);
    expect(message).not.toContain('\n');
  });

  it('never echoes a secret value in an error', () => {
    const message = errorOf({ JWT_SECRET: 'short-secret' });
    expect(message).toContain('JWT_SECRET must be a string of at least 32 characters');
    expect(message).not.toContain('short-secret');
  });

  it('requires paired settings together', () => {
    expect(errorOf({ ADMIN_EMAIL: 'a@b.co' })).toBe('ADMIN_EMAIL and ADMIN_PASSWORD must be set together');
    expect(errorOf({ S3_ACCESS_KEY_ID: 'k' })).toBe(
      'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together',
    );
  });

  it('derives the public base URL from PORT unless set', () => {
    expect(publicBaseUrl(loadConfig({ PORT: '9000' }))).toBe('http://localhost:9000');
    expect(publicBaseUrl(loadConfig({ PUBLIC_BASE_URL: 'https://shop.example/' }))).toBe(
      'https://shop.example',
    );
  });

  it('docs/configuration.md is generated from the schema (run `npm run docs:config` if this fails)', () => {
    const committed = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderConfigDocs());
    for (const name of Object.keys(ConfigSchema.properties)) expect(committed).toContain(`\`${name}\``);
  });
});
