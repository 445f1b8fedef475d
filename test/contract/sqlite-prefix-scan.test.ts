import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { event } from "./event-store-contract.js";

describe("SQLite store, prefix subscriptions on a large log", () => {
  it("delivers a rare prefix's events in order across long runs of other streams' events, then caught_up, then live ones", async () => {
    // A prefix subscription passes over other streams' events in bounded ranges of positions
    // (16,384 per step): events of the prefix before, inside and after such runs all arrive.
    const dir = mkdtempSync(join(tmpdir(), "eventbank-sqlite-"));
    const store = new SqliteEventStore(join(dir, "events.sqlite"), { pollIntervalMs: 20 });
    try {
      const noise = (count: number) => Array.from({ length: count }, () => event("Noise"));
      await store.append("transfer-a", [event("T1")], "no_stream");
      await store.append("account-x", noise(20_000), "any");
      await store.append("transfer-b", [event("T2")], "no_stream");
      await store.append("account-y", noise(16_383), "any");
      await store.append("transfer-a", [event("T3")], 0n);
      await store.append("account-z", noise(40_000), "any");
      const subscription = store.subscribeToAll({ streamPrefix: "transfer-" });
      const iterator = subscription[Symbol.asyncIterator]();
      const history: string[] = [];
      for (;;) {
        const { value } = await iterator.next();
        if (!value || value.type === "caught_up") break;
        history.push(value.event.type);
      }
      expect(history).toEqual(["T1", "T2", "T3"]);
      await store.append("account-x", noise(3), "any");
      await store.append("transfer-c", [event("T4")], "no_stream");
      const live = await iterator.next();
      expect(live.value?.type === "event" && live.value.event.type).toBe("T4");
      await subscription.close();

      // Resuming after the last event of the prefix passes over the runs after it.
      const resumed = store.subscribeToAll({ streamPrefix: "transfer-", afterPosition: "1" })[Symbol.asyncIterator]();
      const types: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { value } = await resumed.next();
        types.push(value?.type === "event" ? value.event.type : String(value?.type));
      }
      expect(types).toEqual(["T2", "T3", "T4"]);
      await resumed.return?.(undefined);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
