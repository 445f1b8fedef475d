/**
 * The built package as a consumer gets it: a separate Node process imports
 * "@eventbank/client" by name (node_modules -> package.json exports -> dist),
 * not through source paths. Needs `npm run build -w client` first (the root
 * pretest script runs it).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
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
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

function assertBuilt(...files: string[]): void {
  for (const file of files) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build -w client\` (npm test does it in pretest)`);
  }
}

it.each([
  {
    how: "imported by package name from the built dist",
    inputType: "module",
    program: consumer("esm", `import ${names} from "@eventbank/client";`, `import.meta.resolve("@eventbank/client")`, 5),
    built: ["client/dist/index.js", "client/dist/index.d.ts"],
    resolvedTo: /\/client\/dist\/index\.js$/,
    balance: "5",
  },
  {
    // For CommonJS services: package.json exports -> dist/cjs.
    how: "required by package name from a CommonJS program",
    inputType: "commonjs",
    program: consumer("cjs", `const ${names} = require("@eventbank/client");`, `require.resolve("@eventbank/client")`, 7),
    built: ["client/dist/cjs/index.js", "client/dist/cjs/index.d.ts"],
    resolvedTo: /\/client\/dist\/cjs\/index\.js$/,
    balance: "7",
  },
])("works when $how", async ({ inputType, program, built, resolvedTo, balance }) => {
  assertBuilt(...built);
  const { stdout } = await run(process.execPath, [`--input-type=${inputType}`, "-e", program], {
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
  assertBuilt("client/dist/index.d.ts", "client/dist/cjs/index.d.ts");
  // Inside the repository, so that "@eventbank/client" resolves through node_modules like a dependency.
  const dir = join("node_modules", ".cache", `eventbank-consumer-${process.pid}`);
  mkdirSync(dir, { recursive: true });
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
    return run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", dir, "--traceResolution"], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }).then(
      ({ stdout }) => ({ ok: true, stdout }),
      (error: { stdout: string }) => ({ ok: false, stdout: error.stdout }),
    );
  };
  try {
    const good = await typecheck("bigint");
    const resolved = [...good.stdout.matchAll(/Module name '@eventbank\/client' was successfully resolved to '([^']+)'/g)].map((m) => m[1]!.replace(/^.*\/client\//, "client/"));
    expect(good.ok, good.stdout.split("\n").filter((line) => line.includes("error")).join("\n")).toBe(true);
    expect(new Set(resolved)).toEqual(new Set(["client/dist/index.d.ts", "client/dist/cjs/index.d.ts"]));
    // And the types are real: a balance is a bigint, not a string.
    const wrong = await typecheck("string");
    expect(wrong.ok).toBe(false);
    expect(wrong.stdout).toMatch(/consumer\.mts.*TS2322/);
    expect(wrong.stdout).toMatch(/consumer\.cts.*TS2322/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
