// Shared hooks of every test file; the environment is pinned before this, in test/setup-env.ts.
import { afterEach } from 'vitest';
import { cleanup } from 'ink-testing-library';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

afterEach(() => {
  cleanup();
});
