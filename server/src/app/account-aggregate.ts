/**
 * The Account aggregate as the command runtime runs it: the domain's decider
 * plus its stream (`account-<id>`), stored form (event-codec), fingerprints,
 * recorded refusals and snapshots.
 */
import {
  commandOf,
  decide,
  evolve,
  initialState,
  refusalOf,
  rejectionOf,
  type AccountCommand,
  type AccountEvent,
  type AccountState,
  type CommandRejection,
} from "../domain/account.js";
import { AccountNotFoundError } from "../domain/errors.js";
import { validateAccountId } from "../domain/rules.js";
import { ACCOUNT_STREAM_PREFIX, accountStream } from "../store/event-store.js";
import type { Aggregate } from "./command-runtime.js";
import { CommandIdReusedError } from "./errors.js";
import { decodeEvent, encodeEventData, eventSchemaVersion } from "./event-codec.js";
import { ACCOUNT_SNAPSHOT_VERSION, decodeStoredSnapshot, encodeSnapshot, type AccountOutcome } from "./loaded-account.js";

export const accountAggregate: Aggregate<AccountCommand, AccountEvent, AccountState, CommandRejection> = {
  kind: "account",
  initialState,
  decide,
  evolve,
  exists: (state) => state.status !== "none",
  idOf: (command) => command.accountId,
  validateId: (id) => void validateAccountId(id),
  streamOf: accountStream,
  idOfStream: (stream) => stream.slice(ACCOUNT_STREAM_PREFIX.length),
  notFound: (id) => new AccountNotFoundError(id),
  isNotFound: (error) => error instanceof AccountNotFoundError,
  reused: (id, commandId) => new CommandIdReusedError(id, commandId),
  encode: (event) => ({ data: encodeEventData(event), schemaVersion: eventSchemaVersion(event.type) }),
  decode: (recorded) => decodeEvent(recorded),
  fingerprint: commandFingerprint,
  commandOf,
  rejectionOf,
  refusalIn: (event) => (event.type === "CommandRejected" ? event.data : undefined),
  refusalOf,
  outcomeOf: (state): AccountOutcome => {
    if (state.status === "none") throw new Error("an outcome without an account");
    return { balance: state.balance, status: state.status, holds: state.holds };
  },
  stateAfter: (current, outcome) => {
    if (current.status === "none") throw new Error("an outcome without an account");
    return { ...current, ...(outcome as AccountOutcome) };
  },
  snapshots: { version: ACCOUNT_SNAPSHOT_VERSION, encode: encodeSnapshot, decode: decodeStoredSnapshot },
};

/**
 * The fingerprint of the event a command records when it succeeds, so a
 * reused command id with other content is caught; recorded events give the
 * same string through commandOf (the strings are those of release 0.1.0, kept
 * in its snapshots).
 */
export function commandFingerprint(command: AccountCommand): string {
  switch (command.type) {
    case "OpenAccount":
      return JSON.stringify(["AccountOpened", command.owner, command.currency]);
    case "Deposit":
      return JSON.stringify(["MoneyDeposited", command.amount.toString()]);
    case "Withdraw":
      return JSON.stringify(["MoneyWithdrawn", command.amount.toString()]);
    case "CloseAccount":
      return JSON.stringify(["AccountClosed"]);
    case "ReserveFunds":
      return JSON.stringify(["FundsReserved", command.transferId, command.amount.toString()]);
    case "CreditTransfer":
      return JSON.stringify(["TransferCredited", command.transferId, command.amount.toString(), command.fromAccountId]);
    case "CaptureHold":
      return JSON.stringify(["HoldCaptured", command.transferId]);
    case "ReleaseHold":
      return JSON.stringify(["HoldReleased", command.transferId]);
  }
}
