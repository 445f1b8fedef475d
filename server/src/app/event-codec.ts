/**
 * Domain events <-> stored JSON. Amounts are bigint in the domain and decimal
 * strings in JSON, so no value ever passes through a float.
 */
import type { AccountEvent, CommandRejection, RejectedCommand } from "../domain/account.js";
import type { RecordedEvent } from "../store/event-store.js";

export function encodeEventData(event: AccountEvent): Record<string, unknown> {
  switch (event.type) {
    case "AccountOpened":
      return { accountId: event.data.accountId, owner: event.data.owner, currency: event.data.currency };
    case "MoneyDeposited":
    case "MoneyWithdrawn":
      return { amount: event.data.amount.toString() };
    case "AccountClosed":
      return {};
    case "CommandRejected":
      return encodeRejectionJson(event.data);
  }
}

/** Throws on an event this version does not know: a stream it cannot read is a bug, not bad input. */
export function decodeEvent(recorded: Pick<RecordedEvent, "type" | "data" | "stream" | "revision">): AccountEvent {
  const data = recorded.data;
  switch (recorded.type) {
    case "AccountOpened":
      return {
        type: "AccountOpened",
        data: { accountId: String(data.accountId), owner: String(data.owner), currency: String(data.currency) },
      };
    case "MoneyDeposited":
    case "MoneyWithdrawn":
      return { type: recorded.type, data: { amount: decodeAmount(data.amount, recorded) } };
    case "AccountClosed":
      return { type: "AccountClosed", data: {} };
    case "CommandRejected":
      return { type: "CommandRejected", data: decodeRejectionJson(data, recorded) };
    default:
      throw new Error(`unknown event type ${recorded.type} in ${recorded.stream}@${recorded.revision}`);
  }
}

function decodeAmount(value: unknown, recorded: Pick<RecordedEvent, "stream" | "revision">): bigint {
  if (typeof value === "string" && /^[0-9]{1,19}$/.test(value)) return BigInt(value);
  throw new Error(`bad amount ${JSON.stringify(value)} in ${recorded.stream}@${recorded.revision}`);
}

const REJECTION_REASONS: ReadonlySet<string> = new Set<CommandRejection["reason"]>(["INSUFFICIENT_FUNDS", "BALANCE_LIMIT_EXCEEDED", "BALANCE_NOT_ZERO"]);

/** CommandRejected's data (also kept in snapshots' idempotency windows). */
export function encodeRejectionJson({ command, reason, details }: CommandRejection): Record<string, unknown> {
  const encoded = command.type === "CloseAccount" ? { type: command.type } : { type: command.type, amount: command.amount.toString() };
  return { command: encoded, reason, details };
}

export function decodeRejectionJson(data: Record<string, unknown>, recorded: Pick<RecordedEvent, "stream" | "revision">): CommandRejection {
  const command = data.command as Record<string, unknown> | undefined;
  const details = data.details as Record<string, unknown> | undefined;
  if (typeof data.reason !== "string" || !REJECTION_REASONS.has(data.reason) || typeof details !== "object" || details === null) {
    throw new Error(`bad CommandRejected in ${recorded.stream}@${recorded.revision}`);
  }
  let rejected: RejectedCommand;
  if (command?.type === "Deposit" || command?.type === "Withdraw") rejected = { type: command.type, amount: decodeAmount(command.amount, recorded) };
  else if (command?.type === "CloseAccount") rejected = { type: "CloseAccount" };
  else throw new Error(`bad CommandRejected command in ${recorded.stream}@${recorded.revision}`);
  return {
    command: rejected,
    reason: data.reason as CommandRejection["reason"],
    details: Object.fromEntries(Object.entries(details).map(([key, value]) => [key, String(value)])),
  };
}
