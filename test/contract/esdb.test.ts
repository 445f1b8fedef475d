/**
 * The store contract against the EventStoreDB adapter: always through the
 * gRPC double (test/support/esdb-double), once as a current server
 * (appends through BatchAppend) and once as a server without ServerFeatures
 * (plain Append); and also against a real EventStoreDB when
 * EVENTSTORE_CONNECTION_STRING is set. The suite uses unique stream names,
 * so a persistent real store is fine.
 */
import { afterAll, beforeAll } from "vitest";
import { createEsdbEventStore } from "../../server/src/store/esdb-event-store.js";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { describeEventStoreContract } from "./event-store-contract.js";

let current: EsdbDouble;
let legacy: EsdbDouble;
beforeAll(async () => {
  [current, legacy] = await Promise.all([startEsdbDouble(), startEsdbDouble({ batchAppend: false })]);
});
afterAll(async () => {
  await Promise.all([current?.stop(), legacy?.stop()]);
});

describeEventStoreContract("esdb (gRPC double, BatchAppend)", async () => {
  const store = createEsdbEventStore(current.connectionString);
  return { store, cleanup: () => store.close() };
});

describeEventStoreContract("esdb (gRPC double, plain Append)", async () => {
  const store = createEsdbEventStore(legacy.connectionString);
  return { store, cleanup: () => store.close() };
});

const real = process.env.EVENTSTORE_CONNECTION_STRING;
if (real) {
  describeEventStoreContract(`esdb (${real.replace(/\/\/[^@/]*@/, "//***@")})`, async () => {
    const store = createEsdbEventStore(real);
    return { store, cleanup: () => store.close() };
  });
}
