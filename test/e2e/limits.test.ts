/** Deadlines honoured end to end, and bounded memory for a slow subscriber. */
import { status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { call, connect, rejection } from "../support/grpc-client.js";
import { InstrumentedStore } from "../support/instrumented-store.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

describe("limits", () => {
  let dir: string;
  let store: InstrumentedStore;
  let server: TestServer;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-limits-"));
    store = new InstrumentedStore(new SqliteEventStore(join(dir, "events.sqlite"), { pollIntervalMs: 20 }));
    server = await startTestServer({ store });
  });
  afterEach(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const seedOpened = (accountId: string) =>
    store.inner.append(
      `account-${accountId}`,
      [{ id: randomUUID(), type: "AccountOpened", data: { accountId, owner: "Ada", currency: "EUR" }, metadata: meta() }],
      "no_stream",
    );

  it("appends nothing for a command whose deadline passed before it could be written", async () => {
    await seedOpened("late");
    store.readDelayMs = 700; // loading the account outlasts the caller's deadline
    const client = connect(server.address);
    const error = await rejection(
      call(client, client.deposit, { accountId: "late", amount: 5n, commandId: "d1" }, { deadline: new Date(Date.now() + 250) }),
    );
    expect(error.code).toBe(status.DEADLINE_EXCEEDED);
    await new Promise((resolve) => setTimeout(resolve, 900));
    store.readDelayMs = 0;
    const stored = await store.inner.readStream("account-late");
    expect(stored.status === "ok" && stored.events).toHaveLength(1);
    expect(store.appendedStreams).not.toContain("account-late");
    const log = server.logs.find((line) => line.rpc === "Deposit" && line.accountId === "late");
    expect(log?.code).toBe("DEADLINE_EXCEEDED");
    client.close();
  });

  it("closes the store subscription when the client cancels its stream", async () => {
    await seedOpened("watched");
    // The server's own transfer process holds one subscription (to the transfer streams) all along.
    const baseline = store.openSubscriptions;
    const client = connect(server.address);
    const stream = client.subscribeAccount({ accountId: "watched" });
    stream.on("error", () => {}); // CANCELLED, from our own cancel()
    await new Promise((resolve) => stream.once("data", resolve));
    expect(store.openSubscriptions).toBe(baseline + 1);
    stream.cancel();
    for (let i = 0; i < 100 && store.openSubscriptions > baseline; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(store.openSubscriptions).toBe(baseline);
    expect(server.eventbank.server.openStreams()).toBe(0);
    client.close();
  });

  it("reads ahead only a bounded amount for a subscriber that stops reading", async () => {
    const total = 20_000;
    await seedOpened("busy");
    for (let revision = 1; revision < total; revision += 500) {
      const events = Array.from({ length: 500 }, () => ({ id: randomUUID(), type: "MoneyDeposited", data: { amount: "1" }, metadata: meta() }));
      await store.inner.append("account-busy", events, BigInt(revision - 1));
    }
    const client = connect(server.address);
    const stream = client.subscribeAccount({ accountId: "busy" });
    stream.on("error", () => {}); // CANCELLED, from our own cancel() at the end
    let received = 0;
    await new Promise<void>((resolve) =>
      stream.once("data", () => {
        received++;
        stream.pause(); // the client stops reading after the first message
        resolve();
      }),
    );
    // Give the server ample time to push everything, were it not flow-controlled.
    let previous = -1;
    for (let i = 0; i < 20 && store.pulled !== previous; i++) {
      previous = store.pulled;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect(received).toBe(1);
    expect(store.pulled).toBeLessThan(total / 4);
    console.info(`slow subscriber: the server pulled ${store.pulled} of ${total + 1} events while the client read 1`);
    // Reading on delivers the rest, in order.
    let last = 0n;
    const done = new Promise<void>((resolve) => {
      stream.on("data", (message: { message?: { $case: string; value: { revision?: bigint } } }) => {
        if (message.message?.$case === "event") last = message.message.value.revision!;
        if (message.message?.$case === "caughtUp") resolve();
      });
    });
    stream.resume();
    await done;
    expect(last).toBe(BigInt(total));
    stream.cancel();
    client.close();
  });
});

function meta() {
  return { commandId: randomUUID(), correlationId: "seed", causationId: "seed" };
}
