/**
 * A mixed command workload and the bookkeeping to judge it afterwards: every
 * command sent is recorded with what the client saw (acknowledged with a
 * revision and balance, refused with a status, or unknown because the call
 * broke), so tests can compare the client's view with the store.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import type { AccountServiceClient } from "../../../client/src/gen/bank/v1/account_service.js";
import type { AccountEvent } from "../../../client/src/gen/bank/v1/account.js";
import { call, decodeError } from "../../support/grpc-client.js";
import { deadline, delta, show } from "./reliability.js";

export interface SentCommand {
  accountId: string;
  commandId: string;
  type: "deposit" | "withdraw";
  amount: bigint;
  outcome:
    | { kind: "pending" }
    | { kind: "ok"; revision: bigint; balance: bigint }
    | { kind: "refused"; code: number; reason: string | undefined; details: string; metadata: Record<string, string> };
}

export class Ledger {
  readonly commands = new Map<string, SentCommand>();

  record(command: Omit<SentCommand, "outcome">): SentCommand {
    const entry: SentCommand = { ...command, outcome: { kind: "pending" } };
    this.commands.set(`${command.accountId}/${command.commandId}`, entry);
    return entry;
  }

  get(accountId: string, commandId: string): SentCommand | undefined {
    return this.commands.get(`${accountId}/${commandId}`);
  }

  all(): SentCommand[] {
    return [...this.commands.values()];
  }

  acknowledged(): SentCommand[] {
    return this.all().filter((c) => c.outcome.kind === "ok");
  }
}

/** Sends one deposit or withdrawal and records what came back. Never throws for a status. */
export async function send(client: AccountServiceClient, ledger: Ledger, command: Omit<SentCommand, "outcome">, timeoutMs = 20_000): Promise<SentCommand> {
  const entry = ledger.get(command.accountId, command.commandId) ?? ledger.record(command);
  const request = { accountId: command.accountId, amount: command.amount, commandId: command.commandId };
  try {
    const method = command.type === "deposit" ? client.deposit : client.withdraw;
    const response = await call(client, method as typeof client.deposit, request, { deadline: deadline(timeoutMs) });
    const outcome = { kind: "ok" as const, revision: response.revision, balance: response.account!.balance };
    if (entry.outcome.kind === "ok" && (entry.outcome.revision !== outcome.revision || entry.outcome.balance !== outcome.balance)) {
      throw new Error(`command ${command.commandId} acknowledged twice with different outcomes: ${show(entry.outcome)} then ${show(outcome)}`);
    }
    entry.outcome = outcome;
  } catch (error) {
    if (!(typeof error === "object" && error !== null && "code" in error)) throw error;
    const decoded = decodeError(error as ServiceError);
    // A refusal never overwrites an acknowledgement seen earlier for the same command id.
    if (entry.outcome.kind !== "ok") entry.outcome = { kind: "refused", code: decoded.code, reason: decoded.reason, details: decoded.details, metadata: decoded.metadata };
  }
  return entry;
}

/** Refusals the server records in the stream (README, "one command id, one answer"). */
export const RECORDED_REFUSALS: ReadonlySet<string> = new Set(["INSUFFICIENT_FUNDS", "BALANCE_NOT_ZERO", "BALANCE_LIMIT_EXCEEDED"]);

/** Codes after which the command may or may not have been written (the client cannot tell). */
export function isUncertain(outcome: SentCommand["outcome"]): boolean {
  if (outcome.kind === "pending") return true;
  if (outcome.kind === "ok") return false;
  // A status from eventbank with a domain reason is a definite "not applied";
  // transport failures (no reason) and deadline/cancel/unavailable are uncertain.
  return (
    outcome.reason === undefined ||
    outcome.code === status.UNAVAILABLE ||
    outcome.code === status.DEADLINE_EXCEEDED ||
    outcome.code === status.CANCELLED ||
    outcome.code === status.INTERNAL ||
    outcome.code === status.UNKNOWN
  );
}

/**
 * Compares the store with what clients saw, for one account's events:
 * - every acknowledged command is stored exactly once, at the revision and
 *   with the balance its acknowledgement reported (so no update was lost);
 * - every refusal that depends on the balance (INSUFFICIENT_FUNDS, ...) is
 *   stored as a CommandRejected at the revision its refusal reported; every
 *   other definite refusal is absent;
 * - every stored command was sent by this test (or is in `allowed`);
 * - uncertain commands are stored at most once (the invariant check already
 *   guarantees "once").
 */
export function compareWithStore(accountId: string, events: AccountEvent[], ledger: Ledger, allowed: ReadonlySet<string> = new Set()): void {
  const problems: string[] = [];
  const stored = new Map<string, AccountEvent>();
  const balanceAt: bigint[] = [];
  let running = 0n;
  for (const event of events) {
    stored.set(event.commandId, event);
    running += delta(event);
    balanceAt.push(running);
  }
  for (const command of ledger.all()) {
    if (command.accountId !== accountId) continue;
    const event = stored.get(command.commandId);
    const outcome = command.outcome;
    if (outcome.kind === "ok") {
      if (!event) problems.push(`acknowledged ${command.type} ${command.commandId} (revision ${outcome.revision}) is not stored`);
      else {
        if (event.revision !== outcome.revision) problems.push(`${command.commandId} acknowledged at revision ${outcome.revision}, stored at ${event.revision}`);
        if (balanceAt[Number(event.revision)] !== outcome.balance) {
          problems.push(`${command.commandId} acknowledged balance ${outcome.balance}, store says ${balanceAt[Number(event.revision)]} at revision ${event.revision}`);
        }
        const kind = command.type === "deposit" ? "deposited" : "withdrawn";
        if (event.payload?.$case !== kind || event.payload.value.amount !== command.amount) problems.push(`${command.commandId} stored as ${show(event.payload)}`);
      }
    } else if (outcome.kind === "refused" && !isUncertain(outcome) && outcome.reason !== undefined && RECORDED_REFUSALS.has(outcome.reason)) {
      const revision = outcome.metadata.revision;
      if (!event || event.payload?.$case !== "rejected") problems.push(`${command.commandId} was refused (${outcome.reason}) but no refusal is stored: ${show(event?.payload)}`);
      else if (String(event.revision) !== revision || event.payload.value.reason !== outcome.reason) {
        problems.push(`${command.commandId} was refused (${outcome.reason}) at revision ${revision}, the store has ${event.payload.value.reason} at ${event.revision}`);
      }
    } else if (outcome.kind === "refused" && !isUncertain(outcome) && event) {
      problems.push(`${command.commandId} was refused (${outcome.reason}) but is stored at revision ${event.revision}`);
    }
  }
  for (const [commandId, event] of stored) {
    if (event.revision === 0n || allowed.has(commandId)) continue;
    if (!ledger.get(accountId, commandId)) problems.push(`stored command ${commandId} at revision ${event.revision} was never sent`);
  }
  if (problems.length > 0) throw new Error(`account ${accountId}: the store disagrees with the clients:\n  ${problems.slice(0, 20).join("\n  ")}`);
}
