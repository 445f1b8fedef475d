/**
 * Store faults, as users meet them, against the real server: a full disk (a
 * small tmpfs this test mounts), a write lock held by another process (a
 * Python sqlite3 connection in BEGIN IMMEDIATE), a store opened read-only
 * (a read-only bind mount) and EventStoreDB going away (the gRPC double).
 * Each checks the caller's status and reason (never INTERNAL), health
 * (Check and Watch), recovery without restart, and that every acknowledged
 * command is still there.
 *
 * Mounting needs root; where it is refused, the tests that need it are
 * skipped with a note.
 */
import { status } from "@grpc/grpc-js";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import type { AccountServiceClient } from "../../client/src/gen/bank/v1/account_service.js";
import { mapError } from "../../server/src/grpc/status-mapping.js";
import { StoreBusyError, StoreReadOnlyError } from "../../server/src/store/event-store.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { SqliteSnapshotStore } from "../../server/src/store/sqlite-snapshot-store.js";
import { startEsdbDouble } from "../support/esdb-double/server.js";
import { call, decodeError, type DecodedError } from "../support/grpc-client.js";
import { healthClient, type HealthClient } from "../support/health-client.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { startTestServer } from "../support/test-server.js";
import { connectSeparately, deadline, eventually, readAllEvents } from "./support/reliability.js";

const SERVICE = "bank.v1.AccountService";

/** Why mounting a tmpfs is impossible here, or undefined when it works. */
const mountRefused = ((): string | undefined => {
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root";
  const dir = mkdtempSync(join(tmpdir(), "eventbank-mount-check-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stdio: "pipe" });
    execFileSync("umount", [dir], { stdio: "pipe" });
    return undefined;
  } catch (error) {
    return `mount refused: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();
if (mountRefused) console.log(`[store-faults] disk-full and read-only tests skipped: ${mountRefused}`);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "eventbank-faults-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function mountTmpfs(bytes: number): string {
  const dir = tempDir();
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { stdio: "pipe" });
  cleanups.push(() => void execFileSync("umount", ["-l", dir], { stdio: "pipe" }));
  return dir;
}

async function serverOn(env: Record<string, string>): Promise<{ server: ServerProcess; client: AccountServiceClient; health: HealthClient }> {
  const server = await startServerProcess({ EVENTBANK_HEALTH_PROBE_INTERVAL_MS: "100", ...env });
  cleanups.push(async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
  const client = connectSeparately(server.address);
  const health = healthClient(server.address);
  cleanups.push(() => {
    client.close();
    health.close();
  });
  return { server, client, health };
}

const deposit = (client: AccountServiceClient, accountId: string, amount: bigint, commandId: string) =>
  call(client, client.deposit, { accountId, amount, commandId }, { deadline: deadline(20_000) });

const refusalOf = (promise: Promise<unknown>): Promise<DecodedError | undefined> =>
  promise.then(
    () => undefined,
    (error: unknown) => decodeError(error),
  );

/** Fills the file system holding `dir` until the kernel says no more (ENOSPC). */
function fill(dir: string): string {
  const file = join(dir, "filler");
  const fd = openSync(file, "w");
  try {
    for (const chunk of [Buffer.alloc(64 * 1024), Buffer.alloc(4096), Buffer.alloc(512)]) {
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw error;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

/** Statuses in order, without repeats: what a Watch stream told. */
const changes = (statuses: string[]) => statuses.filter((s, i) => s !== statuses[i - 1]);

describe.skipIf(mountRefused !== undefined)("a full disk", () => {
  it("answers RESOURCE_EXHAUSTED / STORE_FULL and NOT_SERVING, then writes resume once space is freed, without restart, nothing acknowledged lost", async () => {
    const volume = mountTmpfs(4 * 1024 * 1024);
    const { client, health } = await serverOn({ EVENTBANK_SQLITE_PATH: join(volume, "events.sqlite"), EVENTBANK_SNAPSHOT_EVERY: "10" });
    const watch = health.watch(SERVICE);
    cleanups.push(() => watch.cancel());

    await call(client, client.openAccount, { accountId: "full", owner: "Fay", currency: "EUR", commandId: "open" });
    const acknowledged: string[] = [];
    let balance = 0n;
    for (let i = 0; i < 20; i++) {
      await deposit(client, "full", 10n, `before-${i}`);
      acknowledged.push(`before-${i}`);
      balance += 10n;
    }

    const filler = fill(volume);
    // Until the disk is full for good: a few more may fit (the WAL can be checkpointed into less room).
    const refusals: DecodedError[] = [];
    const refusedIds: string[] = [];
    for (let i = 0; i < 2_000 && refusals.length < 3; i++) {
      const refusal = await refusalOf(deposit(client, "full", 1n, `during-${i}`));
      if (refusal) {
        refusals.push(refusal);
        refusedIds.push(`during-${i}`);
      } else {
        acknowledged.push(`during-${i}`);
        balance += 1n;
      }
    }
    expect(refusals.length, "deposits kept succeeding on a full disk").toBe(3);
    for (const refusal of refusals) expect(refusal).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: "STORE_FULL", domain: "eventbank" });
    await eventually(async () => (await health.check(SERVICE)) === "NOT_SERVING", "health NOT_SERVING for AccountService while the disk is full", 5_000);
    expect(await health.check("")).toBe("NOT_SERVING");
    // Reads need no room.
    const { account } = await call(client, client.getAccount, { accountId: "full" });
    expect(account?.balance).toBe(balance);

    rmSync(filler);
    await eventually(async () => (await health.check(SERVICE)) === "SERVING", "health SERVING again once space is freed", 10_000);
    expect(await health.check("")).toBe("SERVING");
    for (let i = 0; i < 20; i++) {
      await deposit(client, "full", 100n, `after-${i}`);
      acknowledged.push(`after-${i}`);
      balance += 100n;
    }

    const events = await readAllEvents(client, "full");
    const stored = events.map((event) => event.commandId);
    expect(stored).toEqual(["open", ...acknowledged]);
    for (const id of refusedIds) expect(stored, `${id} was refused, so it must not be stored`).not.toContain(id);
    expect((await call(client, client.getAccount, { accountId: "full" })).account?.balance).toBe(balance);
    expect(changes(watch.statuses)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
  }, 60_000);
});

/** A second process holding SQLite's write lock on `path` until `release()`. */
async function holdWriteLock(path: string): Promise<{ release(): Promise<void> }> {
  const script = [
    "import sqlite3, sys",
    "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)",
    "c.execute('BEGIN IMMEDIATE')",
    "print('locked', flush=True)",
    "sys.stdin.readline()",
    "c.execute('ROLLBACK')",
    "c.close()",
  ].join("\n");
  const child = spawn("python3", ["-c", script, path], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = once(child, "exit");
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await Promise.race([once(lines, "line"), exited.then(() => ["exited"])])) as string[];
  if (first !== "locked") throw new Error(`the lock holder did not take the lock: ${first}`);
  const release = async () => {
    if (child.exitCode !== null) return;
    child.stdin!.end("release\n");
    await exited;
  };
  cleanups.push(release);
  return { release };
}

describe("a write lock held by another process", () => {
  it("never stalls the server: reads and health answer at once while a write waits, which ends UNAVAILABLE / STORE_BUSY; all resumes after release", async () => {
    const path = join(tempDir(), "events.sqlite");
    const lockTimeoutMs = 1_500;
    const { client, health } = await serverOn({ EVENTBANK_SQLITE_PATH: path, EVENTBANK_SQLITE_LOCK_TIMEOUT_MS: String(lockTimeoutMs) });
    const watch = health.watch(SERVICE);
    cleanups.push(() => watch.cancel());
    for (const accountId of ["locked", "other"]) {
      await call(client, client.openAccount, { accountId, owner: "Lou", currency: "EUR", commandId: "open" });
      await deposit(client, accountId, 50n, "first");
    }

    const lock = await holdWriteLock(path);
    const started = Date.now();
    const waiting = refusalOf(deposit(client, "locked", 7n, "while-locked"));
    // While that write waits for the lock: another account's read and health checks, one after another.
    const slowest = { read: 0, health: 0 };
    while (Date.now() - started < lockTimeoutMs - 300) {
      let t0 = performance.now();
      const { account } = await call(client, client.getAccount, { accountId: "other" }, { deadline: deadline(2_000) });
      slowest.read = Math.max(slowest.read, performance.now() - t0);
      expect(account?.balance).toBe(50n);
      t0 = performance.now();
      await health.check("", 2_000);
      slowest.health = Math.max(slowest.health, performance.now() - t0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(slowest.read, `GetAccount took ${slowest.read.toFixed(1)} ms while another process held the write lock`).toBeLessThan(100);
    expect(slowest.health, `Health.Check took ${slowest.health.toFixed(1)} ms while another process held the write lock`).toBeLessThan(100);

    const refusal = await waiting;
    expect(refusal).toMatchObject({ code: status.UNAVAILABLE, reason: "STORE_BUSY", domain: "eventbank" });
    expect(Date.now() - started, "the write gave up before the configured lock timeout").toBeGreaterThanOrEqual(lockTimeoutMs - 50);
    await eventually(async () => (await health.check(SERVICE)) === "NOT_SERVING", "health NOT_SERVING while the lock is held past the limit", 3_000);

    await lock.release();
    await eventually(async () => (await health.check(SERVICE)) === "SERVING", "health SERVING after the lock is released", 5_000);
    await deposit(client, "locked", 5n, "after-release");
    const stored = (await readAllEvents(client, "locked")).map((event) => event.commandId);
    expect(stored).toEqual(["open", "first", "after-release"]);
    expect((await call(client, client.getAccount, { accountId: "locked" })).account?.balance).toBe(55n);
    expect(changes(watch.statuses)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
  }, 60_000);
});

describe("snapshots while another process holds the write lock", () => {
  it("a snapshot write gives up at once with StoreBusyError (snapshots are optional), reads still work", async () => {
    const path = join(tempDir(), "events.sqlite");
    const snapshots = new SqliteSnapshotStore(path);
    cleanups.push(() => snapshots.close());
    const snapshot = { stream: "account-s", revision: 5n, version: 1, state: "{}" };
    await snapshots.write(snapshot);
    const lock = await holdWriteLock(path);
    const started = performance.now();
    await expect(snapshots.write({ ...snapshot, revision: 6n })).rejects.toBeInstanceOf(StoreBusyError);
    const waited = performance.now() - started;
    // Before, SQLite's busy handler held the thread (and the whole server) for its 5 s timeout.
    expect(waited, `the snapshot write blocked the thread for ${waited.toFixed(0)} ms`).toBeLessThan(1_000);
    expect(await snapshots.read("account-s")).toMatchObject({ revision: 5n });
    await lock.release();
    await snapshots.write({ ...snapshot, revision: 6n });
    expect(await snapshots.read("account-s")).toMatchObject({ revision: 6n });
  });
});

describe.skipIf(mountRefused !== undefined)("a store that cannot be written", () => {
  /*
   * A file the server already holds open for writing cannot be made
   * read-only on Linux: remounting its file system read-only is refused
   * (EBUSY) and `chattr +i` does not stop writes through an open descriptor
   * (both tried). So this opens the store through a read-only bind mount
   * while another connection keeps the file writable, as a server started on
   * a read-only path meets it: the same SQLite error a read-only store gives.
   */
  it("refuses an append with StoreReadOnlyError, which callers get as UNAVAILABLE / STORE_READ_ONLY, and the probe reports it", async () => {
    const dir = tempDir();
    const writable = join(dir, "rw");
    const readOnly = join(dir, "ro");
    mkdirSync(writable);
    mkdirSync(readOnly);
    const owner = new SqliteEventStore(join(writable, "events.sqlite"));
    cleanups.push(() => owner.close());
    await owner.append("account-ro", [{ id: "00000000-0000-4000-8000-000000000001", type: "AccountOpened", data: {}, metadata: { commandId: "open", correlationId: "c", causationId: "c" } }], "no_stream");
    execFileSync("mount", ["--bind", writable, readOnly], { stdio: "pipe" });
    cleanups.push(() => void execFileSync("umount", ["-l", readOnly], { stdio: "pipe" }));
    execFileSync("mount", ["-o", "remount,ro,bind", readOnly], { stdio: "pipe" });

    const store = new SqliteEventStore(join(readOnly, "events.sqlite"));
    cleanups.push(() => store.close());
    expect((await store.readStream("account-ro")).status).toBe("ok");
    const failed = await store
      .append("account-ro", [{ id: "00000000-0000-4000-8000-000000000002", type: "Deposited", data: {}, metadata: { commandId: "d", correlationId: "c", causationId: "c" } }], 0n)
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(failed).toBeInstanceOf(StoreReadOnlyError);
    expect(mapError(failed)).toMatchObject({ code: status.UNAVAILABLE, reason: "STORE_READ_ONLY" });
    await expect(store.probe()).rejects.toBeInstanceOf(StoreReadOnlyError);
    expect(await owner.readStream("account-ro")).toMatchObject({ status: "ok", events: [{ revision: 0n }] });
  });
});

describe("EventStoreDB going away (gRPC double)", () => {
  it("turns health NOT_SERVING without any call, Watch streams it, commands get UNAVAILABLE / STORE_UNAVAILABLE, and SERVING returns with the store", async () => {
    const double = await startEsdbDouble();
    cleanups.push(() => double.stop());
    const server = await startTestServer({
      env: {
        EVENTBANK_STORE: "esdb",
        EVENTSTORE_CONNECTION_STRING: double.connectionString,
        EVENTBANK_HEALTH_PROBE_INTERVAL_MS: "100",
        EVENTBANK_ESDB_OPERATION_TIMEOUT_MS: "1000",
      },
    });
    cleanups.push(() => server.stop());
    const client = connectSeparately(server.address);
    const health = healthClient(server.address);
    const watchService = health.watch(SERVICE);
    const watchServer = health.watch("");
    cleanups.push(() => {
      watchService.cancel();
      watchServer.cancel();
      client.close();
      health.close();
    });
    await call(client, client.openAccount, { accountId: "away", owner: "Esa", currency: "EUR", commandId: "open" });
    await deposit(client, "away", 10n, "before");
    await eventually(() => watchService.statuses.length > 0, "first Watch message");

    await double.pause();
    await eventually(() => watchService.statuses.at(-1) === "NOT_SERVING", "Watch to stream NOT_SERVING while EventStoreDB is away", 10_000);
    expect(await health.check("")).toBe("NOT_SERVING");
    expect(await refusalOf(deposit(client, "away", 5n, "during"))).toMatchObject({ code: status.UNAVAILABLE, reason: "STORE_UNAVAILABLE" });

    await double.resume();
    await eventually(() => watchService.statuses.at(-1) === "SERVING", "Watch to stream SERVING once EventStoreDB is back", 15_000);
    await eventually(() => watchServer.statuses.at(-1) === "SERVING", "Watch of the server to stream SERVING", 5_000);
    await deposit(client, "away", 5n, "after");
    expect((await readAllEvents(client, "away")).map((event) => event.commandId)).toEqual(["open", "before", "after"]);
    expect(changes(watchService.statuses)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    expect(changes(watchServer.statuses)).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
  }, 60_000);
});
