/**
 * Command handling: load the account (cache, then the stream's tail), check
 * idempotency, decide, append with the loaded revision as expected revision.
 *
 * - Commands on one account run one at a time in this process (KeyedQueue),
 *   so they never conflict with each other; conflicts come from other
 *   processes sharing the store and are retried a bounded number of times.
 * - A command carrying the client's expected revision is never retried: a
 *   mismatch is a RevisionConflictError.
 * - Idempotency: each loaded account remembers the outcome of its most recent
 *   commands (the window, rebuilt from event metadata on every load). A
 *   command id seen there returns its first outcome and appends nothing.
 *   Rejected commands are remembered by this process in a bounded LRU.
 */
import { decide, evolve, initialState, type AccountCommand, type AccountEvent, type AccountState, type ExistingAccount } from "../domain/account.js";
import { AccountNotFoundError, DomainError } from "../domain/errors.js";
import { validateAccountId, validateCommandId } from "../domain/rules.js";
import {
  accountStream,
  WrongExpectedRevisionError,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from "../store/event-store.js";
import { CommandCancelledError, CommandIdReusedError, ConcurrencyRetriesExhaustedError, RevisionConflictError } from "./errors.js";
import { decodeEvent, encodeEventData } from "./event-codec.js";
import { eventIdFor } from "./event-ids.js";
import { KeyedQueue } from "./keyed-queue.js";
import { LruCache } from "./lru-cache.js";

export interface CommandContext {
  commandId: string;
  correlationId: string;
  causationId: string;
  principal?: string;
  /** From the client: apply only at exactly this revision, never retry. */
  expectedRevision?: bigint;
  /** Aborted when the caller's deadline passes or it cancels: nothing is appended after that. */
  signal?: AbortSignal;
}

export interface AccountSnapshot {
  account: ExistingAccount;
  /** Stream revision of the last event folded into `account`. */
  revision: bigint;
}

export interface CommandHandlerOptions {
  /** Attempts per command when other writers conflict (1 = no retry). */
  maxAttempts?: number;
  /** Accounts kept in memory. */
  cacheSize?: number;
  /** Most recent command ids remembered per account. */
  idempotencyWindow?: number;
  /** Rejected commands remembered by this process. */
  rejectionMemory?: number;
  /** Events read per page when loading a stream. */
  readPageSize?: number;
}

interface CommandOutcome {
  revision: bigint;
  balance: bigint;
  status: ExistingAccount["status"];
  fingerprint: string;
}

/** The in-memory form of an account: folded state plus its idempotency window. Owned by the account's queue. */
interface LoadedAccount {
  state: AccountState;
  /** Revision of the last event read; undefined while the stream does not exist. */
  revision: bigint | undefined;
  recentCommands: Map<string, CommandOutcome>;
}

export class AccountCommandHandler {
  private readonly queue = new KeyedQueue();
  private readonly cache: LruCache<string, LoadedAccount>;
  private readonly rejections: LruCache<string, { fingerprint: string; error: DomainError }>;
  private readonly maxAttempts: number;
  private readonly idempotencyWindow: number;
  private readonly readPageSize: number;

  constructor(
    private readonly store: EventStore,
    options: CommandHandlerOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.cache = new LruCache(options.cacheSize ?? 10_000);
    this.idempotencyWindow = options.idempotencyWindow ?? 1_000;
    this.rejections = new LruCache(options.rejectionMemory ?? 10_000);
    this.readPageSize = options.readPageSize ?? 1_000;
  }

  async execute(command: AccountCommand, context: CommandContext): Promise<AccountSnapshot> {
    validateAccountId(command.accountId);
    validateCommandId(context.commandId);
    const fingerprint = commandFingerprint(command);
    const rejectionKey = `${command.accountId}\u0000${context.commandId}`;
    return this.queue.run(command.accountId, async () => {
      throwIfCancelled(context.signal);
      const rejected = this.rejections.get(rejectionKey);
      if (rejected) {
        if (rejected.fingerprint !== fingerprint) throw new CommandIdReusedError(command.accountId, context.commandId);
        throw rejected.error;
      }
      try {
        return await this.decideAndAppend(command, context, fingerprint);
      } catch (error) {
        if (isFinalRejection(error)) this.rejections.set(rejectionKey, { fingerprint, error });
        throw error;
      }
    });
  }

  /** Current state, read through to the store so writes by other processes show. */
  async getAccount(accountId: string): Promise<AccountSnapshot> {
    validateAccountId(accountId);
    return this.queue.run(accountId, async () => {
      const loaded = await this.load(accountId, { refresh: true });
      if (loaded.state.status === "none" || loaded.revision === undefined) throw new AccountNotFoundError(accountId);
      return { account: loaded.state, revision: loaded.revision };
    });
  }

  private async decideAndAppend(command: AccountCommand, context: CommandContext, fingerprint: string): Promise<AccountSnapshot> {
    const { accountId } = command;
    const stream = accountStream(accountId);
    let loaded = await this.load(accountId, { refresh: false });
    let refreshed = false;

    for (let attempt = 1; ; attempt++) {
      const previous = loaded.recentCommands.get(context.commandId);
      if (previous) {
        if (previous.fingerprint !== fingerprint) throw new CommandIdReusedError(accountId, context.commandId);
        return outcomeSnapshot(loaded.state, previous);
      }

      const expected = context.expectedRevision;
      if (expected !== undefined && loaded.revision !== expected) {
        // The cache may trail other writers: look at the stream before saying no.
        if (!refreshed) {
          loaded = await this.load(accountId, { refresh: true });
          refreshed = true;
          attempt--;
          continue;
        }
        throw new RevisionConflictError(accountId, expected, loaded.revision ?? "no_stream");
      }

      const events = decide(command, loaded.state);
      const newEvents = events.map((event, index) => toNewEvent(stream, event, index, context));
      throwIfCancelled(context.signal);
      try {
        const result = await this.store.append(stream, newEvents, loaded.revision ?? "no_stream");
        return this.applyAppended(accountId, loaded, events, context.commandId, fingerprint, result.nextExpectedRevision);
      } catch (error) {
        if (!(error instanceof WrongExpectedRevisionError)) {
          // Unknown outcome (e.g. store unavailable): forget the cached state.
          this.cache.delete(accountId);
          throw error;
        }
        loaded = await this.load(accountId, { refresh: true });
        refreshed = true;
        if (expected !== undefined) {
          // Unless the conflicting writer was this very command (then the window answers), report it.
          if (loaded.recentCommands.has(context.commandId)) continue;
          throw new RevisionConflictError(accountId, expected, loaded.revision ?? "no_stream");
        }
        if (attempt >= this.maxAttempts && !loaded.recentCommands.has(context.commandId)) {
          throw new ConcurrencyRetriesExhaustedError(accountId, attempt);
        }
      }
    }
  }

  private applyAppended(
    accountId: string,
    loaded: LoadedAccount,
    events: AccountEvent[],
    commandId: string,
    fingerprint: string,
    lastRevision: bigint,
  ): AccountSnapshot {
    const expectedLast = (loaded.revision ?? -1n) + BigInt(events.length);
    if (lastRevision !== expectedLast) {
      // Only possible when the store reported an earlier identical append; reload next time.
      this.cache.delete(accountId);
    }
    let revision = loaded.revision ?? -1n;
    for (const event of events) {
      revision += 1n;
      this.fold(loaded, event, revision, commandId, fingerprint);
    }
    if (lastRevision === expectedLast) this.cache.set(accountId, loaded);
    return { account: loaded.state as ExistingAccount, revision: loaded.revision! };
  }

  /**
   * The cached account, or a fresh one read from the store. With `refresh`,
   * also reads whatever other writers appended after the cached revision.
   */
  private async load(accountId: string, { refresh }: { refresh: boolean }): Promise<LoadedAccount> {
    const cached = this.cache.get(accountId);
    if (cached && !refresh) return cached;
    const loaded = cached ?? { state: initialState, revision: undefined, recentCommands: new Map() };
    try {
      await this.catchUp(accountId, loaded);
    } catch (error) {
      this.cache.delete(accountId);
      throw error;
    }
    if (loaded.revision !== undefined) this.cache.set(accountId, loaded);
    return loaded;
  }

  private async catchUp(accountId: string, loaded: LoadedAccount): Promise<void> {
    const stream = accountStream(accountId);
    for (;;) {
      const fromRevision = loaded.revision === undefined ? 0n : loaded.revision + 1n;
      const result = await this.store.readStream(stream, { fromRevision, maxCount: this.readPageSize });
      if (result.status === "no_stream") return;
      for (const recorded of result.events) this.foldRecorded(loaded, recorded);
      if (result.events.length < this.readPageSize) return;
    }
  }

  private foldRecorded(loaded: LoadedAccount, recorded: RecordedEvent): void {
    const event = decodeEvent(recorded);
    const commandId = typeof recorded.metadata.commandId === "string" ? recorded.metadata.commandId : undefined;
    this.fold(loaded, event, recorded.revision, commandId, eventFingerprint(event));
  }

  private fold(loaded: LoadedAccount, event: AccountEvent, revision: bigint, commandId: string | undefined, fingerprint: string): void {
    loaded.state = evolve(loaded.state, event);
    loaded.revision = revision;
    if (commandId === undefined || loaded.state.status === "none") return;
    const window = loaded.recentCommands;
    window.delete(commandId);
    window.set(commandId, { revision, balance: loaded.state.balance, status: loaded.state.status, fingerprint });
    if (window.size > this.idempotencyWindow) {
      const oldest = window.keys().next();
      if (!oldest.done) window.delete(oldest.value);
    }
  }
}

function toNewEvent(stream: string, event: AccountEvent, index: number, context: CommandContext): NewEvent {
  return {
    id: eventIdFor(stream, context.commandId, index),
    type: event.type,
    data: encodeEventData(event),
    metadata: {
      commandId: context.commandId,
      correlationId: context.correlationId,
      causationId: context.causationId,
      ...(context.principal === undefined ? {} : { principal: context.principal }),
    },
  };
}

/** What a command would record, so a reused command id with other content is caught. */
function commandFingerprint(command: AccountCommand): string {
  switch (command.type) {
    case "OpenAccount":
      return JSON.stringify(["AccountOpened", command.owner, command.currency]);
    case "Deposit":
      return JSON.stringify(["MoneyDeposited", command.amount.toString()]);
    case "Withdraw":
      return JSON.stringify(["MoneyWithdrawn", command.amount.toString()]);
    case "CloseAccount":
      return JSON.stringify(["AccountClosed"]);
  }
}

function eventFingerprint(event: AccountEvent): string {
  switch (event.type) {
    case "AccountOpened":
      return JSON.stringify(["AccountOpened", event.data.owner, event.data.currency]);
    case "MoneyDeposited":
    case "MoneyWithdrawn":
      return JSON.stringify([event.type, event.data.amount.toString()]);
    case "AccountClosed":
      return JSON.stringify(["AccountClosed"]);
  }
}

function outcomeSnapshot(state: AccountState, outcome: CommandOutcome): AccountSnapshot {
  if (state.status === "none") throw new Error("an outcome without an account");
  return { account: { ...state, balance: outcome.balance, status: outcome.status }, revision: outcome.revision };
}

/** Rules that said no: the same command would be refused again, so its retry gets the same answer. */
function isFinalRejection(error: unknown): error is DomainError {
  return (
    error instanceof DomainError &&
    !(error instanceof RevisionConflictError) &&
    !(error instanceof ConcurrencyRetriesExhaustedError) &&
    !(error instanceof CommandIdReusedError) &&
    !(error instanceof AccountNotFoundError)
  );
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const reason: unknown = signal.reason;
  throw new CommandCancelledError(reason instanceof CommandCancelledError ? reason.why : "cancelled");
}
