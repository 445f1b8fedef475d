/** Retries are safe: one logical command, one command id, applied once however often it is sent. */
import { InterceptingCall, Metadata, status, type Interceptor } from "@grpc/grpc-js";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAccountClient, RevisionConflictError, UnavailableError, type AccountClient } from "../../client/src/index.js";
import { StoreUnavailableError } from "../../server/src/store/event-store.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { FaultyStore, newId, rpcLines, storedEvent, tempSqlitePath } from "./helpers.js";

/** Lets the first `count` successful responses of `path` reach the SDK as UNAVAILABLE, as if the connection dropped. */
function loseResponses(path: string, count: number): Interceptor {
  let left = count;
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        next(metadata, {
          onReceiveStatus(received, nextStatus) {
            if (options.method_definition.path === path && received.code === status.OK && left > 0) {
              left--;
              nextStatus({ code: status.UNAVAILABLE, details: "connection lost (test)", metadata: new Metadata() });
            } else {
              nextStatus(received);
            }
          },
        });
      },
    });
}

let server: TestServer;
let store: FaultyStore;
const sqlite = tempSqlitePath();
const fastRetry = { maxAttempts: 4, initialBackoffMs: 5, maxBackoffMs: 20 };

beforeAll(async () => {
  store = new FaultyStore(sqlite.file);
  server = await startTestServer({ store });
});

afterAll(async () => {
  await server?.stop();
  rmSync(sqlite.dir, { recursive: true, force: true });
});

beforeEach(() => {
  store.beforeAppend = undefined;
});

const depositLines = (accountId: string) => rpcLines(server.logs, "Deposit").filter((line) => line.accountId === accountId);

async function openWith(client: AccountClient, prefix: string): Promise<string> {
  const accountId = newId(prefix);
  await client.openAccount({ accountId, owner: "Ada", currency: "EUR" });
  return accountId;
}

describe("safe retries", () => {
  it("retries a deposit whose response was lost, and the server applies it once", async () => {
    const client = createAccountClient({ address: server.address, retry: fastRetry, interceptors: [loseResponses("/bank.v1.AccountService/Deposit", 1)] });
    try {
      const accountId = await openWith(client, "lost");
      const result = await client.deposit({ accountId, amount: 25n });

      const lines = depositLines(accountId);
      expect(lines).toHaveLength(2); // the server saw the command twice...
      expect(lines.map((line) => line.code)).toEqual(["OK", "OK"]);
      expect(new Set(lines.map((line) => line.commandId))).toEqual(new Set([result.commandId]));
      expect(result.account.balance).toBe(25n); // ...and the balance moved once
      expect((await client.getAccount(accountId)).balance).toBe(25n);
      expect((await client.readAccountEvents(accountId)).filter((event) => event.type === "deposited")).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it("retries UNAVAILABLE from the server with the same command id until it succeeds", async () => {
    const client = createAccountClient({ address: server.address, retry: fastRetry });
    try {
      const accountId = await openWith(client, "flaky");
      let failures = 2;
      store.beforeAppend = () => {
        if (failures-- > 0) throw new StoreUnavailableError("store offline");
      };
      const result = await client.deposit({ accountId, amount: 30n });
      expect(result.account.balance).toBe(30n);
      const lines = depositLines(accountId);
      expect(lines.map((line) => line.code)).toEqual(["UNAVAILABLE", "UNAVAILABLE", "OK"]);
      expect(new Set(lines.map((line) => line.commandId)).size).toBe(1);
    } finally {
      client.close();
    }
  });

  it("retries a deadline exceeded and still applies the command once", async () => {
    const client = createAccountClient({ address: server.address, retry: { maxAttempts: 6, initialBackoffMs: 20, maxBackoffMs: 100 } });
    try {
      const accountId = await openWith(client, "late");
      let slow = true;
      store.beforeAppend = async () => {
        if (slow) {
          slow = false;
          await new Promise((resolve) => setTimeout(resolve, 150));
        }
      };
      const result = await client.deposit({ accountId, amount: 40n }, { deadlineMs: 100 });
      expect(result.account.balance).toBe(40n);
      const lines = depositLines(accountId);
      // The first attempt ran past its deadline (the server still applied it); the retry got the first outcome.
      expect(lines.length).toBeGreaterThanOrEqual(2);
      expect(new Set(lines.map((line) => line.commandId)).size).toBe(1);
      expect((await client.readAccountEvents(accountId)).filter((event) => event.type === "deposited")).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it("retries when other writers kept winning on the server, and applies the command once", async () => {
    const client = createAccountClient({ address: server.address, retry: fastRetry });
    try {
      const accountId = await openWith(client, "contended");
      // Another writer gets in before each of the server's appends, for all of its attempts at the first call.
      let racing = server.config.maxAttempts;
      store.beforeAppend = async (stream) => {
        if (stream === `account-${accountId}` && racing-- > 0) {
          await store.inner.append(stream, [storedEvent("MoneyDeposited", { amount: "1" })], "any");
        }
      };
      const result = await client.deposit({ accountId, amount: 50n });

      const lines = depositLines(accountId);
      expect(lines.map((line) => [line.code, line.reason])).toEqual([
        ["ABORTED", "CONCURRENCY_RETRIES_EXHAUSTED"],
        ["OK", undefined],
      ]);
      expect(new Set(lines.map((line) => line.commandId))).toEqual(new Set([result.commandId]));
      const ours = (await client.readAccountEvents(accountId)).filter((event) => event.commandId === result.commandId);
      expect(ours.map((event) => event.type)).toEqual(["deposited"]);
      expect(result.account.balance).toBe(50n + BigInt(server.config.maxAttempts));
    } finally {
      client.close();
    }
  });

  it("gives up after maxAttempts with an UnavailableError", async () => {
    const client = createAccountClient({ address: server.address, retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 5 } });
    try {
      const accountId = await openWith(client, "dead");
      store.beforeAppend = () => {
        throw new StoreUnavailableError("store offline");
      };
      await expect(client.deposit({ accountId, amount: 1n })).rejects.toBeInstanceOf(UnavailableError);
      expect(depositLines(accountId)).toHaveLength(3);
    } finally {
      client.close();
    }
  });

  it("does not retry when retry is false", async () => {
    const client = createAccountClient({ address: server.address, retry: false });
    try {
      const accountId = await openWith(client, "noretry");
      store.beforeAppend = () => {
        throw new StoreUnavailableError("store offline");
      };
      await expect(client.deposit({ accountId, amount: 1n })).rejects.toBeInstanceOf(UnavailableError);
      expect(depositLines(accountId)).toHaveLength(1);
    } finally {
      client.close();
    }
  });

  it("never retries a conflict with the caller's expected revision", async () => {
    const client = createAccountClient({ address: server.address, retry: fastRetry });
    try {
      const accountId = await openWith(client, "stale");
      await expect(client.deposit({ accountId, amount: 1n, expectedRevision: 3n })).rejects.toBeInstanceOf(RevisionConflictError);
      expect(depositLines(accountId)).toHaveLength(1);
    } finally {
      client.close();
    }
  });
});
