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
import { startServer, type LoadChild } from "./processes.js";
import { alternatingRounds } from "./scale.js";

const [otherEntry, roundsArg] = process.argv.slice(2);
if (!otherEntry) {
  process.stderr.write("usage: npx tsx bench/ab-code.ts <other checkout>/server/src/main.ts [rounds]\n");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "eventbank-ab-code-"));
const accounts = Array.from({ length: 64 }, (_, i) => `ab-${i}`);
const loads: LoadChild[] = [];
const server = (name: string, entry: string) => async () => ({
  child: await startServer(entry, { EVENTBANK_SQLITE_PATH: join(dir, `${name}.sqlite`), LOG_LEVEL: "warn", EVENTBANK_METRICS_PORT: "0" }, join(dir, `${name}.log`)),
});
const targets = await alternatingRounds(
  [
    { name: "other", start: server("other", resolve(otherEntry)) },
    { name: "this", start: server("this", "server/src/main.ts") },
  ],
  accounts,
  loads,
  Number(roundsArg ?? 8),
);
try {
  for (const { name, rounds, cost } of targets) {
    console.log(`${name}: OK/s ${rounds.map((r) => fmt(r.okPerSecond, 0)).join(" ")}; server CPU per Deposit ${fmt((cost.cpuMs * 1000) / cost.calls, 0)} us`);
  }
  const [other, self] = targets;
  const ratio = median(self!.rounds.map((round, i) => round.okPerSecond / other!.rounds[i]!.okPerSecond));
  console.log(`this / other: ${fmt(ratio, 3)}x throughput (median of round-by-round ratios)`);
} finally {
  for (const target of targets) await target.close();
  rmSync(dir, { recursive: true, force: true });
}
