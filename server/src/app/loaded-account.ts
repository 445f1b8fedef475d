/**
 * The in-memory form of an account (folded state, revision, idempotency
 * window) and its snapshot encoding.
 */
import type { AccountState, CommandRejection, ExistingAccount } from "../domain/account.js";
import { ACCOUNT_STREAM_PREFIX } from "../store/event-store.js";
import type { StoredSnapshot } from "../store/snapshot-store.js";
import type { LoadedAggregate } from "./command-runtime.js";
import { decodeRejectionJson, encodeRejectionJson } from "./event-schemas.js";

/**
 * Version of the snapshot JSON. Bump whenever `evolve`, the account state or
 * the idempotency window change meaning or shape, and add an upcaster from
 * the previous version to SNAPSHOT_UPCASTS if one can be written; a snapshot
 * of a version without one (or of a newer release) is ignored and the stream
 * replayed, never misread. Version 1 (release 0.1.0) kept the account id in
 * the state; version 2 takes it from the stream, like AccountOpened v2, and
 * its window entries may carry a recorded refusal (CommandRejected); version
 * 3 adds the holds of transfers (to the account and to window entries).
 */
export const ACCOUNT_SNAPSHOT_VERSION = 3;

/** What the window keeps of the account a command left. */
export interface AccountOutcome {
  balance: bigint;
  status: ExistingAccount["status"];
  /** The same object as the state's (states are immutable), so entries share it. */
  holds: ExistingAccount["holds"];
}

/** An account as the command runtime holds it. */
export type LoadedAccount = LoadedAggregate<AccountState, CommandRejection>;

/**
 * A window entry: command id, revision, balance, 1 when closed, index into
 * `fingerprints`, and for a refused command the refusal (CommandRejected's data). Numbers are exact: revisions and balances stay below 2^53
 * (the balance limit is 2^53 - 1). Compact, because a snapshot carries the
 * whole window (up to 1,000 entries) and a cold load parses it.
 */
type OutcomeJson = [commandId: string, revision: number, balance: number, closed: 0 | 1, fingerprint: number, refusal?: Record<string, unknown> | 0, holds?: Record<string, string>];

interface SnapshotJson {
  account: Omit<ExistingAccount, "balance" | "accountId" | "holds"> & { balance: string; holds: Record<string, string> };
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
    const { balance, status, holds } = outcome.outcome as AccountOutcome;
    const entry: OutcomeJson = [commandId, Number(outcome.revision), Number(balance), status === "closed" ? 1 : 0, index];
    const held = Object.keys(holds).length > 0;
    if (outcome.refusal || held) entry.push(outcome.refusal ? encodeRejectionJson(outcome.refusal) : 0);
    if (held) entry.push(encodeHolds(holds));
    recentCommands.push(entry);
  }
  const account = { status: state.status, owner: state.owner, currency: state.currency, balance: state.balance.toString(), holds: encodeHolds(state.holds) };
  const json: SnapshotJson = { account, fingerprints, recentCommands };
  return JSON.stringify(json);
}

/**
 * SNAPSHOT_UPCASTS[n] turns the JSON of version n into version n + 1, or
 * says undefined when it cannot (the snapshot is then ignored).
 */
const SNAPSHOT_UPCASTS: Record<number, (json: unknown, accountId: string) => unknown> = {
  // v1 -> v2: the account id moves out of the state; a v1 snapshot naming another account is not this one's.
  1: (json, accountId) => {
    const { account, ...rest } = json as { account?: { accountId?: unknown } };
    if (account?.accountId !== accountId) return undefined;
    const { accountId: _accountId, ...v2account } = account;
    return { ...rest, account: v2account };
  },
  // v2 -> v3: no transfers before, so no holds.
  2: (json) => {
    const { account, ...rest } = json as { account?: object };
    return { ...rest, account: { ...account, holds: {} } };
  },
};

/**
 * The account a stored snapshot holds, upcast from an older version when
 * there is an upcaster; undefined when the snapshot is to be ignored (a
 * version this release cannot read). Throws on text a known version cannot have.
 */
export function decodeStoredSnapshot(stored: StoredSnapshot, windowSize: number): LoadedAccount | undefined {
  const { version, stream } = stored;
  if (!Number.isSafeInteger(version) || version < 1 || version > ACCOUNT_SNAPSHOT_VERSION) return undefined;
  const accountId = stream.slice(ACCOUNT_STREAM_PREFIX.length);
  let json: unknown = JSON.parse(stored.state);
  for (let from = version; from < ACCOUNT_SNAPSHOT_VERSION; from++) {
    const upcast = SNAPSHOT_UPCASTS[from];
    json = upcast?.(json, accountId);
    if (json === undefined) return undefined;
  }
  return decodeSnapshotJson(json as SnapshotJson, accountId, stored.revision, windowSize);
}

/** The inverse of encodeSnapshot; throws on JSON it did not write. */
function decodeSnapshotJson(json: SnapshotJson, accountId: string, revision: bigint, windowSize: number): LoadedAccount {
  const { account, fingerprints } = json;
  if (
    (account?.status !== "open" && account?.status !== "closed") ||
    typeof account.owner !== "string" ||
    typeof account.currency !== "string" ||
    typeof account.balance !== "string" ||
    !/^[0-9]{1,19}$/.test(account.balance) ||
    !Array.isArray(fingerprints) ||
    !Array.isArray(json.recentCommands)
  ) {
    throw new Error("not an account snapshot");
  }
  const recentCommands: LoadedAccount["recentCommands"] = new Map();
  // Keep the newest `windowSize` entries, in case the window was made smaller since.
  const entries = json.recentCommands;
  for (let i = Math.max(0, entries.length - windowSize); i < entries.length; i++) {
    const [commandId, outcomeRevision, balance, closed, fingerprint, refusal, holds] = entries[i]!;
    recentCommands.set(commandId, {
      revision: BigInt(outcomeRevision),
      outcome: { balance: BigInt(balance), status: closed ? "closed" : "open", holds: holds ? decodeHolds(holds) : NO_HOLDS } satisfies AccountOutcome,
      fingerprint: fingerprints[fingerprint]!,
      ...(refusal ? { refusal: decodeRejectionJson(refusal, { stream: ACCOUNT_STREAM_PREFIX + accountId, revision: BigInt(outcomeRevision) }) } : {}),
    });
  }
  return {
    state: { status: account.status, accountId, owner: account.owner, currency: account.currency, balance: BigInt(account.balance), holds: decodeHolds(account.holds) },
    revision,
    recentCommands,
    snapshotRevision: revision,
  };
}

const NO_HOLDS: ExistingAccount["holds"] = Object.freeze({});

function encodeHolds(holds: ExistingAccount["holds"]): Record<string, string> {
  return Object.fromEntries(Object.entries(holds).map(([transferId, amount]) => [transferId, amount.toString()]));
}

function decodeHolds(json: unknown): ExistingAccount["holds"] {
  if (typeof json !== "object" || json === null) throw new Error("not an account snapshot: holds");
  const entries = Object.entries(json as Record<string, unknown>);
  if (entries.length === 0) return NO_HOLDS;
  return Object.fromEntries(
    entries.map(([transferId, amount]) => {
      if (typeof amount !== "string" || !/^[0-9]{1,19}$/.test(amount)) throw new Error("not an account snapshot: hold amount");
      return [transferId, BigInt(amount)];
    }),
  );
}
