/**
 * A stream holding an event this release does not know (a type or schema
 * version written by a newer release during a rolling deploy), over real
 * gRPC: that account answers UNAVAILABLE / UNKNOWN_EVENT_SCHEMA on every
 * call, subscriptions deliver everything before the event and then end with
 * that status, other accounts go on, the server logs it once, and nothing
 * half-folded stays behind once a release that knows the event reads it.
 */
import { status } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountServiceClient, SubscribeAccountResponse, SubscribeAllResponse } from "../../client/src/gen/bank/v1/account_service.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { call, connect, decodeError, rejection } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { readMessages } from "./account-service-suite.js";

describe("an event written by a newer release (SQLite, real gRPC)", () => {
  let server: TestServer;
  let client: AccountServiceClient;
  /** Another writer on the same file, as a newer release's server would be. */
  let newer: SqliteEventStore;

  beforeAll(async () => {
    server = await startTestServer({ env: { EVENTBANK_STORE: "sqlite" } });
    client = connect(server.address);
    newer = new SqliteEventStore(server.config.sqlitePath);
  });
  afterAll(async () => {
    client?.close();
    await newer?.close();
    await server?.stop();
  });

  const newerEvent = (id: string, type: string, data: Record<string, unknown>, schemaVersion: number) => ({
    id,
    type,
    data,
    metadata: { commandId: id, correlationId: id, causationId: id, schemaVersion },
  });
  const unknownStatus = (accountId: string, eventType: string, schemaVersion: string, revision: string) => ({
    code: status.UNAVAILABLE,
    reason: "UNKNOWN_EVENT_SCHEMA",
    metadata: { account_id: accountId, event_type: eventType, schema_version: schemaVersion, revision },
  });

  it("answers UNAVAILABLE / UNKNOWN_EVENT_SCHEMA for that account on commands, reads and subscriptions, logged once", async () => {
    await call(client, client.openAccount, { accountId: "nova", owner: "Nova", currency: "EUR", commandId: "open" });
    await call(client, client.deposit, { accountId: "nova", amount: 100n, commandId: "d1" });
    await call(client, client.openAccount, { accountId: "vega", owner: "Vega", currency: "EUR", commandId: "open" });
    const live = client.subscribeAccount({ accountId: "nova" });
    const liveMessages = readMessages<SubscribeAccountResponse>(live);
    for (let i = 0; i < 3; i++) await liveMessages.next();

    // The newer release appends a known event and one this release does not know, in one append.
    await newer.append(
      "account-nova",
      [
        newerEvent("a6c1d3a0-0000-5000-8000-000000000001", "MoneyDeposited", { amount: "5" }, 1),
        newerEvent("a6c1d3a0-0000-5000-8000-000000000002", "MoneyFrozen", { amount: "7" }, 1),
      ],
      1n,
    );
    const expected = unknownStatus("nova", "MoneyFrozen", "1", "3");

    // The live subscription delivers the known event, then ends with the status.
    const delivered = await liveMessages.next();
    expect(delivered.message?.$case === "event" && delivered.message.value.revision).toBe(2n);
    expect(decodeError(await liveMessages.next(10_000).catch((error: unknown) => error))).toMatchObject(expected);

    // The command handler's cache is at revision 1: the append conflicts, the reload meets the event.
    expect(await rejection(call(client, client.deposit, { accountId: "nova", amount: 1n, commandId: "d2" }))).toMatchObject(expected);
    expect(await rejection(call(client, client.getAccount, { accountId: "nova" }))).toMatchObject(expected);
    expect(await rejection(call(client, client.withdraw, { accountId: "nova", amount: 1n, commandId: "w1" }))).toMatchObject(expected);
    expect(await rejection(call(client, client.readAccountEvents, { accountId: "nova", maxCount: 0, direction: 0 }))).toMatchObject(expected);
    // Reading up to the event still works.
    const before = await call(client, client.readAccountEvents, { accountId: "nova", maxCount: 3, direction: 0 });
    expect(before.events.map((event) => event.revision)).toEqual([0n, 1n, 2n]);

    const history = readMessages<SubscribeAccountResponse>(client.subscribeAccount({ accountId: "nova" }));
    const revisions: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const message = await history.next();
      if (message.message?.$case === "event") revisions.push(message.message.value.revision);
    }
    expect(revisions).toEqual([0n, 1n, 2n]);
    expect(decodeError(await history.next().catch((error: unknown) => error))).toMatchObject(expected);

    const all = readMessages<SubscribeAllResponse>(client.subscribeAll({}));
    let error: unknown;
    for (let i = 0; i < 10 && error === undefined; i++) {
      const message = await all.next().catch((failure: unknown) => failure);
      if (message instanceof Error) error = message;
      else expect((message as SubscribeAllResponse).message?.$case).toBe("event");
    }
    expect(decodeError(error)).toMatchObject(expected);

    // Other accounts are not affected.
    expect((await call(client, client.deposit, { accountId: "vega", amount: 3n, commandId: "d1" })).account?.balance).toBe(3n);

    const warnings = server.logs.filter((line) => line.eventType === "MoneyFrozen");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, accountId: "nova", revision: "3", schemaVersion: "1" });
  });

  it("keeps no half-folded account: once the event is readable the account is exactly its events", async () => {
    // What an upgraded reader sees: the same event as one this release knows.
    const db = new Database(server.config.sqlitePath);
    db.prepare("UPDATE events SET type = 'MoneyWithdrawn', data = ? WHERE stream = 'account-nova' AND revision = 3").run(JSON.stringify({ amount: "7" }));
    db.close();
    const account = (await call(client, client.getAccount, { accountId: "nova" })).account;
    expect(account).toMatchObject({ balance: 98n, revision: 3n });
    const deposited = await call(client, client.deposit, { accountId: "nova", amount: 2n, commandId: "d3" });
    expect(deposited).toMatchObject({ revision: 4n, account: { balance: 100n } });
  });

  it("answers the same for a known type with a schema version this release does not read", async () => {
    await newer.append("account-vega", [newerEvent("a6c1d3a0-0000-5000-8000-000000000003", "MoneyDeposited", { amount: { minor: "5" } }, 9)], 1n);
    expect(await rejection(call(client, client.getAccount, { accountId: "vega" }))).toMatchObject(unknownStatus("vega", "MoneyDeposited", "9", "2"));
  });
});
