/**
 * Transfers on both stores (the same suite), plus what needs a server of its
 * own: scopes and the principal, and the process manager finishing a
 * transfer that no server is driving.
 */
import { credentials, Metadata, status } from "@grpc/grpc-js";
import { createHash, randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TransferStatus } from "../../client/src/gen/bank/v1/transfer.js";
import { TransferServiceClient } from "../../client/src/gen/bank/v1/transfer_service.js";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { call, connect, rejection } from "../support/grpc-client.js";
import { FaultyStore, tempSqlitePath } from "../sdk/helpers.js";
import { startTestServer } from "../support/test-server.js";
import { describeTransferServiceE2E, unaryCall } from "./transfer-service-suite.js";

let double: EsdbDouble;
beforeAll(async () => {
  double = await startEsdbDouble();
});
afterAll(async () => {
  await double?.stop();
});

describeTransferServiceE2E("sqlite", async () => ({ env: { EVENTBANK_STORE: "sqlite" } }));
describeTransferServiceE2E("esdb, gRPC double", async () => ({
  env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: double.connectionString },
}));
const real = process.env.EVENTSTORE_CONNECTION_STRING;
if (real) describeTransferServiceE2E("esdb, real EventStoreDB", async () => ({ env: { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: real } }));

describe("transfers with API keys", () => {
  it("needs transfers:write to transfer and transfers:read to look, and records the principal on the transfer and its steps", async () => {
    const key = (name: string, scopes: string[]) => {
      const token = randomUUID();
      return { token, entry: { name, sha256: createHash("sha256").update(token).digest("hex"), scopes } };
    };
    const admin = key("admin", ["accounts:write", "accounts:read", "transfers:write", "transfers:read"]);
    const reader = key("auditor", ["transfers:read"]);
    const server = await startTestServer({ env: { EVENTBANK_API_KEYS: JSON.stringify([admin.entry, reader.entry]) } });
    const accounts = connect(server.address);
    const transfers = new TransferServiceClient(server.address, credentials.createInsecure());
    const as = (token: string) => {
      const metadata = new Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      return metadata;
    };
    try {
      for (const id of ["p-from", "p-to"]) {
        await call(accounts, accounts.openAccount, { accountId: id, owner: "Ada", currency: "EUR", commandId: `o-${id}` }, { metadata: as(admin.token) });
      }
      await call(accounts, accounts.deposit, { accountId: "p-from", amount: 10n, commandId: "d1" }, { metadata: as(admin.token) });
      const request = { transferId: "p-t1", fromAccountId: "p-from", toAccountId: "p-to", amount: 4n };
      expect(await rejection(unaryCall(transfers, transfers.transferMoney, request, as(reader.token)))).toMatchObject({ code: status.PERMISSION_DENIED });
      expect(await rejection(unaryCall(transfers, transfers.transferMoney, request))).toMatchObject({ code: status.UNAUTHENTICATED });
      const done = await unaryCall(transfers, transfers.transferMoney, request, as(admin.token));
      expect(done.transfer?.status).toBe(TransferStatus.TRANSFER_STATUS_COMPLETED);
      expect((await unaryCall(transfers, transfers.getTransfer, { transferId: "p-t1" }, as(reader.token))).transfer).toEqual(done.transfer);
      const principals = async (stream: string) => {
        const read = await server.eventbank.store.readStream(stream);
        return read.status === "ok" ? read.events.map((event) => [event.type, event.metadata.principal]) : [];
      };
      expect(await principals("transfer-p-t1")).toEqual([
        ["TransferRequested", "admin"],
        ["TransferCompleted", "admin"],
      ]);
      expect((await principals("account-p-from")).slice(-2)).toEqual([
        ["FundsReserved", "admin"],
        ["HoldCaptured", "admin"],
      ]);
    } finally {
      accounts.close();
      transfers.close();
      await server.stop();
    }
  });
});

describe("the transfer process manager", () => {
  it("finishes a transfer that was recorded but that no server drives, within the recovery period", async () => {
    const server = await startTestServer({ env: { EVENTBANK_TRANSFER_RECOVERY_MS: "200" } });
    const accounts = connect(server.address);
    const transfers = new TransferServiceClient(server.address, credentials.createInsecure());
    try {
      for (const id of ["r-from", "r-to"]) await call(accounts, accounts.openAccount, { accountId: id, owner: "Ada", currency: "EUR", commandId: `o-${id}` });
      await call(accounts, accounts.deposit, { accountId: "r-from", amount: 100n, commandId: "d1" });
      // What a server that died right after recording the request leaves behind.
      await server.eventbank.store.append(
        "transfer-r-t1",
        [
          {
            id: randomUUID(),
            type: "TransferRequested",
            data: { transferId: "r-t1", fromAccountId: "r-from", toAccountId: "r-to", amount: "30", currency: "EUR", reference: "" },
            metadata: { commandId: "request", correlationId: "r-t1", causationId: "r-t1", schemaVersion: 1 },
          },
        ],
        "no_stream",
      );
      const started = Date.now();
      let transfer = (await unaryCall(transfers, transfers.getTransfer, { transferId: "r-t1" })).transfer!;
      expect(transfer.status).toBe(TransferStatus.TRANSFER_STATUS_PENDING);
      while (transfer.status === TransferStatus.TRANSFER_STATUS_PENDING && Date.now() - started < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        transfer = (await unaryCall(transfers, transfers.getTransfer, { transferId: "r-t1" })).transfer!;
      }
      expect(transfer.status).toBe(TransferStatus.TRANSFER_STATUS_COMPLETED);
      expect((await call(accounts, accounts.getAccount, { accountId: "r-to" })).account).toMatchObject({ balance: 30n });
      expect(server.logs.some((line) => line.msg === "transfer finished by recovery" && line.transferId === "r-t1")).toBe(true);
    } finally {
      accounts.close();
      transfers.close();
      await server.stop();
    }
  });
});

describe("a transfer past the caller's deadline", () => {
  it("answers DEADLINE_EXCEEDED, goes on, and the retry with the same transfer_id gives the outcome", async () => {
    const sqlite = tempSqlitePath();
    const store = new FaultyStore(sqlite.file);
    const server = await startTestServer({ store });
    const accounts = connect(server.address);
    const transfers = new TransferServiceClient(server.address, credentials.createInsecure());
    try {
      for (const id of ["late-from", "late-to"]) await call(accounts, accounts.openAccount, { accountId: id, owner: "Ada", currency: "EUR", commandId: `o-${id}` });
      await call(accounts, accounts.deposit, { accountId: "late-from", amount: 100n, commandId: "d1" });
      // Every step of the transfer is slow: the call's 500 ms run out while the money is moving (3 steps of 400 ms).
      store.beforeAppend = (stream) => (stream.startsWith("account-") ? new Promise((resolve) => setTimeout(resolve, 400)) : undefined);
      const request = { transferId: "late-t", fromAccountId: "late-from", toAccountId: "late-to", amount: 40n };
      const late = await new Promise<unknown>((resolve) =>
        transfers.transferMoney(request, new Metadata(), { deadline: new Date(Date.now() + 500) }, (error) => resolve(error)),
      );
      expect(late).toMatchObject({ code: status.DEADLINE_EXCEEDED });
      // It goes on without the caller (no retry yet) ...
      const started = Date.now();
      let transfer = (await unaryCall(transfers, transfers.getTransfer, { transferId: "late-t" })).transfer!;
      while (transfer.status === TransferStatus.TRANSFER_STATUS_PENDING && Date.now() - started < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        transfer = (await unaryCall(transfers, transfers.getTransfer, { transferId: "late-t" })).transfer!;
      }
      expect(transfer.status).toBe(TransferStatus.TRANSFER_STATUS_COMPLETED);
      // ... and the retry answers the outcome.
      const retried = await unaryCall(transfers, transfers.transferMoney, request);
      expect(retried.transfer).toEqual(transfer);
      expect(retried.transfer?.status).toBe(TransferStatus.TRANSFER_STATUS_COMPLETED);
      expect((await call(accounts, accounts.getAccount, { accountId: "late-to" })).account?.balance).toBe(40n);
      expect((await call(accounts, accounts.getAccount, { accountId: "late-from" })).account).toMatchObject({ balance: 60n, availableBalance: 60n });
    } finally {
      store.beforeAppend = undefined;
      accounts.close();
      transfers.close();
      await server.stop();
      rmSync(sqlite.dir, { recursive: true, force: true });
    }
  });
});

describe("the transfer process's checkpoint", () => {
  it("moves past other streams' events (a restart does not read the log again) and is not rewritten while idle", async () => {
    const server = await startTestServer({ env: { EVENTBANK_TRANSFER_RECOVERY_MS: "100" } });
    try {
      const store = server.eventbank.store;
      const meta = { commandId: "seed", correlationId: "seed", causationId: "seed" };
      await store.append("account-cp", [{ id: randomUUID(), type: "AccountOpened", data: { accountId: "cp", owner: "Ada", currency: "EUR" }, metadata: meta }], "no_stream");
      let last = "";
      for (let revision = 0n; revision < 20_000n; revision += 1_000n) {
        const events = Array.from({ length: 1_000 }, () => ({ id: randomUUID(), type: "MoneyDeposited", data: { amount: "1" }, metadata: meta }));
        last = (await store.append("account-cp", events, revision)).position;
      }
      const checkpoints = async () => {
        const read = await store.readStream("transfer-$process-checkpoint");
        return read.status === "ok" ? read.events.map((event) => BigInt(event.data.position as string)) : [];
      };
      // It is written after 10,000 events passed over, so a restart re-reads at most that many (and what came since).
      const reached = BigInt(last) - 10_000n;
      const started = Date.now();
      while (!(await checkpoints()).some((position) => position >= reached) && Date.now() - started < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect((await checkpoints()).at(-1)).toBeGreaterThanOrEqual(reached);
      // Idle: its own checkpoint write is not progress, so nothing more is written.
      const written = (await checkpoints()).length;
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(await checkpoints()).toHaveLength(written);
    } finally {
      await server.stop();
    }
  });
});
