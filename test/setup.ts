// Pins the environment of every test file (see FACTS.md, "Ink 6 and its tests").
import { afterEach } from 'vitest';
import { cleanup } from 'ink-testing-library';

// Ink renders only the last frame when it believes it runs in CI.
delete process.env.CI;
delete process.env.CONTINUOUS_INTEGRATION;
// Frames are compared without colour.
process.env.FORCE_COLOR = '0';
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

afterEach(() => {
  cleanup();
});
