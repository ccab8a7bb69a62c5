// Runs before any module of a test file is imported (it imports nothing itself): Ink reads `CI`
// (and CONTINUOUS_INTEGRATION) once, when it is first imported, and under CI renders only the
// last frame, which is empty once the app has exited. An import in test/setup.ts would load Ink
// before a `delete` placed after it ran (imports are hoisted), so the environment is pinned here.
delete process.env.CI;
delete process.env.CONTINUOUS_INTEGRATION;
// Frames are compared without colour.
process.env.FORCE_COLOR = '0';
