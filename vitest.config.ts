import { defineConfig } from 'vitest/config';

/**
 * Files that crash broker threads on purpose (test/integration/15-supervisor.test.ts) run
 * after everything else, alone: a gateway thread that dies closes the TCP listening
 * descriptor its sibling threads share, and on a host saturated by the other test files
 * the few milliseconds before the siblings are stopped have been long enough to abort the
 * test process (docs/architecture.md, "Supervision"). Alone they run as on a real host.
 */
const ALONE = ['test/integration/15-supervisor.test.ts'];

const common = {
  // Integration tests start real brokers with worker threads; forks keep each file's
  // threads and sockets in its own process.
  pool: 'forks' as const,
  testTimeout: 20_000,
  hookTimeout: 30_000,
};

export default defineConfig({
  test: {
    projects: [
      { test: { ...common, name: 'main', include: ['test/**/*.test.ts'], exclude: ALONE, sequence: { groupOrder: 0 } } },
      { test: { ...common, name: 'alone', include: ALONE, sequence: { groupOrder: 1 } } },
    ],
  },
});
