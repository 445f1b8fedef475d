/** Writes bench results into docs/performance.md between markers, keeping the hand-written rest. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./processes.js";

export function writeDocsSection(results: string, name: string): void {
  const path = join(ROOT, "docs/performance.md");
  const begin = `<!-- ${name}:begin (written by npm run bench) -->`;
  const end = `<!-- ${name}:end -->`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    text = `# Performance\n\n${begin}\n${end}\n`;
  }
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  const block = `${begin}\n${results}\n${end}`;
  text = from >= 0 && to > from ? text.slice(0, from) + block + text.slice(to + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, text);
  process.stdout.write(`wrote ${path}\n`);
}
