/** Where the real services for tests and benchmarks are (no vitest import: benchmarks use this too). */
export const REQUIRE_REAL_SERVICES = process.env.REQUIRE_REAL_SERVICES === '1';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
