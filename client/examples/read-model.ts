/**
 * A tiny read model built from SubscribeAll: balances per currency and the
 * number of open accounts. The model and the position of the last event it
 * applied are saved together in one file, so after a restart it resumes
 * right after that event: nothing is counted twice or missed.
 *
 *   npx tsx client/examples/read-model.ts [state-file]    # default data/read-model.json
 *
 * In your own project, import from "@eventbank/client" instead of "../src/index.js".
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createAccountClient, type AccountEvent } from "../src/index.js";

interface ReadModel {
  /** Position of the last applied event; undefined: start from the beginning. */
  position: string | undefined;
  openAccounts: number;
  /** Currency -> total balance in minor units (a decimal string in the file, bigint in memory). */
  totals: Record<string, bigint>;
  /** Account id -> currency, to know where a deposit goes. */
  currencies: Record<string, string>;
}

const file = process.argv[2] ?? "data/read-model.json";
const model = load(file);
const client = createAccountClient({ address: process.env.EVENTBANK_ADDRESS ?? "127.0.0.1:50051" });
const stop = new AbortController();
process.once("SIGINT", () => stop.abort());

console.log(model.position ? `resuming after position ${model.position}` : "building from the first event");
try {
  let live = false;
  // resume: a dropped stream (server restart, network) continues after the last delivered event.
  for await (const item of client.subscribeAll({ fromPosition: model.position, resume: { maxAttempts: Infinity }, signal: stop.signal })) {
    if (item.type === "caughtUp") {
      if (!live) console.log("caught up:", summary(model));
      live = true;
      continue;
    }
    apply(model, item);
    model.position = item.position;
    save(file, model); // after every event, for simplicity; batch in real code
    if (live) console.log(`${item.type} on ${item.accountId}:`, summary(model));
  }
} finally {
  client.close();
}

function apply(state: ReadModel, event: AccountEvent): void {
  const currency = state.currencies[event.accountId] ?? "";
  switch (event.type) {
    case "opened":
      state.currencies[event.accountId] = event.currency;
      state.openAccounts++;
      break;
    case "deposited":
      state.totals[currency] = (state.totals[currency] ?? 0n) + event.amount;
      break;
    case "withdrawn":
      state.totals[currency] = (state.totals[currency] ?? 0n) - event.amount;
      break;
    case "closed":
      state.openAccounts--;
      break;
    case "unknown":
      break; // an event type newer than this code: skip it
  }
}

function summary(state: ReadModel): string {
  const totals = Object.entries(state.totals).map(([currency, total]) => `${currency} ${total}`);
  return `${state.openAccounts} open accounts; ${totals.join(", ") || "no money yet"}`;
}

function load(path: string): ReadModel {
  try {
    const saved = JSON.parse(readFileSync(path, "utf8")) as Omit<ReadModel, "totals"> & { totals: Record<string, string> };
    return { ...saved, totals: Object.fromEntries(Object.entries(saved.totals).map(([currency, total]) => [currency, BigInt(total)])) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    return { position: undefined, openAccounts: 0, totals: {}, currencies: {} };
  }
}

/** Write-then-rename, so a crash never leaves a half-written file. */
function save(path: string, state: ReadModel): void {
  mkdirSync(dirname(path), { recursive: true });
  const json = JSON.stringify(state, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value), 2);
  writeFileSync(`${path}.tmp`, json);
  renameSync(`${path}.tmp`, path);
}
