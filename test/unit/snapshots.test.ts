/**
 * Snapshots: a cold load reads the latest snapshot and the events after it,
 * and gets exactly what a full replay gets, idempotency window included.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AccountCommandHandler, type AccountSnapshot } from "../../server/src/app/account-command-handler.js";
import { ACCOUNT_SNAPSHOT_VERSION } from "../../server/src/app/loaded-account.js";
import type { AccountCommand } from "../../server/src/domain/account.js";
import { accountStream, type EventStore, type ReadStreamOptions } from "../../server/src/store/event-store.js";
import { EsdbSnapshotStore } from "../../server/src/store/esdb-snapshot-store.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { SqliteSnapshotStore } from "../../server/src/store/sqlite-snapshot-store.js";
import { startEsdbDouble } from "../support/esdb-double/server.js";

const STREAM = accountStream("acc");

/** Passes everything through and remembers where each stream read started. */
function recordingReads(store: EventStore): { store: EventStore; readsFrom: Array<bigint | "start" | "end" | undefined> } {
  const readsFrom: Array<bigint | "start" | "end" | undefined> = [];
  const wrapped = Object.create(store) as EventStore;
  wrapped.readStream = (stream: string, options?: ReadStreamOptions) => {
    readsFrom.push(options?.fromRevision);
    return store.readStream(stream, options);
  };
  return { store: wrapped, readsFrom };
}

const context = (commandId: string) => ({ commandId, correlationId: commandId, causationId: commandId });
const deposit = (amount: bigint): AccountCommand => ({ type: "Deposit", accountId: "acc", amount });

describe("account snapshots (sqlite)", () => {
  let dir: string;
  let path: string;
  let events: SqliteEventStore;
  let snapshots: SqliteSnapshotStore;

  /** A fresh process on the same file: new stores, new handler, empty cache. */
  const restart = async () => {
    await events.close();
    await snapshots.close();
    events = new SqliteEventStore(path);
    snapshots = new SqliteSnapshotStore(path);
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-snapshots-"));
    path = join(dir, "events.sqlite");
    events = new SqliteEventStore(path);
    snapshots = new SqliteSnapshotStore(path);
  });
  afterEach(async () => {
    await events.close();
    await snapshots.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens "acc" and runs 29 deposits and withdrawals: revision 29, snapshots at 9, 19 and 29. */
  const history = async () => {
    const handler = new AccountCommandHandler(events, { snapshots, snapshotEvery: 10 });
    await handler.execute({ type: "OpenAccount", accountId: "acc", owner: "Ada", currency: "EUR" }, context("open"));
    for (let i = 1; i <= 29; i++) {
      const command: AccountCommand = i % 6 === 0 ? { type: "Withdraw", accountId: "acc", amount: 3n } : deposit(BigInt(i));
      await handler.execute(command, context(`c${i}`));
    }
  };

  it("writes a snapshot every N events and loads from it, reading only the events after it", async () => {
    await history();
    expect((await snapshots.read(STREAM))?.revision).toBe(29n);
    // Two more events, then a fresh process: it reads the snapshot at 29 and the stream from 30.
    const handler = new AccountCommandHandler(events, { snapshots, snapshotEvery: 10 });
    await handler.execute(deposit(1n), context("d30"));
    await handler.execute(deposit(1n), context("d31"));
    await restart();
    const { store, readsFrom } = recordingReads(events);
    const after = new AccountCommandHandler(store, { snapshots, snapshotEvery: 10 });
    expect((await after.getAccount("acc")).revision).toBe(31n);
    expect(readsFrom).toEqual([30n]);
  });

  it("gives the same state from a snapshot plus the tail as from a full replay", async () => {
    await history();
    const handler = new AccountCommandHandler(events, { snapshots, snapshotEvery: 10 });
    await handler.execute(deposit(7n), context("tail-1"));
    await restart();
    const fromSnapshot = await new AccountCommandHandler(events, { snapshots }).getAccount("acc");
    const fromReplay = await new AccountCommandHandler(events).getAccount("acc");
    expect(fromSnapshot).toEqual(fromReplay);
    let balance = 7n;
    for (let i = 1n; i <= 29n; i++) balance += i % 6n === 0n ? -3n : i;
    expect(fromReplay.account.balance).toBe(balance);
  });

  it("keeps idempotency across a restart through the snapshot's window", async () => {
    await history();
    const before = await new AccountCommandHandler(events).getAccount("acc");
    await restart();
    const { store, readsFrom } = recordingReads(events);
    const handler = new AccountCommandHandler(store, { snapshots, snapshotEvery: 10 });
    // c5 was decided long before the snapshot at 29; the stream is read only after it.
    const repeated = await handler.execute(deposit(5n), context("c5"));
    expect(repeated.revision).toBe(5n);
    expect(readsFrom).toEqual([30n]);
    await expect(handler.execute(deposit(6n), context("c5"))).rejects.toMatchObject({ reason: "COMMAND_ID_REUSED" });
    expect((await handler.getAccount("acc")).revision).toBe(before.revision);
  });

  it("ignores a snapshot written by another version of the aggregate and replays the stream", async () => {
    await history();
    const real = await new AccountCommandHandler(events).getAccount("acc");
    // What a future version might have written: a shape this version would misread.
    await snapshots.write({ stream: STREAM, revision: 29n, version: ACCOUNT_SNAPSHOT_VERSION + 1, state: '{"v2":{"cents":1}}' });
    await restart();
    const { store, readsFrom } = recordingReads(events);
    const loaded: AccountSnapshot = await new AccountCommandHandler(store, { snapshots }).getAccount("acc");
    expect(loaded).toEqual(real);
    expect(readsFrom[0]).toBe(0n);
  });

  it("replays the stream when a snapshot cannot be decoded, and says so", async () => {
    await history();
    const real = await new AccountCommandHandler(events).getAccount("acc");
    await snapshots.write({ stream: STREAM, revision: 29n, version: ACCOUNT_SNAPSHOT_VERSION, state: "not json" });
    const errors: string[] = [];
    const handler = new AccountCommandHandler(events, { snapshots, onSnapshotError: (_error, stream) => errors.push(stream) });
    expect(await handler.getAccount("acc")).toEqual(real);
    expect(errors).toEqual([STREAM]);
  });

  it("never replaces a snapshot with an older one", async () => {
    await snapshots.write({ stream: STREAM, revision: 20n, version: 1, state: "{}" });
    await snapshots.write({ stream: STREAM, revision: 10n, version: 1, state: '{"old":true}' });
    expect(await snapshots.read(STREAM)).toEqual({ stream: STREAM, revision: 20n, version: 1, state: "{}" });
    expect(await snapshots.read(accountStream("other"))).toBeUndefined();
  });
});

describe("account snapshots (EventStoreDB, through the gRPC double)", () => {
  it("keeps the latest snapshot in its own stream with $maxCount 1", async () => {
    const esdb = await startEsdbDouble();
    const store = EsdbSnapshotStore.fromConnectionString(esdb.connectionString);
    try {
      expect(await store.read(STREAM)).toBeUndefined();
      await store.write({ stream: STREAM, revision: 100n, version: 1, state: '{"account":{"balance":"5"}}' });
      await store.write({ stream: STREAM, revision: 200n, version: 1, state: '{"account":{"balance":"7"}}' });
      expect(await store.read(STREAM)).toEqual({ stream: STREAM, revision: 200n, version: 1, state: '{"account":{"balance":"7"}}' });
      const written = esdb.events.map((event) => ({ stream: event.stream, type: event.type }));
      expect(written).toContainEqual({ stream: `$$snapshot-${STREAM}`, type: "$metadata" });
      const metadata = esdb.events.find((event) => event.stream === `$$snapshot-${STREAM}`)!;
      expect(JSON.parse(Buffer.from(metadata.data).toString("utf8"))).toMatchObject({ $maxCount: 1 });
    } finally {
      await store.close();
      await esdb.stop();
    }
  });
});
