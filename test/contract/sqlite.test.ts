import Database from "better-sqlite3";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { describeEventStoreContract, event } from "./event-store-contract.js";

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

describe("SQLite store, beyond the contract", () => {
  it("keeps its file in WAL mode and lets a second connection's subscription see the first one's appends", async () => {
    const dir = mkdtempSync(join(tmpdir(), "eventbank-sqlite-"));
    const file = join(dir, "events.sqlite");
    const writer = new SqliteEventStore(file, { pollIntervalMs: 20 });
    const reader = new SqliteEventStore(file, { pollIntervalMs: 20 });
    try {
      const inspect = new Database(file, { readonly: true });
      expect(inspect.pragma("journal_mode", { simple: true })).toBe("wal");
      inspect.close();

      const stream = `s-${randomUUID()}`;
      const subscription = reader.subscribeToAll();
      const iterator = subscription[Symbol.asyncIterator]();
      expect((await iterator.next()).value).toEqual({ type: "caught_up" });
      // Only polling can notice this append: it comes through another connection.
      await writer.append(stream, [event("FromTheOtherConnection")], "no_stream");
      const next = await iterator.next();
      expect(next.value?.type === "event" && next.value.event.type).toBe("FromTheOtherConnection");
      await subscription.close();
    } finally {
      await writer.close();
      await reader.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("finds an event by id in its own stream only (what recognises retries older than the idempotency window)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "eventbank-sqlite-"));
    const store = new SqliteEventStore(join(dir, "events.sqlite"));
    try {
      const stream = `s-${randomUUID()}`;
      const [first, second] = [event("First"), event("Second")];
      await store.append(stream, [first, second], "no_stream");
      expect(await store.findEvent(stream, second.id)).toEqual({ revision: 1n });
      expect(await store.findEvent(stream, first.id)).toEqual({ revision: 0n });
      expect(await store.findEvent(`other-${stream}`, second.id)).toBeUndefined();
      expect(await store.findEvent(stream, randomUUID())).toBeUndefined();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
