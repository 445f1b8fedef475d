/**
 * Group commit in the SQLite store: appends issued together share one
 * transaction, yet each is checked and answered on its own.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WrongExpectedRevisionError, type NewEvent } from "../../server/src/store/event-store.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";

let counter = 0;
const event = (id = `00000000-0000-4000-8000-${String(++counter).padStart(12, "0")}`): NewEvent => ({
  id,
  type: "MoneyDeposited",
  data: { amount: "1" },
  metadata: { commandId: id, correlationId: id, causationId: id },
});

/** Settles every promise, keeping each outcome. */
const outcomes = (promises: Array<Promise<unknown>>) => Promise.allSettled(promises);

describe("SQLite group commit", () => {
  let dir: string;
  let path: string;
  let store: SqliteEventStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-group-"));
    path = join(dir, "events.sqlite");
    store = new SqliteEventStore(path);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("checks each append of a group against its own expected revision, in order", async () => {
    const results = await outcomes([
      store.append("s-1", [event()], "no_stream"),
      store.append("s-2", [event()], 5n), // fails alone
      store.append("s-1", [event()], 0n), // sees the first append of its group
      store.append("s-1", [event()], 0n), // and so loses to the one before it
      store.append("s-3", [event(), event()], "no_stream"),
    ]);
    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(WrongExpectedRevisionError);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ actual: "no_stream" });
    expect((results[3] as PromiseRejectedResult).reason).toMatchObject({ actual: 1n });
    expect((results[4] as PromiseFulfilledResult<{ nextExpectedRevision: bigint }>).value.nextExpectedRevision).toBe(1n);
    expect(await store.readStream("s-2")).toEqual({ status: "no_stream" });
  });

  it("rolls back only the append that fails midway, keeping the rest of its group", async () => {
    const first = event();
    const results = await outcomes([
      store.append("s-2", [event()], "no_stream"),
      // Its second event reuses the first one's id: the insert fails after the first went in.
      store.append("s-3", [first, { ...event(), id: first.id }], "no_stream"),
      store.append("s-4", [event()], "no_stream"),
    ]);
    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(await store.readStream("s-3")).toEqual({ status: "no_stream" });
    const kept = await store.readStream("s-4");
    expect(kept.status === "ok" && kept.events.length).toBe(1);
  });

  it("keeps every acknowledged append of a group, and writes appends accepted before close", async () => {
    const acknowledged = Array.from({ length: 50 }, (_, i) => store.append(`many-${i}`, [event()], "no_stream"));
    await Promise.all(acknowledged);
    // More than one group's worth, accepted but not yet written when close() is called.
    const lastMinute = Array.from({ length: 40 }, (_, i) => store.append(`late-${i}`, [event()], "no_stream"));
    await store.close();
    for (const append of lastMinute) await expect(append).resolves.toMatchObject({ nextExpectedRevision: 0n });

    store = new SqliteEventStore(path);
    for (let i = 0; i < 50; i++) expect((await store.readStream(`many-${i}`)).status).toBe("ok");
    for (let i = 0; i < 40; i++) expect((await store.readStream(`late-${i}`)).status).toBe("ok");
  });

  it("writes a burst larger than a group in several groups, each append checked in order", async () => {
    const small = new SqliteEventStore(join(dir, "small-groups.sqlite"), { maxGroupSize: 3 });
    try {
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => small.append("burst", [event()], i === 0 ? "no_stream" : BigInt(i - 1))));
      expect(results.map((result) => result.nextExpectedRevision)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i)));
    } finally {
      await small.close();
    }
  });

  it("gives positions in commit order within a group", async () => {
    const results = await Promise.all([store.append("a", [event()], "any"), store.append("b", [event(), event()], "any"), store.append("a", [event()], "any")]);
    const positions = results.map((result) => BigInt(result.position));
    expect(positions[1]! > positions[0]! && positions[2]! > positions[1]!).toBe(true);
  });
});
