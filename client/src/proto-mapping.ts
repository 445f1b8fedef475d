/** From generated ts-proto messages to the SDK's plain types. */
import { AccountStatus as WireStatus, type Account as WireAccount, type AccountEvent as WireEvent } from "./gen/bank/v1/account.js";
import { TransferStatus as WireTransferStatus, type Transfer as WireTransfer } from "./gen/bank/v1/transfer.js";
import type { Account, AccountEvent, AccountEventBase, Transfer } from "./types.js";

export function toAccount(account: WireAccount | undefined): Account {
  if (!account) throw new Error("the server sent a response without an account");
  return {
    accountId: account.accountId,
    owner: account.owner,
    currency: account.currency,
    balance: account.balance,
    availableBalance: account.availableBalance,
    status: account.status === WireStatus.ACCOUNT_STATUS_CLOSED ? "closed" : "open",
    revision: account.revision,
  };
}

export function toAccountEvent(event: WireEvent): AccountEvent {
  const base: AccountEventBase = {
    accountId: event.accountId,
    revision: event.revision,
    position: event.position,
    eventId: event.eventId,
    commandId: event.commandId,
    correlationId: event.correlationId,
    occurredAt: event.occurredAt,
  };
  const payload = event.payload;
  switch (payload?.$case) {
    case "opened":
      return { ...base, type: "opened", owner: payload.value.owner, currency: payload.value.currency };
    case "deposited":
      return { ...base, type: "deposited", amount: payload.value.amount };
    case "withdrawn":
      return { ...base, type: "withdrawn", amount: payload.value.amount };
    case "closed":
      return { ...base, type: "closed" };
    case "rejected": {
      const { reason, message, command, amount, details, transferId } = payload.value;
      return { ...base, type: "rejected", reason, message, command, amount, details, transferId };
    }
    case "reserved":
      return { ...base, type: "reserved", transferId: payload.value.transferId, amount: payload.value.amount };
    case "credited":
      return { ...base, type: "credited", ...payload.value };
    case "captured":
      return { ...base, type: "captured", transferId: payload.value.transferId, amount: payload.value.amount };
    case "released":
      return { ...base, type: "released", transferId: payload.value.transferId, amount: payload.value.amount };
    case undefined:
      return { ...base, type: "unknown" };
  }
}

export function toTransfer(transfer: WireTransfer | undefined): Transfer {
  if (!transfer) throw new Error("the server sent a response without a transfer");
  const status =
    transfer.status === WireTransferStatus.TRANSFER_STATUS_COMPLETED ? "completed" : transfer.status === WireTransferStatus.TRANSFER_STATUS_FAILED ? "failed" : "pending";
  return { ...transfer, status };
}
