/**
 * The transfer process: moves a pending transfer's money in two phases on the
 * account streams and records the final state on the transfer's stream.
 *
 *   reserve (hold on the source) -> credit (destination) -> capture (source) -> completed
 *        \ refused -> failed              \ refused -> release (source) -> failed
 *
 * Every step is an ordinary account command whose id derives from the
 * transfer id and the step (`transfer:<id>:reserve`, ...). One command id,
 * one answer (command-runtime.ts) makes each step's answer the same for every
 * run, on every server, at any time: a repeated run (a redelivery, a restart,
 * two servers at once) moves the money once and reaches the same final state.
 * That holds because every refusal a step can meet is stable: recorded
 * (INSUFFICIENT_FUNDS, BALANCE_LIMIT_EXCEEDED) or unchangeable (a closed
 * account, another currency); both accounts exist before a transfer is
 * recorded (transfers.ts), so ACCOUNT_NOT_FOUND cannot flip.
 */
import type { AccountCommand } from "../domain/account.js";
import { DomainError } from "../domain/errors.js";
import type { ExistingTransfer, TransferCommand } from "../domain/transfer.js";
import type { CommandContext, Loaded } from "./command-runtime.js";
import { CommandIdReusedError, ConcurrencyRetriesExhaustedError, RevisionConflictError } from "./errors.js";

/** Step boundaries where a test may kill the process (EVENTBANK_FAILPOINTS; never set in production). */
export const FAILPOINTS = ["after-request", "after-reserve", "after-credit", "after-capture", "after-credit-refused", "after-release"] as const;
export type Failpoint = (typeof FAILPOINTS)[number];

export interface TransferProcessDependencies {
  /** Runs an account command (a step), as the account command runtime does. */
  executeStep(command: AccountCommand, context: CommandContext): Promise<unknown>;
  /** Runs a transfer command and reads a transfer back (from the store: its timestamps are the store's). */
  transfers: {
    execute(command: TransferCommand, context: CommandContext): Promise<unknown>;
    get(transferId: string): Promise<Loaded<ExistingTransfer | { status: "none" }>>;
  };
  now?: () => Date;
  /** Called at each step boundary; a test build kills the process there. */
  failpoint?: (name: Failpoint) => void;
}

export class TransferProcess {
  private readonly now: () => Date;
  private readonly failpoint: (name: Failpoint) => void;

  constructor(private readonly deps: TransferProcessDependencies) {
    this.now = deps.now ?? (() => new Date());
    this.failpoint = deps.failpoint ?? (() => {});
  }

  /**
   * Drives a transfer to its final state and returns it. Safe to run any
   * number of times, concurrently, on any server. Throws only when a step
   * could not be decided (the store unavailable, other writers kept winning):
   * then nothing is final yet and a later run goes on from where it stands.
   */
  async drive(transfer: ExistingTransfer): Promise<ExistingTransfer> {
    if (transfer.status !== "pending") return transfer;
    const { transferId, fromAccountId, toAccountId, amount, currency } = transfer;
    const step = (name: string): CommandContext => ({
      commandId: `transfer:${transferId}:${name}`,
      correlationId: transferId,
      causationId: `transfer-${transferId}`,
      ...(transfer.principal === undefined ? {} : { principal: transfer.principal }),
    });

    const reserved = await this.attempt({ type: "ReserveFunds", accountId: fromAccountId, transferId, amount }, step("reserve"));
    if (reserved !== true) return this.finish(transfer, reserved);
    this.failpoint("after-reserve");

    const credited = await this.attempt({ type: "CreditTransfer", accountId: toAccountId, transferId, amount, fromAccountId, currency }, step("credit"));
    if (credited !== true) {
      this.failpoint("after-credit-refused");
      await this.deps.executeStep({ type: "ReleaseHold", accountId: fromAccountId, transferId }, step("release"));
      this.failpoint("after-release");
      return this.finish(transfer, credited);
    }
    this.failpoint("after-credit");

    await this.deps.executeStep({ type: "CaptureHold", accountId: fromAccountId, transferId }, step("capture"));
    this.failpoint("after-capture");
    return this.finish(transfer, true);
  }

  /** True when the step was applied; the refusal when the rules said no (final); throws otherwise. */
  private async attempt(command: AccountCommand, context: CommandContext): Promise<true | DomainError> {
    try {
      await this.deps.executeStep(command, context);
      return true;
    } catch (error) {
      if (isRefusal(error)) return error;
      throw error;
    }
  }

  private async finish(transfer: ExistingTransfer, outcome: true | DomainError): Promise<ExistingTransfer> {
    const { transferId } = transfer;
    const at = this.now();
    const command: TransferCommand =
      outcome === true
        ? { type: "CompleteTransfer", transferId, at }
        : { type: "FailTransfer", transferId, reason: outcome.reason, message: outcome.message, at };
    const name = outcome === true ? "complete" : "fail";
    await this.deps.transfers.execute(command, {
      commandId: name,
      correlationId: transferId,
      causationId: `transfer-${transferId}`,
      ...(transfer.principal === undefined ? {} : { principal: transfer.principal }),
    });
    const { state } = await this.deps.transfers.get(transferId);
    if (state.status === "none") throw new Error(`transfer ${transferId} vanished`);
    return state;
  }
}

/** An answer of the rules (final), as opposed to "not decided, try again". */
function isRefusal(error: unknown): error is DomainError {
  return (
    error instanceof DomainError &&
    !(error instanceof RevisionConflictError) &&
    !(error instanceof ConcurrencyRetriesExhaustedError) &&
    // A step's id reused for something else cannot happen: client command ids may not start with "transfer:".
    !(error instanceof CommandIdReusedError)
  );
}
