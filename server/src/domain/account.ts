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
  CurrencyMismatchError,
  DomainError,
  HoldNotFoundError,
  InsufficientFundsError,
} from "./errors.js";
import { MAX_BALANCE, validateAccountId, validateAmount, validateCurrency, validateOwner } from "./rules.js";

export type AccountEvent =
  | { type: "AccountOpened"; data: { accountId: string; owner: string; currency: string } }
  | { type: "MoneyDeposited"; data: { amount: bigint } }
  | { type: "MoneyWithdrawn"; data: { amount: bigint } }
  | { type: "AccountClosed"; data: Record<string, never> }
  | { type: "CommandRejected"; data: CommandRejection }
  // Transfers, in two phases (docs/transfers.md): a hold on the source, the credit, then the capture or release.
  | { type: "FundsReserved"; data: { transferId: string; amount: bigint } }
  | { type: "TransferCredited"; data: { transferId: string; amount: bigint; fromAccountId: string } }
  | { type: "HoldCaptured"; data: { transferId: string; amount: bigint } }
  | { type: "HoldReleased"; data: { transferId: string; amount: bigint } };

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

export type RejectedCommand =
  | { type: "Deposit" | "Withdraw"; amount: bigint }
  | { type: "CloseAccount" }
  | { type: "ReserveFunds"; transferId: string; amount: bigint }
  | { type: "CreditTransfer"; transferId: string; amount: bigint; fromAccountId: string; currency: string };

type RecordedRefusal = InsufficientFundsError | BalanceLimitExceededError | BalanceNotZeroError;

export type AccountEventType = AccountEvent["type"];

export type AccountCommand =
  | { type: "OpenAccount"; accountId: string; owner: string; currency: string }
  | { type: "Deposit"; accountId: string; amount: bigint }
  | { type: "Withdraw"; accountId: string; amount: bigint }
  | { type: "CloseAccount"; accountId: string }
  /** Puts `amount` of the available balance on hold for a transfer. */
  | { type: "ReserveFunds"; accountId: string; transferId: string; amount: bigint }
  /** Credits a transfer's amount (in `currency`, which must be the account's). */
  | { type: "CreditTransfer"; accountId: string; transferId: string; amount: bigint; fromAccountId: string; currency: string }
  /** Takes a transfer's held amount out of the balance. */
  | { type: "CaptureHold"; accountId: string; transferId: string }
  /** Gives a transfer's held amount back to the available balance. */
  | { type: "ReleaseHold"; accountId: string; transferId: string };

export interface ExistingAccount {
  status: "open" | "closed";
  accountId: string;
  owner: string;
  currency: string;
  /** Posted balance, minor units; 0 <= balance <= MAX_BALANCE. */
  balance: bigint;
  /** Amounts on hold per transfer id; the available balance is the balance less these. */
  holds: Readonly<Record<string, bigint>>;
}

/** The balance less what is on hold. */
export function availableBalance(account: ExistingAccount): bigint {
  let held = 0n;
  for (const amount of Object.values(account.holds)) held += amount;
  return account.balance - held;
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
        holds: {},
      };
    case "MoneyDeposited":
      return { ...existing(state, event.type), balance: existing(state, event.type).balance + event.data.amount };
    case "MoneyWithdrawn":
      return { ...existing(state, event.type), balance: existing(state, event.type).balance - event.data.amount };
    case "AccountClosed":
      return { ...existing(state, event.type), status: "closed" };
    case "CommandRejected":
      return existing(state, event.type);
    case "FundsReserved": {
      const account = existing(state, event.type);
      return { ...account, holds: { ...account.holds, [event.data.transferId]: event.data.amount } };
    }
    case "TransferCredited": {
      const account = existing(state, event.type);
      return { ...account, balance: account.balance + event.data.amount };
    }
    case "HoldCaptured": {
      const account = existing(state, event.type);
      return { ...account, balance: account.balance - event.data.amount, holds: without(account.holds, event.data.transferId) };
    }
    case "HoldReleased": {
      const account = existing(state, event.type);
      return { ...account, holds: without(account.holds, event.data.transferId) };
    }
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
      // Money on hold for a transfer is not there to spend.
      if (availableBalance(account) < command.amount) throw insufficientFunds(account, command.amount, "withdraw");
      return [{ type: "MoneyWithdrawn", data: { amount: command.amount } }];
    }
    case "ReserveFunds": {
      validateAmount(command.amount);
      const account = openAccount(state, command.accountId);
      if (availableBalance(account) < command.amount) throw insufficientFunds(account, command.amount, "reserve");
      return [{ type: "FundsReserved", data: { transferId: command.transferId, amount: command.amount } }];
    }
    case "CreditTransfer": {
      validateAmount(command.amount);
      const account = openAccount(state, command.accountId);
      if (account.currency !== command.currency) throw new CurrencyMismatchError(command.accountId, account.currency, command.currency);
      if (account.balance + command.amount > MAX_BALANCE) {
        throw new BalanceLimitExceededError(command.accountId, account.balance, command.amount);
      }
      const { transferId, amount, fromAccountId } = command;
      return [{ type: "TransferCredited", data: { transferId, amount, fromAccountId } }];
    }
    case "CaptureHold":
    case "ReleaseHold": {
      // A closed account holds nothing (an account with a hold cannot close), so the hold is what is checked.
      const amount = state.status === "none" ? undefined : state.holds[command.transferId];
      if (state.status === "none") throw new AccountNotFoundError(command.accountId);
      if (amount === undefined) throw new HoldNotFoundError(command.accountId, command.transferId);
      const data = { transferId: command.transferId, amount };
      return [command.type === "CaptureHold" ? { type: "HoldCaptured", data } : { type: "HoldReleased", data }];
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
  if (!recorded) return undefined;
  let rejected: RejectedCommand;
  switch (command.type) {
    case "OpenAccount":
    case "CaptureHold":
    case "ReleaseHold":
      return undefined;
    case "CloseAccount":
      rejected = { type: "CloseAccount" };
      break;
    case "Deposit":
    case "Withdraw":
      rejected = { type: command.type, amount: command.amount };
      break;
    case "ReserveFunds":
      rejected = { type: command.type, transferId: command.transferId, amount: command.amount };
      break;
    case "CreditTransfer": {
      const { transferId, amount, fromAccountId, currency } = command;
      rejected = { type: command.type, transferId, amount, fromAccountId, currency };
      break;
    }
  }
  return { type: "CommandRejected", data: { command: rejected, reason: error.reason, details: { ...error.metadata } } };
}

/** The refusal a CommandRejected event recorded, rebuilt with the same reason, message and metadata. */
export function refusalOf(accountId: string, rejection: CommandRejection): DomainError {
  const { command, details } = rejection;
  const amount = command.type === "CloseAccount" ? 0n : command.amount;
  const balance = BigInt(details.balance ?? "0");
  switch (rejection.reason) {
    case "INSUFFICIENT_FUNDS": {
      const available = BigInt(details.available_balance ?? details.balance ?? "0");
      return new InsufficientFundsError(accountId, balance, amount, available, command.type === "ReserveFunds" ? "reserve" : "withdraw");
    }
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
    case "FundsReserved":
      return { type: "ReserveFunds", accountId, transferId: event.data.transferId, amount: event.data.amount };
    case "TransferCredited":
      // The currency is the account's: a credit is only recorded when they match.
      return { type: "CreditTransfer", accountId, ...event.data, currency: "" };
    case "HoldCaptured":
      return { type: "CaptureHold", accountId, transferId: event.data.transferId };
    case "HoldReleased":
      return { type: "ReleaseHold", accountId, transferId: event.data.transferId };
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

function insufficientFunds(account: ExistingAccount, amount: bigint, verb: "withdraw" | "reserve"): InsufficientFundsError {
  return new InsufficientFundsError(account.accountId, account.balance, amount, availableBalance(account), verb);
}

function without(holds: Readonly<Record<string, bigint>>, transferId: string): Record<string, bigint> {
  const { [transferId]: _released, ...rest } = holds;
  return rest;
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
