/**
 * Leadership moves under load: two server processes on the three-node
 * EventStoreDB double over `esdb+discover://`, clients sending deposits and
 * withdrawals (retrying "try again" answers with the same command id, on
 * either server) while the cluster's leader changes every 100 ms. Writes take
 * 15 ms to commit, so a move often catches appends in flight: the old leader
 * writes them but its not-leader answer ends the call before it acknowledges
 * them, an outcome only the stream can tell.
 *
 * Checked: every acknowledged command is stored once, at the revision and
 * balance it was acknowledged with; nothing is stored twice; SubscribeAll on
 * each server, dropped by every move, sees each stored event once, in order.
 *
 * EVENTBANK_SEED=<seed> replays the workload; EVENTBANK_HEAVY=1 makes it larger.
 */
import { status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import { startEsdbCluster } from "../support/esdb-double/cluster.js";
import { call } from "../support/grpc-client.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { connectSeparately, deadline, eventually, prng, seedFor, show, size, verifyAccount } from "./support/reliability.js";
import { collect, comparePositions, type Collected } from "./support/subscriber.js";
import { compareWithStore, isUncertain, Ledger, send, type SentCommand } from "./support/workload.js";

/** Retries a command with the same id while the answer says "try again", alternating servers. */
async function sendWithRetries(clients: AccountServiceClient[], ledger: Ledger, command: Omit<SentCommand, "outcome">, attempts = 8) {
  let sent: SentCommand | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    sent = await send(clients[attempt % clients.length]!, ledger, command);
    const outcome = sent.outcome;
    if (outcome.kind === "ok") return { sent, tries: attempt + 1 };
    if (outcome.kind === "refused" && outcome.code !== status.ABORTED && outcome.code !== status.UNAVAILABLE) return { sent, tries: attempt + 1 };
  }
  return { sent: sent!, tries: attempts };
}

describe("EventStoreDB leader changes under load (three-node gRPC double)", () => {
  it("loses no acknowledged command, stores none twice, and subscriptions resume without gap or duplicate", async () => {
    const seed = seedFor("esdb failover");
    const cluster = await startEsdbCluster();
    for (const node of cluster.nodes) node.commitDelay({ ms: 15, lateWrites: "written" });
    const started: ServerProcess[] = [];
    const closers: Array<() => void> = [];
    try {
      const env = { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: cluster.connectionString };
      const [a, b] = await Promise.all([startServerProcess(env, 30_000), startServerProcess(env, 30_000)]);
      started.push(a!, b!);
      const onA = connectSeparately(a!.address);
      const onB = connectSeparately(b!.address);
      closers.push(() => onA.close(), () => onB.close());

      const run = randomUUID().slice(0, 8);
      const accounts = Array.from({ length: 3 }, (_, i) => `failover-${i}-${run}`);
      const mine = (event: { accountId: string }) => accounts.includes(event.accountId);
      const watchA = connectSeparately(a!.address);
      const watchB = connectSeparately(b!.address);
      closers.push(() => watchA.close(), () => watchB.close());
      const subscriptions: Collected[] = [collect(watchA.subscribeAll({}), mine), collect(watchB.subscribeAll({}), mine)];
      closers.push(() => subscriptions.forEach((s) => s.cancel()));
      await eventually(() => subscriptions.every((s) => s.caughtUp || s.ended !== undefined), "subscriptions caught up");

      for (const [i, accountId] of accounts.entries()) {
        const client = i % 2 === 0 ? onA : onB;
        await call(client, client.openAccount, { accountId, owner: "Fail Over", currency: "EUR", commandId: `open-${accountId}` }, { deadline: deadline(20_000) });
      }

      const ledger = new Ledger();
      const WORKERS = size(16, 48);
      const OPS = size(12, 40);
      let tries = 0;
      let working = true;
      let moves = 0;
      const mover = (async () => {
        while (working) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          if (!working) break;
          cluster.moveLeader();
          moves++;
        }
      })();
      const worker = async (index: number) => {
        const rng = prng(seed + index);
        const clients = index % 2 === 0 ? [onA, onB] : [onB, onA];
        for (let i = 0; i < OPS; i++) {
          const type = rng.next() < 0.7 ? ("deposit" as const) : ("withdraw" as const);
          const amount = BigInt(type === "deposit" ? rng.int(1, 500) : rng.int(1, 700));
          const result = await sendWithRetries(clients, ledger, { accountId: rng.pick(accounts), commandId: `${type}-${index}-${i}-${run}`, type, amount });
          tries += result.tries;
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i)));
      working = false;
      await mover;
      expect(moves, "leader moves during the load").toBeGreaterThanOrEqual(3);
      // The servers met the moves: old leaders refused their writes and named the new one.
      expect(cluster.notLeaderAnswers(), "not-leader answers").toBeGreaterThan(0);

      // Every command ended with an answer that says what happened: applied, or refused by a rule.
      const unresolved = ledger.all().filter((c) => isUncertain(c.outcome));
      expect(unresolved.map(show)).toEqual([]);
      const unexpected = ledger
        .all()
        .filter((c) => c.outcome.kind === "refused" && c.outcome.reason !== "INSUFFICIENT_FUNDS" && c.outcome.reason !== "CONCURRENCY_RETRIES_EXHAUSTED");
      expect(unexpected.map(show)).toEqual([]);

      let stored = 0;
      const storedEvents = new Map<string, string[]>();
      for (const accountId of accounts) {
        const { account, events } = await verifyAccount(onA, accountId);
        compareWithStore(accountId, events, ledger);
        // Nothing stored twice: not an event (same id), not a command (same command id).
        const commandIds = events.map((e) => e.commandId);
        expect(new Set(commandIds).size, `command ids stored for ${accountId}`).toBe(commandIds.length);
        const inStore = cluster.events.filter((e) => e.stream === `account-${accountId}`).map((e) => e.id);
        expect(new Set(inStore).size).toBe(inStore.length);
        expect(inStore).toHaveLength(events.length);
        const acknowledged = ledger.acknowledged().filter((c) => c.accountId === accountId);
        expect(events.filter((e) => e.payload?.$case !== "rejected").length - 1).toBe(acknowledged.length);
        expect(account.balance).toBe(acknowledged.reduce((sum, c) => sum + (c.type === "deposit" ? c.amount : -c.amount), 0n));
        stored += events.length;
        storedEvents.set(accountId, events.map((e) => e.eventId));
      }

      await eventually(() => subscriptions.every((s) => s.events.length >= stored), `subscribers to see ${stored} events`, 30_000);
      for (const [name, all] of [["A", subscriptions[0]!], ["B", subscriptions[1]!]] as const) {
        expect(all.ended, `SubscribeAll on ${name}`).toBeUndefined();
        expect(all.events, `SubscribeAll on ${name}`).toHaveLength(stored);
        for (let i = 1; i < all.events.length; i++) {
          expect(comparePositions(all.events[i - 1]!.position, all.events[i]!.position), `positions on ${name} at ${i}`).toBeLessThan(0);
        }
        for (const accountId of accounts) {
          expect(all.events.filter((e) => e.accountId === accountId).map((e) => e.eventId), `SubscribeAll on ${name}, ${accountId}`).toEqual(storedEvents.get(accountId));
        }
      }

      console.log(
        `[reliability] esdb failover: ${WORKERS} workers on ${accounts.length} accounts through 2 servers, ${moves} leader moves (${cluster.notLeaderAnswers()} not-leader answers), ` +
          `${ledger.all().length} commands in ${tries} attempts (${ledger.acknowledged().length} acknowledged), ${stored} events, seen by 2 SubscribeAll`,
      );
    } finally {
      for (const close of closers) close();
      for (const server of started) server.child.kill("SIGKILL");
      await Promise.all(started.map((s) => s.exited));
      await cluster.stop();
    }
  }, 90_000);
});
