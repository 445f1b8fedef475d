/**
 * `npm run bench -- --scale`: eventbank on a large store, as ratios against a
 * small store or a raw scan of the same table, in one run.
 *
 *   --events=N    events in the large store (default 10,000,000)
 *   --accounts=N  accounts they are spread over (default 100,000)
 *   --file=PATH   the large store (default: a file in the OS temp folder named
 *                 after its size; reused when it exists, seeded otherwise)
 *   --catchup=N   events the SubscribeAll catch-up is timed over (default 1,000,000)
 *   --no-docs     print only; do not rewrite docs/performance.md
 *   --seed-only   seed the large store (when missing) and stop
 *   --only=A,B    run only these parts: startup, warm, spread, get, catchup, rss
 *   --ab-env=K=V  warm deposits: also a large-store server with this setting, for an A/B in the same rounds
 *
 * Measures: start-up; Deposits on 64 warm accounts, big store against a
 * 640-event one (alternating rounds, as the quick bench); Deposits spread
 * over half the accounts with the default cache against a cache holding them
 * all; GetAccount cold (snapshot + tail, after a restart) and warm;
 * SubscribeAll from the start against a raw ordered scan of the table in one
 * process (JSON.parse of data and metadata); RSS with a cache holding every
 * account under the default byte budget. Not run in CI.
 */
import Database from "better-sqlite3";
import { Client, credentials, type ServiceError } from "@grpc/grpc-js";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { AccountServiceClient, SubscribeAllRequest } from "../client/src/gen/bank/v1/account_service.js";
import { writeDocsSection } from "./docs.js";
import { cpuModel, fmt, median } from "./format.js";
import type { RoundResult } from "./load.js";
import { startLoad, startServer, type LoadChild, type ServerChild } from "./processes.js";
import { scaleAccountId, seedScaleStore } from "./scale-seed.js";

const WARM_ACCOUNTS = 64;
const SMALL_EVENTS_PER_ACCOUNT = 10;
const CONCURRENCY = 64;
const ROUNDS = 5;
const WARMUP_MS = 1_000;
const DURATION_MS = 3_000;
const GET_ACCOUNT_SAMPLES = 500;

/** Where the large store lives unless --file says otherwise: named after its size, reused. */
export function defaultScaleFile(events: number, accounts: number): string {
  return join(tmpdir(), "eventbank-scale", `events-${events}-accounts-${accounts}.sqlite`);
}

export async function runScale(args: string[]): Promise<number> {
  const option = (name: string) => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  const events = Number(option("events") ?? 10_000_000);
  const accounts = Number(option("accounts") ?? 100_000);
  const catchup = Math.min(events, Number(option("catchup") ?? 1_000_000));
  const only = option("only")?.split(",");
  const want = (part: string) => !only || only.includes(part);
  const abEnv = option("ab-env")?.split("=");
  const half = Math.floor(accounts / 2);
  const entry = option("entry") ?? "server/src/main.ts";
  const file = option("file") ?? defaultScaleFile(events, accounts);
  mkdirSync(join(file, ".."), { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "eventbank-scale-run-"));
  const report: string[] = [];
  const print = (...lines: string[]) => {
    for (const line of lines) {
      report.push(line);
      process.stdout.write(`${line}\n`);
    }
  };
  const log = (line: string) => process.stderr.write(`[scale] ${line}\n`);
  const servers: ServerChild[] = [];
  const loads: LoadChild[] = [];
  const server = async (name: string, path: string, env: Record<string, string> = {}) => {
    const started = performance.now();
    const child = await startServer(entry, { EVENTBANK_SQLITE_PATH: path, LOG_LEVEL: "warn", ...env }, join(dir, `${name}.log`));
    servers.push(child);
    const startMs = performance.now() - started;
    // The transfer process reads the log once after a start (see docs/performance.md): measure after it.
    const settleCpuMs = await untilIdle(child);
    return { child, startMs, settleCpuMs };
  };
  const stop = async (child: ServerChild) => {
    servers.splice(servers.indexOf(child), 1);
    await child.stop();
  };

  try {
    const seedSeconds = await seedScaleStore(file, { events, accounts }, log);
    if (args.includes("--seed-only")) {
      log(`seeded: ${file}`);
      return 0;
    }
    const small = join(dir, "small.sqlite");
    await seedScaleStore(small, { events: WARM_ACCOUNTS * SMALL_EVENTS_PER_ACCOUNT, accounts: WARM_ACCOUNTS });
    const bigBytes = statSync(file).size;
    const command = `npm run bench -- ${args.join(" ")}`;
    print(
      "## Scale results",
      "",
      `- Machine: ${cpus().length} cores (nproc), ${cpuModel()}, ${fmt(totalmem() / 2 ** 30, 0)} GiB RAM, Node ${process.version}`,
      `- Command: \`${command}\``,
      `- Date: ${new Date().toISOString()}`,
      `- Large store: ${events.toLocaleString("en-US")} events over ${accounts.toLocaleString("en-US")} accounts, ${fmt(bigBytes / 2 ** 30, 2)} GiB` +
        (seedSeconds > 0 ? `, seeded in ${fmt(seedSeconds, 0)} s (${fmt(events / seedSeconds, 0)} events/s)` : " (reused)"),
      `- Small store: ${WARM_ACCOUNTS} accounts x ${SMALL_EVENTS_PER_ACCOUNT} events`,
      "",
      "| figure | large | reference | ratio | goal |",
      "|---|---:|---:|---:|---|",
    );
    const row = (figure: string, large: string, reference: string, ratio: string, goal: string) => print(`| ${figure} | ${large} | ${reference} | ${ratio} | ${goal} |`);

    // Start-up: three of each, alternating; the server is up when it answers gRPC.
    if (want("startup")) {
      log("start-up");
      const startBig: number[] = [];
      const startSmall: number[] = [];
      const settleBig: number[] = [];
      const settleSmall: number[] = [];
      for (let i = 0; i < 3; i++) {
        for (const [path, times, settle] of [[small, startSmall, settleSmall], [file, startBig, settleBig]] as const) {
          const { child, startMs, settleCpuMs } = await server(`start-${i}`, path);
          times.push(startMs);
          settle.push(settleCpuMs);
          await stop(child);
        }
      }
      const startRatio = median(startBig) / median(startSmall);
      row("start-up until gRPC answers, median of 3", `${fmt(median(startBig), 0)} ms`, `${fmt(median(startSmall), 0)} ms (small)`, `${fmt(startRatio, 2)}x`, "independent of size");
      row(
        "... then CPU until idle (the transfer process's first read of the log)",
        `${fmt(median(settleBig) / 1000, 1)} s`,
        `${fmt(median(settleSmall) / 1000, 1)} s (small)`,
        `${fmt(median(settleBig) / Math.max(10, median(settleSmall)), 0)}x`,
        "independent of size",
      );
    }

    // Deposits on 64 warm accounts: big store against the small one.
    if (want("warm")) {
      log("warm deposits");
      const warmAccounts = Array.from({ length: WARM_ACCOUNTS }, (_, i) => scaleAccountId(i));
      const warm = await alternatingRounds(
        [
          { name: "small", start: () => server("warm-small", small) },
          { name: "large", start: () => server("warm-large", file) },
          // On its own copy of the file: servers sharing one would share its WAL and its checkpoints.
          ...(abEnv ? [{ name: `large, ${abEnv.join("=")}`, start: () => server("warm-large-b", copyOf(file), { [abEnv[0]!]: abEnv[1] ?? "" }) }] : []),
        ],
        warmAccounts,
        loads,
      );
      const [warmSmall, warmLarge] = warm;
      row(
        "Deposit, 64 warm accounts, OK/s",
        fmt(median(warmLarge!.rounds.map((r) => r.okPerSecond)), 0),
        `${fmt(median(warmSmall!.rounds.map((r) => r.okPerSecond)), 0)} (small)`,
        `**${fmt(pairRatio(warmLarge!.rounds, warmSmall!.rounds, (r) => r.okPerSecond), 2)}x**`,
        ">= 0.9x",
      );
      row(
        "... p50 / p99 ms",
        `${fmt(median(warmLarge!.rounds.map((r) => r.p50Ms)), 1)} / ${fmt(median(warmLarge!.rounds.map((r) => r.p99Ms)), 1)}`,
        `${fmt(median(warmSmall!.rounds.map((r) => r.p50Ms)), 1)} / ${fmt(median(warmSmall!.rounds.map((r) => r.p99Ms)), 1)}`,
        `${fmt(pairRatio(warmLarge!.rounds, warmSmall!.rounds, (r) => r.p50Ms), 2)}x / **${fmt(pairRatio(warmLarge!.rounds, warmSmall!.rounds, (r) => r.p99Ms), 2)}x**`,
        "p99 <= 1.5x",
      );
      const perDeposit = ({ cost }: (typeof warm)[number]) =>
        `${fmt((cost.cpuMs * 1000) / cost.calls, 0)} us, ${fmt(cost.writeBytes / cost.calls / 1024, 1)} KiB, ${fmt(cost.readSyscalls / cost.calls, 1)}`;
      row(
        "... per Deposit: server CPU, bytes written to storage, read syscalls",
        perDeposit(warmLarge!),
        `${perDeposit(warmSmall!)} (small)`,
        `${fmt(warmLarge!.cost.cpuMs / warmLarge!.cost.calls / (warmSmall!.cost.cpuMs / warmSmall!.cost.calls), 2)}x CPU`,
        "",
      );
      const variant = warm[2];
      if (variant) {
        row(
          `... ${variant.name}: OK/s, p50 / p99 ms`,
          `${fmt(median(variant.rounds.map((r) => r.okPerSecond)), 0)}, ${fmt(median(variant.rounds.map((r) => r.p50Ms)), 1)} / ${fmt(median(variant.rounds.map((r) => r.p99Ms)), 1)}`,
          "(small)",
          `${fmt(pairRatio(variant.rounds, warmSmall!.rounds, (r) => r.okPerSecond), 2)}x, p99 ${fmt(pairRatio(variant.rounds, warmSmall!.rounds, (r) => r.p99Ms), 2)}x; per Deposit ${perDeposit(variant)}`,
          "",
        );
      }
      for (const target of warm) await target.close();
    }

    // Deposits spread over half the accounts each: default cache against a cache holding them all.
    let allRss = NaN;
    if (want("spread")) {
      log("spread deposits (opens every account once first)");
      const spread = await alternatingRounds(
        [
          { name: "default cache", start: () => server("spread-default", file), accounts: range(0, half) },
          {
            name: "cache holding all",
            start: () =>
              server("spread-all", file, {
                EVENTBANK_CACHE_SIZE: String(accounts),
                EVENTBANK_CACHE_MAX_COMMANDS: "1000000000",
                EVENTBANK_CACHE_MAX_BYTES: String(64 * 2 ** 30),
              }),
            accounts: range(half, 2 * half),
          },
        ],
        [],
        loads,
      );
      const [spreadDefault, spreadAll] = spread;
      allRss = spreadAll!.server.rssMiB();
      row(
        `Deposit spread over ${half.toLocaleString("en-US")} accounts (round-robin), OK/s`,
        `${fmt(median(spreadDefault!.rounds.map((r) => r.okPerSecond)), 0)} (default cache)`,
        `${fmt(median(spreadAll!.rounds.map((r) => r.okPerSecond)), 0)} (cache holding all)`,
        `**${fmt(pairRatio(spreadDefault!.rounds, spreadAll!.rounds, (r) => r.okPerSecond), 2)}x**`,
        ">= 0.9x",
      );
      row(
        "... p50 / p99 ms",
        `${fmt(median(spreadDefault!.rounds.map((r) => r.p50Ms)), 1)} / ${fmt(median(spreadDefault!.rounds.map((r) => r.p99Ms)), 1)}`,
        `${fmt(median(spreadAll!.rounds.map((r) => r.p50Ms)), 1)} / ${fmt(median(spreadAll!.rounds.map((r) => r.p99Ms)), 1)}`,
        `${fmt(pairRatio(spreadDefault!.rounds, spreadAll!.rounds, (r) => r.p50Ms), 2)}x / ${fmt(pairRatio(spreadDefault!.rounds, spreadAll!.rounds, (r) => r.p99Ms), 2)}x`,
        "",
      );
      for (const target of spread) await target.close();
    }

    // GetAccount after a restart: cold (snapshot + tail), then warm, on accounts the spread rounds wrote to.
    if (want("get") || want("catchup")) {
      const { child } = await server("get-account", file);
      const client = new AccountServiceClient(child.address, credentials.createInsecure());
      try {
        if (want("get")) {
          log("GetAccount cold and warm");
          for (let i = 0; i < 50; i++) await getAccount(client, scaleAccountId(2 * half - 1 - i)); // JIT and connection
          const sample = Array.from({ length: Math.min(GET_ACCOUNT_SAMPLES, half) }, (_, i) => scaleAccountId(Math.floor((i * half) / GET_ACCOUNT_SAMPLES)));
          const cold: number[] = [];
          const warmTimes: number[] = [];
          for (const accountId of sample) cold.push(await timed(() => getAccount(client, accountId)));
          for (const accountId of sample) warmTimes.push(await timed(() => getAccount(client, accountId)));
          row(
            `GetAccount p50 / p99 ms, cold (after a restart) vs warm, ${sample.length} accounts`,
            `${fmt(percentile(cold, 0.5), 2)} / ${fmt(percentile(cold, 0.99), 2)} cold`,
            `${fmt(percentile(warmTimes, 0.5), 2)} / ${fmt(percentile(warmTimes, 0.99), 2)} warm`,
            `${fmt(percentile(cold, 0.5) / percentile(warmTimes, 0.5), 2)}x`,
            "fine as is",
          );
        }
      } finally {
        client.close();
      }

      // SubscribeAll from the start against a raw ordered scan of the same rows.
      if (want("catchup")) {
        log(`catch-up over ${catchup.toLocaleString("en-US")} events`);
        rawScan(file, Math.min(catchup, 200_000)); // warm the OS page cache for both
        const cpuBefore = child.cpuMs();
        const sub = await catchUp(child.address, catchup);
        const serverCpuUs = ((child.cpuMs() - cpuBefore) * 1000) / catchup;
        const scan = rawScan(file, catchup);
        row(
          `SubscribeAll from the start, events/s (first ${catchup.toLocaleString("en-US")})`,
          fmt(catchup / sub.seconds, 0),
          `${fmt(catchup / scan.seconds, 0)} (raw scan)`,
          `**${fmt(scan.seconds / sub.seconds, 2)}x**`,
          ">= 0.5x",
        );
        row("... server CPU per event delivered", `${fmt(serverCpuUs, 1)} us`, `${fmt((scan.seconds * 1e6) / catchup, 1)} us (raw scan)`, `${fmt(serverCpuUs / ((scan.seconds * 1e6) / catchup), 1)}x`, "close to the scan's");

        // The same, in batches of up to 256 events per message (max_events_per_message, as the SDK asks).
        const batchedCpuBefore = child.cpuMs();
        const batched = await catchUp(child.address, catchup, 256);
        const batchedCpuUs = ((child.cpuMs() - batchedCpuBefore) * 1000) / catchup;
        row(
          "... in batches (max_events_per_message=256, as the SDK asks): events/s / server CPU per event",
          `${fmt(catchup / batched.seconds, 0)} / ${fmt(batchedCpuUs, 1)} us`,
          `${fmt(catchup / scan.seconds, 0)} (raw scan)`,
          `**${fmt(scan.seconds / batched.seconds, 2)}x**`,
          ">= 0.5x",
        );

        // The same stream from grpc-js alone: bench/echo-server.ts makes the messages in memory, one per event.
        const echo = await startServer("bench/echo-server.ts", {}, join(dir, "echo.log"));
        servers.push(echo);
        const echoCpuBefore = echo.cpuMs();
        const ceiling = await catchUp(echo.address, catchup);
        const echoCpuUs = ((echo.cpuMs() - echoCpuBefore) * 1000) / catchup;
        await stop(echo);
        row(
          "... the grpc-js ceiling: SubscribeAll on the echo server (messages from memory), events/s / server CPU per event",
          `${fmt(catchup / ceiling.seconds, 0)} / ${fmt(echoCpuUs, 1)} us`,
          `eventbank: ${fmt(ceiling.seconds / sub.seconds, 2)}x of it`,
          `ceiling: ${fmt(scan.seconds / ceiling.seconds, 2)}x of the raw scan`,
          "",
        );
      }
      await stop(child);
    }

    // RSS with a cache that may hold every account, under the default byte budget.
    if (want("rss")) {
      log("RSS with a cache for every account, under the default budget and with (almost) no cache");
      // Reading every account once churns the heap whatever is cached: the 1 MiB budget shows that part.
      const rssAfterReadingAll = async (name: string, env: Record<string, string>) => {
        const { child } = await server(name, file, { EVENTBANK_CACHE_SIZE: String(accounts), EVENTBANK_CACHE_MAX_COMMANDS: "1000000000", ...env });
        const client = new AccountServiceClient(child.address, credentials.createInsecure());
        try {
          const idle = child.rssMiB();
          for (let i = 0; i < accounts; i += CONCURRENCY) {
            await Promise.all(range(i, Math.min(accounts, i + CONCURRENCY)).map((accountId) => getAccount(client, accountId)));
          }
          return { idle, rss: child.rssMiB() };
        } finally {
          client.close();
          await stop(child);
        }
      };
      const budgeted = await rssAfterReadingAll("rss", {});
      const uncached = await rssAfterReadingAll("rss-uncached", { EVENTBANK_CACHE_MAX_BYTES: String(2 ** 20) });
      row(
        `RSS, EVENTBANK_CACHE_SIZE=${accounts.toLocaleString("en-US")}, all accounts read once`,
        `${fmt(budgeted.rss, 0)} MiB (default byte budget, 256 MiB)`,
        `${fmt(uncached.rss, 0)} MiB (1 MiB budget); ${fmt(allRss, 0)} MiB (no budget, ${half.toLocaleString("en-US")} accounts cached)`,
        `the cache: ${fmt(budgeted.rss - uncached.rss, 0)} MiB (idle ${fmt(budgeted.idle, 0)} MiB)`,
        "under budget + fixed overhead",
      );
    }
    print("");
    if (!args.includes("--no-docs")) writeDocsSection(report.join("\n"), "scale");
    return 0;
  } catch (error) {
    process.stderr.write(`scale bench failed:\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  } finally {
    for (const load of loads) load.stop();
    await Promise.all(servers.map((child) => child.stop()));
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${file}.ab-copy`, { force: true });
  }
}

function copyOf(file: string): string {
  const copy = `${file}.ab-copy`;
  copyFileSync(file, copy);
  return copy;
}

export interface Contender {
  name: string;
  start: () => Promise<{ child: ServerChild }>;
  /** Accounts of this contender (default: the shared list). */
  accounts?: string[];
}

/** Rounds alternate between the servers (first one rotating), as in the quick bench; ratios are of adjacent rounds. */
export async function alternatingRounds(contenders: Contender[], shared: string[], loads: LoadChild[], rounds = ROUNDS) {
  const targets = [];
  for (const contender of contenders) {
    const { child } = await contender.start();
    const load = startLoad();
    loads.push(load);
    const accounts = contender.accounts ?? shared;
    await load.setup(child.address, accounts);
    targets.push({
      name: contender.name,
      server: child,
      load,
      accounts,
      rounds: [] as RoundResult[],
      /** The server's CPU, storage writes and read syscalls over the rounds, and the calls they answered. */
      cost: { cpuMs: 0, writeBytes: 0, readSyscalls: 0, calls: 0 },
      close: async () => {
        load.stop();
        loads.splice(loads.indexOf(load), 1);
        await child.stop();
      },
    });
  }
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(i + round) % targets.length]!;
      const [cpuBefore, ioBefore] = [target.server.cpuMs(), target.server.io()];
      const result = await target.load.round({ accounts: target.accounts, concurrency: CONCURRENCY, warmupMs: WARMUP_MS, durationMs: DURATION_MS });
      if (result.errors > 0) throw new Error(`${target.name}: ${result.errors} errors, first: ${result.firstError}`);
      const ioAfter = target.server.io();
      target.cost.cpuMs += target.server.cpuMs() - cpuBefore;
      target.cost.writeBytes += ioAfter.writeBytes - ioBefore.writeBytes;
      target.cost.readSyscalls += ioAfter.readSyscalls - ioBefore.readSyscalls;
      target.cost.calls += result.completed;
      target.rounds.push(result);
    }
  }
  return targets;
}

/** Waits until the server uses under 5 % of a core over 500 ms; returns the CPU ms it used until then. */
export async function untilIdle(child: ServerChild): Promise<number> {
  const first = child.cpuMs();
  let last = first;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = child.cpuMs();
    if (now - last <= 25) return now - first;
    last = now;
  }
}

function pairRatio(a: RoundResult[], b: RoundResult[], value: (r: RoundResult) => number): number {
  return median(a.map((r, i) => value(r) / value(b[i]!)));
}

function range(from: number, to: number): string[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => scaleAccountId(from + i));
}

function getAccount(client: AccountServiceClient, accountId: string): Promise<void> {
  return new Promise((resolve, reject) => client.getAccount({ accountId }, (error: ServiceError | null) => (error ? reject(error) : resolve())));
}

async function timed(run: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * SubscribeAll from the start until `count` events arrived; `eventsPerMessage`
 * above 1 asks for batches. The events are counted, not decoded, so the bench
 * process spends little of the shared CPU.
 */
export function catchUp(address: string, count: number, eventsPerMessage = 0): Promise<{ seconds: number }> {
  const client = new Client(address, credentials.createInsecure());
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const call = client.makeServerStreamRequest(
      "/bank.v1.AccountService/SubscribeAll",
      (request: Buffer) => request,
      (response: Buffer) => response,
      Buffer.from(SubscribeAllRequest.encode({ maxEventsPerMessage: eventsPerMessage }).finish()),
    );
    let received = 0;
    call.on("data", (message: Buffer) => {
      const events = eventsIn(message);
      // A caught_up message ends the catch-up early.
      if (events === 0 && received < count) finish(new Error(`caught up after ${received} events, fewer than ${count}`));
      received += events;
      if (received >= count) finish();
    });
    call.on("error", (error: ServiceError) => {
      if (error.code !== 1) finish(error);
    });
    let done = false;
    function finish(error?: Error) {
      if (done) return;
      done = true;
      const seconds = (performance.now() - started) / 1000;
      call.cancel();
      client.close();
      if (error) reject(error);
      else resolve({ seconds });
    }
  });
}

/** Events in a SubscribeAllResponse: 1 for `event` (field 1), the batch's length for `events` (field 3), else 0. */
function eventsIn(message: Buffer): number {
  const reader = new BinaryReader(message);
  const [field] = reader.tag();
  if (field === 1) return 1;
  if (field !== 3) return 0;
  const batch = new BinaryReader(reader.bytes());
  let events = 0;
  while (batch.pos < batch.len) {
    batch.tag();
    batch.skip(WireType.LengthDelimited);
    events++;
  }
  return events;
}

/** The same rows read in position order in this process, data and metadata parsed: what a catch-up cannot beat. */
export function rawScan(file: string, count: number): { seconds: number } {
  const db = new Database(file, { readonly: true });
  try {
    db.defaultSafeIntegers(true);
    const started = performance.now();
    let parsed = 0;
    for (const row of db.prepare("SELECT * FROM events ORDER BY position LIMIT ?").iterate(count) as Iterable<{ data: string; metadata: string }>) {
      JSON.parse(row.data);
      JSON.parse(row.metadata);
      parsed++;
    }
    if (parsed !== count) throw new Error(`raw scan read ${parsed} rows, not ${count}`);
    return { seconds: (performance.now() - started) / 1000 };
  } finally {
    db.close();
  }
}
