/**
 * The SDK as a consumer gets it: `npm pack` in a copy of client/ as a fresh
 * clone has it (no dist/: `prepack` builds it), the tarball installed into an
 * empty project outside the repository (offline, see offline-install.ts),
 * then imported by name with ESM and require, and type-checked against.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { installTarballOffline } from "../support/offline-install.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);

/**
 * One program for both module systems; only how it loads the package differs.
 * It prints where the package resolved, a balance, and whether a typed error matched.
 */
const consumer = (kind: string, load: string, resolve: string, amount: number) => `
${load}
(async () => {
  const client = createAccountClient({ address: process.env.EVENTBANK_ADDRESS });
  const accountId = "pkg-${kind}-" + process.pid;
  await client.openAccount({ accountId, owner: "Package", currency: "EUR" });
  const deposited = await client.deposit({ accountId, amount: ${amount}n });
  const missing = await client.getAccount("pkg-missing").catch((error) => error);
  client.close();
  console.log(JSON.stringify({
    resolved: ${resolve},
    balance: String(deposited.account.balance),
    typedError: missing instanceof AccountNotFoundError && missing instanceof EventbankError,
  }));
})();
`;
const names = "{ createAccountClient, AccountNotFoundError, EventbankError }";

let server: TestServer;
let work: string;
/** The empty project the tarball was installed into. */
let consumerDir: string;
let packed: { filename: string; files: Array<{ path: string }> };

beforeAll(async () => {
  server = await startTestServer();
  work = mkdtempSync(join(tmpdir(), "eventbank-pack-"));
  // client/ as a fresh clone has it: its files in git (and new ones not ignored), so no dist/.
  const { stdout: tracked } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard", "client"]);
  for (const file of new Set(tracked.split("\0").filter(Boolean))) {
    mkdirSync(dirname(join(work, file)), { recursive: true });
    cpSync(file, join(work, file));
  }
  // Beside it, the root node_modules that `npm install` made (tsc, @types/node, the dependencies).
  symlinkSync(resolve("node_modules"), join(work, "node_modules"));
  consumerDir = join(work, "consumer");
  mkdirSync(consumerDir);
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", consumerDir], { cwd: join(work, "client"), timeout: 120_000 });
  packed = (JSON.parse(stdout) as Array<typeof packed>)[0]!;
  const manifest = JSON.parse(readFileSync(join(work, "client", "package.json"), "utf8")) as { name: string; version: string; dependencies: Record<string, string> };
  await installTarballOffline({
    consumerDir,
    tarball: join(consumerDir, packed.filename),
    packageName: manifest.name,
    version: manifest.version,
    dependencies: manifest.dependencies,
    repositoryLock: "package-lock.json",
  });
}, 180_000);
afterAll(async () => {
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

it("packs a fresh build with the licence, ESM, CommonJS and both sets of declarations", () => {
  const files = packed.files.map((file) => file.path);
  expect(files).toEqual(
    expect.arrayContaining([
      "LICENSE",
      "README.md",
      "package.json",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/cjs/index.js",
      "dist/cjs/index.d.ts",
      // Marks dist/cjs/*.js as CommonJS inside a "type": "module" package.
      "dist/cjs/package.json",
    ]),
  );
  expect(readFileSync(join(consumerDir, "node_modules/@eventbank/client/LICENSE"), "utf8")).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} eventbank contributors/);
});

it.each([
  {
    how: "imported by package name from the installed tarball",
    inputType: "module",
    program: consumer("esm", `import ${names} from "@eventbank/client";`, `import.meta.resolve("@eventbank/client")`, 5),
    resolvedTo: /\/consumer\/node_modules\/@eventbank\/client\/dist\/index\.js$/,
    balance: "5",
  },
  {
    // For CommonJS services: package.json exports -> dist/cjs.
    how: "required by package name from a CommonJS program",
    inputType: "commonjs",
    program: consumer("cjs", `const ${names} = require("@eventbank/client");`, `require.resolve("@eventbank/client")`, 7),
    resolvedTo: /\/consumer\/node_modules\/@eventbank\/client\/dist\/cjs\/index\.js$/,
    balance: "7",
  },
])("works when $how", async ({ inputType, program, resolvedTo, balance }) => {
  const { stdout } = await run(process.execPath, [`--input-type=${inputType}`, "-e", program], {
    cwd: consumerDir,
    env: { ...process.env, EVENTBANK_ADDRESS: server.address },
    timeout: 15_000,
  });
  const result = JSON.parse(stdout) as { resolved: string; balance: string; typedError: boolean };
  expect(result.resolved).toMatch(resolvedTo);
  expect(result.balance).toBe(balance);
  expect(result.typedError).toBe(true);
});

// What a TypeScript service compiles against: the .d.ts files the exports map points to, for
// `import` (.mts) and for `require` (.cts), under Node's own resolution (module nodenext).
const typedConsumer = (returnType: string) => `
import { createAccountClient, InsufficientFundsError, type AccountClient } from "@eventbank/client";
const client: AccountClient = createAccountClient({ address: "127.0.0.1:50051" });
export async function depositFive(): Promise<${returnType}> {
  const result = await client.deposit({ accountId: "a", amount: 5n });
  return result.account.balance;
}
export const refused = (error: unknown): boolean => error instanceof InsufficientFundsError && error.amount !== undefined;
`;

it("type-checks in a TypeScript consumer, ESM and CommonJS, each against its own declarations", async () => {
  const dir = consumerDir;
  const typecheck = async (returnType: string) => {
    writeFileSync(join(dir, "consumer.mts"), typedConsumer(returnType));
    writeFileSync(join(dir, "consumer.cts"), typedConsumer(returnType));
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", types: ["node"], noEmit: true },
        files: ["consumer.mts", "consumer.cts"],
      }),
    );
    return run(process.execPath, [resolve("node_modules/typescript/bin/tsc"), "-p", dir, "--traceResolution"], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }).then(
      ({ stdout }) => ({ ok: true, stdout }),
      (error: { stdout: string }) => ({ ok: false, stdout: error.stdout }),
    );
  };
  const good = await typecheck("bigint");
  const resolved = [...good.stdout.matchAll(/Module name '@eventbank\/client' was successfully resolved to '([^']+)'/g)].map((m) => m[1]!.replace(/^.*\/consumer\//, ""));
  expect(good.ok, good.stdout.split("\n").filter((line) => line.includes("error")).join("\n")).toBe(true);
  expect(new Set(resolved)).toEqual(new Set(["node_modules/@eventbank/client/dist/index.d.ts", "node_modules/@eventbank/client/dist/cjs/index.d.ts"]));
  // And the types are real: a balance is a bigint, not a string.
  const wrong = await typecheck("string");
  expect(wrong.ok).toBe(false);
  expect(wrong.stdout).toMatch(/consumer\.mts.*TS2322/);
  expect(wrong.stdout).toMatch(/consumer\.cts.*TS2322/);
});
