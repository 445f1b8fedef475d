/**
 * Snapshot versions: release 0.1.0's snapshots (version 1) are upcast and
 * used; a snapshot that cannot be upcast, or of a newer version, is ignored
 * and the stream replayed; never misread.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AccountCommandHandler } from "../../server/src/app/account-command-handler.js";
import { decodeEvent } from "../../server/src/app/event-codec.js";
import { ACCOUNT_SNAPSHOT_VERSION, decodeStoredSnapshot, encodeSnapshot } from "../../server/src/app/loaded-account.js";
import { evolveAll, initialState } from "../../server/src/domain/account.js";
import type { EventStore, ReadStreamOptions } from "../../server/src/store/event-store.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { SqliteSnapshotStore } from "../../server/src/store/sqlite-snapshot-store.js";

const fixture = (path: string) => new URL(`../fixtures/0.1.0/${path}`, import.meta.url);

function recordingReads(store: EventStore): { store: EventStore; readsFrom: unknown[] } {
  const readsFrom: unknown[] = [];
  const wrapped = Object.create(store) as EventStore;
  wrapped.readStream = (stream: string, options?: ReadStreamOptions) => {
    readsFrom.push(options?.fromRevision);
    return store.readStream(stream, options);
  };
  return { store: wrapped, readsFrom };
}

describe("snapshots of release 0.1.0 (SQLite fixture)", () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-snapshot-versions-"));
    path = join(dir, "eventbank.sqlite");
    copyFileSync(fixture("sqlite/eventbank.sqlite"), path);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A cold load of `accountId` with snapshots, where it started reading the stream, and a full replay for comparison. */
  async function coldLoad(accountId: string) {
    const events = new SqliteEventStore(path);
    const snapshots = new SqliteSnapshotStore(path);
    try {
      const replayed = await new AccountCommandHandler(events).getAccount(accountId);
      const { store, readsFrom } = recordingReads(events);
      const errors: unknown[] = [];
      const loaded = await new AccountCommandHandler(store, { snapshots, onSnapshotError: (error) => errors.push(error) }).getAccount(accountId);
      return { loaded, replayed, readsFrom, errors };
    } finally {
      await snapshots.close();
      await events.close();
    }
  }

  it("holds version 1 snapshots", async () => {
    const snapshots = new SqliteSnapshotStore(path);
    const alice = await snapshots.read("account-alice");
    await snapshots.close();
    expect(alice).toMatchObject({ version: 1, revision: 5n });
  });

  it("upcasts a version 1 snapshot and loads from it: the same account as a full replay", async () => {
    const { loaded, replayed, readsFrom, errors } = await coldLoad("alice");
    expect(readsFrom).toEqual([6n]);
    expect(errors).toEqual([]);
    expect(loaded).toEqual(replayed);
    expect(loaded).toMatchObject({ revision: 6n, account: { accountId: "alice", status: "closed", balance: 0n } });
  });

  it("ignores a version 1 snapshot it cannot upcast (another account's) and replays", async () => {
    const snapshots = new SqliteSnapshotStore(path);
    const stored = (await snapshots.read("account-alice"))!;
    const json = JSON.parse(stored.state) as { account: { accountId: string; balance: string } };
    json.account.accountId = "mallory";
    json.account.balance = "999";
    await snapshots.write({ ...stored, state: JSON.stringify(json) });
    await snapshots.close();
    const { loaded, replayed, readsFrom, errors } = await coldLoad("alice");
    expect(readsFrom[0]).toBe(0n);
    expect(errors).toEqual([]);
    expect(loaded).toEqual(replayed);
  });

  it("ignores a snapshot of a newer version, even one that looks readable, and replays", async () => {
    const snapshots = new SqliteSnapshotStore(path);
    const stored = (await snapshots.read("account-bob"))!;
    const json = JSON.parse(stored.state) as { account: { accountId?: string; balance: string } };
    delete json.account.accountId;
    json.account.balance = "999";
    await snapshots.write({ ...stored, version: ACCOUNT_SNAPSHOT_VERSION + 1, state: JSON.stringify(json) });
    await snapshots.close();
    const { loaded, replayed, readsFrom } = await coldLoad("bob");
    expect(readsFrom[0]).toBe(0n);
    expect(loaded).toEqual(replayed);
    expect(loaded.account.balance).toBe(387n);
  });
});

describe("snapshot decoding", () => {
  it("decodes every EventStoreDB snapshot of release 0.1.0 to the state its events fold to", () => {
    const stored = JSON.parse(readFileSync(fixture("esdb-events.json"), "utf8")) as Array<{ stream: string; revision: string; type: string; data: string; metadata: string }>;
    const snapshots = stored.filter((event) => event.type === "Snapshot");
    expect(snapshots.length).toBeGreaterThan(0);
    for (const snapshot of snapshots) {
      const { revision, version, state } = JSON.parse(snapshot.data) as { revision: string; version: number; state: unknown };
      const stream = snapshot.stream.slice("snapshot-".length);
      const decoded = decodeStoredSnapshot({ stream, revision: BigInt(revision), version, state: JSON.stringify(state) }, 1_000);
      const events = stored
        .filter((event) => event.stream === stream && BigInt(event.revision) <= BigInt(revision))
        .map((event) => decodeEvent({ stream, revision: BigInt(event.revision), type: event.type, data: JSON.parse(event.data), metadata: JSON.parse(event.metadata) }));
      expect(version).toBe(1);
      expect(decoded?.state, snapshot.stream).toEqual(evolveAll(initialState, events));
      expect([...decoded!.recentCommands.entries()].map(([id, outcome]) => [id, outcome.revision])).toEqual(
        stored
          .filter((event) => event.stream === stream && BigInt(event.revision) <= BigInt(revision))
          .map((event) => [(JSON.parse(event.metadata) as { commandId: string }).commandId, BigInt(event.revision)])
          .slice(-5),
      );
    }
  });

  it("writes the current version without the account id, and reads it back", () => {
    const loaded = {
      state: { status: "open" as const, accountId: "zoe", owner: "Zoe", currency: "EUR", balance: 12n, holds: { t1: 5n } },
      revision: 3n,
      recentCommands: new Map([
        ["c1", { revision: 2n, outcome: { balance: 12n, status: "open" as const, holds: {} }, fingerprint: '["MoneyDeposited","12"]' }],
        ["t1", { revision: 3n, outcome: { balance: 12n, status: "open" as const, holds: { t1: 5n } }, fingerprint: '["FundsReserved","t1","5"]' }],
      ]),
      snapshotRevision: 3n,
    };
    const state = encodeSnapshot(loaded);
    expect(JSON.parse(state).account).not.toHaveProperty("accountId");
    expect(decodeStoredSnapshot({ stream: "account-zoe", revision: 3n, version: ACCOUNT_SNAPSHOT_VERSION, state }, 1_000)).toEqual(loaded);
    for (const version of [0, ACCOUNT_SNAPSHOT_VERSION + 1, 1.5]) {
      expect(decodeStoredSnapshot({ stream: "account-zoe", revision: 3n, version, state }, 1_000)).toBeUndefined();
    }
  });
});
