/**
 * Domain events <-> stored JSON. Amounts are bigint in the domain and decimal
 * strings in JSON, so no value ever passes through a float.
 */
import type { AccountEvent } from "../domain/account.js";
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
    default:
      throw new Error(`unknown event type ${recorded.type} in ${recorded.stream}@${recorded.revision}`);
  }
}

function decodeAmount(value: unknown, recorded: Pick<RecordedEvent, "stream" | "revision">): bigint {
  if (typeof value === "string" && /^[0-9]{1,19}$/.test(value)) return BigInt(value);
  throw new Error(`bad amount ${JSON.stringify(value)} in ${recorded.stream}@${recorded.revision}`);
}
