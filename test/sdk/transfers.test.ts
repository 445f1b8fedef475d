/** The SDK's transfer() and getTransfer() against the real server: typed results and errors, and retries that reuse the transfer id. */
import { InterceptingCall, Metadata, status, type Interceptor } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccountNotFoundError,
  createAccountClient,
  CurrencyMismatchError,
  InsufficientFundsError,
  InvalidArgumentError,
  TransferIdReusedError,
  TransferNotFoundError,
  type AccountClient,
} from "../../client/src/index.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { newId, rpcLines } from "./helpers.js";

/** The first TransferMoney response reaches the SDK as UNAVAILABLE, as if the connection dropped after the server answered. */
function loseFirstTransferResponse(): Interceptor {
  let left = 1;
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        next(metadata, {
          onReceiveStatus(received, nextStatus) {
            if (options.method_definition.path === "/bank.v1.TransferService/TransferMoney" && received.code === status.OK && left-- > 0) {
              nextStatus({ code: status.UNAVAILABLE, details: "connection lost (test)", metadata: new Metadata() });
            } else nextStatus(received);
          },
        });
      },
    });
}

let server: TestServer;
let client: AccountClient;
beforeAll(async () => {
  server = await startTestServer();
  client = createAccountClient({ address: server.address });
});
afterAll(async () => {
  client?.close();
  await server?.stop();
});

async function accounts(currency = "EUR"): Promise<[string, string]> {
  const [from, to] = [newId("src"), newId("dst")];
  await client.openAccount({ accountId: from, owner: "Ada", currency: "EUR" });
  await client.openAccount({ accountId: to, owner: "Bob", currency });
  await client.deposit({ accountId: from, amount: 1_000n });
  return [from, to];
}

describe("SDK transfers", () => {
  it("moves money and gives the transfer as plain data; getTransfer shows the same", async () => {
    const [from, to] = await accounts();
    const done = await client.transfer({ fromAccountId: from, toAccountId: to, amount: 400n, reference: "rent" });
    expect(done).toMatchObject({ fromAccountId: from, toAccountId: to, amount: 400n, currency: "EUR", status: "completed", failureReason: "", reference: "rent" });
    expect(done.transferId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await client.getTransfer(done.transferId)).toEqual(done);
    expect(await client.getAccount(from)).toMatchObject({ balance: 600n, availableBalance: 600n });
  });

  it("rejects a failed transfer with the refusal's typed error, naming the transfer", async () => {
    const [from, to] = await accounts("USD");
    const short = client.transfer({ transferId: newId("t"), fromAccountId: from, toAccountId: to, amount: 5_000n });
    await expect(short).rejects.toBeInstanceOf(InsufficientFundsError);
    const mismatch = await client.transfer({ transferId: "t-usd", fromAccountId: from, toAccountId: to, amount: 5n }).catch((error: unknown) => error);
    expect(mismatch).toBeInstanceOf(CurrencyMismatchError);
    expect((mismatch as CurrencyMismatchError).transferId).toBe("t-usd");
    expect(await client.getTransfer("t-usd")).toMatchObject({ status: "failed", failureReason: "CURRENCY_MISMATCH" });
    await expect(client.transfer({ fromAccountId: from, toAccountId: newId("nobody"), amount: 5n })).rejects.toBeInstanceOf(AccountNotFoundError);
    await expect(client.transfer({ fromAccountId: from, toAccountId: from, amount: 5n })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(client.getTransfer(newId("t"))).rejects.toBeInstanceOf(TransferNotFoundError);
  });

  it("answers the same transfer again for its transfer id, and TransferIdReusedError for other content", async () => {
    const [from, to] = await accounts();
    const input = { transferId: newId("t"), fromAccountId: from, toAccountId: to, amount: 100n };
    const first = await client.transfer(input);
    expect(await client.transfer(input)).toEqual(first);
    await expect(client.transfer({ ...input, amount: 101n })).rejects.toBeInstanceOf(TransferIdReusedError);
    expect((await client.getAccount(to)).balance).toBe(100n);
  });

  it("retries a transfer whose answer was lost with the same transfer id, and the money moves once", async () => {
    const flaky = createAccountClient({ address: server.address, interceptors: [loseFirstTransferResponse()], retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 20 } });
    try {
      const [from, to] = await accounts();
      const done = await flaky.transfer({ fromAccountId: from, toAccountId: to, amount: 250n });
      expect(done.status).toBe("completed");
      const lines = rpcLines(server.logs, "TransferMoney").filter((line) => line.transferId === done.transferId);
      expect(lines).toHaveLength(2); // the lost answer, then the retry with the SDK's own transfer id
      expect(await client.getAccount(from)).toMatchObject({ balance: 750n });
      expect(await client.getAccount(to)).toMatchObject({ balance: 250n });
    } finally {
      flaky.close();
    }
  });
});
