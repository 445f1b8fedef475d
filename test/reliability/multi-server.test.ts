/**
 * Two server processes on one store, taking commands for the same accounts at
 * the same time: once on one SQLite file, once on EventStoreDB (the gRPC
 * double from test/support/esdb-double, run in this process; both servers
 * connect to it). Optimistic concurrency across processes must hold: no lost
 * update, no negative balance, each command id applied once even when retried
 * against the other server; and a subscriber on either server sees what the
 * other one wrote, in order, without gaps or duplicates.
 *
 * EVENTBANK_SEED=<seed> replays the workload; EVENTBANK_HEAVY=1 makes it larger.
 */
import { status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import { call } from "../support/grpc-client.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { connectSeparately, deadline, eventually, prng, seedFor, show, size, verifyAccount } from "./support/reliability.js";
import { collect, comparePositions, type Collected } from "./support/subscriber.js";
import { compareWithStore, Ledger, send, type SentCommand } from "./support/workload.js";

type EsdbDoubleModule = typeof import("../support/esdb-double/server.js");
const esdbDouble: EsdbDoubleModule | undefined = await import("../support/esdb-double/server.js").catch((error: unknown) => {
  console.warn(`[reliability] EventStoreDB double unavailable, skipping its two-server test: ${String(error)}`);
  return undefined;
});

/** Retries a command with the same id while the answer says "try again" (ABORTED after retries, UNAVAILABLE). */
async function sendWithRetries(
  clients: AccountServiceClient[],
  ledger: Ledger,
  command: Omit<SentCommand, "outcome">,
  attempts = 8,
): Promise<{ sent: SentCommand; tries: number; via: number }> {
  let sent: SentCommand | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    // Retries alternate between the servers: a client that fails over.
    const via = attempt % clients.length;
    sent = await send(clients[via]!, ledger, command);
    const outcome = sent.outcome;
    if (outcome.kind === "ok") return { sent, tries: attempt + 1, via };
    if (outcome.kind === "refused" && outcome.code !== status.ABORTED && outcome.code !== status.UNAVAILABLE) return { sent, tries: attempt + 1, via };
  }
  return { sent: sent!, tries: attempts, via: -1 };
}

async function twoServersOnOneStore(env: Record<string, string>, label: string): Promise<void> {
  const seed = seedFor(`two servers (${label})`);
  const started: ServerProcess[] = [];
  const closers: Array<() => void> = [];
  try {
    const [a, b] = await Promise.all([startServerProcess(env, 30_000), startServerProcess(env, 30_000)]);
    started.push(a!, b!);
    const onA = Array.from({ length: 4 }, () => connectSeparately(a!.address));
    const onB = Array.from({ length: 4 }, () => connectSeparately(b!.address));
    closers.push(...[...onA, ...onB].map((c) => () => c.close()));

    const run = randomUUID().slice(0, 8);
    const accounts = Array.from({ length: 3 }, (_, i) => `shared-${i}-${run}`);
    const ledger = new Ledger();

    // Subscribers on both servers, started before any account exists.
    const watchA = connectSeparately(a!.address);
    const watchB = connectSeparately(b!.address);
    closers.push(() => watchA.close(), () => watchB.close());
    const mine = (event: { accountId: string }) => accounts.includes(event.accountId);
    const allOnA = collect(watchA.subscribeAll({}), mine);
    const allOnB = collect(watchB.subscribeAll({}), mine);
    const perAccountOnA = new Map(accounts.map((id) => [id, collect(watchA.subscribeAccount({ accountId: id }))]));
    const subscriptions: Collected[] = [allOnA, allOnB, ...perAccountOnA.values()];
    closers.push(() => subscriptions.forEach((s) => s.cancel()));
    await eventually(() => subscriptions.every((s) => s.caughtUp || s.ended !== undefined), "subscriptions caught up");

    // Accounts opened through both servers.
    for (const [i, accountId] of accounts.entries()) {
      const client = i % 2 === 0 ? onA[0]! : onB[0]!;
      await call(client, client.openAccount, { accountId, owner: "Two", currency: "EUR", commandId: `open-${accountId}` }, { deadline: deadline(20_000) });
    }

    const WORKERS = size(64, 128);
    const OPS = size(12, 50);
    let tries = 0;
    const ackedBy = { A: new Set<string>(), B: new Set<string>() };
    const worker = async (index: number) => {
      const rng = prng(seed + index);
      // Half the workers talk to A first, half to B; retries fail over to the other.
      const mineFirst = index % 2 === 0 ? [onA[index % 4]!, onB[index % 4]!] : [onB[index % 4]!, onA[index % 4]!];
      for (let i = 0; i < OPS; i++) {
        const type = rng.next() < 0.6 ? ("deposit" as const) : ("withdraw" as const);
        const amount = BigInt(type === "deposit" ? rng.int(1, 500) : rng.int(1, 900));
        const result = await sendWithRetries(mineFirst, ledger, { accountId: rng.pick(accounts), commandId: `${type}-${index}-${i}-${run}`, type, amount });
        tries += result.tries;
        if (result.sent.outcome.kind === "ok") ackedBy[(index % 2 === 0) === (result.via === 0) ? "A" : "B"].add(result.sent.commandId);
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i)));

    const refusals = ledger.all().filter((c) => c.outcome.kind !== "ok");
    const reasons = new Map<string, number>();
    for (const c of refusals) if (c.outcome.kind === "refused") reasons.set(c.outcome.reason ?? `code ${c.outcome.code}`, (reasons.get(c.outcome.reason ?? `code ${c.outcome.code}`) ?? 0) + 1);
    const unexpected = refusals.filter((c) => !(c.outcome.kind === "refused" && (c.outcome.reason === "INSUFFICIENT_FUNDS" || c.outcome.reason === "CONCURRENCY_RETRIES_EXHAUSTED")));
    expect(unexpected.map(show)).toEqual([]);

    let stored = 0;
    const storedEvents = new Map<string, string[]>();
    for (const accountId of accounts) {
      const fromA = await verifyAccount(onA[0]!, accountId);
      const fromB = await verifyAccount(onB[0]!, accountId);
      // Both servers tell the same story.
      expect(fromB.account).toEqual(fromA.account);
      expect(fromB.events.map((e) => e.eventId)).toEqual(fromA.events.map((e) => e.eventId));
      compareWithStore(accountId, fromA.events, ledger);
      const acknowledged = ledger.acknowledged().filter((c) => c.accountId === accountId);
      // Each acknowledged command is one event; each INSUFFICIENT_FUNDS is one recorded refusal (checked by compareWithStore).
      expect(fromA.events.filter((e) => e.payload?.$case !== "rejected").length - 1).toBe(acknowledged.length);
      expect(fromA.account.balance).toBe(acknowledged.reduce((sum, c) => sum + (c.type === "deposit" ? c.amount : -c.amount), 0n));
      stored += fromA.events.length;
      storedEvents.set(accountId, fromA.events.map((e) => e.eventId));
    }

    // Every subscriber saw exactly the stored events: the other server's writes too, in order, no gap, no duplicate.
    await eventually(
      () => allOnA.events.length >= stored && allOnB.events.length >= stored && accounts.every((id) => perAccountOnA.get(id)!.events.length >= storedEvents.get(id)!.length),
      `subscribers to see ${stored} events (A ${allOnA.events.length}, B ${allOnB.events.length})`,
      30_000,
    );
    for (const [name, all] of [["A", allOnA], ["B", allOnB]] as const) {
      expect(all.ended, `SubscribeAll on ${name}`).toBeUndefined();
      expect(all.events, `SubscribeAll on ${name}`).toHaveLength(stored);
      for (let i = 1; i < all.events.length; i++) {
        expect(comparePositions(all.events[i - 1]!.position, all.events[i]!.position), `positions on ${name} at ${i}`).toBeLessThan(0);
      }
      for (const accountId of accounts) {
        expect(all.events.filter((e) => e.accountId === accountId).map((e) => e.eventId), `SubscribeAll on ${name}, ${accountId}`).toEqual(storedEvents.get(accountId));
      }
    }
    for (const accountId of accounts) {
      const one = perAccountOnA.get(accountId)!;
      expect(one.ended).toBeUndefined();
      expect(one.events.map((e) => e.eventId), `SubscribeAccount ${accountId} on A`).toEqual(storedEvents.get(accountId));
    }
    // A's subscribers delivered commands acknowledged by B and the other way round: the servers really shared the work.
    expect(ackedBy.A.size).toBeGreaterThan(0);
    expect(ackedBy.B.size).toBeGreaterThan(0);
    expect(allOnA.events.filter((e) => ackedBy.B.has(e.commandId))).toHaveLength(ackedBy.B.size);
    expect(allOnB.events.filter((e) => ackedBy.A.has(e.commandId))).toHaveLength(ackedBy.A.size);

    console.log(
      `[reliability] two servers (${label}): ${WORKERS} workers on ${accounts.length} shared accounts over 8 connections to 2 processes, ` +
        `${ledger.all().length} commands in ${tries} attempts (${ledger.acknowledged().length} acknowledged; refusals ${show(Object.fromEntries(reasons))}), ` +
        `${stored} events, seen by 2 SubscribeAll + ${accounts.length} SubscribeAccount`,
    );
  } finally {
    for (const close of closers) close();
    for (const server of started) server.child.kill("SIGKILL");
    await Promise.all(started.map((s) => s.exited));
  }
}

describe("two server processes on one store", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("share one SQLite file without losing or doubling a command, and each one's subscribers see the other's writes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "eventbank-two-"));
    dirs.push(dir);
    await twoServersOnOneStore({ EVENTBANK_STORE: "sqlite", EVENTBANK_SQLITE_PATH: join(dir, "events.sqlite") }, "sqlite");
  }, 90_000);

  it.skipIf(!esdbDouble)("share one EventStoreDB (gRPC double) with the same guarantees", async () => {
    const double = await esdbDouble!.startEsdbDouble();
    try {
      await twoServersOnOneStore({ EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: double.connectionString }, "esdb double");
    } finally {
      await double.stop();
    }
  }, 90_000);
});
