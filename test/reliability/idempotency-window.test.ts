/**
 * Retrying a command id that has left the idempotency window
 * (EVENTBANK_IDEMPOTENCY_WINDOW, 1,000 by default; 2 here so a handful of
 * commands push it out). Found by the heavy kill -9 run
 * (EVENTBANK_HEAVY=1 npx vitest run test/reliability/crash.test.ts), where a
 * command acknowledged at revision 9 was retried after 1,000+ later commands.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import { call, connect } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { checkAccountInvariants, readAllEvents } from "./support/reliability.js";

describe("a retried deposit older than the idempotency window", () => {
  let server: TestServer;
  let client: AccountServiceClient;
  beforeAll(async () => {
    server = await startTestServer({ env: { EVENTBANK_IDEMPOTENCY_WINDOW: "2" } });
    client = connect(server.address);
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
  });

  /** Opens `id`, deposits 10 (dep-A), 5 and 7, then retries dep-A: returns the first answer and the retry's. */
  const scenario = async (id: string) => {
    await call(client, client.openAccount, { accountId: id, owner: "A", currency: "EUR", commandId: "open" });
    const first = await call(client, client.deposit, { accountId: id, amount: 10n, commandId: "dep-A" });
    await call(client, client.deposit, { accountId: id, amount: 5n, commandId: "dep-B" });
    await call(client, client.deposit, { accountId: id, amount: 7n, commandId: "dep-C" });
    const retry = await call(client, client.deposit, { accountId: id, amount: 10n, commandId: "dep-A" });
    return { first, retry };
  };

  it("is not written twice (event ids derived from the command id deduplicate in the store)", async () => {
    await scenario("window-store");
    const events = await readAllEvents(client, "window-store");
    const { account } = await call(client, client.getAccount, { accountId: "window-store" });
    checkAccountInvariants("window-store", events, account);
    expect(events.map((e) => e.commandId)).toEqual(["open", "dep-A", "dep-B", "dep-C"]);
    expect(account).toMatchObject({ balance: 22n, revision: 3n });
  });

  // Was a bug: the retry was answered with revision 4 / balance 32, a revision
  // that does not exist and a balance the account never had. The SQLite store
  // now reports the duplicate event id and the handler answers the first
  // outcome from history.
  it("answers with the first outcome, rebuilt from the stored history", async () => {
    const { first, retry } = await scenario("window-answer");
    const events = await readAllEvents(client, "window-answer");
    const atRevision = events[Number(retry.revision)];
    expect(atRevision?.commandId).toBe("dep-A");
    expect(retry).toEqual(first);
  });

  it("answers an outside-window retry batched with new commands without failing them", async () => {
    const { first } = await scenario("window-batch");
    const results = await Promise.all([
      call(client, client.deposit, { accountId: "window-batch", amount: 1n, commandId: "dep-D" }),
      call(client, client.deposit, { accountId: "window-batch", amount: 10n, commandId: "dep-A" }),
      call(client, client.deposit, { accountId: "window-batch", amount: 2n, commandId: "dep-E" }),
      call(client, client.deposit, { accountId: "window-batch", amount: 3n, commandId: "dep-F" }),
    ]);
    expect(results[1]).toEqual(first);
    const events = await readAllEvents(client, "window-batch");
    const { account } = await call(client, client.getAccount, { accountId: "window-batch" });
    checkAccountInvariants("window-batch", events, account);
    expect(events.map((e) => e.commandId)).toEqual(["open", "dep-A", "dep-B", "dep-C", "dep-D", "dep-E", "dep-F"]);
    expect(account).toMatchObject({ balance: 28n, revision: 6n });
  });

  // Was a documented limitation: the rules refused the retry (the balance had
  // moved on) before any append could find the earlier event.
  it("answers a withdrawal that the rules would now refuse with its first outcome", async () => {
    const id = "window-refusal";
    await call(client, client.openAccount, { accountId: id, owner: "A", currency: "EUR", commandId: "open" });
    await call(client, client.deposit, { accountId: id, amount: 10n, commandId: "dep-A" });
    const first = await call(client, client.withdraw, { accountId: id, amount: 8n, commandId: "wd-A" });
    await call(client, client.deposit, { accountId: id, amount: 1n, commandId: "dep-B" });
    await call(client, client.deposit, { accountId: id, amount: 1n, commandId: "dep-C" });
    // wd-A has left the window of 2; only 4 are there, and the rules alone would refuse 8.
    const retry = await call(client, client.withdraw, { accountId: id, amount: 8n, commandId: "wd-A" });
    expect(retry).toEqual(first);
    expect(retry.account).toMatchObject({ balance: 2n });
    const { account } = await call(client, client.getAccount, { accountId: id });
    expect(account).toMatchObject({ balance: 4n, revision: 4n });
    // A withdrawal the rules refuse and that was never applied is still refused.
    await expect(call(client, client.withdraw, { accountId: id, amount: 8n, commandId: "wd-B" })).rejects.toMatchObject({ code: 9 });
  });
});
