/**
 * Opens an account, moves money, handles a typed error, reads the history.
 *
 *   npm start                                   # in another terminal
 *   npx tsx client/examples/open-and-move-money.ts
 *
 * In your own project, import from "@eventbank/client" instead of "../src/index.js".
 */
import { createAccountClient, InsufficientFundsError } from "../src/index.js";

const client = createAccountClient({ address: process.env.EVENTBANK_ADDRESS ?? "127.0.0.1:50051" });
const accountId = `demo-${Date.now()}`;

try {
  await client.openAccount({ accountId, owner: "Ada Lovelace", currency: "EUR" });
  // Amounts are bigint minor units: 12_50n is EUR 12.50. The SDK gives every
  // command an id, so its automatic retries never apply a command twice.
  await client.deposit({ accountId, amount: 12_50n });
  const { account } = await client.withdraw({ accountId, amount: 2_50n });
  console.log(`${account.accountId}: ${account.balance} ${account.currency} cents at revision ${account.revision}`);

  try {
    await client.withdraw({ accountId, amount: 1_000_00n });
  } catch (error) {
    if (!(error instanceof InsufficientFundsError)) throw error;
    console.log(`refused (${error.reason}): balance ${error.balance}, asked for ${error.amount}`);
  }

  // Pass your own command id to make a retry across process restarts safe too.
  const paid = await client.withdraw({ accountId, amount: 10_00n, commandId: `${accountId}-payout-1` });
  const again = await client.withdraw({ accountId, amount: 10_00n, commandId: `${accountId}-payout-1` });
  console.log(`same command twice -> revision ${paid.revision} and ${again.revision}, balance ${again.account.balance}`);

  await client.closeAccount({ accountId });
  for (const event of await client.readAccountEvents(accountId)) {
    const detail = event.type === "deposited" || event.type === "withdrawn" ? ` ${event.amount}` : "";
    console.log(`  #${event.revision} ${event.type}${detail}`);
  }
} finally {
  client.close();
}
