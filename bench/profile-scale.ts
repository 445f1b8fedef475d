/**
 * A CPU profile of one server on the large store of `npm run bench -- --scale`
 * (seed it first), for the two cases docs/performance.md explains with one:
 *
 *   npx tsx bench/profile-scale.ts catchup [--events=500000] [--per-message=256]
 *   npx tsx bench/profile-scale.ts spread  [--accounts=20000]
 *   npx tsx bench/profile-scale.ts warm    (--file=PATH: the small store of a scale run, say)
 *   common: [--file=PATH] [--no-profile] (only events/s or OK/s and CPU)
 *
 * catchup: SubscribeAll from the start, counted as the scale bench counts it.
 * spread: Deposits round-robin over accounts 50,000 onwards, every one a cold
 * load under the default cache; a first server (not profiled) opens them, so
 * each has a snapshot, as after the scale bench's spread rounds. warm:
 * Deposits on the scale bench's 64 warm accounts.
 *
 * Prints the server's CPU per call and the functions with the most busy
 * samples (self and inclusive); the .cpuprofile stays in the OS temp folder.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { largestProfile, type CpuProfile } from "./cpu-profile.js";
import { startLoad, startServer, type LoadChild, type ServerChild } from "./processes.js";
import { catchUp, defaultScaleFile, untilIdle } from "./scale.js";
import { scaleAccountId } from "./scale-seed.js";

const [mode, ...args] = process.argv.slice(2);
const option = (name: string, fallback: string) => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const file = option("file", defaultScaleFile(10_000_000, 100_000));
const dir = mkdtempSync(join(tmpdir(), "eventbank-profile-"));
const profiled = !args.includes("--no-profile");

/** One 5 s round of Deposits over `accounts`, then its throughput, latency and the server's CPU per Deposit; stops both. */
const measuredRound = async (server: ServerChild, load: LoadChild, accounts: string[]) => {
  const cpuBefore = server.cpuMs();
  const result = await load.round({ accounts, concurrency: 64, warmupMs: 500, durationMs: 5_000 });
  const cpuUs = ((server.cpuMs() - cpuBefore) * 1000) / result.completed;
  console.log(`${Math.round(result.okPerSecond)} OK/s, p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms, ${cpuUs.toFixed(0)} us of server CPU per Deposit`);
  load.stop();
  await server.stop();
};

const start = async (name: string, profile: boolean): Promise<ServerChild> => {
  if (profile) process.env.BENCH_SERVER_NODE_ARGS = `--cpu-prof --cpu-prof-dir=${dir}`;
  else delete process.env.BENCH_SERVER_NODE_ARGS;
  const server = await startServer("server/src/main.ts", { EVENTBANK_SQLITE_PATH: file, LOG_LEVEL: "warn" }, join(dir, `${name}.log`));
  if (!profile) await untilIdle(server); // a profiler keeps a process busy: the profiled one gets a fixed wait
  else await new Promise((resolve) => setTimeout(resolve, 4_000));
  return server;
};

if (mode === "catchup") {
  const events = Number(option("events", "500000"));
  const perMessage = Number(option("per-message", "256"));
  const server = await start("catchup", profiled);
  await catchUp(server.address, 50_000, perMessage); // JIT
  const cpuBefore = server.cpuMs();
  const { seconds } = await catchUp(server.address, events, perMessage);
  console.log(`${Math.round(events / seconds)} events/s, ${(((server.cpuMs() - cpuBefore) * 1000) / events).toFixed(1)} us of server CPU per event`);
  await server.stop();
} else if (mode === "spread") {
  const accounts = Array.from({ length: Number(option("accounts", "20000")) }, (_, i) => scaleAccountId(50_000 + i));
  const opener = await start("open", false);
  const openLoad = startLoad();
  await openLoad.setup(opener.address, accounts);
  openLoad.stop();
  await opener.stop();
  const server = await start("spread", profiled);
  const load = startLoad();
  await load.setup(server.address, []);
  await measuredRound(server, load, accounts);
} else if (mode === "warm") {
  const accounts = Array.from({ length: 64 }, (_, i) => scaleAccountId(i));
  const server = await start("warm", profiled);
  const load = startLoad();
  await load.setup(server.address, accounts);
  await load.round({ accounts, concurrency: 64, warmupMs: 0, durationMs: 2_000 }); // JIT, caches
  await measuredRound(server, load, accounts);
} else {
  process.stderr.write("usage: npx tsx bench/profile-scale.ts catchup|spread|warm [--file=PATH] [--no-profile] ...\n");
  process.exit(2);
}

if (profiled) {
  const { file, profile } = largestProfile(dir);
  printTop(profile);
  console.log(`profile: ${file}`);
}

/** The functions with the most busy samples, self and inclusive (each function counted once per sample). */
function printTop(profile: CpuProfile): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const name = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    return `${functionName || "(anonymous)"} ${url.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  for (const sample of profile.samples) {
    if (byId.get(sample)!.callFrame.functionName === "(idle)") continue;
    busy++;
    self.set(name(sample), (self.get(name(sample)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) seen.add(name(id));
    for (const key of seen) inclusive.set(key, (inclusive.get(key) ?? 0) + 1);
  }
  for (const [title, counts] of [["self", self], ["inclusive", inclusive]] as const) {
    console.log(`-- ${title} (% of ${busy} busy samples)`);
    for (const [key, count] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${((100 * count) / busy).toFixed(1).padStart(5)}  ${key}`);
  }
}
