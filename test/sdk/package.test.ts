/**
 * The built package as a consumer gets it: a separate Node process imports
 * "@eventbank/client" by name (node_modules -> package.json exports -> dist),
 * not through source paths. Needs `npm run build -w client` first (the root
 * pretest script runs it).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);

const consumer = `
import { createAccountClient, AccountNotFoundError, EventbankError } from "@eventbank/client";
const client = createAccountClient({ address: process.env.EVENTBANK_ADDRESS });
const accountId = "pkg-" + process.pid;
await client.openAccount({ accountId, owner: "Package", currency: "EUR" });
const deposited = await client.deposit({ accountId, amount: 5n });
const missing = await client.getAccount("pkg-missing").catch((error) => error);
client.close();
console.log(JSON.stringify({
  resolved: import.meta.resolve("@eventbank/client"),
  balance: String(deposited.account.balance),
  typedError: missing instanceof AccountNotFoundError && missing instanceof EventbankError,
}));
`;

// The same through require(), for CommonJS services (package.json exports -> dist/cjs).
const commonJsConsumer = `
const { createAccountClient, AccountNotFoundError, EventbankError } = require("@eventbank/client");
(async () => {
  const client = createAccountClient({ address: process.env.EVENTBANK_ADDRESS });
  const accountId = "pkg-cjs-" + process.pid;
  await client.openAccount({ accountId, owner: "Package", currency: "EUR" });
  const deposited = await client.deposit({ accountId, amount: 7n });
  const missing = await client.getAccount("pkg-missing").catch((error) => error);
  client.close();
  console.log(JSON.stringify({
    resolved: require.resolve("@eventbank/client"),
    balance: String(deposited.account.balance),
    typedError: missing instanceof AccountNotFoundError && missing instanceof EventbankError,
  }));
})();
`;

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

it("works when imported by package name from the built dist", async () => {
  assertBuilt("client/dist/index.js", "client/dist/index.d.ts");
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", consumer], {
    env: { ...process.env, EVENTBANK_ADDRESS: server.address },
    timeout: 15_000,
  });
  const result = JSON.parse(stdout) as { resolved: string; balance: string; typedError: boolean };
  expect(result.resolved).toMatch(/\/client\/dist\/index\.js$/);
  expect(result.balance).toBe("5");
  expect(result.typedError).toBe(true);
});

it("works when required by package name from a CommonJS program", async () => {
  assertBuilt("client/dist/cjs/index.js", "client/dist/cjs/index.d.ts");
  const { stdout } = await run(process.execPath, ["--input-type=commonjs", "-e", commonJsConsumer], {
    env: { ...process.env, EVENTBANK_ADDRESS: server.address },
    timeout: 15_000,
  });
  const result = JSON.parse(stdout) as { resolved: string; balance: string; typedError: boolean };
  expect(result.resolved).toMatch(/\/client\/dist\/cjs\/index\.js$/);
  expect(result.balance).toBe("7");
  expect(result.typedError).toBe(true);
});
