/** The SDK's public data types: plain objects, camelCase, `bigint` for money and revisions. */

export type AccountStatus = "open" | "closed";

export interface Account {
  accountId: string;
  owner: string;
  /** ISO 4217 code, e.g. "EUR". */
  currency: string;
  /** Integer minor units (cents for EUR). */
  balance: bigint;
  /** The balance less what is on hold for transfers in progress. */
  availableBalance: bigint;
  status: AccountStatus;
  /** Revision of the last event applied: 0 right after opening. */
  revision: bigint;
}

/** What a command returns: the account after it, and the command id that was used. */
export interface CommandResult {
  account: Account;
  revision: bigint;
  /** The command id sent (the caller's, or the one the SDK made); reuse it to retry safely. */
  commandId: string;
}

/** Facts every recorded event carries. */
export interface AccountEventBase {
  accountId: string;
  /** Revision within the account's stream (0 is "opened"). */
  revision: bigint;
  /** Opaque global position; pass it back as `fromPosition` to resume after this event. */
  position: string;
  eventId: string;
  commandId: string;
  correlationId: string;
  occurredAt: Date | undefined;
}

export type AccountOpened = AccountEventBase & { type: "opened"; owner: string; currency: string };
export type MoneyDeposited = AccountEventBase & { type: "deposited"; amount: bigint };
export type MoneyWithdrawn = AccountEventBase & { type: "withdrawn"; amount: bigint };
export type AccountClosed = AccountEventBase & { type: "closed" };
/**
 * A command the account's rules refused (e.g. INSUFFICIENT_FUNDS), recorded so
 * every repeat of its command id gets the same answer. Changes no balance.
 */
export type CommandRejected = AccountEventBase & {
  type: "rejected";
  /** The ErrorInfo reason the caller got. */
  reason: string;
  message: string;
  /** "Deposit", "Withdraw" or "CloseAccount". */
  command: string;
  /** The amount asked for; 0n for CloseAccount. */
  amount: bigint;
  details: Record<string, string>;
  /** The transfer whose step was refused; "" otherwise. */
  transferId: string;
};
/** An event type this SDK version does not know (sent by a newer server). */
export type UnknownAccountEvent = AccountEventBase & { type: "unknown" };

/** Transfer legs (see docs/transfers.md): a hold on the source, the credit, then the hold captured or released. */
export type FundsReserved = AccountEventBase & { type: "reserved"; transferId: string; amount: bigint };
export type TransferCredited = AccountEventBase & { type: "credited"; transferId: string; amount: bigint; fromAccountId: string };
export type HoldCaptured = AccountEventBase & { type: "captured"; transferId: string; amount: bigint };
export type HoldReleased = AccountEventBase & { type: "released"; transferId: string; amount: bigint };

export type AccountEvent =
  | AccountOpened
  | MoneyDeposited
  | MoneyWithdrawn
  | AccountClosed
  | CommandRejected
  | FundsReserved
  | TransferCredited
  | HoldCaptured
  | HoldReleased
  | UnknownAccountEvent;

export type TransferStatus = "pending" | "completed" | "failed";

/** A transfer of money between two accounts of the same currency. */
export interface Transfer {
  transferId: string;
  fromAccountId: string;
  toAccountId: string;
  /** Integer minor units. */
  amount: bigint;
  /** The source account's currency. */
  currency: string;
  status: TransferStatus;
  /** The refusal's reason when failed (e.g. "INSUFFICIENT_FUNDS"); "" otherwise. */
  failureReason: string;
  reference: string;
  requestedAt: Date | undefined;
  /** When it became final. */
  completedAt: Date | undefined;
}

/** Yielded by subscriptions between the last historical event and the first live one (again after each resume). */
export interface CaughtUp {
  type: "caughtUp";
}

export type SubscriptionItem = AccountEvent | CaughtUp;
