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

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});

it("works when imported by package name from the built dist", async () => {
  if (!existsSync("client/dist/index.js") || !existsSync("client/dist/index.d.ts")) {
    throw new Error("client/dist is missing: run `npm run build -w client` (npm test does it in pretest)");
  }
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", consumer], {
    env: { ...process.env, EVENTBANK_ADDRESS: server.address },
    timeout: 15_000,
  });
  const result = JSON.parse(stdout) as { resolved: string; balance: string; typedError: boolean };
  expect(result.resolved).toMatch(/\/client\/dist\/index\.js$/);
  expect(result.balance).toBe("5");
  expect(result.typedError).toBe(true);
});
