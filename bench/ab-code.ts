/**
 * Two versions of the server head to head: this checkout's and another's
 * (a git worktree of an older commit, say), each on its own small store,
 * Deposits on 64 accounts in alternating rounds, metrics off. A ratio of
 * two servers measured in the same minutes moves far less with the
 * machine than either one's ratio to echo.
 *
 *   git worktree add ../eventbank-before <commit> && ln -s "$PWD/node_modules" ../eventbank-before/
 *   npx tsx bench/ab-code.ts ../eventbank-before/server/src/main.ts [rounds, default 8]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fmt, median } from "./format.js";
import { startLoad, startServer } from "./processes.js";

const [otherEntry, roundsArg] = process.argv.slice(2);
if (!otherEntry) {
  process.stderr.write("usage: npx tsx bench/ab-code.ts <other checkout>/server/src/main.ts [rounds]\n");
  process.exit(2);
}
const rounds = Number(roundsArg ?? 8);
const dir = mkdtempSync(join(tmpdir(), "eventbank-ab-code-"));
const accounts = Array.from({ length: 64 }, (_, i) => `ab-${i}`);
const targets = [];
try {
  for (const [name, entry] of [["other", resolve(otherEntry)], ["this", "server/src/main.ts"]] as const) {
    const server = await startServer(entry, { EVENTBANK_SQLITE_PATH: join(dir, `${name}.sqlite`), LOG_LEVEL: "warn", EVENTBANK_METRICS_PORT: "0" }, join(dir, `${name}.log`));
    const load = startLoad();
    await load.setup(server.address, accounts);
    targets.push({ name, server, load, okPerSecond: [] as number[], cpuUs: [] as number[] });
  }
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(i + round) % targets.length]!;
      const cpuBefore = target.server.cpuMs();
      const result = await target.load.round({ accounts, concurrency: 64, warmupMs: 1_000, durationMs: 3_000 });
      if (result.errors > 0) throw new Error(`${target.name}: ${result.errors} errors, first: ${result.firstError}`);
      target.okPerSecond.push(result.okPerSecond);
      target.cpuUs.push(((target.server.cpuMs() - cpuBefore) * 1000) / result.completed);
    }
  }
  const [other, self] = targets;
  for (const target of targets) {
    console.log(`${target.name}: OK/s ${target.okPerSecond.map((v) => fmt(v, 0)).join(" ")}; server CPU per Deposit ${fmt(median(target.cpuUs), 0)} us`);
  }
  const ratio = median(self!.okPerSecond.map((value, i) => value / other!.okPerSecond[i]!));
  console.log(`this / other: ${fmt(ratio, 3)}x throughput (median of round-by-round ratios)`);
} finally {
  for (const target of targets) {
    target.load.stop();
    await target.server.stop();
  }
  rmSync(dir, { recursive: true, force: true });
}
