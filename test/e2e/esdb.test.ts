/**
 * The end-to-end suite with EVENTBANK_STORE=esdb: against the EventStoreDB
 * gRPC double always, and against a real EventStoreDB when
 * EVENTSTORE_CONNECTION_STRING is set (`docker compose up -d eventstore`).
 */
import { afterAll, beforeAll } from "vitest";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { describeAccountServiceE2E } from "./account-service-suite.js";

let double: EsdbDouble;
beforeAll(async () => {
  double = await startEsdbDouble();
});
afterAll(async () => {
  await double?.stop();
});

describeAccountServiceE2E("esdb, gRPC double", async () => ({
  env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: double.connectionString },
}));

const real = process.env.EVENTSTORE_CONNECTION_STRING;
if (real) {
  describeAccountServiceE2E("esdb, real EventStoreDB", async () => ({
    env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: real },
  }));
}
