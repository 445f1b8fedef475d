/**
 * The event codec: every version ever written decodes to the current domain
 * event, old and new streams fold to the same state, and what this release
 * does not know is an UnknownEventError, reported once per event.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeEvent, encodeEventData, eventSchemaVersion, type StoredEvent } from "../../server/src/app/event-codec.js";
import { EVENT_SCHEMAS, type EventSchema } from "../../server/src/app/event-schemas.js";
import { onUnknownEvent, UnknownEventError } from "../../server/src/app/unknown-events.js";
import { evolveAll, initialState, type AccountEvent, type AccountEventType } from "../../server/src/domain/account.js";

interface FixtureEvent {
  stream: string;
  revision: string;
  type: string;
  data: string;
  metadata: string;
}

/** Release 0.1.0's EventStoreDB events of one account stream, as stored (no schema versions). */
function release010Stream(accountId: string): StoredEvent[] {
  const events = JSON.parse(readFileSync(new URL("../fixtures/0.1.0/esdb-events.json", import.meta.url), "utf8")) as FixtureEvent[];
  return events
    .filter((event) => event.stream === `account-${accountId}`)
    .map((event) => ({ stream: event.stream, revision: BigInt(event.revision), type: event.type, data: JSON.parse(event.data), metadata: JSON.parse(event.metadata) }));
}

/** The same events as this release's code stores them at `version` of each type (the newest when absent). */
function restored(stream: StoredEvent[], version: (type: AccountEventType) => number): StoredEvent[] {
  return stream.map((stored) => {
    const event = decodeEvent(stored);
    const schema = EVENT_SCHEMAS[event.type] as unknown as EventSchema<AccountEvent>;
    const v = version(event.type);
    return { ...stored, data: schema.encode[v]!(event), metadata: { ...stored.metadata, schemaVersion: v } };
  });
}

const newest = (type: AccountEventType) => EVENT_SCHEMAS[type].current;

describe("event codec", () => {
  it("decodes release 0.1.0's events (no schemaVersion: version 1) to what that release folded", () => {
    const alice = release010Stream("alice");
    expect(alice.every((event) => event.metadata?.schemaVersion === undefined)).toBe(true);
    expect(evolveAll(initialState, alice.map(decodeEvent))).toEqual({
      status: "closed",
      accountId: "alice",
      owner: "Alice Liddell",
      currency: "EUR",
      balance: 0n,
      holds: {},
    });
  });

  it("AccountOpened v1 (0.1.0) and v2 streams fold to the same state, event by event", () => {
    for (const id of ["alice", "bob", "carol"]) {
      const v1 = release010Stream(id);
      const v2 = restored(v1, newest);
      expect(v2[0]!.metadata?.schemaVersion).toBe(2);
      expect(v2[0]!.data).not.toHaveProperty("accountId");
      for (let n = 1; n <= v1.length; n++) {
        expect(evolveAll(initialState, v2.slice(0, n).map(decodeEvent))).toEqual(evolveAll(initialState, v1.slice(0, n).map(decodeEvent)));
      }
    }
  });

  it("v1 AccountOpened upcasts to v2's data", () => {
    const [opened] = release010Stream("bob");
    expect(EVENT_SCHEMAS.AccountOpened.upcast[1]!(opened!.data, { stream: "account-bob", revision: 0n, accountId: "bob" })).toEqual({
      owner: "Bob Builder",
      currency: "USD",
    });
  });

  it("has, for every event type, an upcaster below the newest version, an encoder for the version written, and encoders that decode back", () => {
    const samples: AccountEvent[] = [
      { type: "AccountOpened", data: { accountId: "a-1", owner: "Ada", currency: "EUR" } },
      { type: "MoneyDeposited", data: { amount: 1_000_000_000_000n } },
      { type: "MoneyWithdrawn", data: { amount: 1n } },
      { type: "AccountClosed", data: {} },
      {
        type: "CommandRejected",
        data: { command: { type: "Withdraw", amount: 7n }, reason: "INSUFFICIENT_FUNDS", details: { account_id: "a-1", balance: "5", amount: "7" } },
      },
      { type: "CommandRejected", data: { command: { type: "CloseAccount" }, reason: "BALANCE_NOT_ZERO", details: { account_id: "a-1", balance: "5" } } },
      {
        type: "CommandRejected",
        data: { command: { type: "ReserveFunds", transferId: "t-1", amount: 9n }, reason: "INSUFFICIENT_FUNDS", details: { account_id: "a-1", balance: "5", amount: "9" } },
      },
      {
        type: "CommandRejected",
        data: {
          command: { type: "CreditTransfer", transferId: "t-2", amount: 9n, fromAccountId: "b-1", currency: "EUR" },
          reason: "BALANCE_LIMIT_EXCEEDED",
          details: { account_id: "a-1", balance: "5", amount: "9" },
        },
      },
      { type: "FundsReserved", data: { transferId: "t-1", amount: 3n } },
      { type: "TransferCredited", data: { transferId: "t-1", amount: 3n, fromAccountId: "b-1" } },
      { type: "HoldCaptured", data: { transferId: "t-1", amount: 3n } },
      { type: "HoldReleased", data: { transferId: "t-1", amount: 3n } },
    ];
    expect([...new Set(samples.map((event) => event.type))].sort()).toEqual(Object.keys(EVENT_SCHEMAS).sort());
    for (const event of samples) {
      const schema = EVENT_SCHEMAS[event.type] as unknown as EventSchema<AccountEvent>;
      for (let v = 1; v < schema.current; v++) expect(schema.upcast[v], `${event.type} upcast ${v}`).toBeTypeOf("function");
      expect(schema.written).toBeLessThanOrEqual(schema.current);
      expect(eventSchemaVersion(event.type)).toBe(schema.written);
      for (const [version, encode] of Object.entries(schema.encode)) {
        const stored = { stream: "account-a-1", revision: 0n, type: event.type, data: encode(event), metadata: { schemaVersion: Number(version) } };
        expect(decodeEvent(stored), `${event.type} v${version}`).toEqual(event);
      }
      expect(decodeEvent({ stream: "account-a-1", revision: 0n, type: event.type, data: encodeEventData(event), metadata: { schemaVersion: schema.written } })).toEqual(event);
    }
  });

  it("refuses an event type or version it does not know with UnknownEventError", () => {
    const at = { stream: "account-zed", revision: 4n };
    const unknown = (stored: StoredEvent) => {
      try {
        decodeEvent(stored);
      } catch (error) {
        return error;
      }
      throw new Error("decoded");
    };
    const newerType = unknown({ ...at, type: "MoneyFrozen", data: {}, metadata: { schemaVersion: 1 } });
    expect(newerType).toBeInstanceOf(UnknownEventError);
    expect((newerType as UnknownEventError).metadata).toEqual({ account_id: "zed", event_type: "MoneyFrozen", schema_version: "1", revision: "4" });
    expect(unknown({ ...at, type: "toString", data: {} })).toBeInstanceOf(UnknownEventError);
    const newerVersion = unknown({ ...at, type: "MoneyDeposited", data: { amount: "5" }, metadata: { schemaVersion: 2 } });
    expect(newerVersion).toBeInstanceOf(UnknownEventError);
    expect((newerVersion as UnknownEventError).knownVersion).toBe(1);
    for (const schemaVersion of [0, 1.5, "1", null]) {
      expect(unknown({ ...at, type: "MoneyDeposited", data: { amount: "5" }, metadata: { schemaVersion } as never })).toBeInstanceOf(UnknownEventError);
    }
  });

  it("reports each unknown event once per listener", () => {
    const heard: string[] = [];
    const stop = onUnknownEvent((error) => heard.push(`${error.stream}@${error.revision}`));
    try {
      for (const revision of [1n, 1n, 2n, 1n]) {
        expect(() => decodeEvent({ stream: "account-once", revision, type: "Frozen", data: {} })).toThrow(UnknownEventError);
      }
    } finally {
      stop();
    }
    expect(() => decodeEvent({ stream: "account-once", revision: 3n, type: "Frozen", data: {} })).toThrow(UnknownEventError);
    expect(heard).toEqual(["account-once@1", "account-once@2"]);
  });
});
