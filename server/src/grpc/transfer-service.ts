/** bank.v1.TransferService: requests into the Transfers application service, transfers into messages. */
import { TransferStatus, type Transfer } from "../../../client/src/gen/bank/v1/transfer.js";
import type { GetTransferRequest, TransferMoneyRequest, TransferServiceServer } from "../../../client/src/gen/bank/v1/transfer_service.js";
import type { Transfers } from "../app/transfers.js";
import type { ExistingTransfer } from "../domain/transfer.js";
import { unary, type RpcRuntime } from "./rpc-handlers.js";

export function createTransferService(runtime: RpcRuntime, transfers: Transfers): TransferServiceServer {
  return {
    transferMoney: unary(runtime, "TransferMoney", async (request: TransferMoneyRequest, context) => {
      context.log.transferId = request.transferId;
      const transfer = await transfers.transferMoney(
        {
          transferId: request.transferId,
          fromAccountId: request.fromAccountId,
          toAccountId: request.toAccountId,
          amount: request.amount,
          reference: request.reference ?? "",
        },
        {
          signal: context.signal,
          ...(context.principal === undefined ? {} : { principal: context.principal }),
          ...(context.correlationId === undefined ? {} : { correlationId: context.correlationId }),
        },
      );
      return { transfer: toTransferMessage(transfer) };
    }),
    getTransfer: unary(runtime, "GetTransfer", async (request: GetTransferRequest, context) => {
      context.log.transferId = request.transferId;
      return { transfer: toTransferMessage(await transfers.getTransfer(request.transferId)) };
    }),
  };
}

const STATUS: Record<ExistingTransfer["status"], TransferStatus> = {
  pending: TransferStatus.TRANSFER_STATUS_PENDING,
  completed: TransferStatus.TRANSFER_STATUS_COMPLETED,
  failed: TransferStatus.TRANSFER_STATUS_FAILED,
};

export function toTransferMessage(transfer: ExistingTransfer): Transfer {
  return {
    transferId: transfer.transferId,
    fromAccountId: transfer.fromAccountId,
    toAccountId: transfer.toAccountId,
    amount: transfer.amount,
    currency: transfer.currency,
    status: STATUS[transfer.status],
    failureReason: transfer.failureReason ?? "",
    reference: transfer.reference,
    requestedAt: transfer.requestedAt,
    completedAt: transfer.completedAt,
  };
}
