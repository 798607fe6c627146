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
        },
      },
      {
        test: {
          name: 'lab',
          include: ['test/lab/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
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
