/**
 * A load process (forked by bench/run.ts, driven over IPC): one generated
 * client, a fixed number of Deposits in flight, unique command ids.
 *
 *   -> { type: "setup", address, accounts, fund? }  opens the accounts (and funds them for transfer rounds)
 *   -> { type: "round", accounts, concurrency, warmupMs, durationMs }
 *   <- { type: "done", result }  /  { type: "error", message }
 *
 * A round runs `warmupMs` unmeasured, then counts the responses that arrive
 * during `durationMs`, then stops issuing and waits for what is in flight.
 */
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { AccountServiceClient } from "../client/src/gen/bank/v1/account_service.js";
import { TransferServiceClient } from "../client/src/gen/bank/v1/transfer_service.js";

export interface RoundRequest {
  type: "round";
  /** Deposits go round-robin over these accounts; transfers from each to the next. */
  accounts: string[];
  /** Default: deposit. */
  operation?: "deposit" | "transfer";
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface RoundResult {
  ok: number;
  errors: number;
  firstError: string | undefined;
  seconds: number;
  okPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Every call answered OK in the round, warm-up and drain included (for CPU per call). */
  completed: number;
}

export type LoadMessage = { type: "setup"; address: string; accounts: string[]; fund?: boolean } | RoundRequest;
export type LoadReply = { type: "ready" } | { type: "done"; result: RoundResult } | { type: "error"; message: string };

let client: AccountServiceClient | undefined;
let transfers: TransferServiceClient | undefined;
let round = 0;

function deposit(accountId: string, commandId: string, callback: (error: ServiceError | null) => void): void {
  client!.deposit({ accountId, amount: 1n, commandId }, new Metadata(), {}, callback);
}

/** 1 from `from` to `to` (accounts are funded in setup, so nothing is refused). */
function transfer(from: string, to: string, transferId: string, callback: (error: ServiceError | null) => void): void {
  transfers!.transferMoney({ transferId, fromAccountId: from, toAccountId: to, amount: 1n }, new Metadata(), {}, callback);
}

async function setup(address: string, accounts: string[], fund = false): Promise<void> {
  client?.close();
  client = new AccountServiceClient(address, credentials.createInsecure());
  transfers?.close();
  transfers = new TransferServiceClient(address, credentials.createInsecure());
  // 64 at a time: the scale bench opens (and so loads) tens of thousands of accounts.
  for (let i = 0; i < accounts.length; i += 64) {
    await Promise.all(
      accounts.slice(i, i + 64).map(
        (accountId) =>
          new Promise<void>((resolve, reject) =>
            client!.openAccount({ accountId, owner: "Bench", currency: "EUR", commandId: `open-${accountId}` }, (error) =>
              // An account left open by an earlier setup (or seeded) is fine.
              error && error.code !== 6 ? reject(error) : resolve(),
            ),
          ),
      ),
    );
  }
  if (!fund) return;
  // Funds for transfer rounds (the same command id each setup: applied once).
  await Promise.all(
    accounts.map(
      (accountId) =>
        new Promise<void>((resolve, reject) =>
          client!.deposit({ accountId, amount: 1_000_000_000n, commandId: `fund-${accountId}` }, (error) => (error ? reject(error) : resolve())),
        ),
    ),
  );
}

function runRound(request: RoundRequest): Promise<RoundResult> {
  round += 1;
  const prefix = `${process.pid}-${round}-`;
  const started = performance.now();
  const measureFrom = started + request.warmupMs;
  const stopAt = measureFrom + request.durationMs;
  const latencies: number[] = [];
  let ok = 0;
  let completed = 0;
  let errors = 0;
  let firstError: string | undefined;
  let counter = 0;
  let inFlight = 0;

  return new Promise((resolve) => {
    const finish = () =>
      resolve({
        ok,
        completed,
        errors,
        firstError,
        seconds: request.durationMs / 1000,
        okPerSecond: ok / (request.durationMs / 1000),
        ...percentiles(latencies),
      });
    const issue = () => {
      const sent = performance.now();
      if (sent >= stopAt) {
        if (inFlight === 0) finish();
        return;
      }
      const n = counter++;
      inFlight += 1;
      const accounts = request.accounts;
      const send =
        request.operation === "transfer"
          ? (done: (error: ServiceError | null) => void) => transfer(accounts[n % accounts.length]!, accounts[(n + 1) % accounts.length]!, `t${prefix}${n}`, done)
          : (done: (error: ServiceError | null) => void) => deposit(accounts[n % accounts.length]!, prefix + n, done);
      send((error) => {
        inFlight -= 1;
        const now = performance.now();
        if (!error) completed += 1;
        if (sent >= measureFrom && now <= stopAt) {
          if (error) {
            errors += 1;
            firstError ??= `${error.code} ${error.details}`;
          } else {
            ok += 1;
            latencies.push(now - sent);
          }
        } else if (error) {
          errors += 1;
          firstError ??= `${error.code} ${error.details}`;
        }
        issue();
      });
    };
    for (let i = 0; i < request.concurrency; i++) issue();
  });
}

function percentiles(values: number[]): { p50Ms: number; p99Ms: number } {
  if (values.length === 0) return { p50Ms: NaN, p99Ms: NaN };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}

process.on("message", (message: LoadMessage) => {
  const reply = (value: LoadReply) => process.send!(value);
  const work = message.type === "setup" ? setup(message.address, message.accounts, message.fund).then(() => reply({ type: "ready" })) : runRound(message).then((result) => reply({ type: "done", result }));
  work.catch((error: unknown) => reply({ type: "error", message: error instanceof Error ? error.message : String(error) }));
});
process.on("disconnect", () => {
  client?.close();
  process.exit(0);
});
