/**
 * `npm run bench` — eventbank against the honest ceiling, a grpc-js server
 * answering the same RPCs from memory (bench/echo-server.ts).
 *
 * 1. Throughput: 64 Deposits in flight, (a) spread over 64 accounts, (b) all
 *    on one hot account, from a separate load process per server. Rounds
 *    alternate between the servers so their ratio holds while the machine's
 *    speed drifts; the ratio reported is the median of adjacent pairs.
 * 2. Load cost against stream length: one Deposit on an account with 10,
 *    10,000 and 100,000 prior events, seeded straight into the SQLite file;
 *    first ever, first after a restart (cold) and warm; server RSS.
 * 3. (full run) RSS while the number of accounts grows past the cache size.
 *
 * Part 1 also prices observability, in the same rounds: eventbank as it
 * starts by default (metrics on), with metrics off, and with metrics and
 * tracing on (always-on sampling, OTLP/HTTP to a local sink).
 *
 * `--quick`: short rounds and short streams, a few seconds, for CI; exits
 * non-zero unless every part ran and reported. The full run also writes the
 * results into docs/performance.md between the bench markers.
 */
import { credentials, type ServiceError } from "@grpc/grpc-js";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { AccountServiceClient } from "../client/src/gen/bank/v1/account_service.js";
import type { RoundResult } from "./load.js";
import { writeDocsSection } from "./docs.js";
import { cpuModel, fmt, median } from "./format.js";
import { startOtlpSink, type OtlpSink } from "./otlp-sink.js";
import { startLoad, startServer, type LoadChild, type ServerChild } from "./processes.js";
import { seedStreams } from "./seed.js";

const args = process.argv.slice(2);
if (args.includes("--scale")) {
  // The scale bench (bench/scale.ts): a large store, on demand.
  const { runScale } = await import("./scale.js");
  process.exit(await runScale(args));
}
const quick = args.includes("--quick");
// --observability: only metrics on against off, in more rounds, with a second metrics-off server as an
// A/A control that shows how far this machine's noise alone moves the ratio (on demand; writes its own
// section of docs/performance.md).
const observabilityOnly = args.includes("--observability");
// --ab-env=K=V: one more eventbank (metrics off) with this setting, compared with metrics off in the same rounds.
const abEnv = optionValue("--ab-env")?.split("=");
const entry = optionValue("--entry") ?? "server/src/main.ts";
const command = `npm run bench${args.length ? ` -- ${args.join(" ")}` : ""}`;

const settings = observabilityOnly
  ? { rounds: Number(optionValue("--rounds") ?? 20), warmupMs: 500, durationMs: 2_000, lengths: [], restarts: 0, warmDeposits: 0, growAccounts: 0 }
  : quick
  ? { rounds: 3, warmupMs: 150, durationMs: 400, lengths: [10, 1_000, 10_000], restarts: 1, warmDeposits: 10, growAccounts: 0 }
  : { rounds: 5, warmupMs: 1_000, durationMs: 3_000, lengths: [10, 10_000, 100_000], restarts: 3, warmDeposits: 30, growAccounts: 30_000 };
const CONCURRENCY = 64;
const SPREAD_ACCOUNTS = Array.from({ length: 64 }, (_, i) => `spread-${i}`);
const HOT_ACCOUNT = ["hot"];

const dir = mkdtempSync(join(tmpdir(), "eventbank-bench-"));
const servers: ServerChild[] = [];
const loads: LoadChild[] = [];
const report: string[] = [];
const problems: string[] = [];
let otlpSink: OtlpSink | undefined;

try {
  const machine = `${cpus().length} cores (nproc), ${cpuModel()}, Node ${process.version}`;
  print(observabilityOnly ? "## Cost of observability, on its own (more rounds)" : `## Results (${quick ? "quick" : "full"} run)`, "");
  print(`- Machine: ${machine}`, `- Command: \`${command}\``, `- Date: ${new Date().toISOString()}`, "");
  await throughput();
  if (!observabilityOnly) await streamLength();
  if (settings.growAccounts > 0) await accountGrowth();
} catch (error) {
  problems.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
} finally {
  for (const load of loads) load.stop();
  await Promise.all(servers.map((server) => server.stop()));
  await otlpSink?.close();
  // The servers' own words, when something went wrong (their logs go with the temp dir).
  if (problems.length > 0) {
    for (const file of readdirSync(dir).filter((name) => name.endsWith(".log"))) {
      problems.push(`--- ${file} (last 2,000 characters)\n${readFileSync(join(dir, file), "utf8").slice(-2_000)}`);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

if (problems.length > 0) {
  process.stderr.write(`bench failed:\n${problems.join("\n")}\n`);
  process.exit(1);
}
if (observabilityOnly) writeDocsSection(report.join("\n"), "observability");
else if (!quick) writeDocsSection(report.join("\n"), "bench");

// ---------------------------------------------------------------------------

interface Target {
  name: string;
  server: ServerChild;
  load: LoadChild;
  results: { spread: RoundResult[]; hot: RoundResult[] };
  /** Server CPU (user + system) per OK call, µs, round by round. */
  cpuPerCall: { spread: number[]; hot: number[] };
}

async function throughput(): Promise<void> {
  const targets: Target[] = [];
  const add = async (name: string, script: string, env: Record<string, string>) => {
    const server = await startServer(script, env, join(dir, `${name}.log`));
    servers.push(server);
    const load = startLoad();
    loads.push(load);
    await load.setup(server.address, [...SPREAD_ACCOUNTS, ...HOT_ACCOUNT], name === "eventbank");
    targets.push({ name, server, load, results: { spread: [], hot: [] }, cpuPerCall: { spread: [], hot: [] } });
  };
  if (!observabilityOnly) await add("grpc-js echo", "bench/echo-server.ts", {});
  await add("eventbank", entry, { EVENTBANK_SQLITE_PATH: join(dir, "throughput.sqlite"), LOG_LEVEL: "warn" });
  await add("eventbank, metrics off", entry, { EVENTBANK_SQLITE_PATH: join(dir, "throughput-nometrics.sqlite"), LOG_LEVEL: "warn", EVENTBANK_METRICS_PORT: "0" });
  if (observabilityOnly) {
    await add("eventbank, metrics off, second server", entry, { EVENTBANK_SQLITE_PATH: join(dir, "throughput-control.sqlite"), LOG_LEVEL: "warn", EVENTBANK_METRICS_PORT: "0" });
  }
  if (abEnv) {
    await add(`eventbank, metrics off, ${abEnv.join("=")}`, entry, {
      EVENTBANK_SQLITE_PATH: join(dir, "throughput-ab.sqlite"),
      LOG_LEVEL: "warn",
      EVENTBANK_METRICS_PORT: "0",
      [abEnv[0]!]: abEnv[1] ?? "",
    });
  }
  if (!observabilityOnly) otlpSink = await startOtlpSink();
  if (otlpSink) await add("eventbank, metrics + tracing", entry, {
    EVENTBANK_SQLITE_PATH: join(dir, "throughput-tracing.sqlite"),
    LOG_LEVEL: "warn",
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpSink.endpoint,
    OTEL_TRACES_SAMPLER: "always_on",
  });
  if (!quick && !observabilityOnly) {
    await add("eventbank, LOG_LEVEL=info", entry, { EVENTBANK_SQLITE_PATH: join(dir, "throughput-info.sqlite"), LOG_LEVEL: "info" });
  }

  for (let round = 0; round < settings.rounds; round++) {
    for (const variant of ["spread", "hot"] as const) {
      // Rotate who goes first, so neither side always gets the warmer machine.
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(i + round) % targets.length]!;
        const cpuBefore = target.server.cpuMs();
        const result = await target.load.round({
          accounts: variant === "spread" ? SPREAD_ACCOUNTS : HOT_ACCOUNT,
          concurrency: CONCURRENCY,
          warmupMs: settings.warmupMs,
          durationMs: settings.durationMs,
        });
        if (result.errors > 0) problems.push(`${target.name} ${variant}: ${result.errors} errors, first: ${result.firstError}`);
        if (!(result.ok > 0)) problems.push(`${target.name} ${variant}: no OK responses`);
        target.results[variant].push(result);
        target.cpuPerCall[variant].push(((target.server.cpuMs() - cpuBefore) * 1000) / result.completed);
      }
    }
  }
  if (observabilityOnly) {
    observabilityCost(targets);
    return;
  }

  const baseline = targets[0]!;
  print(
    `### Deposit throughput, ${CONCURRENCY} in flight, ${settings.rounds} alternating rounds of ${settings.durationMs / 1000} s per server`,
    "",
    "| server | variant | OK/s (median) | p50 ms | p99 ms | throughput ratio | p99 ratio |",
    "|---|---|---:|---:|---:|---:|---:|",
  );
  for (const variant of ["spread", "hot"] as const) {
    for (const target of targets) {
      const rounds = target.results[variant];
      const base = baseline.results[variant];
      const okRatio = median(rounds.map((r, i) => r.okPerSecond / base[i]!.okPerSecond));
      const p99Ratio = median(rounds.map((r, i) => r.p99Ms / base[i]!.p99Ms));
      const label = variant === "spread" ? "64 accounts" : "1 hot account";
      print(
        `| ${target.name} | ${label} | ${fmt(median(rounds.map((r) => r.okPerSecond)), 0)} | ${fmt(median(rounds.map((r) => r.p50Ms)), 2)} | ${fmt(median(rounds.map((r) => r.p99Ms)), 2)} | ${target === baseline ? "1" : `**${fmt(okRatio, 2)}x**`} | ${target === baseline ? "1" : `${fmt(p99Ratio, 2)}x`} |`,
      );
    }
  }
  print("", `Server RSS after the rounds: ${targets.map((t) => `${t.name} ${t.server.rssMiB()} MiB`).join(", ")}.`, "");
  observabilityCost(targets);
  await transferRate(targets.find((target) => target.name === "eventbank")!);
}

/**
 * Transfers between the 64 accounts (each to the next), 64 in flight, on the
 * default eventbank, in rounds alternating with its Deposit rounds; the ratio
 * is against that server's Deposit rate of the adjacent round (same run).
 */
async function transferRate(target: Target): Promise<void> {
  const deposits: RoundResult[] = [];
  const transfers: RoundResult[] = [];
  for (let round = 0; round < settings.rounds; round++) {
    for (const operation of ["deposit", "transfer"] as const) {
      const result = await target.load.round({ accounts: SPREAD_ACCOUNTS, operation, concurrency: CONCURRENCY, warmupMs: settings.warmupMs, durationMs: settings.durationMs });
      if (result.errors > 0) problems.push(`${target.name} ${operation}s: ${result.errors} errors, first: ${result.firstError}`);
      if (!(result.ok > 0)) problems.push(`${target.name} ${operation}s: no OK responses`);
      (operation === "deposit" ? deposits : transfers).push(result);
    }
  }
  const ratio = median(transfers.map((t, i) => t.okPerSecond / deposits[i]!.okPerSecond));
  print(
    `### Transfers between 64 accounts, ${CONCURRENCY} in flight, against Deposits on the same server (${settings.rounds} alternating rounds)`,
    "",
    "| operation | OK/s (median) | p50 ms | p99 ms | ratio to Deposits |",
    "|---|---:|---:|---:|---:|",
    `| Deposit | ${fmt(median(deposits.map((r) => r.okPerSecond)), 0)} | ${fmt(median(deposits.map((r) => r.p50Ms)), 2)} | ${fmt(median(deposits.map((r) => r.p99Ms)), 2)} | 1 |`,
    `| TransferMoney (completed) | ${fmt(median(transfers.map((r) => r.okPerSecond)), 0)} | ${fmt(median(transfers.map((r) => r.p50Ms)), 2)} | ${fmt(median(transfers.map((r) => r.p99Ms)), 2)} | **${fmt(ratio, 2)}x** |`,
    "",
    "A transfer is five appends (request, reserve, credit, capture, complete) on three streams, each durable before the next.",
    "",
  );
}

/**
 * The observability variants against eventbank with metrics off, round by
 * round (same run, same machine): Deposit throughput, and the server's CPU
 * per Deposit, which the machine's noise moves less.
 */
function observabilityCost(targets: Target[]): void {
  const byName = (name: string) => targets.find((target) => target.name === name);
  const off = byName("eventbank, metrics off")!;
  const rows = [
    { label: "metrics on (the default)", target: byName("eventbank") },
    { label: "metrics + tracing (always_on, OTLP/HTTP to a local sink)", target: byName("eventbank, metrics + tracing") },
    { label: "metrics off, a second server (A/A control: the noise floor)", target: byName("eventbank, metrics off, second server") },
    ...(abEnv ? [{ label: `metrics off, ${abEnv.join("=")}`, target: byName(`eventbank, metrics off, ${abEnv.join("=")}`) }] : []),
  ].filter((row): row is { label: string; target: Target } => row.target !== undefined);
  const variants = ["spread", "hot"] as const;
  const throughputRatios = (target: Target, variant: (typeof variants)[number]) =>
    target.results[variant].map((r, i) => r.okPerSecond / off.results[variant][i]!.okPerSecond);
  const cpuRatios = (target: Target, variant: (typeof variants)[number]) => target.cpuPerCall[variant].map((cpu, i) => cpu / off.cpuPerCall[variant][i]!);
  print(
    `### Cost of observability (against metrics off; medians of round-by-round ratios, ${settings.rounds} rounds)`,
    "",
    "| variant | throughput, 64 accounts | throughput, 1 hot account | server CPU per Deposit, 64 accounts | CPU, 1 hot account |",
    "|---|---:|---:|---:|---:|",
  );
  for (const { label, target } of rows) {
    const cells = [...variants.map((v) => median(throughputRatios(target, v))), ...variants.map((v) => median(cpuRatios(target, v)))];
    print(`| ${label} | ${cells.map((c) => `${fmt(c, 3)}x`).join(" | ")} |`);
  }
  print(
    "",
    `Server CPU per Deposit, median µs: ${[off, ...rows.map((r) => r.target)].map((t) => `${t.name} ${fmt(median(t.cpuPerCall.spread), 0)} / ${fmt(median(t.cpuPerCall.hot), 0)}`).join("; ")} (64 accounts / hot).`,
    "",
  );
  if (observabilityOnly) {
    for (const { label, target } of rows) {
      for (const v of variants) {
        print(`- ${label}, ${v}: throughput ratios ${throughputRatios(target, v).map((r) => fmt(r, 3)).join(" ")}; CPU ratios ${cpuRatios(target, v).map((r) => fmt(r, 3)).join(" ")}`);
      }
    }
    print("");
  }
  if (!otlpSink) return;
  print(`The tracing server's exports reached the sink in ${otlpSink.requests()} requests.`, "");
  if (otlpSink.requests() === 0) problems.push("tracing row: no spans reached the OTLP sink");
}

async function streamLength(): Promise<void> {
  const file = join(dir, "lengths.sqlite");
  const accounts = settings.lengths.map((length) => ({ length, accountId: `len-${length}` }));
  const seedStarted = performance.now();
  await seedStreams(file, accounts);
  const seedSeconds = (performance.now() - seedStarted) / 1000;

  const firstEver = new Map<number, number>();
  const cold = new Map<number, number[]>();
  const warm = new Map<number, number>();
  const rss: number[] = [];
  for (let restart = 0; restart <= settings.restarts; restart++) {
    const server = await startServer(entry, { EVENTBANK_SQLITE_PATH: file, LOG_LEVEL: "warn" }, join(dir, `lengths-${restart}.log`));
    const client = new AccountServiceClient(server.address, credentials.createInsecure());
    try {
      // Warm the code path (JIT, connection) on an unrelated account first.
      const warmup = `warmup-${restart}`;
      await openAccount(client, warmup);
      for (let i = 0; i < 50; i++) await timedDeposit(client, warmup, `${warmup}-${i}`);
      for (const { length, accountId } of accounts) {
        const ms = await timedDeposit(client, accountId, `cold-${restart}-${accountId}`);
        if (restart === 0) firstEver.set(length, ms);
        else cold.set(length, [...(cold.get(length) ?? []), ms]);
      }
      if (restart === settings.restarts) {
        for (const { length, accountId } of accounts) {
          const times: number[] = [];
          for (let i = 0; i < settings.warmDeposits; i++) times.push(await timedDeposit(client, accountId, `warm-${accountId}-${i}`));
          warm.set(length, median(times));
        }
      }
      rss.push(server.rssMiB());
    } finally {
      client.close();
      await server.stop();
    }
  }

  const base = { cold: median(cold.get(settings.lengths[0]!)!), warm: warm.get(settings.lengths[0]!)! };
  print(
    `### One Deposit against stream length (sequential, one client; cold = first Deposit on the account after a restart, median of ${settings.restarts})`,
    "",
    `Streams seeded straight into the SQLite file (${fmt(seedSeconds, 1)} s); the first process ever to load them finds no snapshot.`,
    "",
    "| prior events | first load ever, ms | cold after restart, ms | cold ratio to 10 events | warm, ms (median) | warm ratio |",
    "|---:|---:|---:|---:|---:|---:|",
  );
  for (const { length } of accounts) {
    const coldMs = median(cold.get(length)!);
    const warmMs = warm.get(length)!;
    print(
      `| ${length.toLocaleString("en-US")} | ${fmt(firstEver.get(length)!, 2)} | ${fmt(coldMs, 2)} | **${fmt(coldMs / base.cold, 2)}x** | ${fmt(warmMs, 2)} | ${fmt(warmMs / base.warm, 2)}x |`,
    );
  }
  print("", `Server RSS after each process's deposits: ${rss.map((v) => `${v} MiB`).join(", ")}.`, "");
}

/** RSS as accounts grow past the cache size (EVENTBANK_CACHE_SIZE, 10,000 by default). */
async function accountGrowth(): Promise<void> {
  const server = await startServer(entry, { EVENTBANK_SQLITE_PATH: join(dir, "growth.sqlite"), LOG_LEVEL: "warn" }, join(dir, "growth.log"));
  const client = new AccountServiceClient(server.address, credentials.createInsecure());
  const samples: string[] = [];
  try {
    const step = settings.growAccounts / 6;
    for (let opened = 0; opened < settings.growAccounts; ) {
      const batch = Array.from({ length: step }, (_, i) => `grow-${opened + i}`);
      // 64 at a time: open, then one deposit each.
      for (let i = 0; i < batch.length; i += 64) {
        await Promise.all(
          batch.slice(i, i + 64).map(async (accountId) => {
            await openAccount(client, accountId);
            await deposit(client, accountId, `dep-${accountId}`, 5n);
          }),
        );
      }
      opened += step;
      samples.push(`${opened.toLocaleString("en-US")} accounts: ${server.rssMiB()} MiB`);
    }
  } finally {
    client.close();
    await server.stop();
  }
  print("### Server RSS as accounts grow (open + one deposit each, default cache of 10,000 accounts)", "", samples.join(", ") + ".", "");
}

// ---------------------------------------------------------------------------

function openAccount(client: AccountServiceClient, accountId: string): Promise<void> {
  return new Promise((resolve, reject) =>
    client.openAccount({ accountId, owner: "Bench", currency: "EUR", commandId: `open-${accountId}` }, (error: ServiceError | null) =>
      error ? reject(error) : resolve(),
    ),
  );
}

function deposit(client: AccountServiceClient, accountId: string, commandId: string, amount = 1n): Promise<void> {
  return new Promise((resolve, reject) =>
    client.deposit({ accountId, amount, commandId }, (error: ServiceError | null) => (error ? reject(error) : resolve())),
  );
}

async function timedDeposit(client: AccountServiceClient, accountId: string, commandId: string): Promise<number> {
  const started = performance.now();
  await deposit(client, accountId, commandId);
  return performance.now() - started;
}

function print(...lines: string[]): void {
  for (const line of lines) {
    report.push(line);
    process.stdout.write(`${line}\n`);
  }
}

function optionValue(name: string): string | undefined {
  const found = args.find((arg) => arg.startsWith(`${name}=`));
  return found?.slice(name.length + 1);
}
