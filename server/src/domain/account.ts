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
  DomainError,
  InsufficientFundsError,
} from "./errors.js";
import { MAX_BALANCE, validateAccountId, validateAmount, validateCurrency, validateOwner } from "./rules.js";

export type AccountEvent =
  | { type: "AccountOpened"; data: { accountId: string; owner: string; currency: string } }
  | { type: "MoneyDeposited"; data: { amount: bigint } }
  | { type: "MoneyWithdrawn"; data: { amount: bigint } }
  | { type: "AccountClosed"; data: Record<string, never> }
  | { type: "CommandRejected"; data: CommandRejection };

/**
 * A refusal that depends on the account's state at the time (the balance), so
 * the same command could be accepted later. It is recorded as an event: the
 * store's revision check then orders it against every other write, and a
 * repeat of its command id is answered from the stream, by any server.
 * Refusals that can never change (an account that exists or is closed, bad
 * input) need no record.
 */
export interface CommandRejection {
  command: RejectedCommand;
  reason: RecordedRefusal["reason"];
  /** The refusal's ErrorInfo metadata, as the caller got it. */
  details: Record<string, string>;
}

export type RejectedCommand = { type: "Deposit" | "Withdraw"; amount: bigint } | { type: "CloseAccount" };

type RecordedRefusal = InsufficientFundsError | BalanceLimitExceededError | BalanceNotZeroError;

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
    case "CommandRejected":
      return existing(state, event.type);
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

/** The event that records `error` as the answer to `command`, when that refusal depends on the state. */
export function rejectionOf(command: AccountCommand, error: unknown): Extract<AccountEvent, { type: "CommandRejected" }> | undefined {
  const recorded =
    error instanceof InsufficientFundsError || error instanceof BalanceLimitExceededError || error instanceof BalanceNotZeroError;
  if (!recorded || command.type === "OpenAccount") return undefined;
  const rejected: RejectedCommand = command.type === "CloseAccount" ? { type: "CloseAccount" } : { type: command.type, amount: command.amount };
  return { type: "CommandRejected", data: { command: rejected, reason: error.reason, details: { ...error.metadata } } };
}

/** The refusal a CommandRejected event recorded, rebuilt with the same reason, message and metadata. */
export function refusalOf(accountId: string, rejection: CommandRejection): DomainError {
  const { command, details } = rejection;
  const amount = command.type === "CloseAccount" ? 0n : command.amount;
  const balance = BigInt(details.balance ?? "0");
  switch (rejection.reason) {
    case "INSUFFICIENT_FUNDS":
      return new InsufficientFundsError(accountId, balance, amount);
    case "BALANCE_LIMIT_EXCEEDED":
      return new BalanceLimitExceededError(accountId, balance, amount);
    case "BALANCE_NOT_ZERO":
      return new BalanceNotZeroError(accountId, balance);
    default:
      return assertNever(rejection.reason);
  }
}

/** The command a recorded event answers, as far as the event says (for comparing a repeated command id). */
export function commandOf(accountId: string, event: AccountEvent): AccountCommand {
  switch (event.type) {
    case "AccountOpened":
      return { type: "OpenAccount", accountId, owner: event.data.owner, currency: event.data.currency };
    case "MoneyDeposited":
      return { type: "Deposit", accountId, amount: event.data.amount };
    case "MoneyWithdrawn":
      return { type: "Withdraw", accountId, amount: event.data.amount };
    case "AccountClosed":
      return { type: "CloseAccount", accountId };
    case "CommandRejected":
      return { ...event.data.command, accountId };
    default:
      return assertNever(event);
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
