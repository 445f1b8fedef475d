/** Each error class, decoded from what a real server sends. */
import { status, type ServiceError } from "@grpc/grpc-js";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccountAlreadyExistsError,
  AccountClosedError,
  AccountNotFoundError,
  BalanceLimitExceededError,
  BalanceNotZeroError,
  CancelledError,
  ConcurrencyConflictError,
  createAccountClient,
  DeadlineExceededError,
  EventbankError,
  InsufficientFundsError,
  InvalidArgumentError,
  PermissionDeniedError,
  ResourceExhaustedError,
  RevisionConflictError,
  UnauthenticatedError,
  UnavailableError,
  type AccountClient,
} from "../../client/src/index.js";
import { hashToken } from "../../server/src/grpc/auth.js";
import { StoreUnavailableError } from "../../server/src/store/event-store.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { FaultyStore, newId, storedEvent, tempSqlitePath } from "./helpers.js";

/** Awaits a call that must fail and returns what it threw. */
async function failure(promise: Promise<unknown>): Promise<EventbankError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (outcome === undefined) throw new Error("expected the call to fail");
  expect(outcome).toBeInstanceOf(EventbankError);
  return outcome as EventbankError;
}

describe("errors from the real server", () => {
  let server: TestServer;
  let client: AccountClient;
  let store: FaultyStore;
  const sqlite = tempSqlitePath();

  beforeAll(async () => {
    store = new FaultyStore(sqlite.file);
    server = await startTestServer({ store, env: { EVENTBANK_MAX_ATTEMPTS: "3", EVENTBANK_MAX_REQUEST_BYTES: "4096" } });
    client = createAccountClient({ address: server.address, retry: false });
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
    rmSync(sqlite.dir, { recursive: true, force: true });
  });

  const open = async (prefix: string) => {
    const accountId = newId(prefix);
    await client.openAccount({ accountId, owner: "Ada", currency: "EUR" });
    return accountId;
  };

  it("AccountNotFoundError for an unknown account", async () => {
    const error = await failure(client.getAccount("nobody-here"));
    expect(error).toBeInstanceOf(AccountNotFoundError);
    expect(error).toMatchObject({ code: status.NOT_FOUND, reason: "ACCOUNT_NOT_FOUND", accountId: "nobody-here" });
    expect((error.cause as ServiceError).code).toBe(status.NOT_FOUND);
  });

  it("AccountAlreadyExistsError when opening twice", async () => {
    const accountId = await open("twice");
    const error = await failure(client.openAccount({ accountId, owner: "Ada", currency: "EUR" }));
    expect(error).toBeInstanceOf(AccountAlreadyExistsError);
    expect(error).toMatchObject({ code: status.ALREADY_EXISTS, reason: "ACCOUNT_ALREADY_EXISTS", accountId });
  });

  it("InsufficientFundsError with balance and amount", async () => {
    const accountId = await open("poor");
    await client.deposit({ accountId, amount: 5n });
    const error = await failure(client.withdraw({ accountId, amount: 6n }));
    expect(error).toBeInstanceOf(InsufficientFundsError);
    expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "INSUFFICIENT_FUNDS", balance: 5n, amount: 6n });
  });

  it("BalanceNotZeroError and AccountClosedError", async () => {
    const accountId = await open("close");
    await client.deposit({ accountId, amount: 3n });
    const notZero = await failure(client.closeAccount({ accountId }));
    expect(notZero).toBeInstanceOf(BalanceNotZeroError);
    expect(notZero).toMatchObject({ code: status.FAILED_PRECONDITION, balance: 3n });

    await client.withdraw({ accountId, amount: 3n });
    await client.closeAccount({ accountId });
    const closed = await failure(client.deposit({ accountId, amount: 1n }));
    expect(closed).toBeInstanceOf(AccountClosedError);
    expect(closed).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "ACCOUNT_CLOSED" });
  });

  it("BalanceLimitExceededError past 2^53 - 1", async () => {
    // Seeded through the store: reaching the limit with valid deposits would take 9008 of them.
    const accountId = newId("rich");
    await store.inner.append(
      `account-${accountId}`,
      [
        storedEvent("AccountOpened", { accountId, owner: "Ada", currency: "EUR" }),
        storedEvent("MoneyDeposited", { amount: String(2n ** 53n - 10n) }),
      ],
      "no_stream",
    );
    const error = await failure(client.deposit({ accountId, amount: 10n }));
    expect(error).toBeInstanceOf(BalanceLimitExceededError);
    expect(error).toMatchObject({ code: status.FAILED_PRECONDITION, balance: 2n ** 53n - 10n, amount: 10n });
  });

  it("RevisionConflictError with the expected and actual revisions, or no_stream", async () => {
    const accountId = await open("conflict");
    const error = await failure(client.deposit({ accountId, amount: 1n, expectedRevision: 5n }));
    expect(error).toBeInstanceOf(RevisionConflictError);
    expect(error).toMatchObject({ code: status.ABORTED, reason: "REVISION_CONFLICT", expectedRevision: 5n, actualRevision: 0n });

    const missing = await failure(client.deposit({ accountId: newId("ghost"), amount: 1n, expectedRevision: 0n }));
    expect(missing).toBeInstanceOf(RevisionConflictError);
    expect((missing as RevisionConflictError).actualRevision).toBe("no_stream");
  });

  it("ConcurrencyConflictError when another writer keeps winning", async () => {
    const accountId = await open("hot");
    // Another process appends to the same stream just before each of the server's appends.
    store.beforeAppend = async (stream) => {
      if (stream === `account-${accountId}`) await store.inner.append(stream, [storedEvent("MoneyDeposited", { amount: "1" })], "any");
    };
    try {
      const error = await failure(client.deposit({ accountId, amount: 1n }));
      expect(error).toBeInstanceOf(ConcurrencyConflictError);
      expect(error).toMatchObject({ code: status.ABORTED, reason: "CONCURRENCY_RETRIES_EXHAUSTED", attempts: 3 });
    } finally {
      store.beforeAppend = undefined;
    }
  });

  it("InvalidArgumentError with the field, for each kind of bad input", async () => {
    const accountId = await open("invalid");
    const cases: Array<[Promise<unknown>, string, string | undefined]> = [
      [client.getAccount("not valid!"), "INVALID_ACCOUNT_ID", "account_id"],
      [client.deposit({ accountId, amount: 0n }), "INVALID_AMOUNT", "amount"],
      [client.openAccount({ accountId: newId("cur"), owner: "Ada", currency: "euro" }), "INVALID_CURRENCY", "currency"],
      [client.openAccount({ accountId: newId("own"), owner: "", currency: "EUR" }), "INVALID_OWNER", "owner"],
      [client.deposit({ accountId, amount: 1n, commandId: "x".repeat(129) }), "INVALID_COMMAND_ID", "command_id"],
      [client.subscribeAll({ fromPosition: "not-a-position" })[Symbol.asyncIterator]().next(), "INVALID_POSITION", "from_position"],
      [client.openAccount({ accountId: newId("big"), owner: "o".repeat(5_000), currency: "EUR" }), "MESSAGE_TOO_LARGE", undefined],
    ];
    for (const [call, reason, field] of cases) {
      const error = await failure(call);
      expect(error, reason).toBeInstanceOf(InvalidArgumentError);
      expect({ code: error.code, reason: error.reason, field: (error as InvalidArgumentError).field }).toEqual({ code: status.INVALID_ARGUMENT, reason, field });
    }

    await client.deposit({ accountId, amount: 1n, commandId: "once" });
    const reused = await failure(client.deposit({ accountId, amount: 2n, commandId: "once" }));
    expect(reused).toBeInstanceOf(InvalidArgumentError);
    expect(reused).toMatchObject({ reason: "COMMAND_ID_REUSED", metadata: { command_id: "once" } });
  });

  it("UnavailableError (STORE_UNAVAILABLE) when the store is down", async () => {
    const accountId = await open("down");
    store.beforeAppend = () => {
      throw new StoreUnavailableError("store offline");
    };
    try {
      const error = await failure(client.deposit({ accountId, amount: 1n }));
      expect(error).toBeInstanceOf(UnavailableError);
      expect(error).toMatchObject({ code: status.UNAVAILABLE, reason: "STORE_UNAVAILABLE" });
    } finally {
      store.beforeAppend = undefined;
    }
  });

  it("DeadlineExceededError when the server is slower than the deadline", async () => {
    const accountId = await open("slow");
    store.beforeAppend = () => new Promise((resolve) => setTimeout(resolve, 300));
    try {
      const error = await failure(client.deposit({ accountId, amount: 1n }, { deadlineMs: 50 }));
      expect(error).toBeInstanceOf(DeadlineExceededError);
      expect(error).toMatchObject({ code: status.DEADLINE_EXCEEDED, reason: "DEADLINE_EXCEEDED" });
    } finally {
      store.beforeAppend = undefined;
    }
  });

  it("CancelledError when the caller aborts", async () => {
    const accountId = await open("abort");
    store.beforeAppend = () => new Promise((resolve) => setTimeout(resolve, 300));
    try {
      const controller = new AbortController();
      const call = client.deposit({ accountId, amount: 1n }, { signal: controller.signal });
      setTimeout(() => controller.abort(), 20);
      const error = await failure(call);
      expect(error).toBeInstanceOf(CancelledError);
      expect(error.code).toBe(status.CANCELLED);
    } finally {
      store.beforeAppend = undefined;
    }
  });
});

describe("errors of the transport and of later features", () => {
  it("UnavailableError without details when nothing listens", async () => {
    const nowhere = await startTestServer();
    const address = nowhere.address;
    await nowhere.stop();
    const client = createAccountClient({ address, retry: false });
    try {
      const error = await failure(client.getAccount("anyone"));
      expect(error).toBeInstanceOf(UnavailableError);
      expect(error).toMatchObject({ code: status.UNAVAILABLE, reason: "UNAVAILABLE", metadata: {} });
    } finally {
      client.close();
    }
  });

  it("ResourceExhaustedError (TOO_MANY_SUBSCRIPTIONS) from the real server's limit", async () => {
    const server = await startTestServer({ env: { EVENTBANK_MAX_SUBSCRIPTIONS: "0" } });
    const client = createAccountClient({ address: server.address });
    try {
      const error = await failure(client.subscribeAll()[Symbol.asyncIterator]().next());
      expect(error).toBeInstanceOf(ResourceExhaustedError);
      expect(error).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: "TOO_MANY_SUBSCRIPTIONS", limit: 0 });
    } finally {
      client.close();
      await server.stop();
    }
  });

  it("UnauthenticatedError and PermissionDeniedError from the real server's API keys, and a key that works", async () => {
    const keys = [{ name: "auditor", sha256: hashToken("auditor-token").toString("hex"), scopes: ["accounts:read"] }];
    const server = await startTestServer({ env: { EVENTBANK_API_KEYS: JSON.stringify(keys) } });
    const anonymous = createAccountClient({ address: server.address });
    const auditor = createAccountClient({ address: server.address, metadata: { authorization: "Bearer auditor-token" } });
    try {
      const unauthenticated = await failure(anonymous.getAccount("a"));
      expect(unauthenticated).toBeInstanceOf(UnauthenticatedError);
      expect(unauthenticated).toMatchObject({ code: 16, reason: "UNAUTHENTICATED" });
      const denied = await failure(auditor.deposit({ accountId: "a", amount: 1n }));
      expect(denied).toBeInstanceOf(PermissionDeniedError);
      expect(denied).toMatchObject({ code: 7, reason: "PERMISSION_DENIED" });
      // Authenticated and in scope: the call reaches the account rules.
      expect(await failure(auditor.getAccount("a"))).toBeInstanceOf(AccountNotFoundError);
    } finally {
      anonymous.close();
      auditor.close();
      await server.stop();
    }
  });
});
