/**
 * eventbank_subscription_lag_events, read from the server's /metrics: it
 * rises while a subscriber has stopped reading and new events arrive, and
 * falls back to 0 once the subscriber has read everything.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/free-port.js";
import { call, connect } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

describe("subscription lag", () => {
  let server: TestServer;
  let metricsUrl: string;

  beforeAll(async () => {
    const metricsPort = await freePort();
    server = await startTestServer({ env: { EVENTBANK_METRICS_PORT: String(metricsPort) } });
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  });
  afterAll(() => server?.stop());

  const lag = async (kind: "account" | "all"): Promise<number> => {
    const text = await (await fetch(metricsUrl)).text();
    const line = text.split("\n").find((candidate) => candidate.startsWith(`eventbank_subscription_lag_events{kind="${kind}"} `));
    if (!line) throw new Error(`no lag for ${kind} in:\n${text}`);
    return Number(line.split(" ")[1]);
  };

  it("rises while subscribers are paused and falls to 0 when they catch up", async () => {
    const client = connect(server.address);
    await call(client, client.openAccount, { accountId: "lagging", owner: "L", currency: "EUR", commandId: "open" });
    const account = client.subscribeAccount({ accountId: "lagging" });
    const all = client.subscribeAll({});
    const streams = [
      { kind: "account" as const, stream: account, last: -1n },
      { kind: "all" as const, stream: all, last: -1n },
    ];
    // Each reads up to caught_up, then stops reading.
    await Promise.all(
      streams.map(
        (entry) =>
          new Promise<void>((resolve) => {
            entry.stream.on("error", () => {}); // CANCELLED, from our own cancel() at the end
            entry.stream.on("data", (message: { message?: { $case: string; value: { revision?: bigint } } }) => {
              if (message.message?.$case === "event") entry.last = message.message.value.revision!;
              if (message.message?.$case === "caughtUp") {
                entry.stream.pause();
                resolve();
              }
            });
          }),
      ),
    );
    expect(await lag("account")).toBe(0);
    expect(await lag("all")).toBe(0);

    const deposits = 3_000;
    for (let i = 0; i < deposits; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => call(client, client.deposit, { accountId: "lagging", amount: 1n, commandId: `dep-${i + j}` })),
      );
    }
    // The server reads ahead about a page and what flow control lets through, then waits: the rest is lag.
    const paused = { account: await lag("account"), all: await lag("all") };
    console.info(`subscription lag while paused after ${deposits} deposits: account ${paused.account}, all ${paused.all}`);
    expect(paused.account).toBeGreaterThan(deposits / 2);
    expect(paused.all).toBeGreaterThan(deposits / 2);
    expect(paused.account).toBeLessThanOrEqual(deposits);

    for (const entry of streams) entry.stream.resume();
    await eventually(async () => {
      expect(streams.map((entry) => entry.last)).toEqual([BigInt(deposits), BigInt(deposits)]);
      expect(await lag("account")).toBe(0);
      expect(await lag("all")).toBe(0);
    }, 15_000);
    for (const entry of streams) entry.stream.cancel();
    client.close();
  });
});

async function eventually(check: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
