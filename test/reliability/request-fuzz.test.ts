/**
 * Bad input through real gRPC: random requests to every RPC (random strings,
 * ids, currencies, int64 amounts incl. huge and negative, uint64 revisions),
 * random bytes as whole messages, random bytes (incl. invalid UTF-8) inside
 * string fields. Every case answers OK or a status with an eventbank
 * ErrorInfo reason (never INTERNAL, UNKNOWN or a hang), a refused request
 * writes nothing (counted in the SQLite file after every case), and the
 * server keeps serving after each batch.
 *
 * EVENTBANK_SEED=<seed> replays; EVENTBANK_HEAVY=1 runs 15x more cases.
 */
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { status } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import { call, connect, decodeError } from "../support/grpc-client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { RawClient, STREAM_METHODS, UNARY_METHODS, type RawMethod } from "./support/raw-client.js";
import { RECORDED_REFUSALS } from "./support/workload.js";
import { deadline, expectWellFormedRejection, MAX_AMOUNT, seedFor, show, size, verifyAccount } from "./support/reliability.js";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const POOL = ["fz-0", "fz-1", "fz-2", "fz-3"];
const COMMANDS = new Set<string>(["OpenAccount", "Deposit", "Withdraw", "CloseAccount"]);

// ------------------------------------------------------------------ arbitraries

const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  // lone surrogates: the client's encoder turns them into U+FFFD
  fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), maxLength: 4 }),
  fc.constantFrom("", " ", "\u0000", "\t\n", "a".repeat(64), "a".repeat(65), "x".repeat(300), "../etc/passwd", "$all", "account-x", "\u202e"),
);
const accountId = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...POOL) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/) },
  { weight: 3, arbitrary: text },
);
const commandId = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom("dup-1", "dup-2") },
  { weight: 4, arbitrary: fc.uuid() },
  { weight: 2, arbitrary: text },
  { weight: 1, arbitrary: fc.constant("c".repeat(129)) },
);
const currency = fc.oneof(fc.constantFrom("EUR", "USD", "JPY", "XXX", "XTS", "eur", "EURO", "XYZ", "ZZZ"), fc.string({ minLength: 3, maxLength: 3 }), text);
const int64 = fc.oneof(
  fc.bigInt(1n, 100n),
  fc.bigInt(1n, MAX_AMOUNT),
  fc.constantFrom(0n, -1n, 1n, MAX_AMOUNT, MAX_AMOUNT + 1n, INT64_MAX, INT64_MIN, BigInt(Number.MAX_SAFE_INTEGER)),
  fc.bigInt(INT64_MIN, INT64_MAX),
);
/** uint64 revisions, across the whole range (the store's int64 limit included). */
const revision = fc.oneof(fc.bigInt(0n, 20n), fc.bigInt(0n, UINT64_MAX), fc.constantFrom(0n, UINT64_MAX, INT64_MAX, 2n ** 63n));
const fromRevision = revision;

type Request =
  | { rpc: "openAccount"; req: { accountId: string; owner: string; currency: string; commandId: string } }
  | { rpc: "deposit" | "withdraw"; req: { accountId: string; amount: bigint; commandId: string; expectedRevision: bigint | undefined } }
  | { rpc: "closeAccount"; req: { accountId: string; commandId: string; expectedRevision: bigint | undefined } }
  | { rpc: "getAccount"; req: { accountId: string } }
  | { rpc: "readAccountEvents"; req: { accountId: string; fromRevision: bigint | undefined; maxCount: number; direction: number } }
  | { rpc: "subscribeAccount"; req: { accountId: string; fromRevision: bigint | undefined } }
  | { rpc: "subscribeAll"; req: { fromPosition: string | undefined } };

const requestArb: fc.Arbitrary<Request> = fc.oneof(
  fc.record({ rpc: fc.constant("openAccount" as const), req: fc.record({ accountId, owner: text, currency, commandId }) }),
  {
    weight: 3,
    arbitrary: fc.record({
      rpc: fc.constantFrom("deposit" as const, "withdraw" as const),
      req: fc.record({ accountId, amount: int64, commandId, expectedRevision: fc.option(revision, { nil: undefined, freq: 2 }) }),
    }),
  },
  fc.record({ rpc: fc.constant("closeAccount" as const), req: fc.record({ accountId, commandId, expectedRevision: fc.option(revision, { nil: undefined, freq: 2 }) }) }),
  fc.record({ rpc: fc.constant("getAccount" as const), req: fc.record({ accountId }) }),
  fc.record({
    rpc: fc.constant("readAccountEvents" as const),
    req: fc.record({
      accountId,
      fromRevision: fc.option(fromRevision, { nil: undefined }),
      maxCount: fc.oneof(fc.integer({ min: 0, max: 1001 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
      direction: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
    }),
  }),
  fc.record({ rpc: fc.constant("subscribeAccount" as const), req: fc.record({ accountId, fromRevision: fc.option(fromRevision, { nil: undefined }) }) }),
  fc.record({
    rpc: fc.constant("subscribeAll" as const),
    req: fc.record({ fromPosition: fc.option(fc.oneof(text, fc.nat().map(String), fc.constantFrom("0", "-1", "1e3", "99999999999999999999", "18446744073709551615")), { nil: undefined }) }),
  }),
);

/** Bytes that are not UTF-8: random, plus the classic traps (overlong, surrogates, truncated, 0xFF). */
const invalidUtf8 = fc
  .oneof(
    fc.constantFrom([0xc3, 0x28], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff], [0xfe, 0xff], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]),
    fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 24 }),
  )
  .chain((bad) => fc.tuple(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 })).map(([a, b]) => Buffer.concat([Buffer.from(a), Buffer.from(bad), Buffer.from(b)])))
  .filter((bytes) => !isUtf8(bytes));
const validUtf8 = fc.oneof(fc.constantFrom(...POOL), fc.string({ unit: "binary", maxLength: 20 })).map((s) => Buffer.from(s, "utf8"));
const stringBytes = fc.oneof(invalidUtf8, validUtf8);

function isUtf8(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Field layout of each request (bank/v1/account_service.proto): field number -> kind. */
const LAYOUT: Record<RawMethod, Array<[number, "string" | "int64" | "uint64" | "uint32" | "enum"]>> = {
  OpenAccount: [[1, "string"], [2, "string"], [3, "string"], [4, "string"]],
  Deposit: [[1, "string"], [2, "int64"], [3, "string"], [4, "uint64"]],
  Withdraw: [[1, "string"], [2, "int64"], [3, "string"], [4, "uint64"]],
  CloseAccount: [[1, "string"], [2, "string"], [3, "uint64"]],
  GetAccount: [[1, "string"]],
  ReadAccountEvents: [[1, "string"], [2, "uint64"], [3, "uint32"], [4, "enum"]],
  SubscribeAccount: [[1, "string"], [2, "uint64"]],
  SubscribeAll: [[1, "string"]],
};
const ALL_METHODS: RawMethod[] = [...UNARY_METHODS, ...STREAM_METHODS];

/** A well-framed message of `method` whose string fields hold arbitrary bytes. */
const framedArb = fc.constantFrom(...ALL_METHODS).chain((method) =>
  fc
    .tuple(
      ...LAYOUT[method].map(([, kind]) =>
        kind === "string"
          ? stringBytes
          : kind === "int64"
            ? int64
            : kind === "uint64"
              ? fromRevision
              : kind === "uint32"
                ? fc.integer({ min: 0, max: 1000 })
                : fc.integer({ min: 0, max: 2 }),
      ),
    )
    .map((values) => {
      const writer = new BinaryWriter();
      let invalid = false;
      LAYOUT[method].forEach(([field, kind], index) => {
        const value = values[index]!;
        if (kind === "string") {
          writer.uint32((field << 3) | 2).bytes(value as Buffer);
          if (!isUtf8(value as Buffer)) invalid = true;
        } else if (kind === "int64") writer.uint32(field << 3).int64(value as bigint);
        else if (kind === "uint64") writer.uint32(field << 3).uint64(value as bigint);
        else writer.uint32(field << 3).uint32(value as number);
      });
      return { method, body: Buffer.from(writer.finish()), invalid };
    }),
);

// ------------------------------------------------------------------ the server under test

describe("hostile requests over real gRPC (sqlite)", () => {
  let server: TestServer;
  let client: AccountServiceClient;
  let raw: RawClient;
  let db: Database.Database;
  // The server's transfer process writes its own checkpoint when it likes; only what requests write counts here.
  const countEvents = () => Number((db.prepare("SELECT COUNT(*) AS n FROM events WHERE stream <> 'transfer-$process-checkpoint'").get() as { n: number | bigint }).n);
  let probes = 0;
  /** Outcomes per RPC and code, printed after each property so a run shows what it exercised. */
  const tally = new Map<string, number>();
  const count = (rpc: string, code: string) => tally.set(`${rpc}:${code}`, (tally.get(`${rpc}:${code}`) ?? 0) + 1);
  const report = (name: string) => {
    console.log(`[reliability] ${name}: ${[...tally].sort().map(([k, n]) => `${k}=${n}`).join(" ")}`);
    tally.clear();
  };

  beforeAll(async () => {
    server = await startTestServer({ env: { LOG_LEVEL: "info" } });
    client = connect(server.address);
    raw = new RawClient(server.address);
    for (const id of POOL) {
      await call(client, client.openAccount, { accountId: id, owner: "Fuzz", currency: "EUR", commandId: `open-${id}` });
      await call(client, client.deposit, { accountId: id, amount: 1_000n, commandId: `seed-${id}` });
    }
    db = new Database(server.config.sqlitePath, { readonly: true });
  });
  afterAll(async () => {
    db?.close();
    raw?.close();
    client?.close();
    await server?.stop();
  });

  /** The server still does its job: a fresh account opens, and no RPC was ever answered INTERNAL. */
  const expectStillServing = async () => {
    const id = `alive-${++probes}`;
    const opened = await call(client, client.openAccount, { accountId: id, owner: "Ada", currency: "EUR", commandId: id }, { deadline: deadline(10_000) });
    expect(opened.revision).toBe(0n);
    const internal = server.logs.filter((line) => line.code === "INTERNAL" || line.code === "UNKNOWN");
    expect(internal, show(internal.slice(0, 3))).toEqual([]);
  };

  /** Runs one typed request; OK, or a well-formed rejection; throws otherwise (incl. a hang past the deadline). */
  const send = async (request: Request): Promise<{ ok: boolean; revision?: bigint; reason?: string }> => {
    const options = { deadline: deadline(10_000) };
    const what = `${request.rpc} ${show(request.req)}`;
    if (request.rpc === "subscribeAccount" || request.rpc === "subscribeAll") {
      const stream = request.rpc === "subscribeAccount" ? client.subscribeAccount(request.req, options) : client.subscribeAll(request.req, options);
      return new Promise((resolve, reject) => {
        let settled = false;
        const settle = (fn: () => void) => {
          if (settled) return;
          settled = true;
          fn();
        };
        stream.on("data", (message: { message?: { $case: string } }) => {
          if (message.message?.$case === "caughtUp") settle(() => (count(request.rpc, "OK"), stream.cancel(), resolve({ ok: true })));
        });
        stream.on("error", (error) => settle(() => {
          try {
            count(request.rpc, expectWellFormedRejection(error, what).reason!);
            resolve({ ok: false });
          } catch (failure) {
            reject(failure);
          }
        }));
        stream.on("end", () => settle(() => reject(new Error(`${what}: stream ended without caught_up`))));
      });
    }
    try {
      const method = client[request.rpc] as (...args: never[]) => unknown;
      const response = (await call(client, method as never, request.req as never, options)) as { revision?: bigint; account?: { revision: bigint; balance: bigint } };
      if (response.account && response.revision !== undefined) {
        // A command's answer is consistent with itself.
        expect(response.account.revision, what).toBe(response.revision);
        expect(response.account.balance >= 0n, what).toBe(true);
      }
      count(request.rpc, "OK");
      return { ok: true, ...(response.revision === undefined ? {} : { revision: response.revision }) };
    } catch (error) {
      if (error instanceof Error && !("code" in error)) throw error;
      const reason = expectWellFormedRejection(error, what).reason!;
      count(request.rpc, reason);
      return { ok: false, reason };
    }
  };

  it("answers random typed requests to every RPC with OK or a reasoned status, writing only on OK or a recorded refusal", async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, async (request) => {
        const before = countEvents();
        const outcome = await send(request);
        const written = countEvents() - before;
        const command = COMMANDS.has(request.rpc[0]!.toUpperCase() + request.rpc.slice(1));
        // A refusal that depends on the balance is recorded (one CommandRejected); nothing else refused writes.
        const records = command && (outcome.ok || RECORDED_REFUSALS.has(outcome.reason ?? ""));
        if (!records) expect(written, show(request)).toBe(0);
        else expect(written, show(request)).toBeLessThanOrEqual(1);
      }),
      { numRuns: size(200, 3_000), seed: seedFor("typed request fuzz") },
    );
    report("typed request fuzz outcomes");
    await expectStillServing();
    for (const id of POOL) await verifyAccount(client, id);
  });

  it("answers random bytes as a whole message to every RPC with OK or a reasoned status, writing only on OK or a recorded refusal", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ALL_METHODS),
        fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 2048 }), fc.constantFrom(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), new Uint8Array([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), new Uint8Array([0x0f]), new Uint8Array([0x0a, 0x05, 0x61]))),
        async (method, bytes) => {
          const before = countEvents();
          const outcome = await raw.send(method, Buffer.from(bytes));
          const reason = outcome.ok ? "OK" : expectWellFormedRejection(outcome.error, `${method} <${Buffer.from(bytes).toString("hex")}>`).reason!;
          count(method, reason);
          const written = countEvents() - before;
          // A refusal that depends on the balance is recorded (one CommandRejected); nothing else refused writes.
          expect(written).toBeLessThanOrEqual(COMMANDS.has(method) && (outcome.ok || RECORDED_REFUSALS.has(reason)) ? 1 : 0);
        },
      ),
      { numRuns: size(200, 3_000), seed: seedFor("raw bytes fuzz") },
    );
    report("raw bytes fuzz outcomes");
    await expectStillServing();
  });

  it("answers invalid UTF-8 in any string field of any RPC with INVALID_ARGUMENT / MALFORMED_REQUEST and writes nothing for it", async () => {
    let invalidCases = 0;
    await fc.assert(
      fc.asyncProperty(framedArb, async ({ method, body, invalid }) => {
        const before = countEvents();
        const outcome = await raw.send(method, body);
        const what = `${method} <${body.toString("hex")}>`;
        if (invalid) {
          invalidCases++;
          expect(outcome.ok, what).toBe(false);
          if (!outcome.ok) expect(decodeError(outcome.error), what).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "MALFORMED_REQUEST" });
          expect(countEvents() - before, what).toBe(0);
          count(method, "invalid-utf8");
        } else {
          const reason = outcome.ok ? "OK" : expectWellFormedRejection(outcome.error, what).reason!;
          count(method, reason);
          // A refusal that depends on the balance is recorded (one CommandRejected); nothing else refused writes.
          expect(countEvents() - before, what).toBeLessThanOrEqual(COMMANDS.has(method) && (outcome.ok || RECORDED_REFUSALS.has(reason)) ? 1 : 0);
        }
      }),
      { numRuns: size(150, 2_000), seed: seedFor("utf-8 fuzz") },
    );
    report("utf-8 fuzz outcomes");
    expect(invalidCases).toBeGreaterThan(0);
    await expectStillServing();
  });

  it("answers an oversize request with a status, at and far beyond the configured limit, and writes nothing", async () => {
    const before = countEvents();
    for (const bytes of [64 * 1024 + 1, 300_000, 2 * 1024 * 1024]) {
      const error = await call(client, client.openAccount, { accountId: "huge", owner: "x".repeat(bytes), currency: "EUR", commandId: "huge" }, { deadline: deadline(15_000) }).then(
        () => undefined,
        (e: unknown) => decodeError(e),
      );
      // Up to grpc-js' own hard cap (1 MiB here) the guard answers with a reason; past it grpc-js
      // refuses the message itself with RESOURCE_EXHAUSTED before any eventbank code runs.
      if (bytes <= 1024 * 1024) expect(error).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "MESSAGE_TOO_LARGE" });
      else expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
    }
    expect(countEvents()).toBe(before);
    await expectStillServing();
  });

  // Was a bug: from_revision >= 2^63 (a legal uint64) reached better-sqlite3 as a
  // bigint it cannot bind, and the RPC failed with INTERNAL.
  it("answers ReadAccountEvents with from_revision >= 2^63 with INVALID_ARGUMENT, not INTERNAL", async () => {
    for (const direction of [1, 2]) {
      try {
        await call(client, client.readAccountEvents, { accountId: POOL[0]!, fromRevision: 2n ** 63n, maxCount: 10, direction }, { deadline: deadline(10_000) });
      } catch (error) {
        expectWellFormedRejection(error, `ReadAccountEvents from_revision 2^63 direction ${direction}`);
        expect(decodeError(error)).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REVISION" });
        continue;
      }
      throw new Error("expected INVALID_ARGUMENT");
    }
  });

  it("answers SubscribeAccount with from_revision >= 2^63 without INTERNAL", async () => {
    const outcome = await send({ rpc: "subscribeAccount", req: { accountId: POOL[0]!, fromRevision: UINT64_MAX } });
    expect(outcome).toBeDefined();
  });
});
