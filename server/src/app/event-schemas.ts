/**
 * The stored shapes of account events, one entry per event type: which
 * schema versions this release reads and writes, how each older version is
 * upcast to the next, and how the newest is decoded into the domain event.
 * Adding an event type is one entry here (the mapped type makes a missing
 * one a compile error); changing a stored shape is a new version plus an
 * upcaster. See docs/evolving-events.md.
 *
 * Amounts are bigint in the domain and decimal strings in JSON, so no value
 * ever passes through a float.
 */
import type { AccountEvent, AccountEventType, CommandRejection, RejectedCommand } from "../domain/account.js";

/** An event's data as stored (JSON). */
export type StoredData = Record<string, unknown>;

/** Where a stored event is, for decoders that need it and for error messages. */
export interface StoredEventContext {
  stream: string;
  revision: bigint;
  /** The account the stream belongs to (its name without `account-`). */
  accountId: string;
}

export interface EventSchema<E extends AccountEvent> {
  /** Newest version this release reads: `decode` takes data of this version. */
  current: number;
  /**
   * Version this release writes. It lags `current` by one release when a
   * version is new, so servers of the previous release (still running during
   * a rolling deploy) can read everything this one writes.
   */
  written: number;
  /** `upcast[n]` turns data of version n into version n + 1; one for every version below `current`. */
  upcast: Record<number, (data: StoredData, at: StoredEventContext) => StoredData>;
  /** Data of version `written` (and of any other version still kept for tests). */
  encode: Record<number, (event: E) => StoredData>;
  /** Data of version `current` -> the domain event; throws on data it cannot have written. */
  decode(data: StoredData, at: StoredEventContext): E;
}

export type EventSchemas = { [T in AccountEventType]: EventSchema<Extract<AccountEvent, { type: T }>> };

export const EVENT_SCHEMAS: EventSchemas = {
  AccountOpened: {
    // v2 drops `accountId` from the data: the stream names the account (as the
    // wire's AccountOpened does), so the two can never disagree.
    current: 2,
    // Still writes v1: release 0.1.0 reads `data.accountId` and does not know
    // versions. Switch to 2 in the release after every server reads v2.
    written: 1,
    upcast: {
      1: ({ accountId: _accountId, ...v2 }) => v2,
    },
    encode: {
      1: ({ data }) => ({ accountId: data.accountId, owner: data.owner, currency: data.currency }),
      2: ({ data }) => ({ owner: data.owner, currency: data.currency }),
    },
    decode: (data, at) => ({
      type: "AccountOpened",
      data: { accountId: at.accountId, owner: text(data.owner, "owner", at), currency: text(data.currency, "currency", at) },
    }),
  },
  MoneyDeposited: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: ({ data }) => ({ amount: data.amount.toString() }) },
    decode: (data, at) => ({ type: "MoneyDeposited", data: { amount: amount(data.amount, at) } }),
  },
  MoneyWithdrawn: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: ({ data }) => ({ amount: data.amount.toString() }) },
    decode: (data, at) => ({ type: "MoneyWithdrawn", data: { amount: amount(data.amount, at) } }),
  },
  AccountClosed: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: () => ({}) },
    decode: () => ({ type: "AccountClosed", data: {} }),
  },
  FundsReserved: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: ({ data }) => ({ transferId: data.transferId, amount: data.amount.toString() }) },
    decode: (data, at) => ({ type: "FundsReserved", data: { transferId: text(data.transferId, "transferId", at), amount: amount(data.amount, at) } }),
  },
  TransferCredited: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: ({ data }) => ({ transferId: data.transferId, amount: data.amount.toString(), fromAccountId: data.fromAccountId }) },
    decode: (data, at) => ({
      type: "TransferCredited",
      data: { transferId: text(data.transferId, "transferId", at), amount: amount(data.amount, at), fromAccountId: text(data.fromAccountId, "fromAccountId", at) },
    }),
  },
  HoldCaptured: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: ({ data }) => ({ transferId: data.transferId, amount: data.amount.toString() }) },
    decode: (data, at) => ({ type: "HoldCaptured", data: { transferId: text(data.transferId, "transferId", at), amount: amount(data.amount, at) } }),
  },
  HoldReleased: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: ({ data }) => ({ transferId: data.transferId, amount: data.amount.toString() }) },
    decode: (data, at) => ({ type: "HoldReleased", data: { transferId: text(data.transferId, "transferId", at), amount: amount(data.amount, at) } }),
  },
  CommandRejected: {
    current: 1,
    written: 1,
    upcast: {},
    encode: { 1: ({ data }) => encodeRejectionJson(data) },
    decode: (data, at) => ({ type: "CommandRejected", data: decodeRejectionJson(data, at) }),
  },
};

const REJECTION_REASONS: ReadonlySet<string> = new Set<CommandRejection["reason"]>(["INSUFFICIENT_FUNDS", "BALANCE_LIMIT_EXCEEDED", "BALANCE_NOT_ZERO"]);

/** CommandRejected's data (also kept in snapshots' idempotency windows). */
export function encodeRejectionJson({ command, reason, details }: CommandRejection): StoredData {
  const encoded = command.type === "CloseAccount" ? { type: command.type } : { ...command, amount: command.amount.toString() };
  return { command: encoded, reason, details };
}

export function decodeRejectionJson(data: StoredData, at: Pick<StoredEventContext, "stream" | "revision">): CommandRejection {
  const command = data.command as StoredData | undefined;
  const details = data.details as StoredData | undefined;
  if (typeof data.reason !== "string" || !REJECTION_REASONS.has(data.reason) || typeof details !== "object" || details === null) {
    throw new Error(`bad CommandRejected in ${at.stream}@${at.revision}`);
  }
  let rejected: RejectedCommand;
  if (command?.type === "Deposit" || command?.type === "Withdraw") rejected = { type: command.type, amount: amount(command.amount, at) };
  else if (command?.type === "CloseAccount") rejected = { type: "CloseAccount" };
  else if (command?.type === "ReserveFunds") {
    rejected = { type: "ReserveFunds", transferId: text(command.transferId, "transferId", at), amount: amount(command.amount, at) };
  } else if (command?.type === "CreditTransfer") {
    rejected = {
      type: "CreditTransfer",
      transferId: text(command.transferId, "transferId", at),
      amount: amount(command.amount, at),
      fromAccountId: text(command.fromAccountId, "fromAccountId", at),
      currency: text(command.currency, "currency", at),
    };
  }
  else throw new Error(`bad CommandRejected command in ${at.stream}@${at.revision}`);
  return {
    command: rejected,
    reason: data.reason as CommandRejection["reason"],
    details: Object.fromEntries(Object.entries(details).map(([key, value]) => [key, String(value)])),
  };
}

function text(value: unknown, field: string, at: Pick<StoredEventContext, "stream" | "revision">): string {
  if (typeof value === "string") return value;
  throw new Error(`bad ${field} ${JSON.stringify(value)} in ${at.stream}@${at.revision}`);
}

function amount(value: unknown, at: Pick<StoredEventContext, "stream" | "revision">): bigint {
  if (typeof value === "string" && /^[0-9]{1,19}$/.test(value)) return BigInt(value);
  throw new Error(`bad amount ${JSON.stringify(value)} in ${at.stream}@${at.revision}`);
}
