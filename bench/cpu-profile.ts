/** Reading the .cpuprofile files Node writes with --cpu-prof (bench/profile-share.ts, bench/profile-scale.ts). */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  samples: number[];
  timeDeltas: number[];
}

/** The largest profile in `dir` (a server writes one per thread; the main thread's is the largest). */
export function largestProfile(dir: string): { file: string; profile: CpuProfile } {
  const file = readdirSync(dir)
    .filter((name) => name.endsWith(".cpuprofile"))
    .map((name) => join(dir, name))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  return { file, profile: JSON.parse(readFileSync(file, "utf8")) as CpuProfile };
}
