/**
 * TransferService end to end over real gRPC, once per store kind
 * (transfers.test.ts): every rule and reason, exactly once, and what a read
 * model built from SubscribeAll alone can compute.
 */
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus, type AccountEvent } from "../../client/src/gen/bank/v1/account.js";
import type { AccountServiceClient, SubscribeAllResponse } from "../../client/src/gen/bank/v1/account_service.js";
import { TransferStatus } from "../../client/src/gen/bank/v1/transfer.js";
import { TransferServiceClient, type TransferMoneyRequest } from "../../client/src/gen/bank/v1/transfer_service.js";
import { call, connect, rejection, type DecodedError } from "../support/grpc-client.js";
import { startTestServer, type TestServer, type TestServerOptions } from "../support/test-server.js";

type Unary<Req, Res> = (request: Req, metadata: Metadata, options: object, callback: (error: ServiceError | null, response: Res) => void) => unknown;

export function unaryCall<Req, Res>(client: object, method: Unary<Req, Res>, request: Req, metadata = new Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => method.call(client, request, metadata, {}, (error, response) => (error ? reject(error) : resolve(response))));
}

export function describeTransferServiceE2E(kind: string, options: () => Promise<TestServerOptions>): void {
  describe(`TransferService over gRPC (${kind})`, () => {
    let server: TestServer;
    let accounts: AccountServiceClient;
    let transfers: TransferServiceClient;

    beforeAll(async () => {
      server = await startTestServer(await options());
      accounts = connect(server.address);
      transfers = new TransferServiceClient(server.address, credentials.createInsecure());
    });
    afterAll(async () => {
      accounts?.close();
      transfers?.close();
      await server?.stop();
    });

    const newId = (prefix = "acc") => `${prefix}-${randomUUID().slice(0, 13)}`;
    const open = async (currency = "EUR", deposit = 0n) => {
      const id = newId();
      await call(accounts, accounts.openAccount, { accountId: id, owner: "Ada", currency, commandId: `open-${id}` });
      if (deposit > 0n) await call(accounts, accounts.deposit, { accountId: id, amount: deposit, commandId: `dep-${id}` });
      return id;
    };
    const account = async (accountId: string) => (await call(accounts, accounts.getAccount, { accountId })).account!;
    const eventsOf = async (accountId: string) => (await call(accounts, accounts.readAccountEvents, { accountId, maxCount: 1000, direction: 0 })).events;
    const transfer = (request: Partial<TransferMoneyRequest> & { fromAccountId: string; toAccountId: string; amount: bigint }) =>
      unaryCall(transfers, transfers.transferMoney, { transferId: newId("t"), ...request }).then((response) => response.transfer!);
    const getTransfer = async (transferId: string) => (await unaryCall(transfers, transfers.getTransfer, { transferId })).transfer!;
    const refused = (promise: Promise<unknown>): Promise<DecodedError> => rejection(promise);
    const legs = (events: AccountEvent[], transferId: string) =>
      events.filter((event) => "transferId" in (event.payload?.value ?? {}) && (event.payload!.value as { transferId: string }).transferId === transferId).map((event) => event.payload!.$case);

    it("moves the amount once: a hold on the source, the credit, the capture; both balances and the transfer agree", async () => {
      const [from, to] = [await open("EUR", 1_000n), await open("EUR")];
      const done = await transfer({ transferId: newId("t"), fromAccountId: from, toAccountId: to, amount: 300n, reference: "rent" });
      expect(done).toMatchObject({ fromAccountId: from, toAccountId: to, amount: 300n, currency: "EUR", status: TransferStatus.TRANSFER_STATUS_COMPLETED, failureReason: "", reference: "rent" });
      expect(done.requestedAt!.getTime()).toBeLessThanOrEqual(done.completedAt!.getTime());
      expect(await getTransfer(done.transferId)).toEqual(done);
      expect(await account(from)).toMatchObject({ balance: 700n, availableBalance: 700n });
      expect(await account(to)).toMatchObject({ balance: 300n, availableBalance: 300n });
      expect(legs(await eventsOf(from), done.transferId)).toEqual(["reserved", "captured"]);
      const credited = (await eventsOf(to)).find((event) => event.payload?.$case === "credited")!;
      expect(credited.payload).toEqual({ $case: "credited", value: { transferId: done.transferId, amount: 300n, fromAccountId: from } });
    });

    it("fails with INSUFFICIENT_FUNDS when the source's available balance is short, and moves nothing", async () => {
      const [from, to] = [await open("EUR", 100n), await open("EUR")];
      const transferId = newId("t");
      const error = await refused(transfer({ transferId, fromAccountId: from, toAccountId: to, amount: 101n }));
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "INSUFFICIENT_FUNDS", metadata: { transfer_id: transferId } });
      expect(await getTransfer(transferId)).toMatchObject({ status: TransferStatus.TRANSFER_STATUS_FAILED, failureReason: "INSUFFICIENT_FUNDS" });
      expect(await account(from)).toMatchObject({ balance: 100n, availableBalance: 100n });
      expect(await account(to)).toMatchObject({ balance: 0n });
      // The refused step is recorded on the source, so every run of the transfer gets the same answer.
      const rejected = (await eventsOf(from)).find((event) => event.payload?.$case === "rejected")!;
      expect(rejected.payload).toMatchObject({ $case: "rejected", value: { reason: "INSUFFICIENT_FUNDS", command: "ReserveFunds", transferId } });
    });

    it.each([
      ["a closed destination", "ACCOUNT_CLOSED"],
      ["a destination in another currency", "CURRENCY_MISMATCH"],
    ])("fails on %s with its reason and releases the hold", async (_what, reason) => {
      const from = await open("EUR", 500n);
      const to = await open(reason === "CURRENCY_MISMATCH" ? "USD" : "EUR");
      if (reason === "ACCOUNT_CLOSED") await call(accounts, accounts.closeAccount, { accountId: to, commandId: `close-${to}` });
      const transferId = newId("t");
      const error = await refused(transfer({ transferId, fromAccountId: from, toAccountId: to, amount: 200n }));
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, reason, metadata: { transfer_id: transferId } });
      expect(await getTransfer(transferId)).toMatchObject({ status: TransferStatus.TRANSFER_STATUS_FAILED, failureReason: reason });
      expect(await account(from)).toMatchObject({ balance: 500n, availableBalance: 500n });
      expect(legs(await eventsOf(from), transferId)).toEqual(["reserved", "released"]);
      expect(legs(await eventsOf(to), transferId)).toEqual([]);
    });

    it("fails from a closed source with ACCOUNT_CLOSED", async () => {
      const [from, to] = [await open("EUR"), await open("EUR")];
      await call(accounts, accounts.closeAccount, { accountId: from, commandId: `close-${from}` });
      const error = await refused(transfer({ fromAccountId: from, toAccountId: to, amount: 1n }));
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "ACCOUNT_CLOSED" });
    });

    it("answers NOT_FOUND for an unknown account and records nothing", async () => {
      const from = await open("EUR", 100n);
      const transferId = newId("t");
      const error = await refused(transfer({ transferId, fromAccountId: from, toAccountId: newId(), amount: 1n }));
      expect(error).toMatchObject({ code: status.NOT_FOUND, reason: "ACCOUNT_NOT_FOUND", metadata: { transfer_id: transferId } });
      expect(await refused(getTransfer(transferId))).toMatchObject({ code: status.NOT_FOUND, reason: "TRANSFER_NOT_FOUND" });
      expect(await refused(transfer({ fromAccountId: newId(), toAccountId: from, amount: 1n }))).toMatchObject({ code: status.NOT_FOUND, reason: "ACCOUNT_NOT_FOUND" });
      expect(await account(from)).toMatchObject({ balance: 100n, availableBalance: 100n, revision: 1n });
    });

    it.each([
      ["the same account twice", { sameAccount: true }, "SAME_ACCOUNT"],
      ["a zero amount", { amount: 0n }, "INVALID_AMOUNT"],
      ["an amount over 10^12", { amount: 1_000_000_000_001n }, "INVALID_AMOUNT"],
      ["a negative amount", { amount: -5n }, "INVALID_AMOUNT"],
      ["a transfer id with a slash", { transferId: "t/1" }, "INVALID_TRANSFER_ID"],
      ["a reference of 141 characters", { reference: "x".repeat(141) }, "INVALID_REFERENCE"],
      ["a reference with a control character", { reference: "rent\u0007" }, "INVALID_REFERENCE"],
    ])("refuses %s with INVALID_ARGUMENT and records nothing", async (_what, change, reason) => {
      const [from, to] = [await open("EUR", 100n), await open("EUR")];
      const { sameAccount, ...rest } = change as { sameAccount?: boolean; amount?: bigint; transferId?: string; reference?: string };
      const transferId = rest.transferId ?? newId("t");
      const error = await refused(transfer({ amount: 10n, ...rest, transferId, fromAccountId: from, toAccountId: sameAccount ? from : to }));
      expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, reason });
      expect(await account(from)).toMatchObject({ balance: 100n, revision: 1n });
    });

    it("accepts a reference of exactly 140 characters, and none", async () => {
      const [from, to] = [await open("EUR", 100n), await open("EUR")];
      expect(await transfer({ fromAccountId: from, toAccountId: to, amount: 1n, reference: "é".repeat(140) })).toMatchObject({ reference: "é".repeat(140) });
      expect(await transfer({ fromAccountId: from, toAccountId: to, amount: 1n })).toMatchObject({ reference: "" });
    });

    it("gives the same transfer for the same transfer_id, again and 8 at once, and moves the money once; other content is TRANSFER_ID_REUSED", async () => {
      const [from, to] = [await open("EUR", 1_000n), await open("EUR")];
      const request = { transferId: newId("t"), fromAccountId: from, toAccountId: to, amount: 250n, reference: "once" };
      const first = await transfer(request);
      const again = await Promise.all(Array.from({ length: 8 }, () => transfer(request)));
      for (const same of [await transfer(request), ...again]) expect(same).toEqual(first);
      const concurrent = { ...request, transferId: newId("t") };
      const racing = await Promise.all(Array.from({ length: 8 }, () => transfer(concurrent)));
      for (const same of racing) expect(same).toEqual(racing[0]);
      expect(await account(from)).toMatchObject({ balance: 500n, availableBalance: 500n });
      expect(await account(to)).toMatchObject({ balance: 500n });
      for (const other of [{ amount: 251n }, { toAccountId: from, fromAccountId: to }, { reference: "twice" }]) {
        const error = await refused(transfer({ ...request, ...other }));
        expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "TRANSFER_ID_REUSED", metadata: { transfer_id: request.transferId } });
      }
      expect(await account(from)).toMatchObject({ balance: 500n });
    });

    it("keeps money on hold out of reach: a withdrawal cannot spend it and the account cannot close", async () => {
      const from = await open("EUR", 100n);
      // A transfer in flight, as a server that died after its first step would leave it (no transfer stream: nothing finishes it).
      await server.eventbank.store.append(
        `account-${from}`,
        [{ id: randomUUID(), type: "FundsReserved", data: { transferId: "in-flight", amount: "60" }, metadata: { commandId: "transfer:in-flight:reserve", correlationId: "x", causationId: "x", schemaVersion: 1 } }],
        1n,
      );
      expect(await account(from)).toMatchObject({ balance: 100n, availableBalance: 40n });
      const error = await refused(call(accounts, accounts.withdraw, { accountId: from, amount: 41n, commandId: "w1" }));
      expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "INSUFFICIENT_FUNDS", metadata: { balance: "100", available_balance: "40" } });
      await call(accounts, accounts.withdraw, { accountId: from, amount: 40n, commandId: "w2" });
      expect(await refused(call(accounts, accounts.closeAccount, { accountId: from, commandId: "c1" }))).toMatchObject({ reason: "BALANCE_NOT_ZERO" });
      expect(await account(from)).toMatchObject({ balance: 60n, availableBalance: 0n, status: AccountStatus.ACCOUNT_STATUS_OPEN });
    });

    it("refuses client command ids that a transfer step would use", async () => {
      const id = await open("EUR", 10n);
      expect(await refused(call(accounts, accounts.deposit, { accountId: id, amount: 1n, commandId: "transfer:x:credit" }))).toMatchObject({
        code: status.INVALID_ARGUMENT,
        reason: "INVALID_COMMAND_ID",
      });
    });

    it("lets a read model built from SubscribeAll alone compute every posted and available balance and join both legs", async () => {
      const [a, b, c] = [await open("EUR", 1_000n), await open("EUR", 50n), await open("USD")];
      const stream = accounts.subscribeAll({});
      const model = new Map<string, { posted: bigint; holds: Map<string, bigint> }>();
      const legsByTransfer = new Map<string, string[]>();
      let caughtUp = false;
      const seen = new Set<string>();
      stream.on("data", (response: SubscribeAllResponse) => {
        const message = response.message;
        if (message?.$case === "caughtUp") caughtUp = true;
        if (message?.$case !== "event") return;
        const event = message.value;
        seen.add(event.eventId);
        const entry = model.get(event.accountId) ?? { posted: 0n, holds: new Map<string, bigint>() };
        model.set(event.accountId, entry);
        const payload = event.payload;
        switch (payload?.$case) {
          case "deposited":
            entry.posted += payload.value.amount;
            break;
          case "withdrawn":
            entry.posted -= payload.value.amount;
            break;
          case "credited":
            entry.posted += payload.value.amount;
            break;
          case "reserved":
            entry.holds.set(payload.value.transferId, payload.value.amount);
            break;
          case "captured":
            entry.posted -= payload.value.amount;
            entry.holds.delete(payload.value.transferId);
            break;
          case "released":
            entry.holds.delete(payload.value.transferId);
            break;
        }
        if (payload && "transferId" in payload.value && payload.$case !== "rejected") {
          const id = (payload.value as { transferId: string }).transferId;
          legsByTransfer.set(id, [...(legsByTransfer.get(id) ?? []), `${event.accountId}:${payload.$case}`]);
        }
      });
      stream.on("error", () => {});
      try {
        const ok = await transfer({ fromAccountId: a, toAccountId: b, amount: 400n });
        const back = await transfer({ fromAccountId: b, toAccountId: a, amount: 25n });
        const mismatch = newId("t");
        await refused(transfer({ transferId: mismatch, fromAccountId: a, toAccountId: c, amount: 10n }));
        const short = newId("t");
        await refused(transfer({ transferId: short, fromAccountId: b, toAccountId: a, amount: 10_000n }));
        const expectedEvents = (await Promise.all([a, b, c].map(eventsOf))).flat();
        await waitFor(() => caughtUp && expectedEvents.every((event) => seen.has(event.eventId)));
        for (const id of [a, b, c]) {
          const real = await account(id);
          const entry = model.get(id)!;
          const held = [...entry.holds.values()].reduce((sum, amount) => sum + amount, 0n);
          expect({ posted: entry.posted, available: entry.posted - held }).toEqual({ posted: real.balance, available: real.availableBalance });
        }
        expect(legsByTransfer.get(ok.transferId)).toEqual([`${a}:reserved`, `${b}:credited`, `${a}:captured`]);
        expect(legsByTransfer.get(back.transferId)).toEqual([`${b}:reserved`, `${a}:credited`, `${b}:captured`]);
        expect(legsByTransfer.get(mismatch)).toEqual([`${a}:reserved`, `${a}:released`]);
        expect(legsByTransfer.get(short)).toBeUndefined();
      } finally {
        stream.cancel();
      }
    });
  });
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
