/**
 * Commands queued on one account run as one batch: decided in order, written
 * in one append, each with its own outcome.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AccountCommandHandler, type CommandContext } from "../../server/src/app/account-command-handler.js";
import { CommandCancelledError } from "../../server/src/app/errors.js";
import { eventIdFor } from "../../server/src/app/event-ids.js";
import type { AccountCommand } from "../../server/src/domain/account.js";
import { accountStream, type AppendResult, type EventStore, type ExpectedRevision, type NewEvent } from "../../server/src/store/event-store.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";

const context = (commandId: string, extra: Partial<CommandContext> = {}): CommandContext => ({
  commandId,
  correlationId: commandId,
  causationId: commandId,
  ...extra,
});
const deposit = (amount: bigint): AccountCommand => ({ type: "Deposit", accountId: "acc", amount });
const withdraw = (amount: bigint): AccountCommand => ({ type: "Withdraw", accountId: "acc", amount });

describe("command batching", () => {
  let dir: string;
  let store: SqliteEventStore;
  let appends: Array<{ events: NewEvent[]; expected: ExpectedRevision }>;
  /** Runs before each append reaches the store (e.g. another writer sneaking in). */
  let beforeAppend: (() => Promise<void>) | undefined;
  let handler: AccountCommandHandler;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-batching-"));
    store = new SqliteEventStore(join(dir, "events.sqlite"));
    appends = [];
    beforeAppend = undefined;
    const counting = Object.create(store) as EventStore;
    counting.append = async (stream: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult> => {
      appends.push({ events, expected });
      await beforeAppend?.();
      return store.append(stream, events, expected);
    };
    handler = new AccountCommandHandler(counting);
    await handler.execute({ type: "OpenAccount", accountId: "acc", owner: "Ada", currency: "EUR" }, context("open"));
    appends = [];
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const events = async () => {
    const result = await store.readStream(accountStream("acc"));
    return result.status === "ok" ? result.events : [];
  };

  it("applies 64 concurrent deposits on one account, all of them, in fewer appends", async () => {
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => handler.execute(deposit(1n), context(`d${i}`))));
    expect(results.map((result) => result.revision).sort((a, b) => Number(a - b))).toEqual(Array.from({ length: 64 }, (_, i) => BigInt(i + 1)));
    expect((await handler.getAccount("acc")).account.balance).toBe(64n);
    expect(appends.length).toBeLessThan(64);
    // Each event carries its own command's id, and its own event id.
    const deposits = (await events()).slice(1);
    expect(new Set(deposits.map((recorded) => recorded.metadata.commandId)).size).toBe(64);
    expect(new Set(deposits.map((recorded) => recorded.id)).size).toBe(64);
  });

  it("gives a refused command in a batch its own error, recorded as a CommandRejected event that moves no money", async () => {
    const first = handler.execute(deposit(10n), context("first")); // runs alone; the rest queue behind it
    const batch = [
      handler.execute(withdraw(4n), context("w1")),
      handler.execute(withdraw(10n), context("w2")), // only 6 left by then
      handler.execute(deposit(3n), context("d1")),
    ];
    await first;
    const results = await Promise.allSettled(batch);
    expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ reason: "INSUFFICIENT_FUNDS", metadata: { balance: "6", revision: "3" } });
    expect((results[2] as PromiseFulfilledResult<{ revision: bigint; account: { balance: bigint } }>).value).toMatchObject({ revision: 4n, account: { balance: 9n } });
    expect(appends.map((append) => append.events.length)).toEqual([1, 3]);
    const recorded = await events();
    expect(recorded.map((event) => [event.metadata.commandId, event.type])).toEqual([
      ["open", "AccountOpened"],
      ["first", "MoneyDeposited"],
      ["w1", "MoneyWithdrawn"],
      ["w2", "CommandRejected"],
      ["d1", "MoneyDeposited"],
    ]);
    // The refusal is remembered: its retry gets the same answer.
    await expect(handler.execute(withdraw(10n), context("w2"))).rejects.toMatchObject({ reason: "INSUFFICIENT_FUNDS" });
  });

  it("applies a command id repeated within one batch once", async () => {
    const first = handler.execute(deposit(1n), context("first"));
    const batch = [
      handler.execute(deposit(5n), context("same")),
      handler.execute(deposit(5n), context("same")),
      handler.execute(deposit(6n), context("same")),
    ];
    await first;
    const results = await Promise.allSettled(batch);
    expect(results.map((result) => result.status)).toEqual(["fulfilled", "fulfilled", "rejected"]);
    expect((results[0] as PromiseFulfilledResult<unknown>).value).toEqual((results[1] as PromiseFulfilledResult<unknown>).value);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ reason: "COMMAND_ID_REUSED" });
    expect((await handler.getAccount("acc")).account.balance).toBe(6n);
  });

  it("gives every copy of a refused command in one batch the same refusal, even after a deposit that would let it through", async () => {
    const first = handler.execute(deposit(5n), context("first")); // runs alone; the rest queue behind it
    const batch = [
      handler.execute(withdraw(8n), context("w")), // only 5 there: refused
      handler.execute(deposit(10n), context("d")),
      handler.execute(withdraw(8n), context("w")), // the same command again: the same answer, not a second decision
    ];
    await first;
    const results = await Promise.allSettled(batch);
    expect(results.map((result) => result.status)).toEqual(["rejected", "fulfilled", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ reason: "INSUFFICIENT_FUNDS" });
    expect((results[2] as PromiseRejectedResult).reason).toBe((results[0] as PromiseRejectedResult).reason);
    expect((await events()).map((event) => [event.metadata.commandId, event.type])).toEqual([
      ["open", "AccountOpened"],
      ["first", "MoneyDeposited"],
      ["w", "CommandRejected"],
      ["d", "MoneyDeposited"],
    ]);
    // A later retry gets it too.
    await expect(handler.execute(withdraw(8n), context("w"))).rejects.toMatchObject({ reason: "INSUFFICIENT_FUNDS" });
    expect((await handler.getAccount("acc")).account.balance).toBe(15n);
  });

  it("decides the whole batch again when another writer got in first", async () => {
    const first = handler.execute(deposit(1n), context("first"));
    const batch = Array.from({ length: 5 }, (_, i) => handler.execute(deposit(1n), context(`b${i}`)));
    await first;
    // Another process appends before the batch's append reaches the store, once.
    let sneaked = false;
    beforeAppend = async () => {
      if (sneaked) return;
      sneaked = true;
      await store.append(accountStream("acc"), [{ id: eventIdFor(accountStream("acc"), "other", 0), type: "MoneyDeposited", data: { amount: "100" }, metadata: { commandId: "other", correlationId: "x", causationId: "x" } }], "any");
    };
    const results = await Promise.all(batch);
    expect(results.map((result) => result.revision)).toEqual([3n, 4n, 5n, 6n, 7n]);
    expect(results.at(-1)!.account.balance).toBe(106n);
  });

  it("runs a command with the client's expected revision alone, and never retries it", async () => {
    const plain = handler.execute(deposit(1n), context("plain"));
    const pinned = handler.execute(deposit(1n), context("pinned", { expectedRevision: 0n }));
    const after = handler.execute(deposit(1n), context("after", { expectedRevision: 1n }));
    await expect(plain).resolves.toMatchObject({ revision: 1n });
    await expect(pinned).rejects.toMatchObject({ reason: "REVISION_CONFLICT" });
    await expect(after).resolves.toMatchObject({ revision: 2n });
  });

  it("appends nothing for a caller that gave up while its command was queued", async () => {
    const controller = new AbortController();
    const first = handler.execute(deposit(1n), context("first"));
    const cancelled = handler.execute(deposit(1n), context("cancelled", { signal: controller.signal }));
    const kept = handler.execute(deposit(1n), context("kept"));
    controller.abort(new CommandCancelledError("deadline"));
    await first;
    await expect(cancelled).rejects.toBeInstanceOf(CommandCancelledError);
    await expect(kept).resolves.toMatchObject({ revision: 2n });
    expect((await events()).map((event) => event.metadata.commandId)).toEqual(["open", "first", "kept"]);
  });
});
