import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'test/**/*.test.ts',
      'src/**/*.test.ts',
      'config/**/*.test.ts',
      'media/**/*.test.ts',
      'signaling/**/*.test.ts',
      'workers/**/*.test.ts',
    ],
    // A guard against hangs, not a performance bound: the 2-core CI box runs several suites at once.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: keep parallelism small so process-spawning tests are not starved.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    reporters: ['default', './test/support/totals-reporter.ts'],
    // The browser tests load dist/web; it is built once here, not by each of them at once.
    globalSetup: ['./test/support/build-web-apps.ts'],
  },
});
