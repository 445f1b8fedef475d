/**
 * Typed errors, decoded from the google.rpc.Status that the server puts in
 * `grpc-status-details-bin` (one google.rpc.ErrorInfo, domain "eventbank",
 * with a stable `reason` and string metadata). Transport failures that carry
 * no details are classified by their gRPC status code alone.
 */
import { status as Code, type ServiceError } from "@grpc/grpc-js";
import { ErrorInfo } from "./gen/google/rpc/error_details.js";
import { Status } from "./gen/google/rpc/status.js";

export const ERROR_DOMAIN = "eventbank";
const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";

export interface EventbankErrorInit {
  code: number;
  reason: string;
  metadata?: Record<string, string>;
  cause?: unknown;
}

/** Base class of every error the SDK throws for a failed call. */
export class EventbankError extends Error {
  override name = "EventbankError";
  /** gRPC status code (`status` from @grpc/grpc-js). */
  readonly code: number;
  /** Stable reason from ErrorInfo (e.g. "INSUFFICIENT_FUNDS"), or the status code's name when the server sent none. */
  readonly reason: string;
  /** ErrorInfo metadata: field, account_id, balance, amount, expected_revision, actual_revision, attempts, command_id, limit. */
  readonly metadata: Readonly<Record<string, string>>;

  constructor(message: string, init: EventbankErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.reason = init.reason;
    this.metadata = init.metadata ?? {};
  }

  get accountId(): string | undefined {
    return this.metadata.account_id;
  }

  /** The transfer a TransferMoney error is about (every TransferService error names it). */
  get transferId(): string | undefined {
    return this.metadata.transfer_id;
  }
}

export class AccountNotFoundError extends EventbankError {
  override name = "AccountNotFoundError";
}

export class AccountAlreadyExistsError extends EventbankError {
  override name = "AccountAlreadyExistsError";
}

export class AccountClosedError extends EventbankError {
  override name = "AccountClosedError";
}

export class InsufficientFundsError extends EventbankError {
  override name = "InsufficientFundsError";
  get balance(): bigint | undefined {
    return bigintOf(this.metadata.balance);
  }
  get amount(): bigint | undefined {
    return bigintOf(this.metadata.amount);
  }
}

export class BalanceNotZeroError extends EventbankError {
  override name = "BalanceNotZeroError";
  get balance(): bigint | undefined {
    return bigintOf(this.metadata.balance);
  }
}

export class BalanceLimitExceededError extends EventbankError {
  override name = "BalanceLimitExceededError";
  get balance(): bigint | undefined {
    return bigintOf(this.metadata.balance);
  }
  get amount(): bigint | undefined {
    return bigintOf(this.metadata.amount);
  }
}

/** The account was not at the caller's `expectedRevision`. Never retried by the SDK: re-read and decide again. */
export class RevisionConflictError extends EventbankError {
  override name = "RevisionConflictError";
  get expectedRevision(): bigint | undefined {
    return bigintOf(this.metadata.expected_revision);
  }
  /** "no_stream" when the account does not exist. */
  get actualRevision(): bigint | "no_stream" | undefined {
    const raw = this.metadata.actual_revision;
    return raw === "no_stream" ? "no_stream" : bigintOf(raw);
  }
}

/** Other writers kept winning (reason CONCURRENCY_RETRIES_EXHAUSTED); nothing was applied. The SDK retries it with the same command id; thrown once retries are used up. */
export class ConcurrencyConflictError extends EventbankError {
  override name = "ConcurrencyConflictError";
  get attempts(): number | undefined {
    const raw = this.metadata.attempts;
    return raw === undefined ? undefined : Number(raw);
  }
}

/** The request could never succeed as sent (INVALID_ARGUMENT); `field` names the culprit when the server said. */
export class InvalidArgumentError extends EventbankError {
  override name = "InvalidArgumentError";
  get field(): string | undefined {
    return this.metadata.field;
  }
}

/** UNAVAILABLE: the store is down, the server is shutting down, or the connection failed. Retried by the SDK. */
export class UnavailableError extends EventbankError {
  override name = "UnavailableError";
}

/** DEADLINE_EXCEEDED, from the server or the client's own deadline. Retried by the SDK (commands carry a command id). */
export class DeadlineExceededError extends EventbankError {
  override name = "DeadlineExceededError";
}

/** The call was cancelled (e.g. through the caller's AbortSignal). */
export class CancelledError extends EventbankError {
  override name = "CancelledError";
}

export class UnauthenticatedError extends EventbankError {
  override name = "UnauthenticatedError";
}

export class PermissionDeniedError extends EventbankError {
  override name = "PermissionDeniedError";
}

/** RESOURCE_EXHAUSTED, e.g. TOO_MANY_SUBSCRIPTIONS (metadata `limit`). */
export class ResourceExhaustedError extends EventbankError {
  override name = "ResourceExhaustedError";
  get limit(): number | undefined {
    const raw = this.metadata.limit;
    return raw === undefined ? undefined : Number(raw);
  }
}

/** The other account of a transfer holds another currency. */
export class CurrencyMismatchError extends EventbankError {
  override name = "CurrencyMismatchError";
}

export class TransferNotFoundError extends EventbankError {
  override name = "TransferNotFoundError";
}

/** The transfer id was used for a transfer with other accounts, amount or reference. */
export class TransferIdReusedError extends InvalidArgumentError {
  override name = "TransferIdReusedError";
}

type ErrorClass = new (message: string, init: EventbankErrorInit) => EventbankError;

const byReason: Record<string, ErrorClass> = {
  ACCOUNT_NOT_FOUND: AccountNotFoundError,
  ACCOUNT_ALREADY_EXISTS: AccountAlreadyExistsError,
  ACCOUNT_CLOSED: AccountClosedError,
  INSUFFICIENT_FUNDS: InsufficientFundsError,
  BALANCE_NOT_ZERO: BalanceNotZeroError,
  BALANCE_LIMIT_EXCEEDED: BalanceLimitExceededError,
  REVISION_CONFLICT: RevisionConflictError,
  CONCURRENCY_RETRIES_EXHAUSTED: ConcurrencyConflictError,
  INVALID_ACCOUNT_ID: InvalidArgumentError,
  INVALID_AMOUNT: InvalidArgumentError,
  INVALID_CURRENCY: InvalidArgumentError,
  INVALID_OWNER: InvalidArgumentError,
  INVALID_COMMAND_ID: InvalidArgumentError,
  INVALID_REVISION: InvalidArgumentError,
  INVALID_ARGUMENT: InvalidArgumentError,
  INVALID_POSITION: InvalidArgumentError,
  MALFORMED_REQUEST: InvalidArgumentError,
  MESSAGE_TOO_LARGE: InvalidArgumentError,
  COMMAND_ID_REUSED: InvalidArgumentError,
  STORE_UNAVAILABLE: UnavailableError,
  SHUTTING_DOWN: UnavailableError,
  DEADLINE_EXCEEDED: DeadlineExceededError,
  CANCELLED: CancelledError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  TOO_MANY_SUBSCRIPTIONS: ResourceExhaustedError,
  CURRENCY_MISMATCH: CurrencyMismatchError,
  TRANSFER_NOT_FOUND: TransferNotFoundError,
  TRANSFER_ID_REUSED: TransferIdReusedError,
  INVALID_TRANSFER_ID: InvalidArgumentError,
  INVALID_REFERENCE: InvalidArgumentError,
  SAME_ACCOUNT: InvalidArgumentError,
};

/** For reasons this SDK does not know (or no reason at all): classify by status code. */
const byCode: Partial<Record<number, ErrorClass>> = {
  [Code.INVALID_ARGUMENT]: InvalidArgumentError,
  [Code.UNAVAILABLE]: UnavailableError,
  [Code.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [Code.CANCELLED]: CancelledError,
  [Code.UNAUTHENTICATED]: UnauthenticatedError,
  [Code.PERMISSION_DENIED]: PermissionDeniedError,
  [Code.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
};

/** Turns whatever a grpc-js call failed with into an EventbankError (or its subclass). */
export function toEventbankError(error: unknown): EventbankError {
  if (error instanceof EventbankError) return error;
  const serviceError = error as Partial<ServiceError> | undefined;
  const code = typeof serviceError?.code === "number" ? serviceError.code : Code.UNKNOWN;
  const info = errorInfoOf(serviceError);
  const reason = info?.reason || Code[code] || "UNKNOWN";
  const ErrorType = (info && byReason[info.reason]) || byCode[code] || EventbankError;
  // grpc-js puts the status message in `details`; `message` adds "14 UNAVAILABLE: " in front.
  const message = serviceError?.details || (error instanceof Error ? error.message : String(error));
  return new ErrorType(message, { code, reason, metadata: { ...info?.metadata }, cause: error });
}

function errorInfoOf(error: Partial<ServiceError> | undefined): ErrorInfo | undefined {
  const raw = error?.metadata?.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Uint8Array)) return undefined;
  try {
    const infos = Status.decode(raw)
      .details.filter((any) => any.typeUrl === ERROR_INFO_TYPE)
      .map((any) => ErrorInfo.decode(any.value));
    return infos.find((info) => info.domain === ERROR_DOMAIN) ?? infos[0];
  } catch {
    return undefined; // undecodable details: fall back to the status code
  }
}

function bigintOf(raw: string | undefined): bigint | undefined {
  if (raw === undefined || !/^-?[0-9]+$/.test(raw)) return undefined;
  return BigInt(raw);
}
