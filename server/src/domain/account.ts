/**
 * The Account aggregate as two pure functions:
 *   decide(command, state) -> events   (or throws a DomainError)
 *   evolve(state, event)   -> state
 * No I/O and no mutation; the app layer loads, decides and appends.
 */
import {
  AccountAlreadyExistsError,
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  InsufficientFundsError,
} from "./errors.js";
import { MAX_BALANCE, validateAccountId, validateAmount, validateCurrency, validateOwner } from "./rules.js";

export type AccountEvent =
  | { type: "AccountOpened"; data: { accountId: string; owner: string; currency: string } }
  | { type: "MoneyDeposited"; data: { amount: bigint } }
  | { type: "MoneyWithdrawn"; data: { amount: bigint } }
  | { type: "AccountClosed"; data: Record<string, never> };

export type AccountEventType = AccountEvent["type"];

export type AccountCommand =
  | { type: "OpenAccount"; accountId: string; owner: string; currency: string }
  | { type: "Deposit"; accountId: string; amount: bigint }
  | { type: "Withdraw"; accountId: string; amount: bigint }
  | { type: "CloseAccount"; accountId: string };

export interface ExistingAccount {
  status: "open" | "closed";
  accountId: string;
  owner: string;
  currency: string;
  /** Minor units; 0 <= balance <= MAX_BALANCE. */
  balance: bigint;
}

export type AccountState = { status: "none" } | ExistingAccount;

export const initialState: AccountState = Object.freeze({ status: "none" });

export function evolve(state: AccountState, event: AccountEvent): AccountState {
  switch (event.type) {
    case "AccountOpened":
      return {
        status: "open",
        accountId: event.data.accountId,
        owner: event.data.owner,
        currency: event.data.currency,
        balance: 0n,
      };
    case "MoneyDeposited":
      return { ...existing(state, event.type), balance: existing(state, event.type).balance + event.data.amount };
    case "MoneyWithdrawn":
      return { ...existing(state, event.type), balance: existing(state, event.type).balance - event.data.amount };
    case "AccountClosed":
      return { ...existing(state, event.type), status: "closed" };
    default:
      return assertNever(event);
  }
}

export function decide(command: AccountCommand, state: AccountState): AccountEvent[] {
  validateAccountId(command.accountId);
  switch (command.type) {
    case "OpenAccount": {
      if (state.status !== "none") throw new AccountAlreadyExistsError(command.accountId);
      validateOwner(command.owner);
      validateCurrency(command.currency);
      return [
        { type: "AccountOpened", data: { accountId: command.accountId, owner: command.owner, currency: command.currency } },
      ];
    }
    case "Deposit": {
      validateAmount(command.amount);
      const account = openAccount(state, command.accountId);
      if (account.balance + command.amount > MAX_BALANCE) {
        throw new BalanceLimitExceededError(command.accountId, account.balance, command.amount);
      }
      return [{ type: "MoneyDeposited", data: { amount: command.amount } }];
    }
    case "Withdraw": {
      validateAmount(command.amount);
      const account = openAccount(state, command.accountId);
      if (account.balance < command.amount) {
        throw new InsufficientFundsError(command.accountId, account.balance, command.amount);
      }
      return [{ type: "MoneyWithdrawn", data: { amount: command.amount } }];
    }
    case "CloseAccount": {
      const account = openAccount(state, command.accountId);
      if (account.balance !== 0n) throw new BalanceNotZeroError(command.accountId, account.balance);
      return [{ type: "AccountClosed", data: {} }];
    }
    default:
      return assertNever(command);
  }
}

/** Folds events onto a state, e.g. a whole stream onto `initialState`. */
export function evolveAll(state: AccountState, events: Iterable<AccountEvent>): AccountState {
  let current = state;
  for (const event of events) current = evolve(current, event);
  return current;
}

function openAccount(state: AccountState, accountId: string): ExistingAccount {
  if (state.status === "none") throw new AccountNotFoundError(accountId);
  if (state.status === "closed") throw new AccountClosedError(accountId);
  return state;
}

function existing(state: AccountState, eventType: AccountEventType): ExistingAccount {
  // A stream whose first event is not AccountOpened is corrupt, not a user error.
  if (state.status === "none") throw new Error(`${eventType} on an account that was never opened`);
  return state;
}

function assertNever(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}
