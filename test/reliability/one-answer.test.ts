/**
 * One command id, one answer: two server processes on one store (SQLite
 * file, EventStoreDB double), each with a warm cache, and clients that retry
 * (the same command id to the other server) or reuse an id for something
 * else. Every command id must get one answer from any server (same code,
 * revision and balance), and that answer must be what the store holds.
 *
 * First the sequences from issue 9 as fixed regressions, then a model-free
 * property test (fast-check) over random sends, checked against the streams.
 * EVENTBANK_SEED=<seed> replays it; EVENTBANK_HEAVY=1 runs it long.
 */
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import type { AccountEvent } from "../../client/src/gen/bank/v1/account.js";
import { call, decodeError } from "../support/grpc-client.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { checkAccountInvariants, connectSeparately, deadline, delta, readAllEvents, seedFor, size } from "./support/reliability.js";

type EsdbDoubleModule = typeof import("../support/esdb-double/server.js");
const esdbDouble: EsdbDoubleModule | undefined = await import("../support/esdb-double/server.js").catch(() => undefined);

type Command = { type: "Deposit" | "Withdraw"; amount: bigint } | { type: "CloseAccount" };

/** What a server answered, as a client sees it. */
interface Answer {
  code: status;
  reason?: string;
  revision?: bigint;
  balance?: bigint;
}

interface Sent {
  server: number;
  accountId: string;
  commandId: string;
  command: Command;
  answer: Answer;
}

/** Refusals that the server records in the stream (they claim the command id like an acceptance). */
const RECORDED = new Set(["INSUFFICIENT_FUNDS", "BALANCE_NOT_ZERO", "BALANCE_LIMIT_EXCEEDED"]);
/** Answers that say "not decided, try again". */
const TRANSIENT = new Set<status>([status.ABORTED, status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

async function send(client: AccountServiceClient, accountId: string, commandId: string, command: Command): Promise<Answer> {
  const options = { deadline: deadline(20_000) };
  try {
    const response =
      command.type === "Deposit"
        ? await call(client, client.deposit, { accountId, commandId, amount: command.amount }, options)
        : command.type === "Withdraw"
          ? await call(client, client.withdraw, { accountId, commandId, amount: command.amount }, options)
          : await call(client, client.closeAccount, { accountId, commandId }, options);
    return { code: status.OK, revision: response.revision, balance: response.account!.balance };
  } catch (error) {
    const decoded = decodeError(error);
    const { revision, balance } = decoded.metadata;
    return {
      code: decoded.code,
      ...(decoded.reason === undefined ? {} : { reason: decoded.reason }),
      ...(revision === undefined ? {} : { revision: BigInt(revision) }),
      ...(balance === undefined ? {} : { balance: BigInt(balance) }),
    };
  }
}

const sameContent = (a: Command, b: Command) => a.type === b.type && (a.type === "CloseAccount" || a.amount === (b as { amount: bigint }).amount);
const show = (value: unknown) => JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? `${v}` : v));

/**
 * Checks every answer against the stored streams: an accepted or recorded
 * answer names the event of its command id (revision, balance after it), a
 * repeat with the same content gets the same answer, other content gets
 * COMMAND_ID_REUSED, and no acknowledgement lacks its event.
 */
function checkAnswers(sent: Sent[], streams: Map<string, AccountEvent[]>): { checked: number } {
  const problems: string[] = [];
  let checked = 0;
  for (const s of sent) {
    if (TRANSIENT.has(s.answer.code)) continue;
    checked++;
    const events = streams.get(s.accountId)!;
    const index = events.findIndex((event) => event.commandId === s.commandId);
    const stored = index < 0 ? undefined : events[index]!;
    const claims = s.answer.code === status.OK || (s.answer.reason !== undefined && RECORDED.has(s.answer.reason));
    const what = `${s.accountId}/${s.commandId} ${show(s.command)} on server ${s.server}: ${show(s.answer)}`;
    if (!stored) {
      if (claims) problems.push(`${what}, but the store has no event for it`);
      continue;
    }
    const storedCommand: Command | undefined =
      stored.payload?.$case === "deposited"
        ? { type: "Deposit", amount: stored.payload.value.amount }
        : stored.payload?.$case === "withdrawn"
          ? { type: "Withdraw", amount: stored.payload.value.amount }
          : stored.payload?.$case === "closed"
            ? { type: "CloseAccount" }
            : stored.payload?.$case === "rejected"
              ? stored.payload.value.command === "CloseAccount"
                ? { type: "CloseAccount" }
                : { type: stored.payload.value.command as "Deposit" | "Withdraw", amount: stored.payload.value.amount }
              : undefined;
    if (!storedCommand || !sameContent(storedCommand, s.command)) {
      if (s.answer.reason !== "COMMAND_ID_REUSED") problems.push(`${what}, but the store holds ${show(storedCommand)} for that id`);
      continue;
    }
    const balanceAfter = events.slice(0, index + 1).reduce((sum, event) => sum + delta(event), 0n);
    const expected: Answer =
      stored.payload?.$case === "rejected"
        ? { code: status.FAILED_PRECONDITION, reason: stored.payload.value.reason, revision: stored.revision, balance: BigInt(stored.payload.value.details.balance!) }
        : { code: status.OK, revision: stored.revision, balance: balanceAfter };
    if (show(s.answer) !== show(expected)) problems.push(`${what}, but the store says ${show(expected)}`);
  }
  if (problems.length > 0) throw new Error(`${problems.length} answers disagree with the store:\n  ${problems.slice(0, 20).join("\n  ")}`);
  return { checked };
}

describe.each([
  { store: "sqlite", available: true },
  { store: "esdb double", available: esdbDouble !== undefined },
])("one command id, one answer: two servers on one store ($store)", ({ store, available }) => {
  const servers: ServerProcess[] = [];
  let clients: AccountServiceClient[] = [];
  let cleanup: () => Promise<void> = async () => {};

  beforeAll(async () => {
    if (!available) return;
    let env: Record<string, string>;
    if (store === "sqlite") {
      const dir = mkdtempSync(join(tmpdir(), "eventbank-one-answer-"));
      env = { EVENTBANK_STORE: "sqlite", EVENTBANK_SQLITE_PATH: join(dir, "events.sqlite") };
      cleanup = async () => rmSync(dir, { recursive: true, force: true });
    } else {
      const double = await esdbDouble!.startEsdbDouble();
      env = { EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: double.connectionString };
      cleanup = () => double.stop();
    }
    // Snapshots every few events, so warm and cold loads both go through them.
    servers.push(...(await Promise.all([0, 1].map(() => startServerProcess({ ...env, EVENTBANK_SNAPSHOT_EVERY: "7" }, 30_000)))));
    clients = servers.map((server) => connectSeparately(server.address));
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) client.close();
    for (const server of servers) server.child.kill("SIGKILL");
    await Promise.all(servers.map((server) => server.exited));
    await cleanup();
  });

  const [A, B] = [0, 1];
  const on = (server: number) => clients[server]!;
  const open = async (server: number, accountId: string) => {
    const client = on(server);
    await call(client, client.openAccount, { accountId, owner: "Ada", currency: "EUR", commandId: `open-${accountId}` });
  };
  const get = async (server: number, accountId: string) => {
    const client = on(server);
    return (await call(client, client.getAccount, { accountId })).account!;
  };
  const newAccount = () => `one-${randomUUID().slice(0, 13)}`;

  it.skipIf(!available)("refuses a reused command id with another amount on the other server too, and never goes negative", async () => {
    const acc = newAccount();
    await open(A, acc);
    await send(on(B), acc, "d0", { type: "Deposit", amount: 1n }); // B's cache is warm (revision 1)
    expect(await send(on(A), acc, "X", { type: "Deposit", amount: 100n })).toMatchObject({ code: status.OK, revision: 2n, balance: 101n });
    expect(await send(on(B), acc, "X", { type: "Deposit", amount: 1_000_000n })).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "COMMAND_ID_REUSED" });
    expect(await send(on(B), acc, "w", { type: "Withdraw", amount: 1_000_001n })).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "INSUFFICIENT_FUNDS", balance: 101n });
    for (const server of [A, B]) expect(await get(server, acc)).toMatchObject({ balance: 101n, revision: 3n });
  });

  it.skipIf(!available)("answers a repeat on the other server with the stored revision and balance, not a decision on its stale cache", async () => {
    const acc = newAccount();
    await open(A, acc);
    await send(on(A), acc, "d1", { type: "Deposit", amount: 1752n }); // A's cache: revision 1, balance 1752
    await send(on(B), acc, "d-other", { type: "Deposit", amount: 10_000n }); // revision 2, written by B
    const first = await send(on(B), acc, "X", { type: "Deposit", amount: 5n }); // revision 3
    expect(first).toMatchObject({ code: status.OK, revision: 3n, balance: 11_757n });
    expect(await send(on(A), acc, "X", { type: "Deposit", amount: 5n })).toEqual(first);
    expect(await send(on(A), acc, "X", { type: "Deposit", amount: 5n })).toEqual(first);
    expect(await get(A, acc)).toMatchObject({ balance: 11_757n, revision: 3n });
  });

  it.skipIf(!available)("decides a withdrawal on the store's state, not on a stale cache that says 0", async () => {
    const acc = newAccount();
    await open(A, acc);
    expect(await get(A, acc)).toMatchObject({ balance: 0n }); // A's cache: balance 0
    await send(on(B), acc, "d", { type: "Deposit", amount: 1_000n });
    expect(await send(on(A), acc, "w", { type: "Withdraw", amount: 500n })).toMatchObject({ code: status.OK, balance: 500n });
  });

  it.skipIf(!available)("keeps a refusal as the answer after a deposit, on both servers, and applies nothing", async () => {
    const acc = newAccount();
    await open(A, acc);
    const refused = await send(on(A), acc, "W", { type: "Withdraw", amount: 500n });
    expect(refused).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "INSUFFICIENT_FUNDS", revision: 1n, balance: 0n });
    await send(on(B), acc, "d", { type: "Deposit", amount: 1_000n });
    expect(await send(on(B), acc, "W", { type: "Withdraw", amount: 500n })).toEqual(refused);
    expect(await send(on(A), acc, "W", { type: "Withdraw", amount: 500n })).toEqual(refused);
    expect(await send(on(B), acc, "W", { type: "Withdraw", amount: 400n })).toMatchObject({ reason: "COMMAND_ID_REUSED" });
    for (const server of [A, B]) expect(await get(server, acc)).toMatchObject({ balance: 1_000n, revision: 2n });
  });

  it.skipIf(!available)("gives random sends, repeats and reuses over both servers one answer per command id, the one the store holds", async () => {
    const ACCOUNTS = 3;
    const sendArb = fc.record({
      server: fc.constantFrom(A, B),
      account: fc.nat(ACCOUNTS - 1),
      commandId: fc.constantFrom(...Array.from({ length: 10 }, (_, i) => `c${i}`)),
      type: fc.constantFrom("Deposit", "Withdraw", "Withdraw", "CloseAccount"),
      amount: fc.bigInt(1n, 400n),
      /** >= 0: send again what an earlier send sent (a retry), to this server; with `reuse`, another amount. */
      repeat: fc.option(fc.nat(), { nil: undefined, freq: 2 }),
      reuse: fc.boolean(),
    });
    // Each step: 1-3 sends at the same time.
    const stepsArb = fc.array(fc.array(sendArb, { minLength: 1, maxLength: 3 }), { minLength: size(5, 100), maxLength: size(40, 150) });
    let commands = 0;
    let repeats = 0;
    let checkedTotal = 0;
    await fc.assert(
      fc.asyncProperty(stepsArb, async (steps) => {
        const run = randomUUID().slice(0, 8);
        const accounts = Array.from({ length: ACCOUNTS }, (_, i) => `prop-${run}-${i}`);
        for (const [i, accountId] of accounts.entries()) {
          await open(i % 2, accountId);
          await send(on((i + 1) % 2), accountId, "start", { type: "Deposit", amount: 500n });
        }
        const sent: Sent[] = [];
        for (const step of steps) {
          const planned = step.map((p) => {
            const earlier = p.repeat === undefined || sent.length === 0 ? undefined : sent[p.repeat % sent.length]!;
            if (earlier) {
              repeats++;
              const command: Command =
                p.reuse && earlier.command.type !== "CloseAccount" ? { type: earlier.command.type, amount: earlier.command.amount + 1n } : earlier.command;
              return { server: p.server, accountId: earlier.accountId, commandId: earlier.commandId, command };
            }
            const command: Command = p.type === "CloseAccount" ? { type: "CloseAccount" } : { type: p.type as "Deposit" | "Withdraw", amount: p.amount };
            return { server: p.server, accountId: accounts[p.account]!, commandId: p.commandId, command };
          });
          const answers = await Promise.all(planned.map((p) => send(on(p.server), p.accountId, p.commandId, p.command)));
          planned.forEach((p, i) => sent.push({ ...p, answer: answers[i]! }));
        }
        commands += sent.length;
        const streams = new Map<string, AccountEvent[]>();
        for (const accountId of accounts) {
          const events = await readAllEvents(on(A), accountId);
          // Revisions without gaps, each command id once, balance = fold >= 0, refusals on current state; both servers agree.
          for (const server of [A, B]) checkAccountInvariants(accountId, events, await get(server, accountId));
          streams.set(accountId, events);
        }
        checkedTotal += checkAnswers(sent, streams).checked;
      }),
      { numRuns: size(6, 60), seed: seedFor(`one answer (${store})`), endOnFailure: true },
    );
    console.log(
      `[reliability] one answer (${store}): 2 servers, ${commands} sends (${repeats} repeats or reuses of an earlier id), ` +
        `${checkedTotal} answers checked against the streams, disagreements: 0`,
    );
  }, size(120_000, 1_200_000));
});
