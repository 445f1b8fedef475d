/**
 * Refusals of a store that are not the caller's doing, each with its own
 * status in grpc/status-mapping.ts. Raised by the EventStoreDB adapter.
 */
import { StoreUnavailableError } from "./event-store.js";

/**
 * The store did not confirm an append in time (EventStoreDB: DeadlineExceeded
 * or a write timeout). Unlike other StoreUnavailableErrors, the events may or
 * may not have been written, and may still be: only reading the stream tells.
 * The command handler drops its cached state, so a retry of the same command
 * id reloads the stream and its idempotency window answers.
 */
export class AppendOutcomeUnknownError extends StoreUnavailableError {
  override readonly name: string = "AppendOutcomeUnknownError";
  constructor(
    readonly stream: string,
    options?: { cause?: unknown },
  ) {
    super(`the store did not confirm the append to ${stream} in time; it may or may not have been written`, options);
  }
}

/**
 * The store refused this server's own credentials (EventStoreDB: access
 * denied by an ACL, or `$all` read by a user outside `$admins`/`$ops`). A
 * deployment fault: health reports NOT_SERVING until it is fixed. Nothing
 * was written.
 */
export class StoreAccessDeniedError extends StoreUnavailableError {
  override readonly name: string = "StoreAccessDeniedError";
  constructor(
    readonly operation: string,
    readonly stream: string,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? `the event store denied this server's user the ${operation} of ${stream}`, options);
  }
}

/** The stream was deleted in the store (EventStoreDB: tombstoned) and can never be written again. */
export class StoreStreamDeletedError extends Error {
  override readonly name = "StoreStreamDeletedError";
  constructor(readonly stream: string) {
    super(`stream ${stream} was deleted in the event store`);
  }
}

/** One append carried more than the store accepts at once (EventStoreDB: MaxAppendSize, 1 MiB by default). Nothing was written. */
export class AppendTooLargeError extends Error {
  override readonly name = "AppendTooLargeError";
  constructor(
    readonly stream: string,
    readonly maxAppendSize: number,
  ) {
    super(`the append to ${stream} exceeds the store's limit of ${maxAppendSize} bytes per append; nothing was written`);
  }
}
