/**
 * Command handling: load the account (cache, else snapshot, then the
 * stream's tail), check idempotency, decide, append with the loaded revision
 * as expected revision.
 *
 * - Commands on one account run one at a time in this process, in arrival
 *   order (a lane per account), so they never conflict with each other;
 *   conflicts come from other processes sharing the store and are retried a
 *   bounded number of times.
 * - Commands that queued up on a lane while it was busy run as one batch:
 *   decided in order on the evolving state, their events written in one
 *   append. Each event keeps its own command's id in its metadata, and each
 *   command gets its own outcome: a refused one gets its error and adds no
 *   events. The outcomes are given only once the append is durable.
 * - A command carrying the client's expected revision runs alone and is never
 *   retried: a mismatch is a RevisionConflictError.
 * - One command id, one answer: each loaded account remembers the outcome of
 *   its most recent commands (the window, rebuilt from the stream's events on
 *   every load, or read from a snapshot). A command id seen there gets its
 *   first outcome and appends nothing. Refusals that depend on the state
 *   (insufficient funds, ...) are recorded as CommandRejected events, so they
 *   are in the window too and every decision, accepted or refused, passes the
 *   store's expected-revision check: nothing is answered from a stale cache.
 *   Event ids derive from the command id AND its content, so the store's
 *   idempotent append only ever matches the very same command.
 * - Snapshots (when a SnapshotStore is given): written every `snapshotEvery`
 *   events of an account, with the window, so a cold load reads one snapshot
 *   plus at most that many events.
 */
import {
  commandOf,
  decide,
  evolve,
  initialState,
  refusalOf,
  rejectionOf,
  type AccountCommand,
  type AccountEvent,
  type AccountState,
  type ExistingAccount,
} from "../domain/account.js";
import { AccountNotFoundError, DomainError } from "../domain/errors.js";
import { validateAccountId, validateCommandId } from "../domain/rules.js";
import {
  accountStream,
  DuplicateEventError,
  WrongExpectedRevisionError,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from "../store/event-store.js";
import type { SnapshotStore } from "../store/snapshot-store.js";
import type { CommandHooks, CommandStep, CommandStepInfo, CommandTrace } from "./command-hooks.js";
import { CommandCancelledError, CommandIdReusedError, ConcurrencyRetriesExhaustedError, RevisionConflictError } from "./errors.js";
import { decodeEvent, encodeEventData } from "./event-codec.js";
import { eventIdFor } from "./event-ids.js";
import { ACCOUNT_SNAPSHOT_VERSION, decodeSnapshot, encodeSnapshot, type CommandOutcome, type LoadedAccount } from "./loaded-account.js";
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
  /** The caller's trace, when tracing is on: recorded in the events' metadata. */
  trace?: CommandTrace;
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
  /**
   * Command outcomes (idempotency window entries) the cached accounts may
   * hold in total, so memory stays bounded when many accounts are busy.
   */
  cacheMaxCommands?: number;
  /** Most recent command ids remembered per account. */
  idempotencyWindow?: number;
  /** Events read per page when loading a stream. */
  readPageSize?: number;
  /**
   * Most commands of one account decided together and written in one append.
   * Small batches answer sooner: a client gets the first answers while the
   * next batch is being written (16 measured best on the bench; see docs/performance.md).
   */
  maxBatch?: number;
  /** Where snapshots live; none: every cold load replays the whole stream. */
  snapshots?: SnapshotStore;
  /** Events between snapshots of an account. */
  snapshotEvery?: number;
  /** Told when a snapshot cannot be read or written (the command goes on without it). */
  onSnapshotError?: (error: unknown, stream: string) => void;
  /** Metrics and tracing (observability/command-observer.ts). */
  hooks?: CommandHooks;
}

interface CommandJob {
  kind: "command";
  command: AccountCommand;
  context: CommandContext;
  fingerprint: string;
  resolve: (snapshot: AccountSnapshot) => void;
  reject: (error: unknown) => void;
}

interface ReadJob {
  kind: "read";
  resolve: (snapshot: AccountSnapshot) => void;
  reject: (error: unknown) => void;
}

type Job = CommandJob | ReadJob;

/** A command's answer, held back until the batch's append is durable. */
type Answer = { job: CommandJob; snapshot: AccountSnapshot } | { job: CommandJob; error: unknown };

export class AccountCommandHandler {
  /** Queued work per account; an account with nothing queued has no lane. */
  private readonly lanes = new Map<string, Job[]>();
  private readonly cache: LruCache<string, LoadedAccount>;
  private readonly maxAttempts: number;
  private readonly idempotencyWindow: number;
  private readonly readPageSize: number;
  private readonly maxBatch: number;
  private readonly snapshots: SnapshotStore | undefined;
  private readonly snapshotEvery: bigint;
  private readonly onSnapshotError: (error: unknown, stream: string) => void;
  private readonly hooks: CommandHooks;

  constructor(
    private readonly store: EventStore,
    options: CommandHandlerOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.cache = new LruCache(options.cacheSize ?? 10_000, {
      weigh: (account) => account.recentCommands.size,
      maxWeight: options.cacheMaxCommands ?? 1_000_000,
    });
    this.idempotencyWindow = options.idempotencyWindow ?? 1_000;
    this.readPageSize = options.readPageSize ?? 1_000;
    this.maxBatch = options.maxBatch ?? 16;
    this.snapshots = options.snapshots;
    this.snapshotEvery = BigInt(options.snapshotEvery ?? 100);
    this.onSnapshotError = options.onSnapshotError ?? (() => {});
    this.hooks = options.hooks ?? {};
  }

  execute(command: AccountCommand, context: CommandContext): Promise<AccountSnapshot> {
    const answer = this.executeCommand(command, context);
    const settled = this.hooks.settled;
    if (settled) answer.then(() => settled(command.type, undefined), (error: unknown) => settled(command.type, error));
    return answer;
  }

  private async executeCommand(command: AccountCommand, context: CommandContext): Promise<AccountSnapshot> {
    validateAccountId(command.accountId);
    validateCommandId(context.commandId);
    const fingerprint = commandFingerprint(command);
    return new Promise((resolve, reject) => this.enqueue(command.accountId, { kind: "command", command, context, fingerprint, resolve, reject }));
  }

  /** Current state, read through to the store so writes by other processes show. */
  async getAccount(accountId: string): Promise<AccountSnapshot> {
    validateAccountId(accountId);
    return new Promise((resolve, reject) => this.enqueue(accountId, { kind: "read", resolve, reject }));
  }

  private enqueue(accountId: string, job: Job): void {
    const lane = this.lanes.get(accountId);
    if (lane) {
      lane.push(job);
      return;
    }
    const fresh = [job];
    this.lanes.set(accountId, fresh);
    void this.drain(accountId, fresh);
  }

  /** Runs an account's queued work in arrival order until none is left. */
  private async drain(accountId: string, lane: Job[]): Promise<void> {
    while (lane.length > 0) {
      const first = lane[0]!;
      // A read, or a command with the client's expected revision, runs alone.
      const alone = first.kind === "read" || first.context.expectedRevision !== undefined;
      let size = 1;
      if (!alone) {
        while (size < lane.length && size < this.maxBatch) {
          const next = lane[size]!;
          if (next.kind === "read" || next.context.expectedRevision !== undefined) break;
          size++;
        }
      }
      const batch = lane.splice(0, size);
      if (first.kind === "command") this.hooks.batch?.(size);
      try {
        if (first.kind === "read") await this.read(accountId, first);
        else await this.runCommands(accountId, batch as CommandJob[]);
      } catch (error) {
        // Settles whatever is still open (settling a promise twice is a no-op).
        for (const job of batch) job.reject(error);
      }
    }
    this.lanes.delete(accountId);
  }

  private async read(accountId: string, job: ReadJob): Promise<void> {
    const loaded = await this.load(accountId, { refresh: true });
    if (loaded.state.status === "none" || loaded.revision === undefined) throw new AccountNotFoundError(accountId);
    job.resolve({ account: loaded.state, revision: loaded.revision });
  }

  private async runCommands(accountId: string, jobs: CommandJob[]): Promise<void> {
    const stream = accountStream(accountId);
    let loaded = await this.step("load", jobs, { stream, batchSize: jobs.length, attempt: 1 }, () => this.load(accountId, { refresh: false }));
    let open = await this.answerOlderThanTheWindow(accountId, loaded, jobs);
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      // Nothing is appended for a caller that has given up (between here and the append nothing awaits).
      open = open.filter((job) => {
        if (job.context.signal?.aborted) job.reject(cancellationOf(job.context.signal));
        return !job.context.signal?.aborted;
      });
      if (open.length === 0) return;
      const decided = { stream, batchSize: open.length, attempt, expectedRevision: loaded.revision ?? ("no_stream" as const) };
      const plan = this.step("decide", open, decided, () => this.plan(stream, loaded, open, refreshed));
      if (plan === "refresh") {
        // A lone command's expected revision differs from the cache, which may trail other writers.
        loaded = await this.load(accountId, { refresh: true });
        refreshed = true;
        attempt--;
        continue;
      }
      if (plan.newEvents.length === 0) return this.settle(plan.answers);

      try {
        const result = await this.step("append", open, decided, () => this.store.append(stream, plan.newEvents, decided.expectedRevision));
        if (this.applyAppended(accountId, loaded, plan.appended, result.nextExpectedRevision)) return this.settle(plan.answers);
        // The store says these events were in the stream already, elsewhere than decided here:
        // answer from what the store holds, never from this decision.
        loaded = await this.load(accountId, { refresh: true });
        refreshed = true;
        attempt--;
        continue;
      } catch (error) {
        if (error instanceof DuplicateEventError && error.stream === stream) {
          // A command applied before, outside the idempotency window: answer it from history, go on with the rest.
          const applied = open.find((job) => producedEvent(stream, job, error.eventId));
          if (!applied) throw error;
          open = open.filter((job) => job !== applied);
          await this.answerFromHistory(accountId, applied, error.revision);
          attempt--;
          continue;
        }
        if (!(error instanceof WrongExpectedRevisionError)) {
          // Unknown outcome (e.g. store unavailable): forget the cached state.
          this.cache.delete(accountId);
          throw error;
        }
        loaded = await this.step("load", open, { stream, batchSize: open.length, attempt: attempt + 1 }, () => this.load(accountId, { refresh: true }));
        refreshed = true;
        const lone = open[0]!;
        const expected = lone.context.expectedRevision;
        if (expected !== undefined) {
          // Never retried; unless the conflicting writer was this very command (then the window answers), report it.
          if (loaded.recentCommands.has(lone.context.commandId)) continue;
          return lone.reject(new RevisionConflictError(accountId, expected, loaded.revision ?? "no_stream"));
        }
        if (attempt >= this.maxAttempts) {
          // Other writers kept winning; commands the window now knows get their answer in the next pass.
          open = open.filter((job) => {
            if (loaded.recentCommands.has(job.context.commandId)) return true;
            job.reject(new ConcurrencyRetriesExhaustedError(accountId, attempt));
            return false;
          });
        }
      }
    }
  }

  /**
   * The first outcome of a command whose event is at `revision`, rebuilt by
   * folding the stream up to there (rare: only for retries that outlived the
   * idempotency window).
   */
  private async answerFromHistory(accountId: string, job: CommandJob, revision: bigint): Promise<void> {
    const past: LoadedAccount = { state: initialState, revision: undefined, recentCommands: new Map(), snapshotRevision: -1n };
    const stream = accountStream(accountId);
    while ((past.revision ?? -1n) < revision) {
      const fromRevision = (past.revision ?? -1n) + 1n;
      const remaining = revision - fromRevision + 1n;
      const maxCount = remaining < BigInt(this.readPageSize) ? Number(remaining) : this.readPageSize;
      const result = await this.store.readStream(stream, { fromRevision, maxCount });
      if (result.status === "no_stream" || result.events.length === 0) break;
      for (const recorded of result.events) this.foldRecorded(past, recorded);
    }
    const outcome = past.recentCommands.get(job.context.commandId);
    if (!outcome || outcome.revision !== revision) {
      job.reject(new Error(`event of command ${job.context.commandId} not found at ${stream}@${revision}`));
    } else {
      const answer = answerOf(past.state, job, outcome);
      if ("snapshot" in answer) job.resolve(answer.snapshot);
      else job.reject(answer.error);
    }
  }

  /**
   * Where the store can look events up by id (SQLite) and the account's window
   * is full, a command missing from the window may still be a retry of one
   * recorded before the window's memory begins: answer such commands from
   * history (accepted or refused), before anything is decided again. Below
   * that size the window holds every command the account ever recorded.
   */
  private async answerOlderThanTheWindow(accountId: string, loaded: LoadedAccount, jobs: CommandJob[]): Promise<CommandJob[]> {
    if (!this.store.findEvent || loaded.recentCommands.size < this.idempotencyWindow) return jobs;
    const stream = accountStream(accountId);
    const open: CommandJob[] = [];
    for (const job of jobs) {
      if (loaded.recentCommands.has(job.context.commandId)) {
        open.push(job);
        continue;
      }
      let found: { revision: bigint } | undefined;
      for (const outcome of ["recorded", "rejected"] as const) {
        found ??= await this.store.findEvent(stream, eventIdFor(stream, job.context.commandId, 0, contentKey(outcome, job.fingerprint)));
      }
      if (found) this.hooks.repeatAnswered?.();
      if (found) await this.answerFromHistory(accountId, job, found.revision);
      else open.push(job);
    }
    return open;
  }

  /**
   * Decides the commands in order on the evolving state, without touching
   * `loaded`: the events to append, and every command's answer.
   */
  private plan(
    stream: string,
    loaded: LoadedAccount,
    jobs: CommandJob[],
    refreshed: boolean,
  ): "refresh" | { newEvents: NewEvent[]; appended: Array<{ job: CommandJob; events: AccountEvent[] }>; answers: Answer[] } {
    let state = loaded.state;
    let revision = loaded.revision;
    const newEvents: NewEvent[] = [];
    const appended: Array<{ job: CommandJob; events: AccountEvent[] }> = [];
    const answers: Answer[] = [];
    // Commands decided in this batch, accepted or finally refused, so a command id repeated
    // within it gets the first one's answer (not a second decision on a state that moved on).
    const decided = new Map<string, { fingerprint: string; answer: { snapshot: AccountSnapshot } | { error: unknown } }>();
    for (const job of jobs) {
      const { commandId, expectedRevision } = job.context;
      const previous = loaded.recentCommands.get(commandId);
      const inBatch = decided.get(commandId);
      if (previous || inBatch) this.hooks.repeatAnswered?.();
      if (previous) {
        answers.push({ job, ...answerOf(loaded.state, job, previous) });
        continue;
      }
      if (inBatch) {
        if (inBatch.fingerprint !== job.fingerprint) answers.push({ job, error: new CommandIdReusedError(job.command.accountId, commandId) });
        else answers.push({ job, ...inBatch.answer });
        continue;
      }
      if (expectedRevision !== undefined && revision !== expectedRevision) {
        if (!refreshed) return "refresh";
        answers.push({ job, error: new RevisionConflictError(job.command.accountId, expectedRevision, revision ?? "no_stream") });
        continue;
      }
      let events: AccountEvent[];
      let refusal: DomainError | undefined;
      try {
        events = decide(job.command, state);
      } catch (error) {
        const rejection = rejectionOf(job.command, error);
        if (!rejection) {
          if (isFinalRejection(error)) decided.set(commandId, { fingerprint: job.fingerprint, answer: { error } });
          answers.push({ job, error });
          continue;
        }
        // A refusal that depends on the state is recorded, so it passes the same revision check as an acceptance.
        events = [rejection];
        refusal = refusalOf(job.command.accountId, rejection.data);
      }
      const outcome = refusal ? "rejected" : "recorded";
      for (const [index, event] of events.entries()) {
        state = evolve(state, event);
        revision = (revision ?? -1n) + 1n;
        newEvents.push(toNewEvent(stream, event, index, job.context, contentKey(outcome, job.fingerprint)));
      }
      const answer = refusal ? { error: withRevision(refusal, revision!) } : { snapshot: { account: state as ExistingAccount, revision: revision! } };
      decided.set(commandId, { fingerprint: job.fingerprint, answer });
      appended.push({ job, events });
      answers.push({ job, ...answer });
    }
    return { newEvents, appended, answers };
  }

  /** Runs a step through the hooks (spans), when there are any. */
  private step<T>(step: CommandStep, jobs: CommandJob[], info: CommandStepInfo, run: () => T): T {
    return this.hooks.step ? this.hooks.step(step, jobs.map((job) => job.context), info, run) : run();
  }

  private settle(answers: Answer[]): void {
    for (const answer of answers) {
      if ("snapshot" in answer) answer.job.resolve(answer.snapshot);
      else answer.job.reject(answer.error);
    }
  }

  /**
   * Folds what was just appended into the cached account, when the store put
   * it where it was decided (right after the loaded revision). Otherwise (the
   * store matched an identical earlier append elsewhere) nothing is folded,
   * the cached account is dropped, and false says: answer from the store.
   */
  private applyAppended(accountId: string, loaded: LoadedAccount, appended: Array<{ job: CommandJob; events: AccountEvent[] }>, lastRevision: bigint): boolean {
    const count = appended.reduce((sum, { events }) => sum + events.length, 0);
    if (lastRevision !== (loaded.revision ?? -1n) + BigInt(count)) {
      this.cache.delete(accountId);
      return false;
    }
    let revision = loaded.revision ?? -1n;
    for (const { job, events } of appended) {
      for (const event of events) {
        revision += 1n;
        this.fold(loaded, event, revision, job.context.commandId, job.fingerprint);
      }
    }
    this.cache.set(accountId, loaded);
    this.maybeSnapshot(accountId, loaded);
    return true;
  }

  /**
   * The cached account, or a fresh one from the latest snapshot and the
   * events after it. With `refresh`, also reads whatever other writers
   * appended after the cached revision.
   */
  private async load(accountId: string, { refresh }: { refresh: boolean }): Promise<LoadedAccount> {
    const cached = this.cache.get(accountId);
    this.hooks.cacheLookup?.(cached !== undefined);
    if (cached && !refresh) return cached;
    let loaded: LoadedAccount;
    try {
      loaded = cached ?? (await this.fromSnapshot(accountId)) ?? { state: initialState, revision: undefined, recentCommands: new Map(), snapshotRevision: -1n };
      await this.catchUp(accountId, loaded);
    } catch (error) {
      this.cache.delete(accountId);
      throw error;
    }
    if (loaded.revision !== undefined) {
      this.cache.set(accountId, loaded);
      this.maybeSnapshot(accountId, loaded);
    }
    return loaded;
  }

  private async fromSnapshot(accountId: string): Promise<LoadedAccount | undefined> {
    if (!this.snapshots) return undefined;
    const stream = accountStream(accountId);
    try {
      const stored = await this.snapshots.read(stream);
      this.hooks.snapshotRead?.(stored ? "found" : "none");
      // Another version's snapshot may mean something else: replay instead.
      if (!stored || stored.version !== ACCOUNT_SNAPSHOT_VERSION) return undefined;
      return decodeSnapshot(stored.state, stored.revision, this.idempotencyWindow);
    } catch (error) {
      this.onSnapshotError(error, stream);
      return undefined;
    }
  }

  /** Writes a snapshot once `snapshotEvery` events have passed since the last one; never waited for. */
  private maybeSnapshot(accountId: string, loaded: LoadedAccount): void {
    if (!this.snapshots || loaded.revision === undefined || loaded.revision - loaded.snapshotRevision < this.snapshotEvery) return;
    const stream = accountStream(accountId);
    loaded.snapshotRevision = loaded.revision;
    // Encoded now: the lane goes on changing `loaded` while the write is in flight.
    const snapshot = { stream, revision: loaded.revision, version: ACCOUNT_SNAPSHOT_VERSION, state: encodeSnapshot(loaded) };
    this.snapshots.write(snapshot).then(() => this.hooks.snapshotWritten?.(), (error: unknown) => this.onSnapshotError(error, stream));
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
    const accountId = recorded.stream.slice(accountStream("").length);
    this.fold(loaded, event, recorded.revision, commandId, commandFingerprint(commandOf(accountId, event)));
  }

  private fold(loaded: LoadedAccount, event: AccountEvent, revision: bigint, commandId: string | undefined, fingerprint: string): void {
    loaded.state = evolve(loaded.state, event);
    loaded.revision = revision;
    if (commandId === undefined || loaded.state.status === "none") return;
    const window = loaded.recentCommands;
    window.delete(commandId);
    const refusal = event.type === "CommandRejected" ? event.data : undefined;
    window.set(commandId, { revision, balance: loaded.state.balance, status: loaded.state.status, fingerprint, ...(refusal ? { refusal } : {}) });
    if (window.size > this.idempotencyWindow) {
      const oldest = window.keys().next();
      if (!oldest.done) window.delete(oldest.value);
    }
  }
}

function toNewEvent(stream: string, event: AccountEvent, index: number, context: CommandContext, content: string): NewEvent {
  return {
    id: eventIdFor(stream, context.commandId, index, content),
    type: event.type,
    data: encodeEventData(event),
    metadata: {
      commandId: context.commandId,
      correlationId: context.correlationId,
      causationId: context.causationId,
      ...(context.principal === undefined ? {} : { principal: context.principal }),
      ...(context.trace === undefined ? {} : { traceId: context.trace.traceId, spanId: context.trace.spanId }),
    },
  };
}

/** Whether `eventId` is one of the ids this command's events get, accepted or refused (see toNewEvent). */
function producedEvent(stream: string, job: CommandJob, eventId: string): boolean {
  // Every account command records one event today; a few indexes leave room for more.
  for (const outcome of ["recorded", "rejected"] as const) {
    for (let index = 0; index < 4; index++) {
      if (eventIdFor(stream, job.context.commandId, index, contentKey(outcome, job.fingerprint)) === eventId) return true;
    }
  }
  return false;
}

/**
 * What an event id derives from besides the command id: the outcome and the
 * command's content. Two servers deciding the same command at the same
 * revision write the same ids (the store deduplicates them); a reused command
 * id with other content, or a refusal where the store holds an acceptance,
 * never matches, so it meets the revision check instead.
 */
const contentKey = (outcome: "recorded" | "rejected", fingerprint: string): string => `${outcome}\u0000${fingerprint}`;

/** The answer a command's recorded outcome gives to a repeat of its command id. */
function answerOf(state: AccountState, job: CommandJob, outcome: CommandOutcome): { snapshot: AccountSnapshot } | { error: DomainError } {
  const accountId = job.command.accountId;
  if (outcome.fingerprint !== job.fingerprint) return { error: new CommandIdReusedError(accountId, job.context.commandId) };
  if (outcome.refusal) return { error: withRevision(refusalOf(accountId, outcome.refusal), outcome.revision) };
  return { snapshot: outcomeSnapshot(state, outcome) };
}

/** A recorded refusal tells the caller the revision it was recorded at (to continue with expected_revision). */
function withRevision(error: DomainError, revision: bigint): DomainError {
  error.metadata.revision = String(revision);
  return error;
}

/**
 * The fingerprint of the event a command records when it succeeds, so a
 * reused command id with other content is caught; the window keeps
 * fingerprints of recorded events, so both sides share eventFingerprint.
 */
function commandFingerprint(command: AccountCommand): string {
  switch (command.type) {
    case "OpenAccount":
      return eventFingerprint({ type: "AccountOpened", data: { accountId: command.accountId, owner: command.owner, currency: command.currency } });
    case "Deposit":
      return eventFingerprint({ type: "MoneyDeposited", data: { amount: command.amount } });
    case "Withdraw":
      return eventFingerprint({ type: "MoneyWithdrawn", data: { amount: command.amount } });
    case "CloseAccount":
      return eventFingerprint({ type: "AccountClosed", data: {} });
  }
}

function eventFingerprint(event: Exclude<AccountEvent, { type: "CommandRejected" }>): string {
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

function cancellationOf(signal: AbortSignal): CommandCancelledError {
  const reason: unknown = signal.reason;
  return new CommandCancelledError(reason instanceof CommandCancelledError ? reason.why : "cancelled");
}
