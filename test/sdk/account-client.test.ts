/** Every method of the SDK against the real server over real gRPC. */
import { InterceptingCall, type Interceptor } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccountClient, type AccountClient, type AccountEvent, type SubscriptionItem } from "../../client/src/index.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { newId, rpcLines, takeUntil } from "./helpers.js";

let server: TestServer;
let client: AccountClient;

beforeAll(async () => {
  server = await startTestServer();
  client = createAccountClient({ address: server.address });
});

afterAll(async () => {
  client?.close();
  await server?.stop();
});

describe("commands and queries", () => {
  it("opens an account, moves money and closes it, with bigint amounts and revisions", async () => {
    const accountId = newId("move");
    const opened = await client.openAccount({ accountId, owner: "Ada", currency: "EUR" });
    expect(opened.account).toEqual({ accountId, owner: "Ada", currency: "EUR", balance: 0n, availableBalance: 0n, status: "open", revision: 0n });
    expect(opened.revision).toBe(0n);
    expect(opened.commandId).toMatch(/^[0-9a-f-]{36}$/);

    const deposited = await client.deposit({ accountId, amount: 1_500n });
    expect(deposited.account.balance).toBe(1_500n);
    expect(deposited.revision).toBe(1n);

    const withdrawn = await client.withdraw({ accountId, amount: 500n, expectedRevision: 1n });
    expect(withdrawn.account.balance).toBe(1_000n);
    expect(withdrawn.revision).toBe(2n);

    await client.withdraw({ accountId, amount: 1_000n });
    const closed = await client.closeAccount({ accountId });
    expect(closed.account.status).toBe("closed");
    expect(closed.revision).toBe(4n);

    expect(await client.getAccount(accountId)).toEqual({ accountId, owner: "Ada", currency: "EUR", balance: 0n, availableBalance: 0n, status: "closed", revision: 4n });
  });

  it("sends the caller's command id, so repeating a command applies it once", async () => {
    const accountId = newId("idem");
    await client.openAccount({ accountId, owner: "Bo", currency: "USD" });
    const first = await client.deposit({ accountId, amount: 10n, commandId: "pay-1" });
    const again = await client.deposit({ accountId, amount: 10n, commandId: "pay-1" });
    expect(again).toEqual(first);
    expect(first.commandId).toBe("pay-1");
    expect((await client.getAccount(accountId)).balance).toBe(10n);
  });

  it("reads events forwards and backwards as a discriminated union", async () => {
    const accountId = newId("read");
    await client.openAccount({ accountId, owner: "Cy", currency: "GBP" });
    await client.deposit({ accountId, amount: 7n, commandId: "dep-7" });
    await client.withdraw({ accountId, amount: 2n });

    const events = await client.readAccountEvents(accountId);
    expect(events.map((event) => event.type)).toEqual(["opened", "deposited", "withdrawn"]);
    expect(events.map((event) => event.revision)).toEqual([0n, 1n, 2n]);
    const [opened, deposited] = events;
    expect(opened).toMatchObject({ type: "opened", owner: "Cy", currency: "GBP", accountId });
    expect(deposited).toMatchObject({ type: "deposited", amount: 7n, commandId: "dep-7" });
    expect(deposited?.occurredAt).toBeInstanceOf(Date);
    expect(typeof deposited?.position).toBe("string");

    const backwards = await client.readAccountEvents(accountId, { direction: "backwards", maxCount: 2 });
    expect(backwards.map((event) => event.revision)).toEqual([2n, 1n]);
    const fromOne = await client.readAccountEvents(accountId, { fromRevision: 1n, maxCount: 1 });
    expect(fromOne.map((event) => event.type)).toEqual(["deposited"]);
  });

  it("passes the correlation id and client metadata to the server", async () => {
    const accountId = newId("corr");
    await client.openAccount({ accountId, owner: "Di", currency: "EUR" }, { correlationId: "trace-42" });
    const [opened] = await client.readAccountEvents(accountId);
    expect(opened?.correlationId).toBe("trace-42");
    expect(rpcLines(server.logs, "OpenAccount").some((line) => line.accountId === accountId && line.correlationId === "trace-42")).toBe(true);
  });
});

describe("subscriptions", () => {
  it("follows one account: history, caughtUp, then live events", async () => {
    const accountId = newId("follow");
    await client.openAccount({ accountId, owner: "Ed", currency: "EUR" });
    await client.deposit({ accountId, amount: 5n });

    const subscription = client.subscribeAccount(accountId);
    const iterator = subscription[Symbol.asyncIterator]();
    const history = await takeUntil(iterator, (item) => item.type === "caughtUp");
    expect(history.map((item) => item.type)).toEqual(["opened", "deposited", "caughtUp"]);
    await expect(subscription.caughtUp).resolves.toBe(true);

    await client.withdraw({ accountId, amount: 3n });
    const live = await iterator.next();
    expect(live.value).toMatchObject({ type: "withdrawn", amount: 3n, revision: 2n });
    subscription.close();
    expect((await iterator.next()).done).toBe(true);
  });

  it("starts after fromRevision", async () => {
    const accountId = newId("from");
    await client.openAccount({ accountId, owner: "Fi", currency: "EUR" });
    await client.deposit({ accountId, amount: 1n });
    await client.deposit({ accountId, amount: 2n });
    const items: string[] = [];
    for await (const item of client.subscribeAccount(accountId, { fromRevision: 1n })) {
      items.push(item.type === "caughtUp" ? "caughtUp" : `${item.type}@${item.revision}`);
      if (item.type === "caughtUp") break;
    }
    expect(items).toEqual(["deposited@2", "caughtUp"]);
  });

  it("delivers the same events in batches (the default) as one per message, from SubscribeAll and SubscribeAccount", async () => {
    const accountId = newId("batches");
    await client.openAccount({ accountId, owner: "Ha", currency: "EUR" });
    for (let amount = 1n; amount <= 20n; amount++) await client.deposit({ accountId, amount });
    // Counts the messages the SDK receives, so the test tells batches from one event per message.
    let received = 0;
    const countMessages: Interceptor = (options, nextCall) =>
      new InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          next(metadata, {
            onReceiveMessage(message, nextMessage) {
              received++;
              nextMessage(message);
            },
          });
        },
      });
    const counted = createAccountClient({ address: server.address, interceptors: [countMessages] });
    const until = async <T>(subscription: AsyncIterable<SubscriptionItem>, cursor: (event: AccountEvent) => T) => {
      received = 0;
      const seen: T[] = [];
      for await (const item of subscription) {
        if (item.type === "caughtUp") return { seen, messages: received };
        seen.push(cursor(item));
      }
      throw new Error("ended before caughtUp");
    };
    try {
      const catchUp = (eventsPerMessage?: number) =>
        until(counted.subscribeAll(eventsPerMessage === undefined ? {} : { eventsPerMessage }), (event) => event.position);
      const one = await catchUp(1);
      const batched = await catchUp();
      expect(one.seen.length).toBeGreaterThanOrEqual(21);
      expect(batched.seen.slice(0, one.seen.length)).toEqual(one.seen);
      expect(one.messages).toBeGreaterThan(one.seen.length); // each event, then caught_up
      expect(batched.messages).toBeLessThan(batched.seen.length / 4);
      await expect(catchUp(1001)).rejects.toMatchObject({ reason: "INVALID_ARGUMENT", field: "max_events_per_message" });

      const revisions = (eventsPerMessage?: number) =>
        until(counted.subscribeAccount(accountId, eventsPerMessage === undefined ? {} : { eventsPerMessage }), (event) => event.revision);
      const inBatches = await revisions();
      expect(inBatches.seen).toEqual(Array.from({ length: 21 }, (_, i) => BigInt(i)));
      expect(inBatches.messages).toBeLessThan(21);
      expect((await revisions(1)).seen).toEqual(inBatches.seen);
    } finally {
      counted.close();
    }
  });

  it("follows all accounts and resumes after a position", async () => {
    const accountId = newId("all");
    await client.openAccount({ accountId, owner: "Gu", currency: "EUR" });
    const seen: AccountEvent[] = [];
    for await (const item of client.subscribeAll()) {
      if (item.type === "caughtUp") break;
      seen.push(item);
    }
    const mine = seen.filter((event) => event.accountId === accountId);
    expect(mine.map((event) => event.type)).toEqual(["opened"]);

    const last = seen.at(-1)!;
    await client.deposit({ accountId, amount: 9n });
    const after: AccountEvent[] = [];
    for await (const item of client.subscribeAll({ fromPosition: last.position })) {
      if (item.type === "caughtUp") break;
      after.push(item);
    }
    expect(after.map((event) => [event.accountId, event.type])).toEqual([[accountId, "deposited"]]);
  });
});
