/**
 * Many clients at once against one server (in process, SQLite): >= 64
 * concurrent calls over 8 separate TCP connections, on one hot account and
 * across several, mixing deposits, withdrawals, GetAccount, ReadAccountEvents
 * and a live SubscribeAll; plus storms of the same command id sent
 * concurrently over different connections. Afterwards the store must agree
 * with every acknowledgement: no lost update, no negative balance, balance ==
 * sum of events, each command applied once.
 *
 * EVENTBANK_SEED=<seed> replays the workload; EVENTBANK_HEAVY=1 makes it ~10x larger.
 */
import { status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReadDirection, type AccountServiceClient, type SubscribeAllResponse } from "../../client/src/gen/bank/v1/account_service.js";
import type { AccountEvent } from "../../client/src/gen/bank/v1/account.js";
import { call, decodeError } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { connectSeparately, deadline, eventually, prng, seedFor, show, size, verifyAccount } from "./support/reliability.js";
import { compareWithStore, Ledger, send } from "./support/workload.js";

describe("concurrent clients on one server (sqlite)", () => {
  let server: TestServer;
  let clients: AccountServiceClient[];
  const CHANNELS = 8;

  beforeAll(async () => {
    server = await startTestServer({ env: { LOG_LEVEL: "warn" } });
    clients = Array.from({ length: CHANNELS }, () => connectSeparately(server.address));
  });
  afterAll(async () => {
    for (const client of clients ?? []) client.close();
    await server?.stop();
  });

  it("keeps every acknowledged deposit and withdrawal, exactly once, under >= 64 concurrent calls on hot and cold accounts", async () => {
    const seed = seedFor("concurrency workload");
    const WORKERS = size(96, 256);
    const OPS = size(20, 80);
    const run = randomUUID().slice(0, 8);
    const hot = `hot-${run}`;
    const cold = Array.from({ length: 5 }, (_, i) => `cold-${i}-${run}`);
    const accounts = [hot, ...cold];
    const ledger = new Ledger();
    for (const accountId of accounts) await call(clients[0]!, clients[0]!.openAccount, { accountId, owner: "Load", currency: "EUR", commandId: `open-${accountId}` });

    // A live subscriber on its own connection sees every event, in order, while the load runs.
    const watcher = connectSeparately(server.address);
    const seen: AccountEvent[] = [];
    let subscriptionError: unknown;
    const subscription = watcher.subscribeAll({});
    subscription.on("data", (message: SubscribeAllResponse) => {
      if (message.message?.$case === "event" && accounts.includes(message.message.value.accountId)) seen.push(message.message.value);
    });
    subscription.on("error", (error) => {
      if (decodeError(error).code !== status.CANCELLED) subscriptionError = error;
    });

    let inFlight = 0;
    let maxInFlight = 0;
    let reads = 0;
    const problems: string[] = [];
    const worker = async (index: number) => {
      const rng = prng(seed + index);
      const client = clients[index % CHANNELS]!;
      for (let i = 0; i < OPS; i++) {
        const accountId = rng.next() < 0.5 ? hot : rng.pick(cold);
        const roll = rng.next();
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          if (roll < 0.45 || roll < 0.75) {
            const type = roll < 0.45 ? "deposit" : "withdraw";
            const amount = BigInt(type === "deposit" ? rng.int(1, 500) : rng.int(1, 1200));
            const sent = await send(client, ledger, { accountId, commandId: `${type}-${index}-${i}-${run}`, type, amount });
            if (sent.outcome.kind === "ok" && sent.outcome.balance < 0n) problems.push(`negative balance in ${show(sent)}`);
          } else if (roll < 0.88) {
            const { account } = await call(client, client.getAccount, { accountId }, { deadline: deadline(20_000) });
            reads++;
            if (account!.balance < 0n) problems.push(`GetAccount ${accountId} balance ${account!.balance}`);
          } else {
            const { events } = await call(client, client.readAccountEvents, { accountId, maxCount: 20, direction: ReadDirection.READ_DIRECTION_BACKWARDS }, { deadline: deadline(20_000) });
            reads++;
            events.forEach((event, k) => {
              if (k > 0 && event.revision !== events[k - 1]!.revision - 1n) problems.push(`read of ${accountId} skips from ${events[k - 1]!.revision} to ${event.revision}`);
            });
          }
        } finally {
          inFlight--;
        }
      }
    };

    // Concurrently: the same command ids sent at once over 4 different connections.
    const storms = size(24, 200);
    const retried: Array<{ accountId: string; commandId: string; answers: unknown[] }> = [];
    const storm = async () => {
      const rng = prng(seed ^ 0x5eed);
      for (let s = 0; s < storms; s++) {
        const accountId = rng.next() < 0.5 ? hot : rng.pick(cold);
        const commandId = `storm-${s}-${run}`;
        const amount = BigInt(rng.int(1, 300));
        const type = rng.next() < 0.7 ? ("deposit" as const) : ("withdraw" as const);
        const copies = await Promise.all(
          [0, 1, 2, 3].map(async (k) => {
            const client = clients[(s + k * 2) % CHANNELS]!;
            const method = type === "deposit" ? client.deposit : client.withdraw;
            return call(client, method as typeof client.deposit, { accountId, amount, commandId }, { deadline: deadline(20_000) }).then(
              (response) => ({ revision: response.revision, balance: response.account!.balance }),
              (error: unknown) => {
                const decoded = decodeError(error);
                return { reason: decoded.reason, metadata: decoded.metadata };
              },
            );
          }),
        );
        retried.push({ accountId, commandId, answers: copies });
        const first = copies[0]!;
        if ("revision" in first) ledger.record({ accountId, commandId, type, amount }).outcome = { kind: "ok", revision: first.revision, balance: first.balance };
        else ledger.record({ accountId, commandId, type, amount }).outcome = { kind: "refused", code: status.FAILED_PRECONDITION, reason: first.reason, details: "", metadata: first.metadata };
      }
    };

    await Promise.all([...Array.from({ length: WORKERS }, (_, i) => worker(i)), storm()]);

    expect(problems).toEqual([]);
    // Every copy of a retried command got the same answer.
    for (const { commandId, answers } of retried) expect(answers, commandId).toEqual([answers[0], answers[0], answers[0], answers[0]]);
    // Inside one server the per-account queue serialises commands: nothing but
    // INSUFFICIENT_FUNDS may refuse a well-formed deposit or withdrawal.
    const refusals = ledger.all().filter((c) => c.outcome.kind === "refused");
    const unexpected = refusals.filter((c) => !(c.type === "withdraw" && c.outcome.kind === "refused" && c.outcome.reason === "INSUFFICIENT_FUNDS"));
    expect(unexpected.map(show)).toEqual([]);

    let stored = 0;
    for (const accountId of accounts) {
      const { account, events } = await verifyAccount(clients[0]!, accountId);
      compareWithStore(accountId, events, ledger);
      const acknowledged = ledger.acknowledged().filter((c) => c.accountId === accountId);
      // Each acknowledged command is one event; each INSUFFICIENT_FUNDS is one recorded refusal (checked by compareWithStore).
      expect(events.filter((e) => e.payload?.$case !== "rejected").length - 1, accountId).toBe(acknowledged.length);
      const expectedBalance = acknowledged.reduce((sum, c) => sum + (c.type === "deposit" ? c.amount : -c.amount), 0n);
      expect(account.balance, accountId).toBe(expectedBalance);
      stored += events.length;
    }

    // The subscriber saw exactly the stored events, each account's in revision order.
    await eventually(() => seen.length >= stored || subscriptionError !== undefined, `subscriber to see ${stored} events (has ${seen.length})`);
    subscription.cancel();
    watcher.close();
    expect(subscriptionError).toBeUndefined();
    expect(seen).toHaveLength(stored);
    for (const accountId of accounts) {
      const revisions = seen.filter((e) => e.accountId === accountId).map((e) => e.revision);
      expect(revisions).toEqual(revisions.map((_, i) => BigInt(i)));
    }

    const commands = ledger.all().length;
    console.log(
      `[reliability] concurrency: ${WORKERS} workers + 4x${storms} retried ids over ${CHANNELS} connections, max ${maxInFlight} calls in flight, ` +
        `${commands} commands (${ledger.acknowledged().length} acknowledged, ${refusals.length} INSUFFICIENT_FUNDS), ${reads} reads, ${stored} events stored and seen live`,
    );
    expect(maxInFlight).toBeGreaterThanOrEqual(64);
  });
});
