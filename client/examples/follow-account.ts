/**
 * Follows one account live: its history, a caught-up marker, then new events
 * as they happen. Survives server restarts (`resume`), stops on Ctrl+C.
 *
 *   npx tsx client/examples/follow-account.ts <account-id>
 *
 * In your own project, import from "@eventbank/client" instead of "../src/index.js".
 */
import { AccountNotFoundError, createAccountClient } from "../src/index.js";

const accountId = process.argv[2];
if (!accountId) {
  console.error("usage: npx tsx client/examples/follow-account.ts <account-id>");
  process.exit(2);
}

const client = createAccountClient({ address: process.env.EVENTBANK_ADDRESS ?? "127.0.0.1:50051" });
const stop = new AbortController();
process.once("SIGINT", () => stop.abort());

try {
  const account = await client.getAccount(accountId);
  console.log(`following ${account.accountId} (${account.owner}, ${account.currency}); Ctrl+C to stop`);
  let balance = 0n;
  // Ends cleanly (no error) when the signal aborts; the server stream is cancelled.
  for await (const item of client.subscribeAccount(accountId, { resume: { maxAttempts: Infinity }, signal: stop.signal })) {
    switch (item.type) {
      case "caughtUp":
        console.log(`-- live (balance ${balance}) --`);
        break;
      case "deposited":
        balance += item.amount;
        console.log(`#${item.revision} +${item.amount} -> ${balance}`);
        break;
      case "withdrawn":
        balance -= item.amount;
        console.log(`#${item.revision} -${item.amount} -> ${balance}`);
        break;
      default:
        console.log(`#${item.revision} ${item.type}`);
    }
  }
} catch (error) {
  if (!(error instanceof AccountNotFoundError)) throw error;
  console.error(`no account ${accountId}`);
  process.exitCode = 1;
} finally {
  client.close();
}
