import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { event } from "./event-store-contract.js";

describe("SQLite store, background checkpoints", () => {
  // The database file grows only when a checkpoint copies pages into it from the WAL. Ten
  // commits of about 50 KB stay far below wal_autocheckpoint (1,000 pages), so no COMMIT
  // checkpoints: with the worker the file grows by them, without it not at all.
  for (const checkpointIntervalMs of [20, 0]) {
    it(`${checkpointIntervalMs ? "copies committed pages into the database file from a worker thread" : "without the worker, the pages stay in the WAL (the test can tell the two apart)"}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "eventbank-checkpoint-"));
      const file = join(dir, "events.sqlite");
      const store = new SqliteEventStore(file, { checkpointIntervalMs });
      try {
        const initial = statSync(file).size;
        const payload = "x".repeat(1_000);
        for (let i = 0; i < 10; i++) {
          await store.append(`account-${i}`, Array.from({ length: 50 }, () => event("Deposited", { payload })), "no_stream");
        }
        await new Promise((resolve) => setTimeout(resolve, 400));
        const grown = statSync(file).size - initial;
        if (checkpointIntervalMs) expect(grown).toBeGreaterThan(400_000);
        else expect(grown).toBe(0);
        // Reads and appends go on as before.
        const read = await store.readStream("account-9");
        expect(read.status === "ok" && read.events.length).toBe(50);
        await store.append("account-9", [event("Deposited")], 49n);
      } finally {
        await store.close();
      }
      rmSync(dir, { recursive: true, force: true });
    });
  }
});
