/** Domain and store values <-> generated bank.v1 messages. */
import { Account, AccountStatus, type AccountEvent as AccountEventMessage } from "../../../client/src/gen/bank/v1/account.js";
import type { AccountSnapshot } from "../app/account-command-handler.js";
import { decodeEvent } from "../app/event-codec.js";
import { availableBalance, refusalOf } from "../domain/account.js";
import type { RecordedEvent } from "../store/event-store.js";
import { ACCOUNT_STREAM_PREFIX } from "../store/event-store.js";

export function toAccountMessage({ account, revision }: AccountSnapshot): Account {
  return {
    accountId: account.accountId,
    owner: account.owner,
    currency: account.currency,
    balance: account.balance,
    status: account.status === "open" ? AccountStatus.ACCOUNT_STATUS_OPEN : AccountStatus.ACCOUNT_STATUS_CLOSED,
    revision,
    availableBalance: availableBalance(account),
  };
}

export function toAccountEventMessage(recorded: RecordedEvent): AccountEventMessage {
  const event = decodeEvent(recorded);
  const metadata = recorded.metadata;
  const accountId = recorded.stream.slice(ACCOUNT_STREAM_PREFIX.length);
  return {
    accountId,
    revision: recorded.revision,
    position: recorded.position,
    eventId: recorded.id,
    commandId: typeof metadata.commandId === "string" ? metadata.commandId : "",
    occurredAt: recorded.created,
    correlationId: typeof metadata.correlationId === "string" ? metadata.correlationId : "",
    payload: payloadOf(accountId, event),
  };
}

function payloadOf(accountId: string, event: ReturnType<typeof decodeEvent>): AccountEventMessage["payload"] {
  switch (event.type) {
    case "AccountOpened":
      return { $case: "opened", value: { owner: event.data.owner, currency: event.data.currency } };
    case "MoneyDeposited":
      return { $case: "deposited", value: { amount: event.data.amount } };
    case "MoneyWithdrawn":
      return { $case: "withdrawn", value: { amount: event.data.amount } };
    case "AccountClosed":
      return { $case: "closed", value: {} };
    case "CommandRejected": {
      const { command, reason, details } = event.data;
      const amount = command.type === "CloseAccount" ? 0n : command.amount;
      const transferId = "transferId" in command ? command.transferId : "";
      const message = refusalOf(accountId, event.data).message;
      return { $case: "rejected", value: { reason, message, command: command.type, amount, details, transferId } };
    }
    case "FundsReserved":
      return { $case: "reserved", value: event.data };
    case "TransferCredited":
      return { $case: "credited", value: event.data };
    case "HoldCaptured":
      return { $case: "captured", value: event.data };
    case "HoldReleased":
      return { $case: "released", value: event.data };
  }
}
