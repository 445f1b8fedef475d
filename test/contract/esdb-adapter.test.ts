/**
 * The EsdbEventStore adapter against what a real EventStoreDB does and the
 * double now models: slow writes with an unknown outcome, access denied,
 * tombstoned streams, the append size limit, the start-up probe on a secure
 * node, and `$all` full of system and foreign streams.
 */
import { EventStoreDBClient } from "@eventstore/db-client";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEsdbEventStore, type EsdbEventStore } from "../../server/src/store/esdb-event-store.js";
import { StoreUnavailableError } from "../../server/src/store/event-store.js";
import {
  AppendOutcomeUnknownError,
  AppendTooLargeError,
  StoreAccessDeniedError,
  StoreStreamDeletedError,
} from "../../server/src/store/store-errors.js";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { testCertificates, type TestCertificates } from "../support/esdb-double/tls.js";
import { event } from "./event-store-contract.js";

const rejection = (work: Promise<unknown>) => work.then(() => expect.unreachable("should have failed"), (error: unknown) => error);

describe.each([true, false])("EsdbEventStore on the double (BatchAppend: %s)", (batchAppend) => {
  let esdb: EsdbDouble;
  let store: EsdbEventStore;
  let admin: EventStoreDBClient;
  beforeAll(async () => {
    esdb = await startEsdbDouble({ batchAppend, writeTimeoutMs: 100 });
    store = createEsdbEventStore(esdb.connectionString);
    admin = EventStoreDBClient.connectionString(esdb.connectionString);
  });
  afterAll(async () => {
    await store?.close();
    await admin?.dispose();
    await esdb?.stop();
  });

  it.each(["written", "lost"] as const)("reports a timed-out append as an unknown outcome (the write was %s), never as failed", async (lateWrites) => {
    const stream = `unknown-${randomUUID()}`;
    const sent = event("Deposited");
    esdb.commitDelay({ ms: 250, lateWrites });
    try {
      const error = await rejection(store.append(stream, [sent], "no_stream"));
      expect(error).toBeInstanceOf(AppendOutcomeUnknownError);
      expect(error).toBeInstanceOf(StoreUnavailableError);
    } finally {
      esdb.commitDelay(undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Reading back is how the outcome becomes known; re-sending the same event is idempotent either way.
    const read = await store.readStream(stream);
    expect(read.status === "ok" ? read.events.map((e) => e.id) : []).toEqual(lateWrites === "written" ? [sent.id] : []);
    const retried = await store.append(stream, [sent], "no_stream");
    expect(retried.nextExpectedRevision).toBe(0n);
    expect(esdb.events.filter((e) => e.stream === stream)).toHaveLength(1);
  });

  it("turns a tombstoned stream into StoreStreamDeletedError on append, read and subscribe", async () => {
    const stream = `gone-${randomUUID()}`;
    await store.append(stream, [event("Opened")], "no_stream");
    await admin.tombstoneStream(stream);
    expect(await rejection(store.append(stream, [event("Deposited")], 0n))).toBeInstanceOf(StoreStreamDeletedError);
    expect(await rejection(store.readStream(stream))).toBeInstanceOf(StoreStreamDeletedError);
    const iterator = store.subscribeToStream(stream)[Symbol.asyncIterator]();
    expect(await rejection(iterator.next())).toBeInstanceOf(StoreStreamDeletedError);
  });

  it("turns an append over the store's size limit into AppendTooLargeError and writes nothing", async () => {
    const stream = `large-${randomUUID()}`;
    const events = Array.from({ length: 3 }, () => event("Big", { pad: "x".repeat(400_000) }));
    const error = await rejection(store.append(stream, events, "no_stream"));
    expect(error).toMatchObject({ name: "AppendTooLargeError", maxAppendSize: 1_048_576 });
    expect(error).toBeInstanceOf(AppendTooLargeError);
    expect(esdb.events.some((e) => e.stream === stream)).toBe(false);
  });

  it("filters $all to the prefix across system and foreign streams, and resumes by position after a drop", async () => {
    const prefix = `acct${randomUUID().slice(0, 8)}-`;
    const subscription = store.subscribeToAll({ streamPrefix: prefix });
    const iterator = subscription[Symbol.asyncIterator]();
    const next = async () => (await iterator.next()).value;
    expect(await next()).toEqual({ type: "caught_up" });
    const written: string[] = [];
    for (let i = 0; i < 6; i++) {
      esdb.writeBackgroundEvents();
      const sent = event("Deposited");
      await store.append(`${prefix}${i % 2}`, [sent], "any");
      written.push(sent.id);
      if (i === 2) esdb.dropSubscriptions();
    }
    const received = [];
    for (let i = 0; i < written.length; i++) received.push((await next()).event);
    await subscription.close();
    expect(received.map((e: { id: string }) => e.id)).toEqual(written);
    expect(received.every((e: { stream: string }) => e.stream.startsWith(prefix))).toBe(true);
  });
});

describe("EsdbEventStore on a secure double (TLS, credentials)", () => {
  let tls: TestCertificates;
  let esdb: EsdbDouble;
  beforeAll(async () => {
    tls = testCertificates();
    esdb = await startEsdbDouble({ secure: tls, users: { app: { password: "app-secret" }, reader: { password: "r", groups: ["$ops"] } } });
  });
  afterAll(async () => {
    await esdb?.stop();
    tls?.remove();
  });
  const storeAs = (username: string, password: string) => createEsdbEventStore(esdb.connectionStringFor({ username, password }));

  it("probes cleanly as admin and as ops", async () => {
    for (const [user, password] of [["admin", "changeit"], ["ops", "changeit"]] as const) {
      const store = storeAs(user, password);
      try {
        await store.probe();
      } finally {
        await store.close();
      }
    }
  });

  it("says plainly when the configured user cannot read $all", async () => {
    const store = storeAs("app", "app-secret");
    try {
      const error = await rejection(store.probe());
      expect(error).toBeInstanceOf(StoreAccessDeniedError);
      expect((error as Error).message).toMatch(/may not read \$all.*\$admins or \$ops/);
    } finally {
      await store.close();
    }
  });

  it("says plainly when the configured user cannot write account streams, and writes nothing", async () => {
    const admin = EventStoreDBClient.connectionString(esdb.connectionString);
    await admin.setStreamMetadata("account-$eventbank-probe", { acl: { writeRoles: ["$admins"] } });
    await admin.dispose();
    const store = storeAs("reader", "r");
    try {
      const error = await rejection(store.probe());
      expect((error as Error).message).toMatch(/may not write account streams/);
      expect(esdb.events.some((e) => e.stream === "account-$eventbank-probe")).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("turns access denied at run time into StoreAccessDeniedError", async () => {
    const store = storeAs("app", "app-secret");
    try {
      const stream = `account-${randomUUID()}`;
      await store.append(stream, [event("Opened")], "no_stream");
      const admin = EventStoreDBClient.connectionString(esdb.connectionString);
      await admin.setStreamMetadata(stream, { acl: { writeRoles: ["$admins"], readRoles: ["$admins"] } });
      await admin.dispose();
      expect(await rejection(store.append(stream, [event("Deposited")], 0n))).toBeInstanceOf(StoreAccessDeniedError);
      expect(await rejection(store.readStream(stream))).toBeInstanceOf(StoreAccessDeniedError);
      const iterator = store.subscribeToAll({ streamPrefix: "account-" })[Symbol.asyncIterator]();
      expect(await rejection(iterator.next())).toBeInstanceOf(StoreAccessDeniedError);
    } finally {
      await store.close();
    }
  });
});
