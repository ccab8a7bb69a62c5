// `npm run test:e2e` (through test/e2e/run.mjs): the fresh-hosts suite alone. One file at a time:
// the files share the run's bridge and addresses, and the machine has two cores.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.test.ts'],
    globalSetup: ['test/e2e/global-setup.ts'],
    setupFiles: ['test/setup-env.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    // A step waits for real events on real hosts (apt-get installing PostgreSQL, a reboot).
    testTimeout: 300_000,
    hookTimeout: 300_000,
    teardownTimeout: 120_000,
  },
});
