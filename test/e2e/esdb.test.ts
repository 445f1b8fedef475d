/**
 * The end-to-end suite with EVENTBANK_STORE=esdb: against the EventStoreDB
 * gRPC double always, and against a real EventStoreDB when
 * EVENTSTORE_CONNECTION_STRING is set (`docker compose up -d eventstore`).
 */
import { EventStoreDBClient } from "@eventstore/db-client";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountServiceClient, SubscribeAccountResponse } from "../../client/src/gen/bank/v1/account_service.js";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { testCertificates, type TestCertificates } from "../support/esdb-double/tls.js";
import { healthClient } from "../support/health-client.js";
import { call, connect, decodeError, rejection } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeAccountServiceE2E, readMessages, waitFor } from "./account-service-suite.js";

let double: EsdbDouble;
let tls: TestCertificates;
let secure: EsdbDouble;
beforeAll(async () => {
  tls = testCertificates();
  [double, secure] = await Promise.all([startEsdbDouble(), startEsdbDouble({ secure: tls })]);
});
afterAll(async () => {
  await Promise.all([double?.stop(), secure?.stop()]);
  tls?.remove();
});

describeAccountServiceE2E("esdb, gRPC double", async () => ({
  env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: double.connectionString },
}));

// As production runs it: TLS with a CA of its own, and credentials in the connection string.
describeAccountServiceE2E("esdb, secure gRPC double (TLS, admin credentials)", async () => ({
  env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: secure.connectionString },
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

describe("what a real EventStoreDB does to the server at run time (gRPC double)", () => {
  let esdb: EsdbDouble;
  let server: TestServer;
  let client: AccountServiceClient;
  beforeAll(async () => {
    esdb = await startEsdbDouble({ writeTimeoutMs: 100 });
    server = await startTestServer({ env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: esdb.connectionString } });
    client = connect(server.address);
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
    await esdb?.stop();
  });

  it.each(["written", "lost"] as const)(
    "answers a write the store did not confirm with STORE_OUTCOME_UNKNOWN; the retry reads back and applies it exactly once (write %s)",
    async (lateWrites) => {
      const accountId = `slow-${lateWrites}`;
      await call(client, client.openAccount, { accountId, owner: "Ada", currency: "EUR", commandId: "open" });
      esdb.commitDelay({ ms: 250, lateWrites });
      try {
        const error = await rejection(call(client, client.deposit, { accountId, amount: 7n, commandId: "d1" }));
        expect(error).toMatchObject({ code: status.UNAVAILABLE, reason: "STORE_OUTCOME_UNKNOWN" });
      } finally {
        esdb.commitDelay(undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      const retried = await call(client, client.deposit, { accountId, amount: 7n, commandId: "d1" });
      expect(retried).toMatchObject({ revision: 1n, account: { balance: 7n } });
      const { account } = await call(client, client.getAccount, { accountId });
      expect(account).toMatchObject({ balance: 7n, revision: 1n });
      expect(esdb.events.filter((e) => e.stream === `account-${accountId}`)).toHaveLength(2);
    },
  );

  it("answers FAILED_PRECONDITION / STREAM_DELETED for an account whose stream was tombstoned", async () => {
    await call(client, client.openAccount, { accountId: "tomb", owner: "Ada", currency: "EUR", commandId: "open" });
    const admin = EventStoreDBClient.connectionString(esdb.connectionString);
    await admin.tombstoneStream("account-tomb");
    await admin.dispose();
    expect(await rejection(call(client, client.deposit, { accountId: "tomb", amount: 1n, commandId: "d1" }))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      reason: "STREAM_DELETED",
    });
    expect(await rejection(call(client, client.getAccount, { accountId: "tomb" }))).toMatchObject({ reason: "STREAM_DELETED" });
  });
});

describe("a server whose EventStoreDB user lacks permissions (secure gRPC double)", () => {
  it("reports NOT_SERVING and says why when the user cannot read $all; access denied at run time is STORE_ACCESS_DENIED", async () => {
    const certificates = testCertificates();
    const esdb = await startEsdbDouble({ secure: certificates, users: { app: { password: "app-secret" } } });
    const server = await startTestServer({
      env: {
        EVENTBANK_STORE: "esdb",
        EVENTSTORE_CONNECTION_STRING: esdb.connectionStringFor({ username: "app", password: "app-secret" }),
        EVENTBANK_HEALTH_PROBE_INTERVAL_MS: "50",
      },
    });
    const health = healthClient(server.address);
    const client = connect(server.address);
    try {
      let serving = await health.check("bank.v1.AccountService");
      for (let i = 0; i < 100 && serving !== "NOT_SERVING"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        serving = await health.check("bank.v1.AccountService");
      }
      expect(serving).toBe("NOT_SERVING");
      const warning = server.logs.find((line) => String((line.err as { message?: string } | undefined)?.message).includes("may not read $all"));
      expect(warning).toBeDefined();
      // Writes to its own streams still work; a stream it may not write is a clear refusal, not INTERNAL.
      await call(client, client.openAccount, { accountId: "acl", owner: "Ada", currency: "EUR", commandId: "open" });
      const admin = EventStoreDBClient.connectionString(esdb.connectionString);
      await admin.setStreamMetadata("account-acl", { acl: { writeRoles: ["$admins"] } });
      await admin.dispose();
      expect(await rejection(call(client, client.deposit, { accountId: "acl", amount: 1n, commandId: "d1" }))).toMatchObject({
        code: status.UNAVAILABLE,
        reason: "STORE_ACCESS_DENIED",
      });
    } finally {
      health.close();
      client.close();
      await server.stop();
      await esdb.stop();
      certificates.remove();
    }
  });
});
