/**
 * Shared helpers of the reliability suite: run sizes (small by default,
 * larger with EVENTBANK_HEAVY=1), a seeded PRNG for workloads, separate
 * channels, full stream reads and the invariant check every test ends with.
 */
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { AccountServiceClient, ReadDirection } from "../../../client/src/gen/bank/v1/account_service.js";
import { AccountStatus, type Account, type AccountEvent } from "../../../client/src/gen/bank/v1/account.js";
import { call, decodeError, type DecodedError } from "../../support/grpc-client.js";

export const HEAVY = process.env.EVENTBANK_HEAVY === "1";

/** `light` by default, `heavy` with EVENTBANK_HEAVY=1. */
export function size(light: number, heavy: number): number {
  return HEAVY ? heavy : light;
}

/** Seed for workloads and fast-check: EVENTBANK_SEED replays a run; otherwise fresh and printed. */
export function seedFor(name: string): number {
  const fixed = process.env.EVENTBANK_SEED;
  const seed = fixed !== undefined && fixed !== "" ? Number(fixed) : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0;
  // Printed so a failing run can be replayed with EVENTBANK_SEED=<seed>.
  console.log(`[reliability] ${name}: seed ${seed} (replay with EVENTBANK_SEED=${seed})`);
  return seed;
}

/** mulberry32: a small deterministic PRNG for workload shapes. */
export function prng(seed: number): { next(): number; int(min: number, max: number): number; pick<T>(items: readonly T[]): T } {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)]!,
  };
}

/**
 * A client on its own channel and its own TCP connection (grpc-js shares
 * subchannels between clients of the same target unless told otherwise).
 */
export function connectSeparately(address: string): AccountServiceClient {
  return new AccountServiceClient(address, credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
    // Reconnect quickly after a server restart instead of backing off for seconds.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 500,
  });
}

export const deadline = (ms: number): Date => new Date(Date.now() + ms);

/** Every event of an account, in revision order, through ReadAccountEvents. */
export async function readAllEvents(client: AccountServiceClient, accountId: string): Promise<AccountEvent[]> {
  const events: AccountEvent[] = [];
  for (let from = 0n, pages = 0; pages < 10_000; pages++) {
    const page = await call(
      client,
      client.readAccountEvents,
      { accountId, fromRevision: from, maxCount: 1000, direction: ReadDirection.READ_DIRECTION_FORWARDS },
      { deadline: deadline(20_000) },
    );
    events.push(...page.events);
    if (page.events.length < 1000) break;
    from += 1000n;
  }
  return events;
}

export const MAX_BALANCE = BigInt(Number.MAX_SAFE_INTEGER);
export const MAX_AMOUNT = 1_000_000_000_000n;

/** The signed amount an event adds to the balance. */
export function delta(event: AccountEvent): bigint {
  switch (event.payload?.$case) {
    case "deposited":
      return event.payload.value.amount;
    case "withdrawn":
      return -event.payload.value.amount;
    default:
      return 0n;
  }
}

/**
 * What must hold for every stored account, whatever happened before:
 * revisions 0..n without gap, opened first and only first, nothing after a
 * close, every amount within bounds, the running balance never below 0 or
 * above 2^53 - 1, the balance equal to the sum of the events, and each
 * command id recorded once. Returns each command id's number of events.
 */
export function checkAccountInvariants(accountId: string, events: AccountEvent[], account: Account | undefined): Map<string, number> {
  const problems: string[] = [];
  let running = 0n;
  let closed = false;
  const commandIds = new Map<string, number>();
  events.forEach((event, index) => {
    if (event.revision !== BigInt(index)) problems.push(`event ${index} has revision ${event.revision}`);
    if (event.accountId !== accountId) problems.push(`event ${index} belongs to ${event.accountId}`);
    const kind = event.payload?.$case;
    if ((index === 0) !== (kind === "opened")) problems.push(`event ${index} is ${kind}`);
    if (closed) problems.push(`event ${index} (${kind}) after the account closed`);
    if (kind === "closed") {
      closed = true;
      if (running !== 0n) problems.push(`closed at balance ${running}`);
    }
    if (kind === "deposited" || kind === "withdrawn") {
      const amount = event.payload!.value.amount;
      if (amount < 1n || amount > MAX_AMOUNT) problems.push(`event ${index} has amount ${amount}`);
    }
    if (kind === "rejected") {
      // A refusal is decided on the state it is recorded after, never on a stale copy.
      const { reason, details } = event.payload!.value as { reason: string; details: Record<string, string> };
      if (details.balance !== String(running)) problems.push(`event ${index} records ${reason} at balance ${details.balance}, but the balance was ${running}`);
    }
    running += delta(event);
    if (running < 0n) problems.push(`balance ${running} after revision ${index}`);
    if (running > MAX_BALANCE) problems.push(`balance ${running} over 2^53-1 after revision ${index}`);
    commandIds.set(event.commandId, (commandIds.get(event.commandId) ?? 0) + 1);
  });
  for (const [commandId, count] of commandIds) if (count > 1) problems.push(`command ${commandId} recorded ${count} times`);
  if (account) {
    if (account.balance !== running) problems.push(`account balance ${account.balance} but events sum to ${running}`);
    if (account.revision !== BigInt(events.length - 1)) problems.push(`account revision ${account.revision} but ${events.length} events`);
    const expectedStatus = closed ? AccountStatus.ACCOUNT_STATUS_CLOSED : AccountStatus.ACCOUNT_STATUS_OPEN;
    if (account.status !== expectedStatus) problems.push(`account status ${account.status}, events say ${expectedStatus}`);
  }
  if (problems.length > 0) throw new Error(`account ${accountId} breaks its invariants:\n  ${problems.slice(0, 20).join("\n  ")}`);
  return commandIds;
}

/** Reads an account and its events and checks the invariants; returns both. */
export async function verifyAccount(client: AccountServiceClient, accountId: string) {
  const { account } = await call(client, client.getAccount, { accountId }, { deadline: deadline(20_000) });
  const events = await readAllEvents(client, accountId);
  const commandIds = checkAccountInvariants(accountId, events, account);
  return { account: account!, events, commandIds };
}

/** Codes a well-behaved server may answer with; all but OK must carry an ErrorInfo reason. */
export const ACCEPTABLE_CODES: ReadonlySet<status> = new Set([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.ABORTED,
  status.OUT_OF_RANGE,
  status.RESOURCE_EXHAUSTED,
]);

/** Fails with a readable message unless the error is an acceptable status with an eventbank ErrorInfo. */
export function expectWellFormedRejection(error: unknown, what: string): DecodedError {
  const decoded = decodeError(error);
  if (!ACCEPTABLE_CODES.has(decoded.code) || decoded.domain !== "eventbank" || !decoded.reason) {
    throw new Error(`${what}: answered ${status[decoded.code] ?? decoded.code} (${decoded.details}) reason=${decoded.reason ?? "none"}`);
  }
  return decoded;
}

export function isServiceError(error: unknown): error is ServiceError {
  return typeof error === "object" && error !== null && "code" in error && typeof (error as { code: unknown }).code === "number";
}

/** Waits for a condition, polling; throws with `what` after `timeoutMs`. */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`not reached in ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** JSON.stringify that prints bigints, for failure messages. */
export function show(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
}
