/**
 * The Transfer aggregate (stream `transfer-<id>`): the record of one transfer
 * between two accounts, from request to a final state. The money itself moves
 * on the account streams (a hold, the credit, the capture or release; see
 * account.ts), driven step by step by the transfer process
 * (app/transfer-process.ts). Pure decide/evolve, no I/O.
 */
import { TransferNotFoundError, ValidationError } from "./errors.js";
import { validateAccountId, validateAmount } from "./rules.js";

/** The final states. */
export type TransferOutcome = "completed" | "failed";

export type TransferCommand =
  | {
      type: "RequestTransfer";
      transferId: string;
      fromAccountId: string;
      toAccountId: string;
      amount: bigint;
      /** The source account's currency. */
      currency: string;
      reference: string;
      /** Who asked, when authentication is on (stored in the event's metadata). */
      principal?: string;
      at: Date;
    }
  | { type: "CompleteTransfer"; transferId: string; at: Date }
  /** `reason` and `message` are those of the refusal that failed the transfer. */
  | { type: "FailTransfer"; transferId: string; reason: string; message: string; at: Date };

/**
 * `at` is when the event was recorded: the store's timestamp once read back
 * (so every server shows the same), the deciding server's clock before.
 */
export type TransferEvent =
  | {
      type: "TransferRequested";
      data: { transferId: string; fromAccountId: string; toAccountId: string; amount: bigint; currency: string; reference: string; principal?: string };
      at: Date;
    }
  | { type: "TransferCompleted"; data: Record<string, never>; at: Date }
  | { type: "TransferFailed"; data: { reason: string; message: string }; at: Date };

export interface ExistingTransfer {
  status: "pending" | TransferOutcome;
  transferId: string;
  fromAccountId: string;
  toAccountId: string;
  amount: bigint;
  currency: string;
  reference: string;
  /** Who asked for it, when authentication is on. */
  principal?: string;
  requestedAt: Date;
  /** When it became final. */
  completedAt?: Date;
  /** The ErrorInfo reason and message of the refusal, when failed. */
  failureReason?: string;
  failureMessage?: string;
}

export type TransferState = { status: "none" } | ExistingTransfer;

export const initialTransferState: TransferState = Object.freeze({ status: "none" });

export const MAX_REFERENCE_LENGTH = 140;

export function evolveTransfer(state: TransferState, event: TransferEvent): TransferState {
  switch (event.type) {
    case "TransferRequested":
      return { status: "pending", ...event.data, requestedAt: event.at };
    case "TransferCompleted":
      return { ...existing(state, event.type), status: "completed", completedAt: event.at };
    case "TransferFailed":
      return { ...existing(state, event.type), status: "failed", completedAt: event.at, failureReason: event.data.reason, failureMessage: event.data.message };
  }
}

export function decideTransfer(command: TransferCommand, state: TransferState): TransferEvent[] {
  switch (command.type) {
    case "RequestTransfer": {
      validateTransferRequest(command);
      // A repeated request is answered by the command runtime (same command id); this is a second, different one.
      if (state.status !== "none") throw new ValidationError("INVALID_TRANSFER_ID", "transfer_id", `transfer ${command.transferId} exists already`);
      const { transferId, fromAccountId, toAccountId, amount, currency, reference, principal } = command;
      const data = { transferId, fromAccountId, toAccountId, amount, currency, reference, ...(principal === undefined ? {} : { principal }) };
      return [{ type: "TransferRequested", data, at: command.at }];
    }
    case "CompleteTransfer":
    case "FailTransfer": {
      if (state.status === "none") throw new TransferNotFoundError(command.transferId);
      // The steps' answers are stable (docs/transfers.md), so a transfer is never both completed and failed.
      if (state.status !== "pending") throw new Error(`transfer ${command.transferId} is ${state.status} already`);
      return command.type === "CompleteTransfer"
        ? [{ type: "TransferCompleted", data: {}, at: command.at }]
        : [{ type: "TransferFailed", data: { reason: command.reason, message: command.message }, at: command.at }];
    }
  }
}

/** The rules of a transfer request that need no account: ids, amount, reference. */
export function validateTransferRequest(request: { transferId: string; fromAccountId: string; toAccountId: string; amount: bigint; reference: string }): void {
  validateTransferId(request.transferId);
  validateAccountId(request.fromAccountId, "from_account_id");
  validateAccountId(request.toAccountId, "to_account_id");
  if (request.fromAccountId === request.toAccountId) {
    throw new ValidationError("SAME_ACCOUNT", "to_account_id", "from_account_id and to_account_id must differ");
  }
  validateAmount(request.amount);
  if ([...request.reference].length > MAX_REFERENCE_LENGTH || /\p{Cc}/u.test(request.reference)) {
    throw new ValidationError("INVALID_REFERENCE", "reference", `reference must be at most ${MAX_REFERENCE_LENGTH} characters without control characters`);
  }
}

/** Transfer ids follow the account id rules, so no id can reach a system stream. */
export function validateTransferId(transferId: string): string {
  try {
    return validateAccountId(transferId, "transfer_id");
  } catch {
    throw new ValidationError(
      "INVALID_TRANSFER_ID",
      "transfer_id",
      "transfer_id must be 1-64 characters of [A-Za-z0-9_-] starting with a letter or digit",
    );
  }
}

function existing(state: TransferState, eventType: TransferEvent["type"]): ExistingTransfer {
  if (state.status === "none") throw new Error(`${eventType} on a transfer that was never requested`);
  return state;
}
