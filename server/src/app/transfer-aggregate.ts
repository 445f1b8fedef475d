/**
 * The Transfer aggregate as the command runtime runs it: stream
 * `transfer-<id>`, stored form, fingerprints. Transfer events carry no
 * timestamps in their data: `at` is the store's record time, so every server
 * shows the same requested_at / completed_at; that is also why transfers are
 * not cached (a decided event's time is only known once it is stored, and a
 * stream of at most three events is cheap to read).
 */
import { TransferIdReusedError, TransferNotFoundError } from "../domain/errors.js";
import {
  decideTransfer,
  evolveTransfer,
  initialTransferState,
  validateTransferId,
  type TransferCommand,
  type TransferEvent,
  type TransferState,
} from "../domain/transfer.js";
import type { RecordedEvent } from "../store/event-store.js";
import type { Aggregate } from "./command-runtime.js";
import { UnknownEventError } from "./unknown-events.js";

export const TRANSFER_STREAM_PREFIX = "transfer-";
export const transferStream = (transferId: string): string => TRANSFER_STREAM_PREFIX + transferId;

/** Schema version of every transfer event this release writes and reads. */
const TRANSFER_SCHEMA_VERSION = 1;

/** Transfers record no refusals: every refusal of a transfer command is stable (see decideTransfer). */
type NoRefusal = never;

export const transferAggregate: Aggregate<TransferCommand, TransferEvent, TransferState, NoRefusal> = {
  kind: "transfer",
  initialState: initialTransferState,
  decide: decideTransfer,
  evolve: evolveTransfer,
  exists: (state) => state.status !== "none",
  idOf: (command) => command.transferId,
  validateId: (id) => void validateTransferId(id),
  streamOf: transferStream,
  idOfStream: (stream) => stream.slice(TRANSFER_STREAM_PREFIX.length),
  notFound: (id) => new TransferNotFoundError(id),
  isNotFound: (error) => error instanceof TransferNotFoundError,
  reused: (id) => new TransferIdReusedError(id),
  encode: (event) => ({ data: encodeTransferEvent(event), schemaVersion: TRANSFER_SCHEMA_VERSION }),
  decode: decodeTransferEvent,
  fingerprint: transferFingerprint,
  commandOf: (transferId, event) => {
    switch (event.type) {
      case "TransferRequested":
        return { type: "RequestTransfer", ...event.data, at: event.at };
      case "TransferCompleted":
        return { type: "CompleteTransfer", transferId, at: event.at };
      case "TransferFailed":
        return { type: "FailTransfer", transferId, ...event.data, at: event.at };
    }
  },
  rejectionOf: () => undefined,
  refusalIn: () => undefined,
  refusalOf: () => {
    throw new Error("transfers record no refusals");
  },
  outcomeOf: (state) => state,
  stateAfter: (_current, outcome) => outcome as TransferState,
};

/** What a repeat must match: the request's accounts, amount and reference (not its time, nor the currency it found). */
function transferFingerprint(command: TransferCommand): string {
  switch (command.type) {
    case "RequestTransfer":
      return JSON.stringify(["TransferRequested", command.fromAccountId, command.toAccountId, command.amount.toString(), command.reference]);
    case "CompleteTransfer":
      return JSON.stringify(["TransferCompleted"]);
    case "FailTransfer":
      return JSON.stringify(["TransferFailed", command.reason]);
  }
}

function encodeTransferEvent(event: TransferEvent): Record<string, unknown> {
  switch (event.type) {
    case "TransferRequested": {
      const { principal: _principal, ...data } = event.data; // the principal is in the metadata
      return { ...data, amount: data.amount.toString() };
    }
    case "TransferCompleted":
      return {};
    case "TransferFailed":
      return { reason: event.data.reason, message: event.data.message };
  }
}

function decodeTransferEvent(recorded: RecordedEvent): TransferEvent {
  const { data, metadata } = recorded;
  const version = metadata.schemaVersion ?? 1;
  const at = { stream: recorded.stream, revision: recorded.revision, accountId: recorded.stream };
  const known = ["TransferRequested", "TransferCompleted", "TransferFailed"].includes(recorded.type);
  if (!known || version !== TRANSFER_SCHEMA_VERSION) {
    throw new UnknownEventError(at, recorded.type, String(version), known ? TRANSFER_SCHEMA_VERSION : undefined);
  }
  const text = (value: unknown, field: string): string => {
    if (typeof value === "string") return value;
    throw new Error(`bad ${field} in ${recorded.stream}@${recorded.revision}`);
  };
  switch (recorded.type) {
    case "TransferRequested": {
      const amount = text(data.amount, "amount");
      if (!/^[0-9]{1,19}$/.test(amount)) throw new Error(`bad amount in ${recorded.stream}@${recorded.revision}`);
      return {
        type: "TransferRequested",
        data: {
          transferId: text(data.transferId, "transferId"),
          fromAccountId: text(data.fromAccountId, "fromAccountId"),
          toAccountId: text(data.toAccountId, "toAccountId"),
          amount: BigInt(amount),
          currency: text(data.currency, "currency"),
          reference: text(data.reference, "reference"),
          ...(typeof metadata.principal === "string" ? { principal: metadata.principal } : {}),
        },
        at: recorded.created,
      };
    }
    case "TransferCompleted":
      return { type: "TransferCompleted", data: {}, at: recorded.created };
    default:
      return { type: "TransferFailed", data: { reason: text(data.reason, "reason"), message: text(data.message, "message") }, at: recorded.created };
  }
}
