/**
 * The in-memory form of an account (folded state, revision, idempotency
 * window) and its snapshot encoding.
 */
import type { AccountState, CommandRejection, ExistingAccount } from "../domain/account.js";
import { decodeRejectionJson, encodeRejectionJson } from "./event-codec.js";

/**
 * Bump whenever `evolve`, the account state or the idempotency window change
 * meaning or shape: snapshots written by another version are then ignored
 * (the stream is replayed), never misread.
 */
export const ACCOUNT_SNAPSHOT_VERSION = 2;

/** What a command id answers with when it is repeated. */
export interface CommandOutcome {
  revision: bigint;
  balance: bigint;
  status: ExistingAccount["status"];
  /** What the command recorded, so a reused command id with other content is caught. */
  fingerprint: string;
  /** Set when the command was refused: the recorded refusal, answered again to every repeat. */
  refusal?: CommandRejection;
}

/** Owned by the account's queue: only the command handler's lane for that account touches it. */
export interface LoadedAccount {
  state: AccountState;
  /** Revision of the last event read; undefined while the stream does not exist. */
  revision: bigint | undefined;
  /** Oldest first; at most the idempotency window's size. */
  recentCommands: Map<string, CommandOutcome>;
  /** Revision of the latest snapshot read or written, -1n for none. */
  snapshotRevision: bigint;
}

/**
 * A window entry: command id, revision, balance, 1 when closed, index into
 * `fingerprints`. Numbers are exact: revisions and balances stay below 2^53
 * (the balance limit is 2^53 - 1). Compact, because a snapshot carries the
 * whole window (up to 1,000 entries) and a cold load parses it.
 */
type OutcomeJson = [commandId: string, revision: number, balance: number, closed: 0 | 1, fingerprint: number, refusal?: Record<string, unknown>];

interface SnapshotJson {
  account: Omit<ExistingAccount, "balance"> & { balance: string };
  /** Distinct fingerprints of the window (most commands share a few). */
  fingerprints: string[];
  /** Oldest first. */
  recentCommands: OutcomeJson[];
}

/** JSON text of an existing account and its idempotency window. */
export function encodeSnapshot(loaded: LoadedAccount): string {
  const state = loaded.state;
  if (state.status === "none") throw new Error("no snapshot of an account that does not exist");
  const fingerprints: string[] = [];
  const fingerprintIndex = new Map<string, number>();
  const recentCommands: OutcomeJson[] = [];
  for (const [commandId, outcome] of loaded.recentCommands) {
    let index = fingerprintIndex.get(outcome.fingerprint);
    if (index === undefined) {
      index = fingerprints.push(outcome.fingerprint) - 1;
      fingerprintIndex.set(outcome.fingerprint, index);
    }
    const entry: OutcomeJson = [commandId, Number(outcome.revision), Number(outcome.balance), outcome.status === "closed" ? 1 : 0, index];
    if (outcome.refusal) entry.push(encodeRejectionJson(outcome.refusal));
    recentCommands.push(entry);
  }
  const json: SnapshotJson = { account: { ...state, balance: state.balance.toString() }, fingerprints, recentCommands };
  return JSON.stringify(json);
}

/** The inverse of encodeSnapshot; throws on text it did not write. */
export function decodeSnapshot(text: string, revision: bigint, windowSize: number): LoadedAccount {
  const json = JSON.parse(text) as SnapshotJson;
  const { account, fingerprints } = json;
  if (typeof account?.accountId !== "string" || (account.status !== "open" && account.status !== "closed") || !Array.isArray(fingerprints)) {
    throw new Error("not an account snapshot");
  }
  const recentCommands = new Map<string, CommandOutcome>();
  // Keep the newest `windowSize` entries, in case the window was made smaller since.
  const entries = json.recentCommands;
  for (let i = Math.max(0, entries.length - windowSize); i < entries.length; i++) {
    const [commandId, outcomeRevision, balance, closed, fingerprint, refusal] = entries[i]!;
    recentCommands.set(commandId, {
      revision: BigInt(outcomeRevision),
      balance: BigInt(balance),
      status: closed ? "closed" : "open",
      fingerprint: fingerprints[fingerprint]!,
      ...(refusal ? { refusal: decodeRejectionJson(refusal, { stream: account.accountId, revision: BigInt(outcomeRevision) }) } : {}),
    });
  }
  return {
    state: { status: account.status, accountId: account.accountId, owner: account.owner, currency: account.currency, balance: BigInt(account.balance) },
    revision,
    recentCommands,
    snapshotRevision: revision,
  };
}
