import { describe, expect, it } from "vitest";
import { decide, evolve, evolveAll, initialState, type AccountEvent, type AccountState } from "../../server/src/domain/account.js";
import {
  AccountAlreadyExistsError,
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  InsufficientFundsError,
  ValidationError,
} from "../../server/src/domain/errors.js";
import { MAX_AMOUNT, MAX_BALANCE } from "../../server/src/domain/rules.js";

const opened: AccountEvent = { type: "AccountOpened", data: { accountId: "a1", owner: "Ada", currency: "EUR" } };
const withBalance = (balance: bigint): AccountState => ({ status: "open", accountId: "a1", owner: "Ada", currency: "EUR", balance, holds: {} });

describe("Account aggregate", () => {
  it("opens an account once with owner and currency", () => {
    expect(decide({ type: "OpenAccount", accountId: "a1", owner: "Ada", currency: "EUR" }, initialState)).toEqual([opened]);
    expect(() => decide({ type: "OpenAccount", accountId: "a1", owner: "Ada", currency: "EUR" }, withBalance(0n))).toThrow(
      AccountAlreadyExistsError,
    );
  });

  it("folds a stream into the balance", () => {
    const state = evolveAll(initialState, [
      opened,
      { type: "MoneyDeposited", data: { amount: 100n } },
      { type: "MoneyWithdrawn", data: { amount: 30n } },
    ]);
    expect(state).toEqual(withBalance(70n));
  });

  it("does not mutate the state it is given", () => {
    const state = Object.freeze(withBalance(10n));
    const next = evolve(state, { type: "MoneyDeposited", data: { amount: 5n } });
    expect(state.status === "open" && state.balance).toBe(10n);
    expect(next).toEqual(withBalance(15n));
    expect(decide({ type: "Deposit", accountId: "a1", amount: 1n }, state)).toHaveLength(1);
  });

  it("accepts amounts from 1 to the bound and rejects the rest", () => {
    expect(decide({ type: "Deposit", accountId: "a1", amount: 1n }, withBalance(0n))).toEqual([{ type: "MoneyDeposited", data: { amount: 1n } }]);
    expect(decide({ type: "Deposit", accountId: "a1", amount: MAX_AMOUNT }, withBalance(0n))).toHaveLength(1);
    for (const amount of [0n, -1n, MAX_AMOUNT + 1n]) {
      const attempt = () => decide({ type: "Deposit", accountId: "a1", amount }, withBalance(0n));
      expect(attempt).toThrow(ValidationError);
      expect(() => decide({ type: "Withdraw", accountId: "a1", amount }, withBalance(10n))).toThrow(ValidationError);
    }
  });

  it("rejects a withdrawal beyond the balance", () => {
    expect(() => decide({ type: "Withdraw", accountId: "a1", amount: 11n }, withBalance(10n))).toThrow(InsufficientFundsError);
    expect(decide({ type: "Withdraw", accountId: "a1", amount: 10n }, withBalance(10n))).toHaveLength(1);
  });

  it("keeps the balance at or below 2^53 - 1", () => {
    expect(decide({ type: "Deposit", accountId: "a1", amount: 1n }, withBalance(MAX_BALANCE - 1n))).toHaveLength(1);
    expect(() => decide({ type: "Deposit", accountId: "a1", amount: 1n }, withBalance(MAX_BALANCE))).toThrow(BalanceLimitExceededError);
  });

  it("closes only at zero balance and then accepts nothing", () => {
    expect(() => decide({ type: "CloseAccount", accountId: "a1" }, withBalance(1n))).toThrow(BalanceNotZeroError);
    const closed = evolveAll(withBalance(0n), decide({ type: "CloseAccount", accountId: "a1" }, withBalance(0n)));
    expect(closed.status).toBe("closed");
    expect(() => decide({ type: "Deposit", accountId: "a1", amount: 1n }, closed)).toThrow(AccountClosedError);
    expect(() => decide({ type: "Withdraw", accountId: "a1", amount: 1n }, closed)).toThrow(AccountClosedError);
    expect(() => decide({ type: "CloseAccount", accountId: "a1" }, closed)).toThrow(AccountClosedError);
  });

  it("refuses commands on an account never opened", () => {
    expect(() => decide({ type: "Deposit", accountId: "a1", amount: 1n }, initialState)).toThrow(AccountNotFoundError);
  });

  it("validates account ids, currencies and owners with stable reasons", () => {
    const reasonOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return (error as ValidationError).reason;
      }
      return "none";
    };
    expect(reasonOf(() => decide({ type: "OpenAccount", accountId: "-x", owner: "A", currency: "EUR" }, initialState))).toBe("INVALID_ACCOUNT_ID");
    expect(reasonOf(() => decide({ type: "OpenAccount", accountId: "x", owner: "A", currency: "QQQ" }, initialState))).toBe("INVALID_CURRENCY");
    expect(reasonOf(() => decide({ type: "OpenAccount", accountId: "x", owner: "A\u0000", currency: "EUR" }, initialState))).toBe("INVALID_OWNER");
    expect(reasonOf(() => decide({ type: "OpenAccount", accountId: "x_-9", owner: "A", currency: "JPY" }, initialState))).toBe("none");
  });
});
