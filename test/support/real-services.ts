/**
 * Real-service gates for adapter suites. On a newcomer's laptop a suite whose
 * server is unreachable is skipped with one clear line; with
 * REQUIRE_REAL_SERVICES=1 (CI) the same situation is a test failure.
 */
import { describe, it } from 'vitest';

export const REQUIRE_REAL_SERVICES = process.env.REQUIRE_REAL_SERVICES === '1';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * `describe` for a suite that needs a real server. `probe` resolves when the
 * server is reachable and rejects with the reason otherwise.
 */
export async function describeWithService(
  service: string,
  probe: () => Promise<void>,
  body: () => void,
): Promise<void> {
  let reason: string | undefined;
  try {
    await probe();
  } catch (err) {
    reason = err instanceof Error ? err.message : String(err);
  }
  if (reason === undefined) {
    describe(service, body);
  } else if (REQUIRE_REAL_SERVICES) {
    describe(service, () => {
      it(`${service} is reachable`, () => {
        throw new Error(`${service} unreachable and REQUIRE_REAL_SERVICES=1: ${reason}`);
      });
    });
  } else {
    console.warn(`SKIP ${service}: unreachable (${reason}); set REQUIRE_REAL_SERVICES=1 to make this fail`);
    describe.skip(service, body);
  }
}
