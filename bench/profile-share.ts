/**
 * What share of a process's busy CPU samples went to given code, from the
 * .cpuprofile files Node writes with --cpu-prof (self time, idle left out).
 *
 *   BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench -- --observability --rounds=4
 *   npx tsx bench/profile-share.ts /tmp/prof observability/ prom-client/
 *
 * Each pattern is matched against the script URL of a sample's function;
 * the largest profile in the folder is read (the main thread's). Used for
 * the cost of metrics in docs/performance.md: a share of samples does not
 * move with the machine's load the way a throughput ratio does.
 */
import { largestProfile } from "./cpu-profile.js";

const [dir, ...patterns] = process.argv.slice(2);
if (!dir || patterns.length === 0) {
  process.stderr.write("usage: tsx bench/profile-share.ts <folder of .cpuprofile files> <url pattern>...\n");
  process.exit(2);
}
const { file, profile } = largestProfile(dir);
const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));

let busy = 0;
const matched = new Map<string, number>(patterns.map((pattern) => [pattern, 0]));
const gc = { time: 0 };
profile.samples.forEach((id, index) => {
  const frame = frames.get(id)!;
  const time = profile.timeDeltas[index] ?? 0;
  if (frame.functionName === "(idle)") return;
  busy += time;
  if (frame.functionName === "(garbage collector)") gc.time += time;
  for (const pattern of patterns) if (frame.url.includes(pattern)) matched.set(pattern, matched.get(pattern)! + time);
});

process.stdout.write(`${file}: ${(busy / 1e6).toFixed(1)} s busy\n`);
let total = 0;
for (const [pattern, time] of matched) {
  total += time;
  process.stdout.write(`  ${pattern}: ${((100 * time) / busy).toFixed(2)} % of busy samples\n`);
}
process.stdout.write(`  all patterns: ${((100 * total) / busy).toFixed(2)} %; garbage collector: ${((100 * gc.time) / busy).toFixed(2)} %\n`);
