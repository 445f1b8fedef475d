import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // EVENTBANK_HEAVY=1 makes the reliability workloads ~10x larger (see docs/reliability.md).
    testTimeout: process.env.EVENTBANK_HEAVY === "1" ? 120_000 : 20_000,
    hookTimeout: 30_000,
    // Servers and stores run on real ports and files; two cores in CI.
    maxWorkers: 2,
  },
});
