/**
 * The end-to-end suite with EVENTBANK_STORE=esdb: against the EventStoreDB
 * gRPC double always, and against a real EventStoreDB when
 * EVENTSTORE_CONNECTION_STRING is set (`docker compose up -d eventstore`).
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountServiceClient, SubscribeAccountResponse } from "../../client/src/gen/bank/v1/account_service.js";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { call, connect, decodeError, rejection } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeAccountServiceE2E, readMessages, waitFor } from "./account-service-suite.js";

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

describe("AccountService while EventStoreDB goes away (gRPC double)", () => {
  let outage: EsdbDouble;
  let server: TestServer;
  let client: AccountServiceClient;
  beforeAll(async () => {
    outage = await startEsdbDouble();
    server = await startTestServer({
      env: {
        EVENTBANK_STORE: "esdb",
        EVENTSTORE_CONNECTION_STRING: outage.connectionString,
        EVENTBANK_ESDB_RESUBSCRIBE_TIMEOUT_MS: "1500",
      },
    });
    client = connect(server.address);
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
    await outage?.stop();
  });

  it("answers UNAVAILABLE while the store is gone, stays up, and recovers when it returns", async () => {
    await call(client, client.openAccount, { accountId: "outage", owner: "Ada", currency: "EUR", commandId: "open" });
    await outage.pause();
    const error = await rejection(call(client, client.deposit, { accountId: "outage", amount: 5n, commandId: "d1" }));
    expect(error).toMatchObject({ code: status.UNAVAILABLE, reason: "STORE_UNAVAILABLE" });
    expect(await rejection(call(client, client.getAccount, { accountId: "outage" }))).toMatchObject({ code: status.UNAVAILABLE });
    await outage.resume();
    // The same command id again: applied once.
    await call(client, client.deposit, { accountId: "outage", amount: 5n, commandId: "d1" });
    await call(client, client.deposit, { accountId: "outage", amount: 5n, commandId: "d1" });
    const { account } = await call(client, client.getAccount, { accountId: "outage" });
    expect(account).toMatchObject({ balance: 5n, revision: 1n });
  });

  it("ends a subscription with UNAVAILABLE once the store stays away past the resubscribe limit", async () => {
    await call(client, client.openAccount, { accountId: "outage-sub", owner: "Ada", currency: "EUR", commandId: "open" });
    const stream = client.subscribeAccount({ accountId: "outage-sub" });
    const messages = readMessages<SubscribeAccountResponse>(stream);
    await messages.next();
    expect((await messages.next()).message?.$case).toBe("caughtUp");
    await outage.pause();
    outage.dropSubscriptions();
    const ended = await messages.next(10_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(decodeError(ended)).toMatchObject({ code: status.UNAVAILABLE, reason: "STORE_UNAVAILABLE" });
    await outage.resume();
    await waitFor(() => server.eventbank.server.openStreams() === 0);
  });
});

describe("snapshots on EventStoreDB (gRPC double)", () => {
  it("writes them through the server and loads from them after a restart", async () => {
    const store = await startEsdbDouble();
    const env = { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: store.connectionString, EVENTBANK_SNAPSHOT_EVERY: "5" };
    const first = await startTestServer({ env });
    try {
      const client = connect(first.address);
      await call(client, client.openAccount, { accountId: "snap", owner: "Ada", currency: "EUR", commandId: "open" });
      for (let i = 1; i <= 6; i++) await call(client, client.deposit, { accountId: "snap", amount: 10n, commandId: `d${i}` });
      client.close();
      await waitFor(() => store.events.some((e) => e.stream === "snapshot-account-snap"));
      expect(first.logs.filter((line) => line.level === 40 && String(line.msg).startsWith("snapshot"))).toEqual([]);
    } finally {
      await first.stop();
    }
    const second = await startTestServer({ env });
    try {
      const client = connect(second.address);
      const { account } = await call(client, client.getAccount, { accountId: "snap" });
      expect(account).toMatchObject({ balance: 60n, revision: 6n });
      // The window came back with the snapshot: a repeated command id is still recognised.
      const again = await call(client, client.deposit, { accountId: "snap", amount: 10n, commandId: "d2" });
      expect(again.revision).toBe(2n);
      client.close();
      expect(second.logs.filter((line) => line.level === 40 && String(line.msg).startsWith("snapshot"))).toEqual([]);
    } finally {
      await second.stop();
      await store.stop();
    }
  });
});
