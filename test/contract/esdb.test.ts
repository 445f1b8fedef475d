/**
 * The store contract against the EventStoreDB adapter: always through the
 * gRPC double (test/support/esdb-double), once as a current server
 * (appends through BatchAppend) and once as a server without ServerFeatures
 * (plain Append); and also against a real EventStoreDB when
 * EVENTSTORE_CONNECTION_STRING is set. The suite uses unique stream names,
 * so a persistent real store is fine.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEsdbEventStore } from "../../server/src/store/esdb-event-store.js";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { testCertificates, type TestCertificates } from "../support/esdb-double/tls.js";
import { describeEventStoreContract, event } from "./event-store-contract.js";

let current: EsdbDouble;
let legacy: EsdbDouble;
let secure: EsdbDouble;
let tls: TestCertificates;
beforeAll(async () => {
  tls = testCertificates();
  [current, legacy, secure] = await Promise.all([
    startEsdbDouble(),
    startEsdbDouble({ batchAppend: false }),
    startEsdbDouble({ secure: tls, users: { eventbank: { password: "s3cret", groups: ["$ops"] } } }),
  ]);
});
afterAll(async () => {
  await Promise.all([current?.stop(), legacy?.stop(), secure?.stop()]);
  tls?.remove();
});

describeEventStoreContract("esdb (gRPC double, BatchAppend)", async () => {
  const store = createEsdbEventStore(current.connectionString);
  return { store, cleanup: () => store.close() };
});

describeEventStoreContract("esdb (gRPC double, plain Append)", async () => {
  const store = createEsdbEventStore(legacy.connectionString);
  return { store, cleanup: () => store.close() };
});

// As production runs it: TLS (a CA the test made) and a user in $ops, not admin.
describeEventStoreContract("esdb (secure gRPC double: TLS, credentials)", async () => {
  const store = createEsdbEventStore(secure.connectionStringFor({ username: "eventbank", password: "s3cret" }));
  return { store, cleanup: () => store.close() };
});

describe("EventStoreDB adapter on the wire", () => {
  it("sends the caller's event ids, JSON data and metadata, and an explicit expected revision", async () => {
    const store = createEsdbEventStore(current.connectionString);
    try {
      const stream = `wire-${randomUUID()}`;
      const sent = event("Wired", { amount: "5" });
      await store.append(stream, [sent], "no_stream");
      const stored = current.events.find((e) => e.stream === stream);
      expect(stored).toMatchObject({ id: sent.id, type: "Wired", revision: 0n, contentType: "application/json" });
      expect(JSON.parse(Buffer.from(stored!.data).toString("utf8"))).toEqual({ amount: "5" });
      expect(JSON.parse(Buffer.from(stored!.metadata).toString("utf8"))).toMatchObject(sent.metadata);
      // An explicit expectation, not the client's default "any": a second no_stream append conflicts.
      await expect(store.append(stream, [event("Again")], "no_stream")).rejects.toMatchObject({ actual: 0n });
    } finally {
      await store.close();
    }
  });

  it("releases the server-side subscription when closed", async () => {
    const store = createEsdbEventStore(current.connectionString);
    try {
      const before = current.activeSubscriptions();
      const subscription = store.subscribeToStream(`idle-${randomUUID()}`);
      const iterator = subscription[Symbol.asyncIterator]();
      expect((await iterator.next()).value).toEqual({ type: "caught_up" });
      expect(current.activeSubscriptions()).toBe(before + 1);
      await subscription.close();
      for (let i = 0; i < 100 && current.activeSubscriptions() !== before; i++) await new Promise((r) => setTimeout(r, 20));
      expect(current.activeSubscriptions()).toBe(before);
    } finally {
      await store.close();
    }
  });
});

const real = process.env.EVENTSTORE_CONNECTION_STRING;
if (real) {
  describeEventStoreContract(`esdb (${real.replace(/\/\/[^@/]*@/, "//***@")})`, async () => {
    const store = createEsdbEventStore(real);
    return { store, cleanup: () => store.close() };
  });
}
