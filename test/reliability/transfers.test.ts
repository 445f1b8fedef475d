/**
 * Transfers across crashes and servers, with real server processes on one
 * store (an SQLite file, or the EventStoreDB double that both connect to):
 *
 * - kill -9 at every step boundary (EVENTBANK_FAILPOINTS, a test-only
 *   switch): another running server finishes the transfer, and so does the
 *   killed one alone once restarted;
 * - random mixes (fast-check) of deposits, withdrawals, transfers in both
 *   directions, closes and server kills over two servers: afterwards every
 *   transfer is final, money is conserved, every balance is the fold of its
 *   events and no available balance ever went below zero.
 *
 * EVENTBANK_SEED=<seed> replays; EVENTBANK_HEAVY=1 runs more and longer.
 */
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import fc from "fast-check";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AccountEvent } from "../../client/src/gen/bank/v1/account.js";
import type { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import { TransferStatus, type Transfer } from "../../client/src/gen/bank/v1/transfer.js";
import { TransferServiceClient } from "../../client/src/gen/bank/v1/transfer_service.js";
import { FAILPOINTS } from "../../server/src/app/transfer-process.js";
import { unaryCall } from "../e2e/transfer-service-suite.js";
import { call, decodeError } from "../support/grpc-client.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { connectSeparately, deadline, readAllEvents, seedFor, size } from "./support/reliability.js";

type EsdbDoubleModule = typeof import("../support/esdb-double/server.js");
const esdbDouble: EsdbDoubleModule | undefined = await import("../support/esdb-double/server.js").catch(() => undefined);

const RECOVERY_MS = "300";
const running = new Set<ServerProcess>();
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const server of running) server.child.kill("SIGKILL");
  await Promise.all([...running].map((server) => server.exited));
  running.clear();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Node {
  server: ServerProcess;
  accounts: AccountServiceClient;
  transfers: TransferServiceClient;
}

async function startNode(env: Record<string, string>): Promise<Node> {
  const server = await startServerProcess({ EVENTBANK_TRANSFER_RECOVERY_MS: RECOVERY_MS, ...env }, 30_000);
  running.add(server);
  void server.exited.then(() => running.delete(server));
  const accounts = connectSeparately(server.address);
  const transfers = new TransferServiceClient(server.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  cleanups.push(() => {
    accounts.close();
    transfers.close();
  });
  return { server, accounts, transfers };
}

async function kill(node: Node): Promise<void> {
  node.server.child.kill("SIGKILL");
  await node.server.exited;
}

/** A fresh store for one test: the environment both servers get. */
async function storeEnv(kind: "sqlite" | "esdb"): Promise<Record<string, string>> {
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "eventbank-transfers-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return { EVENTBANK_STORE: "sqlite", EVENTBANK_SQLITE_PATH: join(dir, "events.sqlite") };
  }
  const double = await esdbDouble!.startEsdbDouble();
  cleanups.push(() => double.stop());
  return { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: double.connectionString };
}

const open = async (node: Node, accountId: string, currency = "EUR", deposit = 0n) => {
  await call(node.accounts, node.accounts.openAccount, { accountId, owner: "Ada", currency, commandId: `open-${accountId}` }, { deadline: deadline(20_000) });
  if (deposit > 0n) await call(node.accounts, node.accounts.deposit, { accountId, amount: deposit, commandId: `seed-${accountId}` }, { deadline: deadline(20_000) });
};
const balanceOf = async (node: Node, accountId: string) => (await call(node.accounts, node.accounts.getAccount, { accountId }, { deadline: deadline(20_000) })).account!;
const getTransfer = async (node: Node, transferId: string) => (await unaryCall(node.transfers, node.transfers.getTransfer, { transferId })).transfer!;

/** Polls until the transfer is final on this node; the bound is generous (recovery takes ~RECOVERY_MS). */
async function final(node: Node, transferId: string, limitMs = 20_000): Promise<Transfer> {
  const started = Date.now();
  for (;;) {
    const transfer = await getTransfer(node, transferId).catch(() => undefined);
    if (transfer && transfer.status !== TransferStatus.TRANSFER_STATUS_PENDING) return transfer;
    if (Date.now() - started > limitMs) throw new Error(`transfer ${transferId} not final after ${limitMs} ms: ${JSON.stringify(transfer?.status)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Step boundaries after which the transfer can only fail (the destination refuses the credit). */
const FAILING_PATH = new Set<string>(["after-credit-refused", "after-release"]);

describe.each([
  { kind: "sqlite" as const, available: true },
  { kind: "esdb" as const, available: esdbDouble !== undefined },
])("transfers across kill -9 ($kind)", ({ kind, available }) => {
  it.skipIf(!available)(
    "finishes a transfer whose server was killed at any step boundary, on another running server, exactly once",
    async () => {
      const env = await storeEnv(kind);
      const survivor = await startNode(env);
      const summary: string[] = [];
      for (const failpoint of FAILPOINTS) {
        const run = `${failpoint}-${randomUUID().slice(0, 6)}`;
        const [from, to] = [`from-${run}`, `to-${run}`];
        await open(survivor, from, "EUR", 1_000n);
        await open(survivor, to, "EUR");
        const failing = FAILING_PATH.has(failpoint);
        if (failing) await call(survivor.accounts, survivor.accounts.closeAccount, { accountId: to, commandId: `close-${to}` });
        const doomed = await startNode({ ...env, EVENTBANK_FAILPOINTS: failpoint });
        const transferId = `t-${run}`;
        const answer = await unaryCall(doomed.transfers, doomed.transfers.transferMoney, { transferId, fromAccountId: from, toAccountId: to, amount: 300n }).catch(
          (error: ServiceError) => error,
        );
        // The process died at the boundary: the caller never got an answer.
        expect((answer as ServiceError).code, `${failpoint}: ${JSON.stringify(answer)}`).toBe(status.UNAVAILABLE);
        expect(await doomed.server.exited).toBe("SIGKILL");
        const transfer = await final(survivor, transferId);
        expect(transfer.status, failpoint).toBe(failing ? TransferStatus.TRANSFER_STATUS_FAILED : TransferStatus.TRANSFER_STATUS_COMPLETED);
        expect(await balanceOf(survivor, from), failpoint).toMatchObject({ balance: failing ? 1_000n : 700n, availableBalance: failing ? 1_000n : 700n });
        expect((await balanceOf(survivor, to)).balance, failpoint).toBe(failing ? 0n : 300n);
        // The caller's retry (same transfer_id) gets the final outcome.
        const retry = await unaryCall(survivor.transfers, survivor.transfers.transferMoney, { transferId, fromAccountId: from, toAccountId: to, amount: 300n }).catch(
          (error: unknown) => decodeError(error),
        );
        if (failing) expect(retry).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "ACCOUNT_CLOSED" });
        else expect((retry as { transfer: Transfer }).transfer).toEqual(transfer);
        const legs = (await readAllEvents(survivor.accounts, from)).filter((event) => event.commandId.startsWith(`transfer:${transferId}:`));
        expect(legs.map((event) => event.payload?.$case), failpoint).toEqual(failing ? ["reserved", "released"] : ["reserved", "captured"]);
        summary.push(`${failpoint}: ${failing ? "failed" : "completed"}`);
      }
      console.log(`[reliability] transfers (${kind}): killed at ${summary.join(", ")}; each finished once by the other server`);
    },
    120_000,
  );

  it.skipIf(!available)(
    "finishes it on the killed server alone once it restarts",
    async () => {
      const env = await storeEnv(kind);
      const setup = await startNode(env);
      await open(setup, "alone-from", "EUR", 500n);
      await open(setup, "alone-to", "EUR");
      await kill(setup);
      const doomed = await startNode({ ...env, EVENTBANK_FAILPOINTS: "after-credit" });
      await unaryCall(doomed.transfers, doomed.transfers.transferMoney, { transferId: "alone-t", fromAccountId: "alone-from", toAccountId: "alone-to", amount: 200n }).catch(() => undefined);
      expect(await doomed.server.exited).toBe("SIGKILL");
      const restarted = await startNode(env);
      expect((await final(restarted, "alone-t")).status).toBe(TransferStatus.TRANSFER_STATUS_COMPLETED);
      expect(await balanceOf(restarted, "alone-from")).toMatchObject({ balance: 300n, availableBalance: 300n });
      expect((await balanceOf(restarted, "alone-to")).balance).toBe(200n);
    },
    90_000,
  );
});

// ------------------------------------------------------------------ random mixes over two servers with kills

type Op =
  | { kind: "deposit" | "withdraw"; server: number; account: number; amount: bigint }
  | { kind: "transfer"; server: number; from: number; to: number; amount: bigint; repeat: boolean }
  | { kind: "close"; server: number; account: number }
  | { kind: "kill"; server: number };

const ACCOUNTS = 6;
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom("deposit" as const, "withdraw" as const), server: fc.nat(1), account: fc.nat(ACCOUNTS - 1), amount: fc.bigInt(1n, 300n) }) },
  {
    weight: 6,
    arbitrary: fc
      .record({ kind: fc.constant("transfer" as const), server: fc.nat(1), from: fc.nat(ACCOUNTS - 1), to: fc.nat(ACCOUNTS - 1), amount: fc.bigInt(1n, 400n), repeat: fc.boolean() })
      .filter((op) => op.from !== op.to),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("close" as const), server: fc.nat(1), account: fc.nat(ACCOUNTS - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("kill" as const), server: fc.nat(1) }) },
);

/** Posted and available balance folded from an account's events; throws if available ever went negative. */
function fold(accountId: string, events: AccountEvent[]): { posted: bigint; available: bigint } {
  let posted = 0n;
  const holds = new Map<string, bigint>();
  for (const event of events) {
    const payload = event.payload;
    if (payload?.$case === "deposited" || payload?.$case === "credited") posted += payload.value.amount;
    if (payload?.$case === "withdrawn") posted -= payload.value.amount;
    if (payload?.$case === "reserved") holds.set(payload.value.transferId, payload.value.amount);
    if (payload?.$case === "captured") {
      posted -= payload.value.amount;
      holds.delete(payload.value.transferId);
    }
    if (payload?.$case === "released") holds.delete(payload.value.transferId);
    const available = posted - [...holds.values()].reduce((sum, amount) => sum + amount, 0n);
    if (available < 0n) throw new Error(`${accountId}: available balance ${available} at revision ${event.revision}`);
  }
  return { posted, available: posted - [...holds.values()].reduce((sum, amount) => sum + amount, 0n) };
}

describe("transfers: random mixes over two servers with kills (sqlite)", () => {
  it("ends with every transfer final, money conserved, balances the fold of their events, nothing negative", async () => {
    let transfersSent = 0;
    let kills = 0;
    let commands = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(opArb, { minLength: 1, maxLength: 4 }), { minLength: 5, maxLength: size(20, 60) }), async (steps) => {
        const env = await storeEnv("sqlite");
        const nodes = await Promise.all([startNode(env), startNode(env)]);
        const run = randomUUID().slice(0, 6);
        const ids = Array.from({ length: ACCOUNTS }, (_, i) => `mix-${run}-${i}`);
        let inflow = 0n;
        for (const [i, id] of ids.entries()) {
          await open(nodes[i % 2]!, id, "EUR", 500n);
          inflow += 500n;
        }
        const sentTransfers: Array<{ transferId: string; from: string; to: string; amount: bigint }> = [];
        const closed = new Set<string>();
        for (const step of steps) {
          const results = await Promise.allSettled(
            step.map(async (op) => {
              const node = nodes[op.server]!;
              commands++;
              switch (op.kind) {
                case "deposit":
                case "withdraw": {
                  const method = op.kind === "deposit" ? node.accounts.deposit : node.accounts.withdraw;
                  await call(node.accounts, method, { accountId: ids[op.account]!, amount: op.amount, commandId: randomUUID() }, { deadline: deadline(20_000) });
                  return;
                }
                case "transfer": {
                  const earlier = op.repeat && sentTransfers.length > 0 ? sentTransfers[sentTransfers.length - 1]! : undefined;
                  const request = earlier
                    ? { transferId: earlier.transferId, fromAccountId: earlier.from, toAccountId: earlier.to, amount: earlier.amount }
                    : { transferId: `mt-${randomUUID().slice(0, 12)}`, fromAccountId: ids[op.from]!, toAccountId: ids[op.to]!, amount: op.amount };
                  if (!earlier) sentTransfers.push({ transferId: request.transferId, from: request.fromAccountId, to: request.toAccountId, amount: request.amount });
                  transfersSent++;
                  await unaryCall(node.transfers, node.transfers.transferMoney, request);
                  return;
                }
                case "close":
                  await call(node.accounts, node.accounts.closeAccount, { accountId: ids[op.account]!, commandId: randomUUID() }, { deadline: deadline(20_000) });
                  closed.add(ids[op.account]!);
                  return;
                case "kill":
                  kills++;
                  await kill(node);
                  nodes[op.server] = await startNode(env);
                  return;
              }
            }),
          );
          for (const result of results) {
            if (result.status === "rejected" && !(typeof result.reason === "object" && result.reason !== null && "code" in result.reason)) throw result.reason;
          }
        }
        // Every transfer ends final, on both servers.
        for (const sent of sentTransfers) {
          const recorded = await getTransfer(nodes[0]!, sent.transferId).catch((error: unknown) => decodeError(error));
          // Never recorded: refused before (an account closed or unknown... not here) or its server died first.
          if ("code" in recorded && recorded.code === status.NOT_FOUND) continue;
          const transfer = await final(nodes[0]!, sent.transferId);
          expect((await getTransfer(nodes[1]!, sent.transferId)).status).toBe(transfer.status);
        }
        // Money is conserved and every balance is the fold of its events, on both servers.
        let outflow = 0n;
        let total = 0n;
        for (const id of ids) {
          const events = await readAllEvents(nodes[0]!.accounts, id);
          const folded = fold(id, events);
          for (const node of nodes) expect(await balanceOf(node, id)).toMatchObject({ balance: folded.posted, availableBalance: folded.available });
          expect(folded.available, `${id}: a hold left behind`).toBe(folded.posted);
          total += folded.posted;
          for (const event of events) if (event.payload?.$case === "withdrawn") outflow += event.payload.value.amount;
          for (const event of events) if (event.payload?.$case === "deposited" && !event.commandId.startsWith("seed-")) inflow += event.payload.value.amount;
        }
        expect(total).toBe(inflow - outflow);
        for (const node of nodes) await kill(node);
      }),
      { numRuns: size(2, 12), seed: seedFor("transfer mixes"), endOnFailure: true },
    );
    console.log(`[reliability] transfer mixes: ${commands} commands, ${transfersSent} transfer requests, ${kills} server kills; every transfer final, money conserved`);
  }, size(180_000, 1_800_000));
});

// ------------------------------------------------------------------ many transfers at once over two servers

describe.each([
  { kind: "sqlite" as const, available: true },
  { kind: "esdb" as const, available: esdbDouble !== undefined },
])("transfers at once over two servers ($kind)", ({ kind, available }) => {
  it.skipIf(!available)(
    "moves money in both directions, out of one account racing its withdrawals, between 32 accounts: nothing negative, nothing twice, money conserved",
    async () => {
      const env = await storeEnv(kind);
      const nodes = await Promise.all([startNode(env), startNode(env)]);
      const run = randomUUID().slice(0, 6);
      const ids = Array.from({ length: 32 }, (_, i) => `par-${run}-${i}`);
      for (const [i, id] of ids.entries()) await open(nodes[i % 2]!, id, "EUR", 1_000n);
      const inflow = 1_000n * BigInt(ids.length);
      const total = size(400, 4_000);
      const outcomes = { completed: 0, failed: 0, other: 0, retried: 0, withdrawals: 0 };
      let next = 0;
      const worker = async (w: number) => {
        for (let n = next++; n < total; n = next++) {
          const node = nodes[n % 2]!;
          // A -> B and B -> A at once (pairs), and account 0 a hot source that its own withdrawals race.
          const from = n % 5 === 0 ? ids[0]! : ids[(n * 7) % ids.length]!;
          const to = n % 2 === 0 ? ids[(n * 7 + 1) % ids.length]! : ids[(n * 7 + ids.length - 1) % ids.length]!;
          if (from === to) continue;
          const request = { transferId: `par-${run}-${n}`, fromAccountId: from, toAccountId: to, amount: BigInt(1 + (n % 300)) };
          // A client retries "not decided, try again" (ABORTED after the server's own retries, UNAVAILABLE) with the same transfer id.
          for (let attempt = 1; ; attempt++) {
            try {
              await unaryCall(nodes[(n + attempt - 1) % 2]!.transfers, nodes[(n + attempt - 1) % 2]!.transfers.transferMoney, request);
              outcomes.completed++;
            } catch (error) {
              const code = (error as ServiceError).code;
              if (code === status.FAILED_PRECONDITION) outcomes.failed++;
              else if ((code === status.ABORTED || code === status.UNAVAILABLE) && attempt < 8) {
                outcomes.retried++;
                continue;
              } else outcomes.other++;
            }
            break;
          }
          if (w % 4 === 0) {
            const withdraw = call(node.accounts, node.accounts.withdraw, { accountId: ids[0]!, amount: 50n, commandId: `w-${run}-${n}` }, { deadline: deadline(20_000) });
            await withdraw.then(() => outcomes.withdrawals++, () => {});
          }
        }
      };
      await Promise.all(Array.from({ length: 48 }, (_, w) => worker(w)));
      expect(outcomes.other, JSON.stringify(outcomes)).toBe(0);
      // The same transfer_id 8 times at once, over both servers: one transfer, the same answer to every copy.
      for (let k = 0; k < 4; k++) {
        const request = { transferId: `same-${run}-${k}`, fromAccountId: ids[k + 1]!, toAccountId: ids[k + 2]!, amount: 5n };
        const copies = await Promise.all(
          Array.from({ length: 8 }, (_, c) =>
            unaryCall(nodes[c % 2]!.transfers, nodes[c % 2]!.transfers.transferMoney, request).then(
              (response) => response.transfer!.status,
              (error: ServiceError) => `code ${error.code}`,
            ),
          ),
        );
        expect(new Set(copies).size, JSON.stringify(copies)).toBe(1);
        const legs = (await readAllEvents(nodes[0]!.accounts, request.toAccountId)).filter((event) => event.commandId === `transfer:${request.transferId}:credit`);
        expect(legs.length <= 1 && (copies[0] === TransferStatus.TRANSFER_STATUS_COMPLETED) === (legs.length === 1)).toBe(true);
      }
      let posted = 0n;
      let outflow = 0n;
      for (const id of ids) {
        const events = await readAllEvents(nodes[0]!.accounts, id);
        const folded = fold(id, events); // throws if an available balance ever went below zero
        expect(folded.available, `${id}: a hold left behind`).toBe(folded.posted);
        for (const node of nodes) expect(await balanceOf(node, id)).toMatchObject({ balance: folded.posted, availableBalance: folded.available });
        // Each transfer leg once per transfer id.
        const legs = events.filter((event) => event.commandId.startsWith("transfer:")).map((event) => event.commandId);
        expect(new Set(legs).size, id).toBe(legs.length);
        for (const event of events) if (event.payload?.$case === "withdrawn") outflow += event.payload.value.amount;
        posted += folded.posted;
      }
      expect(posted).toBe(inflow - outflow);
      console.log(
        `[reliability] transfers at once (${kind}): ${total} transfers over 2 servers between 32 accounts, 48 clients: ${outcomes.completed} completed, ${outcomes.failed} refused, ${outcomes.retried} client retries, ${outcomes.withdrawals} racing withdrawals; money conserved`,
      );
    },
    size(120_000, 900_000),
  );
});
