import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { describeEventStoreContract } from "./event-store-contract.js";

describeEventStoreContract("sqlite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "eventbank-contract-"));
  const store = new SqliteEventStore(join(dir, "events.sqlite"), { pollIntervalMs: 20 });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
