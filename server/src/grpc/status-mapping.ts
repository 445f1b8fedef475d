/**
 * The one place where errors become gRPC statuses. Every status carries a
 * google.rpc.Status in `grpc-status-details-bin` with one google.rpc.ErrorInfo
 * (domain "eventbank", a stable reason, string metadata), so SDKs and grpcurl
 * can tell why without parsing messages.
 */
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ErrorInfo } from "../../../client/src/gen/google/rpc/error_details.js";
import { Status } from "../../../client/src/gen/google/rpc/status.js";
import { CommandCancelledError, CommandIdReusedError, ConcurrencyRetriesExhaustedError, RevisionConflictError } from "../app/errors.js";
import {
  AccountAlreadyExistsError,
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  DomainError,
  InsufficientFundsError,
  TransferFailedError,
  TransferIdReusedError,
  TransferNotFoundError,
  ValidationError,
} from "../domain/errors.js";
import { UnknownEventError } from "../app/unknown-events.js";
import {
  InvalidPositionError,
  StoreBusyError,
  StoreFullError,
  StoreReadOnlyError,
  StoreUnavailableError,
} from "../store/event-store.js";
import { AppendOutcomeUnknownError, AppendTooLargeError, StoreAccessDeniedError, StoreStreamDeletedError } from "../store/store-errors.js";

export const ERROR_DOMAIN = "eventbank";
const ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo";

/** An error that already says which status to send. */
export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(
    readonly code: status,
    readonly reason: string,
    message: string,
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface MappedStatus {
  code: status;
  reason: string;
  message: string;
  metadata: Record<string, string>;
}

export function mapError(error: unknown): MappedStatus {
  if (error instanceof RpcError) return { code: error.code, reason: error.reason, message: error.message, metadata: error.metadata };
  if (error instanceof DomainError) {
    return { code: domainCode(error), reason: error.reason, message: error.message, metadata: error.metadata };
  }
  if (error instanceof InvalidPositionError) {
    return { code: status.INVALID_ARGUMENT, reason: "INVALID_POSITION", message: error.message, metadata: { field: "from_position" } };
  }
  if (error instanceof AppendOutcomeUnknownError) {
    // Retrying the same command id is safe and is how the caller learns the outcome.
    return {
      code: status.UNAVAILABLE,
      reason: "STORE_OUTCOME_UNKNOWN",
      message: "the event store did not confirm the write in time; it may or may not have been applied: retry with the same command_id to learn the outcome",
      metadata: {},
    };
  }
  if (error instanceof StoreAccessDeniedError) {
    return {
      code: status.UNAVAILABLE,
      reason: "STORE_ACCESS_DENIED",
      message: "the event store refused this server's credentials; nothing was written (a deployment fault: see the server's log)",
      metadata: { operation: error.operation },
    };
  }
  if (error instanceof StoreStreamDeletedError) {
    return { code: status.FAILED_PRECONDITION, reason: "STREAM_DELETED", message: "the account's stream was deleted in the event store", metadata: {} };
  }
  if (error instanceof AppendTooLargeError) {
    return {
      code: status.RESOURCE_EXHAUSTED,
      reason: "APPEND_TOO_LARGE",
      message: error.message.replace(/^the append to \S+ /, "the write "),
      metadata: { max_append_size: String(error.maxAppendSize) },
    };
  }
  if (error instanceof StoreUnavailableError) return storeFault(error);
  if (error instanceof UnknownEventError) {
    // Written by a newer release: a server of that release can serve the account, so retrying (elsewhere) is right.
    return { code: status.UNAVAILABLE, reason: error.reason, message: error.message, metadata: error.metadata };
  }
  if (error instanceof CommandCancelledError) {
    return error.why === "deadline"
      ? { code: status.DEADLINE_EXCEEDED, reason: "DEADLINE_EXCEEDED", message: error.message, metadata: {} }
      : { code: status.CANCELLED, reason: "CANCELLED", message: error.message, metadata: {} };
  }
  return { code: status.INTERNAL, reason: "INTERNAL", message: "internal error", metadata: {} };
}

/** Store faults: what the caller can do differs, so each has its own reason. Nothing was written. */
function storeFault(error: StoreUnavailableError): MappedStatus {
  if (error instanceof StoreFullError) {
    return { code: status.RESOURCE_EXHAUSTED, reason: "STORE_FULL", message: "the event store's disk is full; nothing was written", metadata: {} };
  }
  if (error instanceof StoreBusyError) {
    return {
      code: status.UNAVAILABLE,
      reason: "STORE_BUSY",
      message: "the event store is locked by another process; nothing was written, retry later",
      metadata: {},
    };
  }
  if (error instanceof StoreReadOnlyError) {
    return { code: status.UNAVAILABLE, reason: "STORE_READ_ONLY", message: "the event store cannot be written; nothing was written, retry later", metadata: {} };
  }
  return { code: status.UNAVAILABLE, reason: "STORE_UNAVAILABLE", message: "the event store is unavailable; retry later", metadata: {} };
}

function domainCode(error: DomainError): status {
  if (error instanceof ValidationError || error instanceof CommandIdReusedError || error instanceof TransferIdReusedError) return status.INVALID_ARGUMENT;
  if (error instanceof AccountNotFoundError || error instanceof TransferNotFoundError) return status.NOT_FOUND;
  // A failed transfer answers with its refusal's code: all are rules that said no, but an unknown account.
  if (error instanceof TransferFailedError) return error.reason === "ACCOUNT_NOT_FOUND" ? status.NOT_FOUND : status.FAILED_PRECONDITION;
  if (error instanceof AccountAlreadyExistsError) return status.ALREADY_EXISTS;
  if (
    error instanceof InsufficientFundsError ||
    error instanceof AccountClosedError ||
    error instanceof BalanceNotZeroError ||
    error instanceof BalanceLimitExceededError
  ) {
    return status.FAILED_PRECONDITION;
  }
  if (error instanceof RevisionConflictError || error instanceof ConcurrencyRetriesExhaustedError) return status.ABORTED;
  return status.FAILED_PRECONDITION;
}

export function toServiceError(mapped: MappedStatus): Partial<ServiceError> & { code: status; details: string; metadata: Metadata } {
  const errorInfo = ErrorInfo.encode({ reason: mapped.reason, domain: ERROR_DOMAIN, metadata: mapped.metadata }).finish();
  const details = Status.encode({
    code: mapped.code,
    message: mapped.message,
    details: [{ typeUrl: ERROR_INFO_TYPE_URL, value: Buffer.from(errorInfo) }],
  }).finish();
  const metadata = new Metadata();
  metadata.set("grpc-status-details-bin", Buffer.from(details));
  return { name: "ServiceError", message: mapped.message, code: mapped.code, details: mapped.message, metadata };
}
