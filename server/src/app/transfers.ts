/**
 * TransferMoney and GetTransfer for the gRPC layer: records a transfer
 * request and drives it (transfer-process.ts) until it is final.
 */
import { DomainError, TransferFailedError } from "../domain/errors.js";
import { validateTransferRequest, validateTransferId, type ExistingTransfer, type TransferCommand, type TransferEvent, type TransferState } from "../domain/transfer.js";
import type { AccountSnapshot } from "./account-command-handler.js";
import type { CommandContext, CommandRuntime } from "./command-runtime.js";
import { CommandCancelledError } from "./errors.js";
import type { Failpoint, TransferProcess } from "./transfer-process.js";

export interface TransferRequest {
  transferId: string;
  fromAccountId: string;
  toAccountId: string;
  amount: bigint;
  reference: string;
}

export interface TransfersDependencies {
  /** Reads an account through to the store; throws AccountNotFoundError. */
  accounts: { getAccount(accountId: string, options?: { cached?: boolean }): Promise<AccountSnapshot> };
  transfers: CommandRuntime<TransferCommand, TransferEvent, TransferState, never>;
  process: TransferProcess;
  now?: () => Date;
  failpoint?: (name: Failpoint) => void;
  /** Told when a transfer whose caller gave up could not be finished in the background (a later run finishes it). */
  onBackgroundError?: (error: unknown, transferId: string) => void;
}

export class Transfers {
  constructor(private readonly deps: TransfersDependencies) {}

  /**
   * Records the transfer (or finds the same one recorded before) and drives
   * it until it is final, waiting as long as `signal` allows; after that the
   * transfer goes on without the caller. A failed transfer throws
   * TransferFailedError with the refusal's reason.
   */
  async transferMoney(request: TransferRequest, context: { principal?: string; correlationId?: string; signal?: AbortSignal }): Promise<ExistingTransfer> {
    validateTransferRequest(request);
    const { transferId } = request;
    let recorded: TransferState;
    const tagged = (error: unknown) => {
      if (error instanceof DomainError) error.metadata.transfer_id = transferId;
      return error;
    };
    try {
      // Both accounts must exist: an unknown account may be opened at any moment, so a step
      // refused for it would not give every run the same answer.
      // An account that exists keeps existing and keeps its currency, so the cache may answer.
      const [source] = await Promise.all([
        this.deps.accounts.getAccount(request.fromAccountId, { cached: true }),
        this.deps.accounts.getAccount(request.toAccountId, { cached: true }),
      ]);
      const command: TransferCommand = {
        type: "RequestTransfer",
        ...request,
        currency: source.account.currency,
        ...(context.principal === undefined ? {} : { principal: context.principal }),
        at: (this.deps.now ?? (() => new Date()))(),
      };
      const commandContext: CommandContext = {
        // The transfer id is the idempotency key: the request is the stream's command "request".
        commandId: "request",
        correlationId: context.correlationId ?? transferId,
        causationId: transferId,
        ...(context.principal === undefined ? {} : { principal: context.principal }),
        // Nothing is recorded for a caller that gave up before the request was written.
        ...(context.signal === undefined ? {} : { signal: context.signal }),
      };
      recorded = (await this.deps.transfers.execute(command, commandContext)).state;
    } catch (error) {
      throw tagged(error);
    }
    this.deps.failpoint?.("after-request");
    if (recorded.status === "none") throw new Error(`transfer ${transferId} recorded without state`);
    // The process answers with the transfer as read back from the store (its timestamps are the store's).
    const final = this.deps.process.drive(recorded);
    final.catch((error: unknown) => this.deps.onBackgroundError?.(error, transferId));
    const transfer = await untilAborted(final, context.signal);
    if (transfer.status === "failed") {
      throw new TransferFailedError(transferId, transfer.failureReason ?? "FAILED", transfer.failureMessage ?? "the transfer failed");
    }
    return transfer;
  }

  async getTransfer(transferId: string): Promise<ExistingTransfer> {
    validateTransferId(transferId);
    const { state } = await this.deps.transfers.get(transferId);
    if (state.status === "none") throw new Error(`transfer ${transferId} read without state`);
    return state;
  }
}

/** The promise's outcome, or CommandCancelledError once `signal` aborts (the promise goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      const reason: unknown = signal.reason;
      reject(reason instanceof CommandCancelledError ? reason : new CommandCancelledError("cancelled"));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
