/**
 * Domain errors: typed, each with a stable `reason` that reaches clients as
 * google.rpc.ErrorInfo.reason. The gRPC layer maps them to status codes in
 * exactly one place (server/src/grpc/status-mapping.ts).
 */

export abstract class DomainError extends Error {
  abstract readonly reason: string;
  /** Extra facts for ErrorInfo.metadata (string values only). */
  readonly metadata: Record<string, string>;
  constructor(message: string, metadata: Record<string, string> = {}) {
    super(message);
    this.metadata = metadata;
  }
}

/** Malformed input: the request could never succeed as sent. */
export class ValidationError extends DomainError {
  override readonly name = "ValidationError";
  constructor(
    readonly reason:
      | "INVALID_ACCOUNT_ID"
      | "INVALID_AMOUNT"
      | "INVALID_CURRENCY"
      | "INVALID_OWNER"
      | "INVALID_COMMAND_ID"
      | "INVALID_REVISION"
      | "INVALID_TRANSFER_ID"
      | "INVALID_REFERENCE"
      | "SAME_ACCOUNT"
      | "INVALID_ARGUMENT",
    readonly field: string,
    message: string,
  ) {
    super(message, { field });
  }
}

export class AccountNotFoundError extends DomainError {
  override readonly name = "AccountNotFoundError";
  readonly reason = "ACCOUNT_NOT_FOUND";
  constructor(readonly accountId: string) {
    super(`account ${accountId} does not exist`, { account_id: accountId });
  }
}

export class AccountAlreadyExistsError extends DomainError {
  override readonly name = "AccountAlreadyExistsError";
  readonly reason = "ACCOUNT_ALREADY_EXISTS";
  constructor(readonly accountId: string) {
    super(`account ${accountId} already exists`, { account_id: accountId });
  }
}

export class AccountClosedError extends DomainError {
  override readonly name = "AccountClosedError";
  readonly reason = "ACCOUNT_CLOSED";
  constructor(readonly accountId: string) {
    super(`account ${accountId} is closed`, { account_id: accountId });
  }
}

export class InsufficientFundsError extends DomainError {
  override readonly name = "InsufficientFundsError";
  readonly reason = "INSUFFICIENT_FUNDS";
  constructor(
    readonly accountId: string,
    readonly balance: bigint,
    readonly amount: bigint,
    /** The balance less holds; metadata names it only when it differs from the balance. */
    readonly available: bigint = balance,
    verb: "withdraw" | "reserve" = "withdraw",
  ) {
    const has = available === balance ? `${balance}` : `${balance}, of which ${available} available`;
    super(`account ${accountId} has ${has}, cannot ${verb} ${amount}`, {
      account_id: accountId,
      balance: String(balance),
      amount: String(amount),
      ...(available === balance ? {} : { available_balance: String(available) }),
    });
  }
}

export class BalanceLimitExceededError extends DomainError {
  override readonly name = "BalanceLimitExceededError";
  readonly reason = "BALANCE_LIMIT_EXCEEDED";
  constructor(
    readonly accountId: string,
    readonly balance: bigint,
    readonly amount: bigint,
  ) {
    super(`a deposit of ${amount} would take account ${accountId} past the balance limit`, {
      account_id: accountId,
      balance: String(balance),
      amount: String(amount),
    });
  }
}

export class BalanceNotZeroError extends DomainError {
  override readonly name = "BalanceNotZeroError";
  readonly reason = "BALANCE_NOT_ZERO";
  constructor(
    readonly accountId: string,
    readonly balance: bigint,
  ) {
    super(`account ${accountId} still holds ${balance}; only a zero balance can be closed`, {
      account_id: accountId,
      balance: String(balance),
    });
  }
}

/** A transfer between accounts of different currencies. */
export class CurrencyMismatchError extends DomainError {
  override readonly name = "CurrencyMismatchError";
  readonly reason = "CURRENCY_MISMATCH";
  constructor(
    readonly accountId: string,
    readonly accountCurrency: string,
    readonly currency: string,
  ) {
    super(`account ${accountId} holds ${accountCurrency}, not ${currency}`, { account_id: accountId, account_currency: accountCurrency, currency });
  }
}

/** No hold of this transfer on the account (never reserved, or already captured or released). */
export class HoldNotFoundError extends DomainError {
  override readonly name = "HoldNotFoundError";
  readonly reason = "HOLD_NOT_FOUND";
  constructor(
    readonly accountId: string,
    readonly transferId: string,
  ) {
    super(`account ${accountId} holds nothing for transfer ${transferId}`, { account_id: accountId, transfer_id: transferId });
  }
}

export class TransferNotFoundError extends DomainError {
  override readonly name = "TransferNotFoundError";
  readonly reason = "TRANSFER_NOT_FOUND";
  constructor(readonly transferId: string) {
    super(`transfer ${transferId} does not exist`, { transfer_id: transferId });
  }
}

/** The transfer id was used before for a transfer with other accounts, amount or reference. */
export class TransferIdReusedError extends DomainError {
  override readonly name = "TransferIdReusedError";
  readonly reason = "TRANSFER_ID_REUSED";
  constructor(readonly transferId: string) {
    super(`transfer_id ${transferId} was already used for a different transfer`, { transfer_id: transferId });
  }
}

/**
 * A transfer that ended FAILED: the refusal of one of its steps (its reason,
 * e.g. INSUFFICIENT_FUNDS, and message), with the transfer id in the metadata.
 */
export class TransferFailedError extends DomainError {
  override readonly name = "TransferFailedError";
  constructor(
    readonly transferId: string,
    readonly reason: string,
    message: string,
    metadata: Record<string, string> = {},
  ) {
    super(message, { ...metadata, transfer_id: transferId });
  }
}
