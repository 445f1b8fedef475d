/**
 * The README's status-code table lists every gRPC code and ErrorInfo reason the server sends,
 * as found in server/src: a reason added to the code without a line in the table fails here.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

// server/src/observability names every gRPC code for metric labels; it sends none.
const code = sources("server/src")
  .filter((file) => !file.includes("/observability/"))
  .map((file) => readFileSync(file, "utf8"))
  .join("\n");

const REASON_PATTERNS = [
  /\breason(?:\s*=|\s*:)\s*"([A-Z][A-Z_]+)"/g, // readonly reason = "X" / { reason: "X" }
  /\bRpcError\(\s*status\.[A-Z_]+,\s*"([A-Z][A-Z_]+)"/g, // new RpcError(status.CODE, "X", ...)
  /\bValidationError\(\s*"([A-Z][A-Z_]+)"/g, // new ValidationError("X", field, ...)
];
const sentReasons = new Set(REASON_PATTERNS.flatMap((pattern) => [...code.matchAll(pattern)].map((match) => match[1]!)));
// The union of ValidationError reasons (domain/errors.ts): `readonly reason: | "A" | "B"`.
for (const union of code.matchAll(/readonly reason:((?:\s*\|\s*"[A-Z_]+")+)/g)) {
  for (const reason of union[1]!.matchAll(/"([A-Z_]+)"/g)) sentReasons.add(reason[1]!);
}
// OK is success, not an error the table lists.
const sentCodes = new Set([...code.matchAll(/\bstatus\.([A-Z][A-Z_]+)\b/g)].map((match) => match[1]!).filter((name) => name !== "OK"));

const readme = readFileSync("README.md", "utf8");
const section = readme.slice(readme.indexOf("## Status codes"), readme.indexOf("\n## ", readme.indexOf("## Status codes") + 1));
const rows = section
  .split("\n")
  .filter((line) => line.startsWith("| ") && !line.startsWith("| Code") && !line.startsWith("|---"))
  .map((line) => line.split("|").map((cell) => cell.trim()));
const tableCodes = new Set(rows.flatMap((cells) => cells[1]!.split("/").map((name) => name.trim())));
const tableReasons = new Set(rows.flatMap((cells) => cells[2]!.split(",").map((name) => name.trim())));

describe("README status codes", () => {
  it("finds the reasons and codes in the server's source", () => {
    // Guards the patterns themselves: some of each kind must be found.
    for (const reason of ["INSUFFICIENT_FUNDS", "INVALID_REVISION", "TOO_MANY_SUBSCRIPTIONS", "STORE_UNAVAILABLE", "UNAUTHENTICATED"]) {
      expect(sentReasons).toContain(reason);
    }
    expect(sentCodes).toContain("PERMISSION_DENIED");
  });

  it("lists every ErrorInfo reason the server sends", () => {
    expect([...sentReasons].filter((reason) => !tableReasons.has(reason)).sort()).toEqual([]);
  });

  it("lists every status code the server sends", () => {
    expect([...sentCodes].filter((name) => !tableCodes.has(name)).sort()).toEqual([]);
  });
});
