import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Failover suites spawn real servers; keep files parallel but bounded for a 2-core machine.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
  },
});
