/**
 * The README's grpcurl lines, run verbatim (only the port substituted) with
 * the real grpcurl against the real server, through server reflection only
 * (no -proto, no -protoset), each checked for what it prints: the JSON
 * fields, the status and ErrorInfo reason of a refusal (and that the README's
 * sample refusal is exactly what grpcurl prints), the history, caughtUp and a
 * live event of each subscription. Then `list` and `describe` of every
 * service and of every type they reach, compared with the compiled protos.
 *
 * grpcurl is looked for on PATH, then at ../shared/tools/grpcurl beside the
 * repository. Without it the test is skipped with a note, unless
 * EVENTBANK_REQUIRE_GRPCURL=1 (as .ci/run sets), where it fails.
 */
import { createFileRegistry, fromBinary, type DescEnum, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Metadata, status } from "@grpc/grpc-js";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, connect } from "../support/grpc-client.js";
import {
  findGrpcurl,
  parseGrpcurlError,
  readmeGrpcurlCommands,
  ROOT,
  runCommand,
  startStreamingCommand,
  type StreamingCommand,
} from "../support/grpcurl.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const GRPCURL = findGrpcurl();
const required = process.env.EVENTBANK_REQUIRE_GRPCURL === "1";
if (!GRPCURL && !required) {
  console.warn("[grpcurl] no grpcurl on PATH or at ../shared/tools/grpcurl; skipping the README grpcurl test");
}

const TRYING = "Trying it with grpcurl";
const SECURITY = "Security";
const TRANSFERS = "Transfers";
const readme = readFileSync(join(ROOT, "README.md"), "utf8");
const commands = readmeGrpcurlCommands(readme);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(join(ROOT, "server/gen/descriptor-set.binpb"))));

/** The README's sample refusal: the one plain ``` block of the grpcurl section. */
function sampleRefusal(): string {
  const section = readme.slice(readme.indexOf(`## ${TRYING}`), readme.indexOf("\n## ", readme.indexOf(`## ${TRYING}`) + 1));
  const blocks: Array<{ lang: string; lines: string[] }> = [];
  let open: { lang: string; lines: string[] } | undefined;
  for (const line of section.split("\n")) {
    const fence = /^```(\w*)$/.exec(line);
    if (fence && !open) blocks.push((open = { lang: fence[1]!, lines: [] }));
    else if (fence) open = undefined;
    else open?.lines.push(line);
  }
  const plain = blocks.filter((b) => b.lang === "").map((b) => `${b.lines.join("\n")}\n`);
  expect(plain, "one plain ``` block with the sample refusal").toHaveLength(1);
  return plain[0]!;
}

/** Events printed before the {"caughtUp":{}} marker; grpcurl leaves out a zero revision. */
/** The events a message carries: one in `event`, or a batch in `events` (SubscribeAll's max_events_per_message). */
const eventsOf = (m: any): any[] => (m.event ? [m.event] : (m.events?.events ?? []));
const history = (stream: StreamingCommand) => stream.messages.slice(0, stream.messages.findIndex((m) => "caughtUp" in m)).flatMap(eventsOf);
const revision = (event: { revision?: string }) => event.revision ?? "0";

describe("grpcurl runs the README's lines", () => {
  it("finds every README grpcurl command in a section this test runs", () => {
    expect(commands.filter((c) => c.section === TRYING).length).toBeGreaterThan(10);
    expect(commands.filter((c) => c.section !== TRYING && c.section !== SECURITY && c.section !== TRANSFERS)).toEqual([]);
  });

  if (required && !GRPCURL) {
    it("is available where CI requires it", () => {
      expect.fail("EVENTBANK_REQUIRE_GRPCURL=1 but no grpcurl on PATH or at ../shared/tools/grpcurl");
    });
  }

  describe.runIf(GRPCURL)("against the real server, through reflection", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer();
    });
    afterAll(async () => {
      await server?.stop();
    });

    const run = (text: string) => runCommand(text, GRPCURL!, server.address);
    const json = async (text: string) => {
      const result = await run(text);
      expect(result.stderr, text).toBe("");
      expect(result.code, text).toBe(0);
      return JSON.parse(result.stdout) as Record<string, any>;
    };

    describe(`README "${TRYING}", in order`, () => {
      const lines = commands.filter((c) => c.section === TRYING).map((c) => c.text);
      const used = new Set<number>();
      /** The README line matching `pattern` after the one the previous step took (the README's order). */
      const next = (pattern: RegExp) => {
        const index = lines.findIndex((text, i) => i > Math.max(-1, ...used) && pattern.test(text));
        expect(index, `a README grpcurl line matching ${pattern}, after the previous step's`).toBeGreaterThan(-1);
        used.add(index);
        return lines[index]!;
      };
      const streams: Record<"account" | "accountResumed" | "all" | "allResumed" | "allBatched", StreamingCommand> = {} as never;
      afterAll(async () => {
        await Promise.all(Object.values(streams).map((stream) => stream.interrupt()));
      });

      it("lists the services", async () => {
        const result = await run(next(/ list$/));
        expect(result.code).toBe(0);
        expect(result.stdout.trim().split("\n")).toEqual(["bank.v1.AccountService", "bank.v1.TransferService", "grpc.health.v1.Health"]);
      });

      it("describes AccountService and AccountEvent as compiled", async () => {
        expectDescribes(await described(next(/ describe bank\.v1\.AccountService$/)), registry.getService("bank.v1.AccountService")!);
        expectDescribes(await described(next(/ describe bank\.v1\.AccountEvent$/)), registry.getMessage("bank.v1.AccountEvent")!);
      });

      it("opens, deposits and withdraws with the revisions and balances the README implies", async () => {
        const account = { accountId: "alice", owner: "Alice", currency: "EUR", status: "ACCOUNT_STATUS_OPEN" };
        // -emit-defaults shows the zero balance and revision of a new account.
        expect(await json(next(/-emit-defaults .*"command_id":"open-1".*\/OpenAccount$/s))).toEqual({
          account: { ...account, balance: "0", availableBalance: "0", revision: "0" },
          revision: "0",
        });
        expect(await json(next(/"amount":"1250".*\/Deposit$/s))).toEqual({ account: { ...account, balance: "1250", availableBalance: "1250", revision: "1" }, revision: "1" });
        expect(await json(next(/"expected_revision":"1".*\/Withdraw$/s))).toEqual({ account: { ...account, balance: "1000", availableBalance: "1000", revision: "2" }, revision: "2" });
        expect(await json(next(/\/GetAccount$/))).toEqual({ account: { ...account, balance: "1000", availableBalance: "1000", revision: "2" } });
      });

      it("reads the events forwards and backwards, with timestamps", async () => {
        const { events } = await json(next(/"max_count":10}'.*\/ReadAccountEvents$/s));
        expect(events.map((e: any) => [revision(e), Object.keys(e).find((k) => ["opened", "deposited", "withdrawn", "closed"].includes(k))])).toEqual([
          ["0", "opened"],
          ["1", "deposited"],
          ["2", "withdrawn"],
        ]);
        expect(events[0]).toMatchObject({ accountId: "alice", commandId: "open-1", opened: { owner: "Alice", currency: "EUR" } });
        expect(events[1].deposited).toEqual({ amount: "1250" });
        expect(events[2].withdrawn).toEqual({ amount: "250" });
        // google.protobuf.Timestamp, which reflection must serve for grpcurl to print it as RFC 3339.
        for (const event of events) expect(event.occurredAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);

        const backwards = await json(next(/READ_DIRECTION_BACKWARDS.*\/ReadAccountEvents$/s));
        expect(backwards.events).toEqual([events[2]]);
      });

      it("subscribes: each subscription prints its history, then caughtUp", async () => {
        streams.account = startStreamingCommand(next(/'\{"account_id":"alice"\}' \S+ bank\.v1\.AccountService\/SubscribeAccount$/), GRPCURL!, server.address);
        streams.accountResumed = startStreamingCommand(next(/"from_revision":"1".*\/SubscribeAccount\s/s), GRPCURL!, server.address);
        streams.all = startStreamingCommand(next(/'\{\}' \S+ bank\.v1\.AccountService\/SubscribeAll$/), GRPCURL!, server.address);
        const resumeAll = next(/"from_position":"(\w+)".*\/SubscribeAll\s/s);
        streams.allResumed = startStreamingCommand(resumeAll, GRPCURL!, server.address);
        streams.allBatched = startStreamingCommand(next(/"max_events_per_message":100.*\/SubscribeAll\s/s), GRPCURL!, server.address);
        for (const stream of Object.values(streams)) await stream.waitFor((m) => "caughtUp" in m);

        expect(history(streams.account).map(revision)).toEqual(["0", "1", "2"]);
        expect(history(streams.accountResumed).map(revision)).toEqual(["2"]);
        const all = history(streams.all);
        expect(all.map((e) => [e.accountId, revision(e)])).toEqual([
          ["alice", "0"],
          ["alice", "1"],
          ["alice", "2"],
        ]);
        // The README resumes after a position it names: that position must be one a user sees printed.
        const from = /"from_position":"(\w+)"/.exec(resumeAll)![1];
        const after = all.findIndex((e) => e.position === from);
        expect(after, `an event at position ${from}`).toBeGreaterThanOrEqual(0);
        expect(history(streams.allResumed)).toEqual(all.slice(after + 1));
        // In batches: the same events; the three of the catch-up were ready together, so one message.
        expect(history(streams.allBatched)).toEqual(all);
        expect(streams.allBatched.messages[0]).toEqual({ events: { events: all } });
      });

      it("prints a refusal exactly as the README's sample shows: status, message and ErrorInfo reason", async () => {
        const result = await run(next(/"amount":"5000".*\/Withdraw\s/s));
        expect(result.code, "grpcurl exits with 64 + the status code, as the README says").toBe(64 + status.FAILED_PRECONDITION);
        expect(result.stdout).toBe("");
        expect(parseGrpcurlError(result.stderr)).toEqual({
          code: "FailedPrecondition",
          message: "account alice has 1000, cannot withdraw 5000",
          details: [
            {
              "@type": "type.googleapis.com/google.rpc.ErrorInfo",
              domain: "eventbank",
              reason: "INSUFFICIENT_FUNDS",
              metadata: expect.objectContaining({ account_id: "alice", amount: "5000", balance: "1000" }),
            },
          ],
        });
        expect(result.stderr).toBe(sampleRefusal());
      });

      it("withdraws the rest and closes; every subscription gets them live", async () => {
        // Revisions relative to the answers: a refusal may be recorded in the stream too.
        const withdrawn = await json(next(/-emit-defaults .*"command_id":"wd-2".*\/Withdraw$/s));
        expect(withdrawn.account).toMatchObject({ balance: "0", status: "ACCOUNT_STATUS_OPEN" });
        expect(BigInt(withdrawn.revision)).toBeGreaterThan(2n);
        const closed = await json(next(/"command_id":"close-1".*\/CloseAccount$/s));
        expect(closed.account).toMatchObject({ accountId: "alice", status: "ACCOUNT_STATUS_CLOSED" });
        expect(closed.revision).toBe(String(BigInt(withdrawn.revision) + 1n));

        for (const [name, stream] of Object.entries(streams)) {
          await stream.waitFor((m) => eventsOf(m).some((e) => e.closed !== undefined && e.revision === closed.revision));
          const caughtUp = stream.messages.findIndex((m) => "caughtUp" in m);
          const live = stream.messages.slice(caughtUp + 1).flatMap(eventsOf);
          expect(live.find((e) => e.withdrawn), name).toMatchObject({ accountId: "alice", revision: withdrawn.revision, withdrawn: { amount: "1000" }, commandId: "wd-2" });
          expect(live.at(-1), name).toMatchObject({ accountId: "alice", revision: closed.revision, closed: {} });
          expect(stream.messages.filter((m) => "caughtUp" in m), name).toHaveLength(1);
        }
      });

      it("checks health", async () => {
        expect(await json(next(/grpc\.health\.v1\.Health\/Check$/))).toEqual({ status: "SERVING" });
      });

      it("leaves no README line unchecked", () => {
        expect(lines.filter((_, i) => !used.has(i))).toEqual([]);
      });

      /** What a `describe` line prints. */
      async function described(text: string): Promise<string> {
        const result = await run(text);
        expect(result.stderr, text).toBe("");
        expect(result.code, text).toBe(0);
        return result.stdout;
      }
    });

    describe(`README "${SECURITY}": the API-key line with -H`, () => {
      let secured: TestServer;
      const token = randomBytes(24).toString("base64url");
      beforeAll(async () => {
        // The README's own EVENTBANK_API_KEYS line, with the hash of a fresh key in place of <sha256>.
        const keys = /export EVENTBANK_API_KEYS='([^']+)'/.exec(readme)?.[1];
        expect(keys, "the README's EVENTBANK_API_KEYS example").toBeDefined();
        const sha256 = createHash("sha256").update(token).digest("hex");
        secured = await startTestServer({ env: { EVENTBANK_API_KEYS: keys!.replace("<sha256>", sha256) } });
        const client = connect(secured.address);
        const metadata = new Metadata();
        metadata.set("authorization", `Bearer ${token}`);
        await call(client, client.openAccount, { accountId: "alice", owner: "Alice", currency: "EUR", commandId: "open-1" }, { metadata });
        client.close();
      });
      afterAll(async () => {
        await secured?.stop();
      });

      it("reads the account with the key, and is refused without a valid one", async () => {
        const lines = commands.filter((c) => c.section === SECURITY).map((c) => c.text);
        expect(lines).toHaveLength(1);
        const line = lines[0]!;
        expect(line).toContain('-H "authorization: Bearer $KEY"');

        const ok = await runCommand(line, GRPCURL!, secured.address, { KEY: token });
        expect(ok.stderr).toBe("");
        expect(JSON.parse(ok.stdout)).toEqual({ account: { accountId: "alice", owner: "Alice", currency: "EUR", status: "ACCOUNT_STATUS_OPEN" } });

        const refused = await runCommand(line, GRPCURL!, secured.address, { KEY: "not-a-key" });
        expect(refused.code).toBe(64 + status.UNAUTHENTICATED);
        expect(parseGrpcurlError(refused.stderr)).toMatchObject({ code: "Unauthenticated", details: [{ reason: "UNAUTHENTICATED", domain: "eventbank" }] });
      });
    });

    describe(`README "${TRANSFERS}", in order`, () => {
      const lines = commands.filter((c) => c.section === TRANSFERS).map((c) => c.text);
      const json = async (text: string) => {
        const result = await run(text);
        expect(result.stderr, text).toBe("");
        expect(result.code, text).toBe(0);
        return JSON.parse(result.stdout) as Record<string, any>;
      };

      it("opens two accounts, moves money between them, and shows the transfer and both balances", async () => {
        expect(lines.map((line) => /bank\.v1\.\w+\/\w+/.exec(line)?.[0])).toEqual([
          "bank.v1.AccountService/OpenAccount",
          "bank.v1.AccountService/Deposit",
          "bank.v1.AccountService/OpenAccount",
          "bank.v1.TransferService/TransferMoney",
          "bank.v1.TransferService/GetTransfer",
          "bank.v1.AccountService/GetAccount",
          "bank.v1.AccountService/GetAccount",
          "bank.v1.TransferService/TransferMoney",
        ]);
        await json(lines[0]!);
        await json(lines[1]!);
        await json(lines[2]!);
        const moved = await json(lines[3]!);
        expect(moved.transfer).toMatchObject({
          transferId: "rent-2026-12",
          fromAccountId: "carol",
          toAccountId: "dave",
          amount: "700",
          currency: "EUR",
          status: "TRANSFER_STATUS_COMPLETED",
          reference: "December rent",
        });
        expect(await json(lines[4]!)).toEqual(moved);
        expect((await json(lines[5]!)).account).toMatchObject({ accountId: "carol", balance: "300", availableBalance: "300" });
        expect((await json(lines[6]!)).account).toMatchObject({ accountId: "dave", balance: "700", availableBalance: "700" });
        const refused = await run(lines[7]!);
        expect(refused.code).toBe(64 + status.FAILED_PRECONDITION);
        expect(parseGrpcurlError(refused.stderr)).toMatchObject({
          code: "FailedPrecondition",
          details: [{ reason: "INSUFFICIENT_FUNDS", domain: "eventbank", metadata: { transfer_id: "rent-2027-01" } }],
        });
      });
    });

    describe("list and describe everything through reflection", () => {
      it("lists each service's methods as compiled", async () => {
        for (const service of ["bank.v1.AccountService", "bank.v1.TransferService", "grpc.health.v1.Health"]) {
          const result = await run(`grpcurl -plaintext 127.0.0.1:50051 list ${service}`);
          expect(result.code).toBe(0);
          expect(result.stdout.trim().split("\n")).toEqual(registry.getService(service)!.methods.map((m) => `${service}.${m.name}`).sort());
        }
      });

      it("describes every service and every message and enum they reach, as compiled", async () => {
        // Found through grpcurl alone: the services it lists, then each type named in a description.
        const listed = await run("grpcurl -plaintext 127.0.0.1:50051 list");
        const seen = new Set<string>();
        let pending = [...listed.stdout.trim().split("\n"), "google.rpc.ErrorInfo", "google.rpc.Status"];
        while (pending.length > 0) {
          const batch = pending;
          pending = [];
          batch.forEach((name) => seen.add(name));
          const described = await Promise.all(batch.map((name) => run(`grpcurl -plaintext 127.0.0.1:50051 describe ${name}`)));
          described.forEach((result, i) => {
            const name = batch[i]!;
            expect(result.stderr, name).toBe("");
            const compiled = registry.get(name);
            expect(compiled?.kind, name).toMatch(/^(service|message|enum)$/);
            expectDescribes(result.stdout, compiled as DescService | DescMessage | DescEnum);
            for (const [, type] of result.stdout.matchAll(/[ (]\.([A-Za-z_][\w.]*) /g)) if (!seen.has(type!) && !pending.includes(type!)) pending.push(type!);
          });
        }
        expect([...seen].sort()).toEqual(reachableFromServices().sort());
      });
    });
  });
});

/** grpcurl's description of a service, message or enum says what the compiled descriptor says. */
function expectDescribes(output: string, compiled: DescService | DescMessage | DescEnum): void {
  const kind = { service: "a service", message: "a message", enum: "an enum" }[compiled.kind];
  expect(output.split("\n")[0]).toBe(`${compiled.typeName} is ${kind}:`);
  switch (compiled.kind) {
    case "service":
      for (const method of compiled.methods) {
        const stream = (yes: boolean) => (yes ? "stream " : "");
        const line = `rpc ${method.name} ( ${stream(method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming")}.${method.input.typeName} ) returns ( ${stream(method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming")}.${method.output.typeName} );`;
        expect(output, compiled.typeName).toContain(line);
      }
      break;
    case "message":
      for (const field of compiled.fields) {
        const type = field.message ?? field.enum;
        expect(output, compiled.typeName).toMatch(new RegExp(`${type && field.fieldKind !== "map" ? `\\.${type.typeName.replaceAll(".", "\\.")} ` : ""}\\b${field.name} = ${field.number};`));
      }
      break;
    case "enum":
      for (const value of compiled.values) expect(output, compiled.typeName).toContain(`${value.name} = ${value.number};`);
      break;
  }
}

/** The services in the descriptor set and every message and enum their methods reach, plus the status detail types. */
function reachableFromServices(): string[] {
  const found = new Set<string>();
  const visit = (type: DescMessage | DescEnum | undefined) => {
    if (!type || found.has(type.typeName)) return;
    found.add(type.typeName);
    if (type.kind === "message") for (const field of type.fields) visit(field.message ?? field.enum);
  };
  for (const name of ["bank.v1.AccountService", "bank.v1.TransferService", "grpc.health.v1.Health"]) {
    const service = registry.getService(name)!;
    found.add(name);
    for (const method of service.methods) [method.input, method.output].forEach(visit);
  }
  ["google.rpc.ErrorInfo", "google.rpc.Status"].forEach((name) => visit(registry.getMessage(name)));
  return [...found];
}
