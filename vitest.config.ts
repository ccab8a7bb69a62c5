import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.{ts,tsx}'],
    // The fresh-hosts suite runs on its own (test/e2e/vitest.config.ts, npm run test:e2e).
    exclude: [...configDefaults.exclude, 'test/e2e/**'],
    setupFiles: ['test/setup-env.ts', 'test/setup.ts'],
    pool: 'forks',
    // Two cores: two test files at a time, each starting real PostgreSQL and HAProxy processes.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
