import { defineConfig } from 'vitest/config';

// Unit tests are pure and parallel. Everything that touches real hosts (the lab) runs one file
// at a time: the lab's hosts are shared, and the machine has two cores.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          // Property tests run real /bin/sh processes; a loaded 2-core machine needs headroom.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'lab',
          include: ['test/lab/**/*.test.ts', 'test/integration/**/*.test.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 900_000,
          sequence: { concurrent: false },
        },
      },
      {
        // End to end: the whole site, converged once on the default lab by the global setup.
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/global-setup.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 900_000,
          sequence: { concurrent: false },
        },
      },
    ],
  },
});
