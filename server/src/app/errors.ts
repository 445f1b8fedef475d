/** Errors of command handling (not of the account rules themselves). */
import { DomainError } from "../domain/errors.js";

/** The client's expected_revision does not match the account's revision. */
export class RevisionConflictError extends DomainError {
  override readonly name = "RevisionConflictError";
  readonly reason = "REVISION_CONFLICT";
  constructor(
    readonly accountId: string,
    readonly expected: bigint,
    readonly actual: bigint | "no_stream",
  ) {
    super(`account ${accountId} is at revision ${String(actual)}, not the expected ${expected}`, {
      account_id: accountId,
      expected_revision: String(expected),
      actual_revision: String(actual),
    });
  }
}

/** Other writers kept winning; the command was not applied. Safe to retry with the same command id. */
export class ConcurrencyRetriesExhaustedError extends DomainError {
  override readonly name = "ConcurrencyRetriesExhaustedError";
  readonly reason = "CONCURRENCY_RETRIES_EXHAUSTED";
  constructor(
    readonly accountId: string,
    readonly attempts: number,
  ) {
    super(`account ${accountId} changed concurrently ${attempts} times; command not applied`, {
      account_id: accountId,
      attempts: String(attempts),
    });
  }
}

/** The same command id was used before on this account for a different command. */
export class CommandIdReusedError extends DomainError {
  override readonly name = "CommandIdReusedError";
  readonly reason = "COMMAND_ID_REUSED";
  constructor(
    readonly accountId: string,
    readonly commandId: string,
  ) {
    super(`command_id ${commandId} was already used on account ${accountId} for a different command`, {
      account_id: accountId,
      command_id: commandId,
    });
  }
}

/** The caller gave up (deadline or cancellation) before the command was written. */
export class CommandCancelledError extends Error {
  override readonly name = "CommandCancelledError";
  constructor(readonly why: "deadline" | "cancelled") {
    super(why === "deadline" ? "deadline exceeded before the command was written" : "call cancelled before the command was written");
  }
}
