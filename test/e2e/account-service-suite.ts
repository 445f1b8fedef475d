/**
 * End to end over real gRPC: the generated client against the real server on
 * an ephemeral port. Runs once per store kind (sqlite.test.ts, esdb.test.ts).
 */
import { Metadata, status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus, type AccountEvent } from "../../client/src/gen/bank/v1/account.js";
import {
  ReadDirection,
  type AccountServiceClient,
  type SubscribeAccountResponse,
  type SubscribeAllResponse,
} from "../../client/src/gen/bank/v1/account_service.js";
import { call, connect, decodeError, rejection } from "../support/grpc-client.js";
import { startTestServer, type TestServer, type TestServerOptions } from "../support/test-server.js";

export function describeAccountServiceE2E(kind: string, options: () => Promise<TestServerOptions>): void {
  describe(`AccountService over gRPC (${kind})`, () => {
    let server: TestServer;
    let client: AccountServiceClient;

    beforeAll(async () => {
      server = await startTestServer(await options());
      client = connect(server.address);
    });
    afterAll(async () => {
      client?.close();
      await server?.stop();
    });

    const newId = () => `acc-${randomUUID().slice(0, 13)}`;
    const cmd = () => randomUUID();
    const open = (accountId: string, currency = "EUR") =>
      call(client, client.openAccount, { accountId, owner: "Ada Lovelace", currency, commandId: cmd() });
    const deposit = (accountId: string, amount: bigint, extra: { commandId?: string; expectedRevision?: bigint } = {}) =>
      call(client, client.deposit, { accountId, amount, commandId: extra.commandId ?? cmd(), expectedRevision: extra.expectedRevision });
    const withdraw = (accountId: string, amount: bigint, extra: { commandId?: string; expectedRevision?: bigint } = {}) =>
      call(client, client.withdraw, { accountId, amount, commandId: extra.commandId ?? cmd(), expectedRevision: extra.expectedRevision });
    const get = (accountId: string) => call(client, client.getAccount, { accountId });
    const eventsOf = async (accountId: string) =>
      (await call(client, client.readAccountEvents, { accountId, maxCount: 1000, direction: ReadDirection.READ_DIRECTION_FORWARDS })).events;

    describe("commands", () => {
      it("opens an account at revision 0 with a zero balance", async () => {
        const id = newId();
        const opened = await open(id);
        expect(opened.revision).toBe(0n);
        expect(opened.account).toEqual({
          accountId: id,
          owner: "Ada Lovelace",
          currency: "EUR",
          balance: 0n,
          availableBalance: 0n,
          status: AccountStatus.ACCOUNT_STATUS_OPEN,
          revision: 0n,
        });
        expect((await get(id)).account?.revision).toBe(0n);
      });

      it("moves money and reports each new revision and balance", async () => {
        const id = newId();
        await open(id);
        expect((await deposit(id, 1_000n)).account?.balance).toBe(1_000n);
        const withdrawn = await withdraw(id, 300n);
        expect(withdrawn.revision).toBe(2n);
        expect(withdrawn.account?.balance).toBe(700n);
        expect((await get(id)).account).toMatchObject({ balance: 700n, revision: 2n });
      });

      it("keeps int64 amounts exact up to the bound", async () => {
        const id = newId();
        await open(id);
        const big = 999_999_999_999n;
        expect((await deposit(id, big)).account?.balance).toBe(big);
        expect((await deposit(id, 1_000_000_000_000n)).account?.balance).toBe(big + 1_000_000_000_000n);
      });

      it("closes an account at zero balance and then refuses commands", async () => {
        const id = newId();
        await open(id);
        await deposit(id, 50n);
        const closeError = await rejection(call(client, client.closeAccount, { accountId: id, commandId: cmd() }));
        expect(closeError).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "BALANCE_NOT_ZERO", domain: "eventbank" });
        // The refusal is recorded (revision 2), so every repeat of its command id gets it too.
        expect(closeError.metadata).toMatchObject({ balance: "50", revision: "2" });
        await withdraw(id, 50n);
        const closed = await call(client, client.closeAccount, { accountId: id, commandId: cmd() });
        expect(closed.account?.status).toBe(AccountStatus.ACCOUNT_STATUS_CLOSED);
        expect(closed.revision).toBe(4n);
        expect(await rejection(deposit(id, 1n))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "ACCOUNT_CLOSED" });
      });

      it("rejects a withdrawal beyond the balance, records the refusal and moves no money", async () => {
        const id = newId();
        await open(id);
        await deposit(id, 100n);
        const error = await rejection(withdraw(id, 101n));
        expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "INSUFFICIENT_FUNDS" });
        expect(error.metadata).toMatchObject({ balance: "100", amount: "101", revision: "2" });
        const events = await eventsOf(id);
        expect(events).toHaveLength(3);
        expect(events[2]).toMatchObject({
          revision: 2n,
          payload: { $case: "rejected", value: { reason: "INSUFFICIENT_FUNDS", command: "Withdraw", amount: 101n, details: { balance: "100", amount: "101" } } },
        });
        expect(events[2]!.payload?.$case === "rejected" && events[2]!.payload.value.message).toBe(error.details);
        expect((await get(id)).account).toMatchObject({ balance: 100n, revision: 2n });
      });

      it("refuses a deposit that would pass the balance limit of 2^53 - 1", async () => {
        const id = newId();
        await open(id);
        // Seed the stream near the limit (9,007 deposits of the maximum amount would take too long).
        const nearLimit = BigInt(Number.MAX_SAFE_INTEGER) - 10n;
        await server.eventbank.store.append(
          `account-${id}`,
          [{ id: randomUUID(), type: "MoneyDeposited", data: { amount: nearLimit.toString() }, metadata: { commandId: cmd(), correlationId: "seed", causationId: "seed" } }],
          0n,
        );
        expect((await deposit(id, 10n)).account?.balance).toBe(BigInt(Number.MAX_SAFE_INTEGER));
        const error = await rejection(deposit(id, 1n));
        expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "BALANCE_LIMIT_EXCEEDED" });
        expect((await get(id)).account?.balance).toBe(BigInt(Number.MAX_SAFE_INTEGER));
      });

      it("answers NOT_FOUND for an unknown account and ALREADY_EXISTS for a second open", async () => {
        const id = newId();
        expect(await rejection(get(id))).toMatchObject({ code: status.NOT_FOUND, reason: "ACCOUNT_NOT_FOUND" });
        expect(await rejection(deposit(id, 5n))).toMatchObject({ code: status.NOT_FOUND, reason: "ACCOUNT_NOT_FOUND" });
        await open(id);
        expect(await rejection(open(id))).toMatchObject({ code: status.ALREADY_EXISTS, reason: "ACCOUNT_ALREADY_EXISTS" });
      });
    });

    describe("bad input", () => {
      const invalid = [
        ["an empty account id", { accountId: "" }, "INVALID_ACCOUNT_ID", "account_id"],
        ["an account id with a slash", { accountId: "a/b" }, "INVALID_ACCOUNT_ID", "account_id"],
        ["a 65-character account id", { accountId: "a".repeat(65) }, "INVALID_ACCOUNT_ID", "account_id"],
        ["amount 0", { amount: 0n }, "INVALID_AMOUNT", "amount"],
        ["a negative amount", { amount: -5n }, "INVALID_AMOUNT", "amount"],
        ["an amount over the bound", { amount: 1_000_000_000_001n }, "INVALID_AMOUNT", "amount"],
        ["a missing command id", { commandId: "" }, "INVALID_COMMAND_ID", "command_id"],
      ] as const;
      for (const [what, override, reason, field] of invalid) {
        it(`rejects a deposit with ${what} and writes nothing`, async () => {
          const id = newId();
          await open(id);
          const request = { accountId: id, amount: 10n, commandId: cmd(), ...override };
          const error = await rejection(call(client, client.deposit, request));
          expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, reason, metadata: { field } });
          expect(await eventsOf(id)).toHaveLength(1);
        });
      }

      it("rejects an unknown currency, a lower-case one and a blank owner", async () => {
        for (const currency of ["XYZ", "eur", "EURO", ""]) {
          const error = await rejection(open(newId(), currency));
          expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_CURRENCY" });
        }
        const blank = await rejection(call(client, client.openAccount, { accountId: newId(), owner: "  ", currency: "EUR", commandId: cmd() }));
        expect(blank).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_OWNER" });
      });

      it("rejects an oversize message with a reason and writes nothing", async () => {
        const id = newId();
        const error = await rejection(
          call(client, client.openAccount, { accountId: id, owner: "x".repeat(200_000), currency: "EUR", commandId: cmd() }),
        );
        expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "MESSAGE_TOO_LARGE" });
        expect(await rejection(get(id))).toMatchObject({ code: status.NOT_FOUND });
      });

      it("rejects read limits out of range", async () => {
        const id = newId();
        await open(id);
        const error = await rejection(call(client, client.readAccountEvents, { accountId: id, maxCount: 5000, direction: 0 }));
        expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, metadata: { field: "max_count" } });
      });

      it.each(["garbage", "9223372036854775808", "9999999999999999999", "18446744073709551616/0"])(
        "rejects a subscription from a position the server never issued (%s)",
        async (fromPosition) => {
          const stream = client.subscribeAll({ fromPosition });
          const error = await new Promise((resolve) => {
            stream.on("error", resolve);
            stream.on("data", () => {});
          });
          expect(decodeError(error)).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_POSITION" });
        },
      );

      it("keeps a leading U+FEFF as part of a string: an invalid account id, a command id of its own", async () => {
        const id = newId();
        await open(id);
        expect(await rejection(get(`\uFEFF${id}`))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_ACCOUNT_ID" });
        expect(await rejection(deposit(`\uFEFF${id}`, 1n))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_ACCOUNT_ID" });
        const commandId = cmd();
        await deposit(id, 5n, { commandId });
        // Another command id: applied, not taken for a repeat of the first.
        expect((await deposit(id, 7n, { commandId: `\uFEFF${commandId}` })).account?.balance).toBe(12n);
        const ids = (await eventsOf(id)).map((event) => event.commandId);
        expect(ids.slice(1)).toEqual([commandId, `\uFEFF${commandId}`]);
      });
    });

    describe("concurrency and idempotency", () => {
      it("returns the first outcome for a repeated command id and appends nothing", async () => {
        const id = newId();
        await open(id);
        const commandId = cmd();
        const first = await deposit(id, 40n, { commandId });
        await deposit(id, 2n);
        const again = await deposit(id, 40n, { commandId });
        expect(again).toEqual(first);
        expect((await get(id)).account?.balance).toBe(42n);
        expect(await eventsOf(id)).toHaveLength(3);
      });

      it("repeats the first rejection for a repeated command id", async () => {
        const id = newId();
        await open(id);
        const commandId = cmd();
        expect((await rejection(withdraw(id, 10n, { commandId }))).reason).toBe("INSUFFICIENT_FUNDS");
        await deposit(id, 100n);
        expect((await rejection(withdraw(id, 10n, { commandId }))).reason).toBe("INSUFFICIENT_FUNDS");
        expect((await get(id)).account?.balance).toBe(100n);
      });

      it("rejects a command id reused for a different command", async () => {
        const id = newId();
        await open(id);
        const commandId = cmd();
        await deposit(id, 10n, { commandId });
        expect(await rejection(deposit(id, 11n, { commandId }))).toMatchObject({
          code: status.INVALID_ARGUMENT,
          reason: "COMMAND_ID_REUSED",
        });
      });

      it("answers ABORTED for a stale expected_revision with the actual revision", async () => {
        const id = newId();
        await open(id);
        await deposit(id, 10n, { expectedRevision: 0n });
        const error = await rejection(deposit(id, 10n, { expectedRevision: 0n }));
        expect(error).toMatchObject({
          code: status.ABORTED,
          reason: "REVISION_CONFLICT",
          metadata: { expected_revision: "0", actual_revision: "1" },
        });
        expect((await get(id)).account?.balance).toBe(10n);
      });

      it("applies 64 concurrent deposits to one account, all succeeding, to the exact balance", async () => {
        const id = newId();
        await open(id);
        const results = await Promise.allSettled(Array.from({ length: 64 }, (_, i) => deposit(id, BigInt(i + 1))));
        expect(results.filter((r) => r.status === "rejected")).toEqual([]);
        const account = (await get(id)).account;
        expect(account?.balance).toBe(BigInt((64 * 65) / 2));
        expect(account?.revision).toBe(64n);
        const revisions = results.map((r) => (r.status === "fulfilled" ? r.value.revision : -1n)).sort((a, b) => Number(a - b));
        expect(revisions).toEqual(Array.from({ length: 64 }, (_, i) => BigInt(i + 1)));
      });

      it("keeps 32 concurrent deposits across separate connections exact", async () => {
        const id = newId();
        await open(id);
        const clients = Array.from({ length: 4 }, () => connect(server.address));
        try {
          await Promise.all(
            Array.from({ length: 32 }, (_, i) => {
              const c = clients[i % clients.length]!;
              return call(c, c.deposit, { accountId: id, amount: 3n, commandId: cmd() });
            }),
          );
        } finally {
          for (const c of clients) c.close();
        }
        expect((await get(id)).account?.balance).toBe(96n);
      });
    });

    describe("reading events", () => {
      it("reads forwards from an inclusive revision and backwards from the end", async () => {
        const id = newId();
        await open(id);
        for (const amount of [1n, 2n, 3n]) await deposit(id, amount);
        const forwards = await call(client, client.readAccountEvents, { accountId: id, fromRevision: 1n, maxCount: 2, direction: 0 });
        expect(forwards.events.map((e) => [e.revision, e.payload?.$case])).toEqual([
          [1n, "deposited"],
          [2n, "deposited"],
        ]);
        const backwards = await call(client, client.readAccountEvents, {
          accountId: id,
          maxCount: 2,
          direction: ReadDirection.READ_DIRECTION_BACKWARDS,
        });
        expect(backwards.events.map((e) => e.revision)).toEqual([3n, 2n]);
        const first = forwards.events[0]!;
        expect(first.payload).toEqual({ $case: "deposited", value: { amount: 1n } });
        expect(first.accountId).toBe(id);
        expect(first.eventId).toMatch(/^[0-9a-f-]{36}$/);
        expect(first.commandId).not.toBe("");
        expect(first.occurredAt).toBeInstanceOf(Date);
        expect(first.position).not.toBe("");
      });

      it("answers NOT_FOUND for the events of an unknown account", async () => {
        expect(await rejection(call(client, client.readAccountEvents, { accountId: newId(), maxCount: 0, direction: 0 }))).toMatchObject({
          code: status.NOT_FOUND,
        });
      });

      it("records the correlation id sent in metadata", async () => {
        const id = newId();
        const metadata = new Metadata();
        metadata.set("x-correlation-id", "corr-42");
        await call(client, client.openAccount, { accountId: id, owner: "Bo", currency: "SEK", commandId: cmd() }, { metadata });
        expect((await eventsOf(id))[0]?.correlationId).toBe("corr-42");
      });
    });

    describe("subscriptions", () => {
      it("delivers history, caught_up, then a live event on one account", async () => {
        const id = newId();
        await open(id);
        await deposit(id, 5n);
        const stream = client.subscribeAccount({ accountId: id });
        const messages = readMessages<SubscribeAccountResponse>(stream);
        expect((await messages.next()).message?.$case).toBe("event");
        expect((await messages.next()).message?.$case).toBe("event");
        expect((await messages.next()).message?.$case).toBe("caughtUp");
        await deposit(id, 7n);
        const live = await messages.next();
        expect(live.message?.$case === "event" && live.message.value.payload).toEqual({ $case: "deposited", value: { amount: 7n } });
        stream.cancel();
      });

      it("starts after from_revision", async () => {
        const id = newId();
        await open(id);
        await deposit(id, 5n);
        await deposit(id, 6n);
        const stream = client.subscribeAccount({ accountId: id, fromRevision: 1n });
        const messages = readMessages<SubscribeAccountResponse>(stream);
        const first = await messages.next();
        expect(first.message?.$case === "event" && first.message.value.revision).toBe(2n);
        expect((await messages.next()).message?.$case).toBe("caughtUp");
        stream.cancel();
      });

      it("resumes SubscribeAll after a delivered position without gap or duplicate", async () => {
        const ids = [newId(), newId()];
        const all = client.subscribeAll({});
        const messages = readMessages<SubscribeAllResponse>(all);
        while ((await messages.next()).message?.$case !== "caughtUp");
        await open(ids[0]!);
        const firstLive = await messages.next();
        all.cancel();
        const position = firstLive.message?.$case === "event" ? firstLive.message.value.position : "";
        expect(firstLive.message?.$case === "event" && firstLive.message.value.accountId).toBe(ids[0]);
        await open(ids[1]!);
        const resumed = client.subscribeAll({ fromPosition: position });
        const next = readMessages<SubscribeAllResponse>(resumed);
        const after = await next.next();
        expect(after.message?.$case === "event" && after.message.value.accountId).toBe(ids[1]);
        resumed.cancel();
      });

      it("sends SubscribeAll's events in batches when asked: the same events, in order, then caught_up, then live ones", async () => {
        const id = newId();
        await open(id);
        for (let i = 1; i <= 30; i++) await deposit(id, BigInt(i));
        const untilCaughtUp = async (maxEventsPerMessage: number | undefined) => {
          const stream = client.subscribeAll(maxEventsPerMessage === undefined ? {} : { maxEventsPerMessage });
          const messages = readMessages<SubscribeAllResponse>(stream);
          const positions: string[] = [];
          const sizes: number[] = [];
          const cases = new Set<string | undefined>();
          for (;;) {
            const { message } = await messages.next();
            if (message?.$case === "caughtUp") return { stream, messages, positions, sizes, cases };
            const events = eventsIn(message);
            cases.add(message?.$case);
            sizes.push(events.length);
            positions.push(...events.map((event) => event.position));
          }
        };
        const before = server.eventbank.server.openStreams();
        const single = await untilCaughtUp(undefined);
        single.stream.cancel();
        expect(new Set(single.sizes)).toEqual(new Set([1]));
        expect(single.cases).toEqual(new Set(["event"]));
        const batched = await untilCaughtUp(10);
        // Every store honours the request: events come in `events`, even a batch of one.
        expect(batched.cases).toEqual(new Set(["events"]));
        expect(batched.positions.slice(0, single.positions.length)).toEqual(single.positions);
        expect(Math.max(...batched.sizes)).toBeLessThanOrEqual(10);
        // SQLite reads a page of events at once, so its batches fill; EventStoreDB's arrive as its stream delivers them.
        if (kind === "sqlite") expect(batched.sizes.slice(0, -1).every((size) => size === 10)).toBe(true);
        // Live: an append after caught_up arrives too.
        const other = newId();
        await open(other);
        let live: string | undefined;
        while (live !== other) {
          const { message } = await batched.messages.next();
          const events = eventsIn(message);
          live = events.at(-1)?.accountId;
        }
        batched.stream.cancel();
        // Cancelled while waiting for live events: the server ends the stream and releases it.
        await waitFor(() => server.eventbank.server.openStreams() === before);
      });

      it("sends SubscribeAccount's events in batches when asked, in order, then caught_up", async () => {
        const id = newId();
        await open(id);
        for (let i = 1; i <= 30; i++) await deposit(id, BigInt(i));
        const stream = client.subscribeAccount({ accountId: id, maxEventsPerMessage: 10 });
        const messages = readMessages<SubscribeAccountResponse>(stream);
        const sizes: number[] = [];
        const revisions: bigint[] = [];
        for (let message = (await messages.next()).message; message?.$case !== "caughtUp"; message = (await messages.next()).message) {
          expect(message?.$case).toBe("events");
          const events = eventsIn(message);
          sizes.push(events.length);
          revisions.push(...events.map((event) => event.revision));
        }
        stream.cancel();
        expect(revisions).toEqual(Array.from({ length: 31 }, (_, i) => BigInt(i)));
        expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
        if (kind === "sqlite") expect(sizes).toEqual([10, 10, 10, 1]);
      });

      it.each(["subscribeAll", "subscribeAccount"] as const)("rejects max_events_per_message above 1,000 (%s)", async (method) => {
        const stream =
          method === "subscribeAll"
            ? client.subscribeAll({ maxEventsPerMessage: 1001 })
            : client.subscribeAccount({ accountId: newId(), maxEventsPerMessage: 1001 });
        const error = await new Promise((resolve) => {
          stream.on("error", resolve);
          stream.on("data", () => {});
        });
        expect(decodeError(error)).toMatchObject({ code: status.INVALID_ARGUMENT, metadata: { field: "max_events_per_message" } });
      });

      it("releases the server's subscription when the client cancels", async () => {
        const id = newId();
        await open(id);
        const before = server.eventbank.server.openStreams();
        const stream = client.subscribeAccount({ accountId: id });
        const messages = readMessages<SubscribeAccountResponse>(stream);
        await messages.next();
        expect(server.eventbank.server.openStreams()).toBe(before + 1);
        stream.cancel();
        await waitFor(() => server.eventbank.server.openStreams() === before);
        // That the store subscription closes too is checked in limits.test.ts, with an instrumented store.
      });
    });

    describe("operations", () => {
      it("logs one JSON line per RPC with method, code, duration and account", async () => {
        const id = newId();
        await open(id);
        await rejection(withdraw(id, 5n));
        const lines = server.logs.filter((line) => line.accountId === id);
        expect(lines.map((line) => [line.rpc, line.code])).toEqual([
          ["OpenAccount", "OK"],
          ["Withdraw", "FAILED_PRECONDITION"],
        ]);
        for (const line of lines) expect(typeof line.ms).toBe("number");
      });
    });
  });
}

/** Pulls messages from a grpc-js readable stream one at a time, failing after a timeout. */
/** The events a subscription message carries: one in `event`, a batch in `events`, none in `caught_up`. */
function eventsIn(message: SubscribeAllResponse["message"]): AccountEvent[] {
  return message?.$case === "events" ? message.value.events : message?.$case === "event" ? [message.value] : [];
}

export function readMessages<T>(stream: NodeJS.ReadableStream & { on(event: "error", listener: (error: Error) => void): unknown }) {
  const queue: T[] = [];
  const waiting: Array<{ resolve: (value: T) => void; reject: (error: Error) => void }> = [];
  let failure: Error | undefined;
  stream.on("data", (message: T) => {
    const waiter = waiting.shift();
    if (waiter) waiter.resolve(message);
    else queue.push(message);
  });
  stream.on("error", (error: Error) => {
    failure = error;
    for (const waiter of waiting.splice(0)) waiter.reject(error);
  });
  return {
    next(timeoutMs = 5_000): Promise<T> {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      if (failure) return Promise.reject(failure);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no message in time")), timeoutMs);
        waiting.push({
          resolve: (value) => {
            clearTimeout(timer);
            resolve(value);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
      });
    },
  };
}

export async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
