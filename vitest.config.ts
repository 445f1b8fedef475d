import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Servers and stores run on real ports and files; two cores in CI.
    maxWorkers: 2,
  },
});
