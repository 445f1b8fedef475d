/** The server as a process on the embedded store: restarts, kill -9, signals, start-up errors, the compiled build. */
import { status } from "@grpc/grpc-js";
import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { SubscribeAccountResponse } from "../../client/src/gen/bank/v1/account_service.js";
import { askReflection, checkHealth } from "../support/generic-clients.js";
import { call, connect, decodeError } from "../support/grpc-client.js";
import { runServerExpectingFailure, startServerProcess, type ServerProcess } from "../support/server-process.js";
import { readMessages } from "./account-service-suite.js";

describe("eventbank as a process (sqlite)", () => {
  let dir: string;
  let sqlitePath: string;
  const running: ServerProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-process-"));
    sqlitePath = join(dir, "events.sqlite");
  });
  afterEach(() => {
    for (const server of running.splice(0)) server.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async () => {
    const server = await startServerProcess({ EVENTBANK_SQLITE_PATH: sqlitePath });
    running.push(server);
    return server;
  };

  it("keeps the accounts across a graceful restart and exits 0 on SIGTERM", async () => {
    const first = await start();
    const client = connect(first.address);
    await call(client, client.openAccount, { accountId: "durable", owner: "Ada", currency: "EUR", commandId: "c1" });
    await call(client, client.deposit, { accountId: "durable", amount: 250n, commandId: "c2" });
    client.close();
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    const second = await start();
    const again = connect(second.address);
    const { account } = await call(again, again.getAccount, { accountId: "durable" });
    expect(account).toMatchObject({ balance: 250n, revision: 1n });
    again.close();
  });

  it("keeps every acknowledged deposit after kill -9 in the middle of a load", async () => {
    const first = await start();
    const client = connect(first.address);
    await call(client, client.openAccount, { accountId: "crash", owner: "Ada", currency: "EUR", commandId: "open" });
    const acknowledged = new Set<string>();
    let killed = false;
    const worker = async () => {
      while (!killed) {
        const commandId = randomUUID();
        try {
          await call(client, client.deposit, { accountId: "crash", amount: 1n, commandId });
          if (!killed) acknowledged.add(commandId);
        } catch {
          return;
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    while (acknowledged.size < 200) await new Promise((resolve) => setTimeout(resolve, 5));
    // Acknowledgements counted before the kill are the ones that must survive.
    const mustSurvive = new Set(acknowledged);
    killed = true;
    first.child.kill("SIGKILL");
    await Promise.all(workers);
    client.close();
    expect(await first.exited).toBe("SIGKILL");

    const second = await start();
    const again = connect(second.address);
    const { account } = await call(again, again.getAccount, { accountId: "crash" });
    const events = [];
    for (let from = 0n; ; ) {
      const page = await call(again, again.readAccountEvents, { accountId: "crash", fromRevision: from, maxCount: 1000, direction: 0 });
      events.push(...page.events);
      if (page.events.length < 1000) break;
      from += 1000n;
    }
    again.close();
    const stored = new Set(events.map((e) => e.commandId));
    const lost = [...mustSurvive].filter((id) => !stored.has(id));
    expect(lost).toEqual([]);
    // Nothing half-applied: the balance is exactly the sum of the deposits stored.
    expect(account?.balance).toBe(BigInt(events.length - 1));
    expect(account?.revision).toBe(BigInt(events.length - 1));
  });

  it("ends open subscriptions with UNAVAILABLE on SIGTERM and still exits 0", async () => {
    const server = await start();
    const client = connect(server.address);
    await call(client, client.openAccount, { accountId: "watched", owner: "Ada", currency: "EUR", commandId: "c1" });
    const stream = client.subscribeAccount({ accountId: "watched" });
    const messages = readMessages<SubscribeAccountResponse>(stream);
    await messages.next();
    expect((await messages.next()).message?.$case).toBe("caughtUp");
    server.child.kill("SIGTERM");
    const error = await messages.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(decodeError(error)).toMatchObject({ code: status.UNAVAILABLE, reason: "SHUTTING_DOWN" });
    expect(await server.exited).toBe(0);
    client.close();
  });

});

/**
 * A setting the server cannot run with ends it with exit code 2 and exactly one JSON log line
 * (pino, stdout) that names the variable, its value and why; nothing else on stderr or stdout
 * that is not JSON, and no hang.
 */
describe("eventbank as a process: every bad setting exits 2 naming the variable", () => {
  let dir: string;
  const cleanups: Array<() => void> = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-badconfig-"));
  });
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function expectRefusal(env: Record<string, string>, variable: string, value: string, reason: RegExp) {
    const result = await runServerExpectingFailure({ EVENTBANK_SQLITE_PATH: join(dir, "events.sqlite"), ...env });
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(result.stderr).toBe("");
    expect(result.lines.length).toBeGreaterThan(0);
    expect(result.lines.every((line) => line !== undefined), result.stdout).toBe(true);
    const naming = result.lines.filter((line) => line?.variable !== undefined);
    expect(naming).toHaveLength(1);
    expect(naming[0]).toMatchObject({ level: 60, variable, value, reason: expect.stringMatching(reason) });
    expect(String(naming[0]!.msg)).toContain(variable);
  }

  /**
   * Makes a file or folder read-only for this process. Root ignores permission bits, so there
   * the immutable attribute (chattr +i) does it; undone after the test.
   */
  async function makeReadOnly(path: string, mode: number): Promise<boolean> {
    if (process.getuid?.() !== 0) {
      chmodSync(path, mode);
      cleanups.push(() => chmodSync(path, 0o700));
      return true;
    }
    try {
      await run("chattr", ["+i", path]);
    } catch {
      return false;
    }
    cleanups.push(() => execFileSync("chattr", ["-i", path]));
    return true;
  }

  it("a bad value of a plain setting", async () => {
    await expectRefusal({ EVENTBANK_STORE: "mongodb" }, "EVENTBANK_STORE", "mongodb", /must be one of sqlite, esdb/);
  });

  it.each([
    ["esdb://", /names no host/],
    ["esdb://127.0.0.1:99999?tls=false", /port 99999 .*not from 1 to 65535/],
    ["esdb://127.0.0.1:2113?tls=maybe", /expected true or false/],
    ["mongodb://127.0.0.1:2113", /expected esdb:\/\/ or esdb\+discover:\/\//],
  ])("EVENTSTORE_CONNECTION_STRING=%s", async (connectionString, reason) => {
    await expectRefusal({ EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: connectionString }, "EVENTSTORE_CONNECTION_STRING", connectionString, reason);
  });

  it("EVENTSTORE_CONNECTION_STRING with a password shows it hidden", async () => {
    const result = await runServerExpectingFailure({ EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: "esdb://admin:s3cret@127.0.0.1:0?tls=false" });
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain("s3cret");
    expect(result.lines[0]).toMatchObject({ variable: "EVENTSTORE_CONNECTION_STRING", value: "esdb://admin:***@127.0.0.1:0?tls=false" });
  });

  it("EVENTBANK_SQLITE_PATH in a read-only folder", async (context) => {
    const folder = join(dir, "readonly");
    mkdirSync(folder);
    if (!(await makeReadOnly(folder, 0o555))) return context.skip("cannot make a folder read-only for root here (chattr +i failed)");
    const path = join(folder, "events.sqlite");
    await expectRefusal({ EVENTBANK_SQLITE_PATH: path }, "EVENTBANK_SQLITE_PATH", path, /cannot create files in .*readonly .*: (EACCES|EPERM|EROFS)/);
  });

  it("EVENTBANK_SQLITE_PATH on a read-only file", async (context) => {
    const path = join(dir, "events.sqlite");
    writeFileSync(path, "");
    if (!(await makeReadOnly(path, 0o444))) return context.skip("cannot make a file read-only for root here (chattr +i failed)");
    await expectRefusal({ EVENTBANK_SQLITE_PATH: path }, "EVENTBANK_SQLITE_PATH", path, /cannot open .* for writing: (EACCES|EPERM|EROFS)/);
  });

  it("EVENTBANK_SQLITE_PATH on a folder", async () => {
    await expectRefusal({ EVENTBANK_SQLITE_PATH: dir }, "EVENTBANK_SQLITE_PATH", dir, /is a folder, not a database file/);
  });

  it("EVENTBANK_SQLITE_PATH on a file that is not a database", async () => {
    const path = join(dir, "events.sqlite");
    writeFileSync(path, "not a database, but long enough for SQLite to read its header and say so".repeat(4));
    await expectRefusal({ EVENTBANK_SQLITE_PATH: path }, "EVENTBANK_SQLITE_PATH", path, /not a database/);
  });

  it.skipIf(!existsSync("/proc/self"))("EVENTBANK_SQLITE_PATH under /proc (once an endless mkdir loop)", async () => {
    const path = "/proc/eventbank-test/events.sqlite";
    await expectRefusal({ EVENTBANK_SQLITE_PATH: path }, "EVENTBANK_SQLITE_PATH", path, /cannot create the folder \/proc\/eventbank-test: ENOENT/);
  });

  it("PORT already in use", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => holder.close());
    const port = String((holder.address() as AddressInfo).port);
    await expectRefusal({ PORT: port }, "PORT", port, /address already in use/);
  });
});

const run = promisify(execFile);

describe("the compiled server (node dist/..., as the image runs it)", () => {
  let dir: string;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    // The real build script: tsc to dist/, plus the descriptor set the server reads beside its modules.
    await run("npm", ["run", "build:server"], { timeout: 120_000 });
  }, 120_000);
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-compiled-"));
  });
  afterEach(() => {
    server?.child.kill("SIGKILL");
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** The image's HEALTHCHECK command, run against the server's port. */
  const healthcheck = (port: string) =>
    run(process.execPath, ["dist/server/src/healthcheck.js"], { env: { ...process.env, HOST: "0.0.0.0", PORT: port }, timeout: 15_000 }).then(
      ({ stdout }) => ({ code: 0, output: stdout }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: error.stdout + error.stderr }),
    );

  it("serves health, reflection and the AccountService, and the HEALTHCHECK script reads its health over gRPC", async () => {
    server = await startServerProcess({ EVENTBANK_SQLITE_PATH: join(dir, "events.sqlite") }, 20_000, "compiled");
    expect(await checkHealth(server.address, "bank.v1.AccountService")).toBe("SERVING");
    expect(await checkHealth(server.address, "")).toBe("SERVING");
    // Reflection answers from the descriptor set, found relative to the compiled module.
    const reflected = await askReflection(server.address, "v1", { fileContainingSymbol: "bank.v1.AccountService" });
    expect(reflected.fileDescriptorResponse?.fileDescriptorProto?.length).toBeGreaterThan(0);
    const client = connect(server.address);
    await call(client, client.openAccount, { accountId: "compiled", owner: "Ada", currency: "EUR", commandId: "c1" });
    const { account } = await call(client, client.deposit, { accountId: "compiled", amount: 42n, commandId: "c2" });
    client.close();
    expect(account?.balance).toBe(42n);

    const port = server.address.split(":").at(-1)!;
    const healthy = await healthcheck(port);
    expect(healthy).toEqual({ code: 0, output: expect.stringContaining("SERVING") });

    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    server = undefined;
    const gone = await healthcheck(port);
    expect(gone.code).toBe(1);
    expect(gone.output).toContain("UNAVAILABLE");
  });
});
