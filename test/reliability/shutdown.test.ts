/**
 * SIGTERM under load (server process, SQLite): 48 clients keep sending
 * deposits and withdrawals over 4 connections while 6 subscriptions are
 * open. In-flight commands finish or fail cleanly: each is acknowledged and
 * stored, or fails with a status (never a hang or INTERNAL); subscribers end
 * with UNAVAILABLE / SHUTTING_DOWN; the process exits 0. After a restart,
 * each failed command is stored at most once, and retrying it with the same
 * command id leaves it stored exactly once (or refused for funds).
 *
 * EVENTBANK_SEED=<seed> replays; EVENTBANK_HEAVY=1 runs three rounds with more load.
 */
import { status } from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { call } from "../support/grpc-client.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { connectSeparately, eventually, prng, seedFor, show, size, verifyAccount } from "./support/reliability.js";
import { collect, type Collected } from "./support/subscriber.js";
import { compareWithStore, isUncertain, Ledger, send } from "./support/workload.js";

describe("SIGTERM under load (sqlite)", () => {
  const running: ServerProcess[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const server of running.splice(0)) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it("finishes or cleanly fails in-flight commands, ends subscriptions with SHUTTING_DOWN, exits 0, and loses nothing", async () => {
    const seed = seedFor("sigterm under load");
    const dir = mkdtempSync(join(tmpdir(), "eventbank-term-"));
    dirs.push(dir);
    const env = { EVENTBANK_SQLITE_PATH: join(dir, "events.sqlite") };
    const run = randomUUID().slice(0, 8);
    const accounts = Array.from({ length: 4 }, (_, i) => `term-${i}-${run}`);
    const ledger = new Ledger();
    const ROUNDS = size(1, 3);
    const WORKERS = size(48, 96);
    const ACKS_BEFORE_TERM = size(150, 500);
    const totals = { finishedAfterSignal: 0, failedAfterSignal: 0, retriedWereStored: 0, retriedAppliedNow: 0, subscriptions: 0 };
    const failureCodes = new Map<string, number>();

    for (let round = 0; round < ROUNDS; round++) {
      const server = await startServerProcess(env, 30_000);
      running.push(server);
      const clients = Array.from({ length: 4 }, () => connectSeparately(server.address));
      const watchers = Array.from({ length: 2 }, () => connectSeparately(server.address));
      if (round === 0) {
        for (const accountId of accounts) await call(clients[0]!, clients[0]!.openAccount, { accountId, owner: "Term", currency: "EUR", commandId: `open-${accountId}` });
      }
      const subscriptions: Collected[] = [
        ...accounts.map((accountId, i) => collect(watchers[i % 2]!.subscribeAccount({ accountId }))),
        collect(watchers[0]!.subscribeAll({})),
        collect(watchers[1]!.subscribeAll({})),
      ];
      totals.subscriptions += subscriptions.length;
      await eventually(() => subscriptions.every((s) => s.caughtUp), "subscriptions caught up");

      let signalled = false;
      let acks = 0;
      const worker = async (index: number) => {
        const rng = prng(seed + round * 1000 + index);
        for (let i = 0; i < 10_000; i++) {
          const type = rng.next() < 0.6 ? ("deposit" as const) : ("withdraw" as const);
          const command = { accountId: rng.pick(accounts), commandId: `r${round}-w${index}-${i}-${run}`, type, amount: BigInt(rng.int(1, type === "deposit" ? 400 : 600)) };
          const sentBeforeSignal = !signalled;
          const entry = await send(clients[index % clients.length]!, ledger, command, 15_000);
          if (entry.outcome.kind === "ok") {
            acks++;
            if (signalled && sentBeforeSignal) totals.finishedAfterSignal++;
            continue;
          }
          if (entry.outcome.kind === "refused" && entry.outcome.reason === "INSUFFICIENT_FUNDS") continue;
          // Anything else only once the server is stopping, and never a hang or INTERNAL.
          expect(signalled, `failure before SIGTERM: ${show(entry)}`).toBe(true);
          expect([status.DEADLINE_EXCEEDED, status.INTERNAL, status.UNKNOWN], show(entry)).not.toContain(entry.outcome.kind === "refused" ? entry.outcome.code : -1);
          totals.failedAfterSignal++;
          const key = `${status[(entry.outcome as { code: number }).code]}/${(entry.outcome as { reason?: string }).reason ?? "-"}`;
          failureCodes.set(key, (failureCodes.get(key) ?? 0) + 1);
          return;
        }
      };
      const workers = Array.from({ length: WORKERS }, (_, i) => worker(i));
      await eventually(() => acks >= ACKS_BEFORE_TERM, `${ACKS_BEFORE_TERM} acknowledgements before SIGTERM`, 30_000);
      signalled = true;
      server.child.kill("SIGTERM");
      await Promise.all(workers);
      expect(await server.exited, server.stderr()).toBe(0);

      // Every subscriber got a clean end.
      await eventually(() => subscriptions.every((s) => s.ended !== undefined), "every subscription ended");
      for (const subscription of subscriptions) expect(subscription.ended).toMatchObject({ code: status.UNAVAILABLE, reason: "SHUTTING_DOWN" });
      for (const c of [...clients, ...watchers]) c.close();
      expect(server.lines.filter((line) => /"code":"(INTERNAL|UNKNOWN)"|"level":(50|60)/.test(line))).toEqual([]);

      // Restart: nothing acknowledged lost, nothing half-applied, failed commands stored at most once.
      const next = await startServerProcess(env, 30_000);
      running.push(next);
      const client = connectSeparately(next.address);
      const storedBefore = new Map<string, Set<string>>();
      for (const accountId of accounts) {
        const { events } = await verifyAccount(client, accountId);
        compareWithStore(accountId, events, ledger);
        storedBefore.set(accountId, new Set(events.map((e) => e.commandId)));
      }
      for (const command of ledger.all().filter((c) => isUncertain(c.outcome))) {
        const wasStored = storedBefore.get(command.accountId)!.has(command.commandId);
        const entry = await send(client, ledger, command, 15_000);
        if (wasStored) {
          totals.retriedWereStored++;
          expect(entry.outcome.kind, show(entry)).toBe("ok");
        } else if (entry.outcome.kind === "ok") totals.retriedAppliedNow++;
        else expect(entry.outcome, show(entry)).toMatchObject({ kind: "refused", reason: "INSUFFICIENT_FUNDS" });
      }
      for (const accountId of accounts) {
        const { events } = await verifyAccount(client, accountId);
        compareWithStore(accountId, events, ledger);
      }
      client.close();
      next.child.kill("SIGTERM");
      expect(await next.exited).toBe(0);
    }

    console.log(
      `[reliability] SIGTERM: ${ROUNDS} round(s) x ${WORKERS} workers, ${totals.subscriptions} subscriptions ended SHUTTING_DOWN, ${ledger.all().length} commands ` +
        `(${ledger.acknowledged().length} acknowledged; ${totals.finishedAfterSignal} in flight at SIGTERM finished OK; ${totals.failedAfterSignal} failed with ${show(Object.fromEntries(failureCodes))}; ` +
        `after restart ${totals.retriedWereStored} of those had been stored, ${totals.retriedAppliedNow} applied by the retry), exit code 0, nothing lost`,
    );
  }, 120_000);
});
