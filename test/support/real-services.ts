/**
 * Real-service gates for adapter suites. On a newcomer's laptop a suite whose
 * server is unreachable is skipped with one clear line; with
 * REQUIRE_REAL_SERVICES=1 (CI) the same situation is a test failure.
 */
import { describe, it } from 'vitest';

import { REQUIRE_REAL_SERVICES } from './env.js';

export { REQUIRE_REAL_SERVICES, TEST_DATABASE_URL, TEST_REDIS_URL } from './env.js';

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
