/** The Transfer decider, the account rules of holds, and the transfer process's reactions over a real (in-memory SQLite) store. */
import { describe, expect, it } from "vitest";
import { AccountCommandHandler } from "../../server/src/app/account-command-handler.js";
import { CommandRuntime } from "../../server/src/app/command-runtime.js";
import { transferAggregate } from "../../server/src/app/transfer-aggregate.js";
import { TransferProcess, type Failpoint } from "../../server/src/app/transfer-process.js";
import { availableBalance, decide, evolveAll, initialState, type AccountCommand, type AccountEvent, type ExistingAccount } from "../../server/src/domain/account.js";
import { decideTransfer, evolveTransfer, initialTransferState, type ExistingTransfer, type TransferCommand } from "../../server/src/domain/transfer.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";

const at = new Date("2026-12-03T10:00:00Z");
const request: Extract<TransferCommand, { type: "RequestTransfer" }> = {
  type: "RequestTransfer",
  transferId: "t1",
  fromAccountId: "a",
  toAccountId: "b",
  amount: 30n,
  currency: "EUR",
  reference: "rent",
  at,
};

describe("Transfer decider", () => {
  it("records a request once, then exactly one final state", () => {
    const [requested] = decideTransfer(request, initialTransferState);
    const pending = evolveTransfer(initialTransferState, requested!);
    expect(pending).toMatchObject({ status: "pending", transferId: "t1", amount: 30n, requestedAt: at });
    expect(() => decideTransfer(request, pending)).toThrow(/exists already/);
    const completed = evolveTransfer(pending, decideTransfer({ type: "CompleteTransfer", transferId: "t1", at }, pending)[0]!);
    expect(completed).toMatchObject({ status: "completed", completedAt: at });
    expect(() => decideTransfer({ type: "FailTransfer", transferId: "t1", reason: "X", message: "x", at }, completed)).toThrow(/completed already/);
    const failed = evolveTransfer(pending, decideTransfer({ type: "FailTransfer", transferId: "t1", reason: "ACCOUNT_CLOSED", message: "closed", at }, pending)[0]!);
    expect(failed).toMatchObject({ status: "failed", failureReason: "ACCOUNT_CLOSED", failureMessage: "closed" });
  });

  it.each([
    [{ toAccountId: "a" }, "SAME_ACCOUNT"],
    [{ amount: 0n }, "INVALID_AMOUNT"],
    [{ transferId: "-x" }, "INVALID_TRANSFER_ID"],
    [{ fromAccountId: "a b" }, "INVALID_ACCOUNT_ID"],
    [{ reference: "\n" }, "INVALID_REFERENCE"],
  ])("refuses a bad request %o with %s", (change, reason) => {
    expect(() => decideTransfer({ ...request, ...change }, initialTransferState)).toThrow(expect.objectContaining({ reason }));
  });
});

describe("Account holds", () => {
  const opened: AccountEvent = { type: "AccountOpened", data: { accountId: "a", owner: "Ada", currency: "EUR" } };
  const with100 = evolveAll(initialState, [opened, { type: "MoneyDeposited", data: { amount: 100n } }]) as ExistingAccount;
  const run = (state: ExistingAccount, command: AccountCommand) => evolveAll(state, decide(command, state)) as ExistingAccount;

  it("reserves from the available balance only, and captures or releases the hold", () => {
    const held = run(with100, { type: "ReserveFunds", accountId: "a", transferId: "t1", amount: 60n });
    expect([held.balance, availableBalance(held)]).toEqual([100n, 40n]);
    expect(() => decide({ type: "ReserveFunds", accountId: "a", transferId: "t2", amount: 41n }, held)).toThrow(expect.objectContaining({ reason: "INSUFFICIENT_FUNDS" }));
    expect(() => decide({ type: "Withdraw", accountId: "a", amount: 41n }, held)).toThrow(
      expect.objectContaining({ reason: "INSUFFICIENT_FUNDS", metadata: expect.objectContaining({ balance: "100", available_balance: "40" }) }),
    );
    expect(() => decide({ type: "CloseAccount", accountId: "a" }, held)).toThrow(expect.objectContaining({ reason: "BALANCE_NOT_ZERO" }));
    const captured = run(held, { type: "CaptureHold", accountId: "a", transferId: "t1" });
    expect([captured.balance, availableBalance(captured)]).toEqual([40n, 40n]);
    const released = run(held, { type: "ReleaseHold", accountId: "a", transferId: "t1" });
    expect([released.balance, availableBalance(released)]).toEqual([100n, 100n]);
    expect(() => decide({ type: "CaptureHold", accountId: "a", transferId: "t1" }, captured)).toThrow(expect.objectContaining({ reason: "HOLD_NOT_FOUND" }));
  });

  it("credits only in the account's currency and within the balance limit", () => {
    expect(() => decide({ type: "CreditTransfer", accountId: "a", transferId: "t", amount: 1n, fromAccountId: "b", currency: "USD" }, with100)).toThrow(
      expect.objectContaining({ reason: "CURRENCY_MISMATCH" }),
    );
    const credited = run(with100, { type: "CreditTransfer", accountId: "a", transferId: "t", amount: 5n, fromAccountId: "b", currency: "EUR" });
    expect(credited.balance).toBe(105n);
  });
});

describe("the transfer process over a store", () => {
  async function setUp(options: { destinationCurrency?: string; closeDestination?: boolean; deposit?: bigint } = {}) {
    const store = new SqliteEventStore(":memory:");
    const accounts = new AccountCommandHandler(store);
    const transfers = new CommandRuntime(transferAggregate, store, { cacheSize: 0 });
    const ctx = (id: string) => ({ commandId: id, correlationId: id, causationId: id });
    await accounts.execute({ type: "OpenAccount", accountId: "a", owner: "Ada", currency: "EUR" }, ctx("o-a"));
    await accounts.execute({ type: "OpenAccount", accountId: "b", owner: "Bob", currency: options.destinationCurrency ?? "EUR" }, ctx("o-b"));
    await accounts.execute({ type: "Deposit", accountId: "a", amount: options.deposit ?? 100n }, ctx("d-a"));
    if (options.closeDestination) await accounts.execute({ type: "CloseAccount", accountId: "b" }, ctx("c-b"));
    await transfers.execute(request, ctx("request"));
    const passed: Failpoint[] = [];
    const process = new TransferProcess({ executeStep: (command, context) => accounts.step(command, context), transfers, failpoint: (name) => passed.push(name) });
    const pending = (await transfers.get("t1")).state as ExistingTransfer;
    const legs = async (accountId: string) => {
      const read = await store.readStream(`account-${accountId}`);
      return read.status === "ok" ? read.events.filter((e) => e.metadata.commandId?.toString().startsWith("transfer:")).map((e) => e.type) : [];
    };
    return { store, accounts, process, pending, passed, legs };
  }

  it("reserves, credits, captures and completes", async () => {
    const { process, pending, passed, accounts, legs, store } = await setUp();
    expect(await process.drive(pending)).toMatchObject({ status: "completed" });
    expect(passed).toEqual(["after-reserve", "after-credit", "after-capture"]);
    expect(await legs("a")).toEqual(["FundsReserved", "HoldCaptured"]);
    expect(await legs("b")).toEqual(["TransferCredited"]);
    expect((await accounts.getAccount("a")).account.balance).toBe(70n);
    await store.close();
  });

  it("fails without touching the destination when the reservation is refused", async () => {
    const { process, pending, passed, legs, store } = await setUp({ deposit: 10n });
    expect(await process.drive(pending)).toMatchObject({ status: "failed", failureReason: "INSUFFICIENT_FUNDS" });
    expect(passed).toEqual([]);
    expect(await legs("a")).toEqual(["CommandRejected"]);
    expect(await legs("b")).toEqual([]);
    await store.close();
  });

  it.each([
    [{ closeDestination: true }, "ACCOUNT_CLOSED"],
    [{ destinationCurrency: "USD" }, "CURRENCY_MISMATCH"],
  ])("releases the hold and fails when the credit is refused (%o)", async (options, reason) => {
    const { process, pending, passed, legs, accounts, store } = await setUp(options);
    expect(await process.drive(pending)).toMatchObject({ status: "failed", failureReason: reason });
    expect(passed).toEqual(["after-reserve", "after-credit-refused", "after-release"]);
    expect(await legs("a")).toEqual(["FundsReserved", "HoldReleased"]);
    expect((await accounts.getAccount("a")).account).toMatchObject({ balance: 100n, holds: {} });
    await store.close();
  });

  it("moves the money once however often and however concurrently it runs", async () => {
    const { process, pending, legs, accounts, store } = await setUp();
    const runs = await Promise.all(Array.from({ length: 5 }, () => process.drive(pending)));
    const again = await process.drive(pending);
    for (const run of [...runs, again]) expect(run).toEqual(runs[0]);
    expect(await legs("a")).toEqual(["FundsReserved", "HoldCaptured"]);
    expect(await legs("b")).toEqual(["TransferCredited"]);
    expect((await accounts.getAccount("b")).account.balance).toBe(30n);
    await store.close();
  });
});
