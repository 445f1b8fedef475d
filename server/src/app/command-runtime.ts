/**
 * The command runtime: load an aggregate (cache, else snapshot, then the
 * stream's tail), check idempotency, decide, append with the loaded revision
 * as expected revision. One runtime serves every aggregate given as a decider
 * (`decide`/`evolve`/`initialState` plus how it is stored, see Aggregate):
 * accounts and transfers alike.
 *
 * - Commands on one aggregate run one at a time in this process, in arrival
 *   order (a lane per stream), so they never conflict with each other;
 *   conflicts come from other processes sharing the store and are retried a
 *   bounded number of times.
 * - Commands that queued up on a lane while it was busy run as one batch:
 *   decided in order on the evolving state, their events written in one
 *   append. Each event keeps its own command's id in its metadata, and each
 *   command gets its own outcome. The outcomes are given only once the append
 *   is durable.
 * - A command carrying the client's expected revision runs alone and is never
 *   retried: a mismatch is a RevisionConflictError.
 * - One command id, one answer: each loaded aggregate remembers the outcome
 *   of its most recent commands (the window, rebuilt from the stream's events
 *   on every load, or read from a snapshot). A command id seen there gets its
 *   first outcome and appends nothing. Refusals that depend on the state are
 *   recorded as events (the aggregate says which), so they are in the window
 *   too and every decision, accepted or refused, passes the store's
 *   expected-revision check: nothing is answered from a stale cache. Event ids
 *   derive from the command id AND its content, so the store's idempotent
 *   append only ever matches the very same command.
 * - Snapshots (when a SnapshotStore is given and the aggregate has a codec):
 *   written every `snapshotEvery` events, with the window, so a cold load
 *   reads one snapshot plus at most that many events.
 */
import { DomainError } from "../domain/errors.js";
import { validateCommandId } from "../domain/rules.js";
import { DuplicateEventError, WrongExpectedRevisionError, type EventStore, type NewEvent, type RecordedEvent } from "../store/event-store.js";
import type { SnapshotStore, StoredSnapshot } from "../store/snapshot-store.js";
import type { CommandHooks, CommandStep, CommandStepInfo, CommandTrace } from "./command-hooks.js";
import { CommandCancelledError, CommandIdReusedError, ConcurrencyRetriesExhaustedError, RevisionConflictError } from "./errors.js";
import { eventIdFor } from "./event-ids.js";
import { LruCache } from "./lru-cache.js";

/** An aggregate's state as a command left it, or as read, at a revision of its stream. */
export interface Loaded<S> {
  state: S;
  /** Stream revision of the last event folded into `state`. */
  revision: bigint;
}

/** What the window remembers of one command: enough to answer its repeats. */
export interface WindowEntry<R> {
  revision: bigint;
  /** The command's content, so a reused command id with other content is caught. */
  fingerprint: string;
  /** The aggregate's small record of the state the command left (e.g. an account's balance). */
  outcome: unknown;
  /** Set when the command was refused: the recorded refusal, answered again to every repeat. */
  refusal?: R;
}

/** Owned by the aggregate's lane: only the runtime's lane for that id touches it. */
export interface LoadedAggregate<S, R> {
  state: S;
  /** Revision of the last event read; undefined while the stream does not exist. */
  revision: bigint | undefined;
  /** Oldest first; at most the idempotency window's size. */
  recentCommands: Map<string, WindowEntry<R>>;
  /** Revision of the latest snapshot read or written, -1n for none. */
  snapshotRevision: bigint;
}

/**
 * An aggregate as the runtime needs it: a decider (`decide`, `evolve`,
 * `initialState`), its stream, its stored form, and how a command's outcome is
 * remembered and recorded when refused. C, E, S: command, event, state; R:
 * the data of a recorded refusal.
 */
export interface Aggregate<C extends { type: string }, E extends { type: string }, S, R> {
  /** For messages: "account", "transfer". */
  readonly kind: string;
  readonly initialState: S;
  decide(command: C, state: S): E[];
  evolve(state: S, event: E): S;
  /** False for the initial state (no stream yet). */
  exists(state: S): boolean;
  idOf(command: C): string;
  /** Throws a ValidationError for an id that cannot name a stream. */
  validateId(id: string): void;
  streamOf(id: string): string;
  idOfStream(stream: string): string;
  notFound(id: string): DomainError;
  isNotFound(error: unknown): boolean;
  reused(id: string, commandId: string): DomainError;
  /** Stored data and schema version of an event. */
  encode(event: E): { data: Record<string, unknown>; schemaVersion: number };
  /** The current event of a stored one (upcast); throws on one this release does not know. */
  decode(recorded: RecordedEvent): E;
  /** A command's content; a recorded event gives the same string for the command it answers. */
  fingerprint(command: C): string;
  /** The command a recorded event answers (for its fingerprint). */
  commandOf(id: string, event: E): C;
  /** The event that records `error` as the answer to `command`, when that refusal depends on the state. */
  rejectionOf(command: C, error: unknown): E | undefined;
  /** The refusal an event records, if it is one. */
  refusalIn(event: E): R | undefined;
  /** The error a recorded refusal answers with. */
  refusalOf(id: string, refusal: R): DomainError;
  /** The small record the window keeps of the state a command left ... */
  outcomeOf(state: S): unknown;
  /** ... and that state again, from the current one and that record. */
  stateAfter(current: S, outcome: unknown): S;
  /** Snapshot encoding; absent: no snapshots of this aggregate. */
  readonly snapshots?: {
    version: number;
    encode(loaded: LoadedAggregate<S, R>): string;
    /** Undefined for a snapshot to ignore (a version this release cannot read). */
    decode(stored: StoredSnapshot, windowSize: number): LoadedAggregate<S, R> | undefined;
  };
}

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

export interface CommandHandlerOptions {
  /** Attempts per command when other writers conflict (1 = no retry). */
  maxAttempts?: number;
  /** Aggregates (accounts, transfers) kept in memory. */
  cacheSize?: number;
  /**
   * Command outcomes (idempotency window entries) the cached aggregates may
   * hold in total, so memory stays bounded when many of them are busy.
   */
  cacheMaxCommands?: number;
  /** Estimated bytes the cached aggregates may hold in total (see cachedBytes). */
  cacheMaxBytes?: number;
  /** Most recent command ids remembered per aggregate. */
  idempotencyWindow?: number;
  /** Events read per page when loading a stream. */
  readPageSize?: number;
  /**
   * Most commands of one aggregate decided together and written in one append.
   * Small batches answer sooner: a client gets the first answers while the
   * next batch is being written (16 measured best on the bench; see docs/performance.md).
   */
  maxBatch?: number;
  /** Where snapshots live; none: every cold load replays the whole stream. */
  snapshots?: SnapshotStore;
  /** Events between snapshots of an aggregate. */
  snapshotEvery?: number;
  /** Told when a snapshot cannot be read or written (the command goes on without it). */
  onSnapshotError?: (error: unknown, stream: string) => void;
  /** Metrics and tracing (observability/command-observer.ts). */
  hooks?: CommandHooks;
}

interface CommandJob<C, S> {
  kind: "command";
  command: C;
  context: CommandContext;
  fingerprint: string;
  resolve: (snapshot: Loaded<S>) => void;
  reject: (error: unknown) => void;
}

interface ReadJob<S> {
  kind: "read";
  /** Read through to the store (false: the cached state may do). */
  refresh: boolean;
  resolve: (snapshot: Loaded<S>) => void;
  reject: (error: unknown) => void;
}

type Job<C, S> = CommandJob<C, S> | ReadJob<S>;

/** A command's answer, held back until the batch's append is durable. */
type Answer<C, S> = { job: CommandJob<C, S>; snapshot: Loaded<S> } | { job: CommandJob<C, S>; error: unknown };

/** What was appended for one command of a batch. */
type Appended<C, E, S> = Array<{ job: CommandJob<C, S>; events: E[] }>;

/**
 * The command machinery for any aggregate given as a decider: per-stream
 * lanes, batching, the cache, the idempotency window, snapshots and bounded
 * retries. Aggregates differ only in their Aggregate definition.
 */
export class CommandRuntime<C extends { type: string }, E extends { type: string }, S, R> {
  /** Queued work per aggregate id; an id with nothing queued has no lane. */
  private readonly lanes = new Map<string, Array<Job<C, S>>>();
  private readonly cache: LruCache<string, LoadedAggregate<S, R>>;
  private readonly maxAttempts: number;
  private readonly idempotencyWindow: number;
  private readonly readPageSize: number;
  private readonly maxBatch: number;
  private readonly snapshots: SnapshotStore | undefined;
  private readonly snapshotEvery: bigint;
  private readonly onSnapshotError: (error: unknown, stream: string) => void;
  private readonly hooks: CommandHooks;

  constructor(
    private readonly aggregate: Aggregate<C, E, S, R>,
    private readonly store: EventStore,
    options: CommandHandlerOptions = {},
  ) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.cache = new LruCache(options.cacheSize ?? 10_000, {
      weigh: (loaded) => loaded.recentCommands.size,
      maxWeight: options.cacheMaxCommands ?? 1_000_000,
      sizeOf: (loaded) => cachedBytes(loaded.recentCommands.size),
      maxBytes: options.cacheMaxBytes ?? DEFAULT_CACHE_MAX_BYTES,
    });
    this.idempotencyWindow = options.idempotencyWindow ?? 1_000;
    this.readPageSize = options.readPageSize ?? 1_000;
    this.maxBatch = options.maxBatch ?? 16;
    this.snapshots = options.snapshots;
    this.snapshotEvery = BigInt(options.snapshotEvery ?? 100);
    this.onSnapshotError = options.onSnapshotError ?? (() => {});
    this.hooks = options.hooks ?? {};
  }

  /** Decides and appends one command; resolves with the state it left (once durable), or rejects with why not. */
  async execute(command: C, context: CommandContext): Promise<Loaded<S>> {
    const id = this.aggregate.idOf(command);
    this.aggregate.validateId(id);
    validateCommandId(context.commandId);
    const fingerprint = this.aggregate.fingerprint(command);
    return new Promise((resolve, reject) => this.enqueue(id, { kind: "command", command, context, fingerprint, resolve, reject }));
  }

  /**
   * Current state, read through to the store so writes by other processes
   * show; with `{ cached: true }` the cached state may answer (for facts that
   * never change once true, such as that an account exists and its currency).
   */
  async get(id: string, options: { cached?: boolean } = {}): Promise<Loaded<S>> {
    this.aggregate.validateId(id);
    return new Promise((resolve, reject) => this.enqueue(id, { kind: "read", refresh: !options.cached, resolve, reject }));
  }

  private enqueue(id: string, job: Job<C, S>): void {
    const lane = this.lanes.get(id);
    if (lane) {
      lane.push(job);
      return;
    }
    const fresh = [job];
    this.lanes.set(id, fresh);
    void this.drain(id, fresh);
  }

  /** Runs an aggregate's queued work in arrival order until none is left. */
  private async drain(id: string, lane: Array<Job<C, S>>): Promise<void> {
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
        if (first.kind === "read") await this.read(id, first);
        else await this.runCommands(id, batch as Array<CommandJob<C, S>>);
      } catch (error) {
        // Settles whatever is still open (settling a promise twice is a no-op).
        for (const job of batch) job.reject(error);
      }
    }
    this.lanes.delete(id);
  }

  private async read(id: string, job: ReadJob<S>): Promise<void> {
    const loaded = await this.load(id, { refresh: job.refresh });
    if (!this.aggregate.exists(loaded.state) || loaded.revision === undefined) throw this.aggregate.notFound(id);
    job.resolve({ state: loaded.state, revision: loaded.revision });
  }

  private async runCommands(id: string, jobs: Array<CommandJob<C, S>>): Promise<void> {
    const stream = this.aggregate.streamOf(id);
    let loaded = await this.step("load", jobs, { stream, batchSize: jobs.length, attempt: 1 }, () => this.load(id, { refresh: false }));
    let open = jobs;
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
        loaded = await this.load(id, { refresh: true });
        refreshed = true;
        attempt--;
        continue;
      }
      if (plan.newEvents.length === 0) return this.settle(plan.answers);
      const answered = await this.answerAppliedBeforeTheWindow(id, loaded, plan.refused);
      if (answered.length > 0) {
        open = open.filter((job) => !answered.includes(job));
        attempt--;
        continue;
      }

      try {
        const result = await this.step("append", open, decided, () => this.store.append(stream, plan.newEvents, decided.expectedRevision));
        if (this.applyAppended(id, loaded, plan.appended, result.nextExpectedRevision)) return this.settle(plan.answers);
        // The store says these events were in the stream already, elsewhere than decided here:
        // answer from what the store holds, never from this decision.
        loaded = await this.load(id, { refresh: true });
        refreshed = true;
        attempt--;
        continue;
      } catch (error) {
        if (error instanceof DuplicateEventError && error.stream === stream) {
          // A command applied before, outside the idempotency window: answer it from history, go on with the rest.
          const applied = open.find((job) => producedEvent(stream, job, error.eventId));
          if (!applied) throw error;
          open = open.filter((job) => job !== applied);
          await this.answerFromHistory(id, applied, error.revision);
          attempt--;
          continue;
        }
        if (!(error instanceof WrongExpectedRevisionError)) {
          // Unknown outcome (e.g. store unavailable): forget the cached state.
          this.cache.delete(id);
          throw error;
        }
        loaded = await this.step("load", open, { stream, batchSize: open.length, attempt: attempt + 1 }, () => this.load(id, { refresh: true }));
        refreshed = true;
        const lone = open[0]!;
        const expected = lone.context.expectedRevision;
        if (expected !== undefined) {
          // Never retried; unless the conflicting writer was this very command (then the window answers), report it.
          if (loaded.recentCommands.has(lone.context.commandId)) continue;
          return lone.reject(new RevisionConflictError(id, expected, loaded.revision ?? "no_stream"));
        }
        if (attempt >= this.maxAttempts) {
          // Other writers kept winning; commands the window now knows get their answer in the next pass.
          open = open.filter((job) => {
            if (loaded.recentCommands.has(job.context.commandId)) return true;
            job.reject(new ConcurrencyRetriesExhaustedError(id, attempt));
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
  private async answerFromHistory(id: string, job: CommandJob<C, S>, revision: bigint): Promise<void> {
    const past = this.empty();
    const stream = this.aggregate.streamOf(id);
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
      const answer = this.answerOf(id, past.state, job, outcome);
      if ("snapshot" in answer) job.resolve(answer.snapshot);
      else job.reject(answer.error);
    }
  }

  /**
   * A refusal decided now may be the retry of a command accepted before the
   * window's memory begins (the balance has moved on since). Where the store
   * can look events up by id (SQLite) and the window is full, such refusals
   * are checked before they are recorded: a command found applied is answered
   * with its first outcome (true: the batch must be decided again without it).
   * An accepted repeat needs no look-up: the store refuses its event id.
   */
  private async answerAppliedBeforeTheWindow(id: string, loaded: LoadedAggregate<S, R>, refused: Array<CommandJob<C, S>>): Promise<Array<CommandJob<C, S>>> {
    if (!this.store.findEvent || refused.length === 0 || loaded.recentCommands.size < this.idempotencyWindow) return [];
    const stream = this.aggregate.streamOf(id);
    const answered: Array<CommandJob<C, S>> = [];
    for (const job of refused) {
      const found = await this.store.findEvent(stream, eventIdFor(stream, job.context.commandId, 0, contentKey("recorded", job.fingerprint)));
      if (!found) continue;
      this.hooks.repeatAnswered?.();
      await this.answerFromHistory(id, job, found.revision);
      answered.push(job);
    }
    return answered;
  }


  /**
   * Decides the commands in order on the evolving state, without touching
   * `loaded`: the events to append, and every command's answer.
   */
  private plan(
    stream: string,
    loaded: LoadedAggregate<S, R>,
    jobs: Array<CommandJob<C, S>>,
    refreshed: boolean,
  ): "refresh" | { newEvents: NewEvent[]; appended: Appended<C, E, S>; answers: Array<Answer<C, S>>; refused: Array<CommandJob<C, S>> } {
    const { aggregate } = this;
    const id = this.aggregate.idOfStream(stream);
    let state = loaded.state;
    let revision = loaded.revision;
    const newEvents: NewEvent[] = [];
    const appended: Appended<C, E, S> = [];
    const answers: Array<Answer<C, S>> = [];
    /** Commands whose refusal is recorded by this plan. */
    const refused: Array<CommandJob<C, S>> = [];
    // Commands decided in this batch, accepted or finally refused, so a command id repeated
    // within it gets the first one's answer (not a second decision on a state that moved on).
    const decided = new Map<string, { fingerprint: string; answer: { snapshot: Loaded<S> } | { error: unknown } }>();
    for (const job of jobs) {
      const { commandId, expectedRevision } = job.context;
      const previous = loaded.recentCommands.get(commandId);
      const inBatch = decided.get(commandId);
      if (previous || inBatch) this.hooks.repeatAnswered?.();
      if (previous) {
        answers.push({ job, ...this.answerOf(id, loaded.state, job, previous) });
        continue;
      }
      if (inBatch) {
        if (inBatch.fingerprint !== job.fingerprint) answers.push({ job, error: aggregate.reused(id, commandId) });
        else answers.push({ job, ...inBatch.answer });
        continue;
      }
      if (expectedRevision !== undefined && revision !== expectedRevision) {
        if (!refreshed) return "refresh";
        answers.push({ job, error: new RevisionConflictError(id, expectedRevision, revision ?? "no_stream") });
        continue;
      }
      let events: E[];
      let refusal: DomainError | undefined;
      try {
        events = aggregate.decide(job.command, state);
      } catch (error) {
        const rejection = aggregate.rejectionOf(job.command, error);
        if (!rejection) {
          if (isFinalRejection(error, aggregate)) decided.set(commandId, { fingerprint: job.fingerprint, answer: { error } });
          answers.push({ job, error });
          continue;
        }
        // A refusal that depends on the state is recorded, so it passes the same revision check as an acceptance.
        events = [rejection];
        refusal = aggregate.refusalOf(id, aggregate.refusalIn(rejection)!);
      }
      const outcome = refusal ? "rejected" : "recorded";
      for (const [index, event] of events.entries()) {
        state = aggregate.evolve(state, event);
        revision = (revision ?? -1n) + 1n;
        newEvents.push(this.toNewEvent(stream, event, index, job.context, contentKey(outcome, job.fingerprint)));
      }
      if (revision === undefined) throw new Error(`${aggregate.kind} ${id}: a command decided no event`);
      const answer = refusal ? { error: withRevision(refusal, revision) } : { snapshot: { state, revision } };
      if (refusal) refused.push(job);
      decided.set(commandId, { fingerprint: job.fingerprint, answer });
      appended.push({ job, events });
      answers.push({ job, ...answer });
    }
    return { newEvents, appended, answers, refused };
  }

  /** Runs a step through the hooks (spans), when there are any. */
  private step<T>(step: CommandStep, jobs: Array<CommandJob<C, S>>, info: CommandStepInfo, run: () => T): T {
    if (step === "append" && info.attempt > 1) this.hooks.appendRetried?.();
    return this.hooks.step ? this.hooks.step(step, jobs.map((job) => job.context), info, run) : run();
  }

  private settle(answers: Array<Answer<C, S>>): void {
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
  private applyAppended(id: string, loaded: LoadedAggregate<S, R>, appended: Appended<C, E, S>, lastRevision: bigint): boolean {
    const count = appended.reduce((sum, { events }) => sum + events.length, 0);
    if (lastRevision !== (loaded.revision ?? -1n) + BigInt(count)) {
      this.cache.delete(id);
      return false;
    }
    let revision = loaded.revision ?? -1n;
    for (const { job, events } of appended) {
      for (const event of events) {
        revision += 1n;
        this.fold(loaded, event, revision, job.context.commandId, job.fingerprint);
      }
    }
    this.cache.set(id, loaded);
    this.maybeSnapshot(id, loaded);
    return true;
  }

  /**
   * The cached account, or a fresh one from the latest snapshot and the
   * events after it. With `refresh`, also reads whatever other writers
   * appended after the cached revision.
   */
  private async load(id: string, { refresh }: { refresh: boolean }): Promise<LoadedAggregate<S, R>> {
    const cached = this.cache.get(id);
    this.hooks.cacheLookup?.(cached !== undefined);
    if (cached && !refresh) return cached;
    let loaded: LoadedAggregate<S, R>;
    try {
      loaded = cached ?? (await this.fromSnapshot(id)) ?? this.empty();
      await this.catchUp(id, loaded);
    } catch (error) {
      this.cache.delete(id);
      throw error;
    }
    if (loaded.revision !== undefined) {
      this.cache.set(id, loaded);
      this.maybeSnapshot(id, loaded);
    }
    return loaded;
  }

  private empty(): LoadedAggregate<S, R> {
    return { state: this.aggregate.initialState, revision: undefined, recentCommands: new Map(), snapshotRevision: -1n };
  }

  private async fromSnapshot(id: string): Promise<LoadedAggregate<S, R> | undefined> {
    const codec = this.aggregate.snapshots;
    if (!this.snapshots || !codec) return undefined;
    const stream = this.aggregate.streamOf(id);
    try {
      const stored = await this.snapshots.read(stream);
      this.hooks.snapshotRead?.(stored ? "found" : "none");
      // An older version's snapshot is upcast; one that cannot be is ignored (replayed instead), never misread.
      return stored && codec.decode(stored, this.idempotencyWindow);
    } catch (error) {
      this.onSnapshotError(error, stream);
      return undefined;
    }
  }

  /** Writes a snapshot once `snapshotEvery` events have passed since the last one; never waited for. */
  private maybeSnapshot(id: string, loaded: LoadedAggregate<S, R>): void {
    const codec = this.aggregate.snapshots;
    if (!this.snapshots || !codec || loaded.revision === undefined || loaded.revision - loaded.snapshotRevision < this.snapshotEvery) return;
    const stream = this.aggregate.streamOf(id);
    loaded.snapshotRevision = loaded.revision;
    // Encoded now: the lane goes on changing `loaded` while the write is in flight.
    const snapshot = { stream, revision: loaded.revision, version: codec.version, state: codec.encode(loaded) };
    this.snapshots.write(snapshot).then(() => this.hooks.snapshotWritten?.(), (error: unknown) => this.onSnapshotError(error, stream));
  }

  private async catchUp(id: string, loaded: LoadedAggregate<S, R>): Promise<void> {
    const stream = this.aggregate.streamOf(id);
    for (;;) {
      const fromRevision = loaded.revision === undefined ? 0n : loaded.revision + 1n;
      const result = await this.store.readStream(stream, { fromRevision, maxCount: this.readPageSize });
      if (result.status === "no_stream") return;
      for (const recorded of result.events) this.foldRecorded(loaded, recorded);
      if (result.events.length < this.readPageSize) return;
    }
  }

  private foldRecorded(loaded: LoadedAggregate<S, R>, recorded: RecordedEvent): void {
    const event = this.aggregate.decode(recorded);
    const commandId = typeof recorded.metadata.commandId === "string" ? recorded.metadata.commandId : undefined;
    const id = this.aggregate.idOfStream(recorded.stream);
    this.fold(loaded, event, recorded.revision, commandId, this.aggregate.fingerprint(this.aggregate.commandOf(id, event)));
  }

  private fold(loaded: LoadedAggregate<S, R>, event: E, revision: bigint, commandId: string | undefined, fingerprint: string): void {
    loaded.state = this.aggregate.evolve(loaded.state, event);
    loaded.revision = revision;
    if (commandId === undefined || !this.aggregate.exists(loaded.state)) return;
    const window = loaded.recentCommands;
    window.delete(commandId);
    const refusal = this.aggregate.refusalIn(event);
    window.set(commandId, { revision, outcome: this.aggregate.outcomeOf(loaded.state), fingerprint, ...(refusal === undefined ? {} : { refusal }) });
    if (window.size > this.idempotencyWindow) {
      const oldest = window.keys().next();
      if (!oldest.done) window.delete(oldest.value);
    }
  }

  /** The answer a command's recorded outcome gives to a repeat of its command id. */
  private answerOf(id: string, state: S, job: CommandJob<C, S>, outcome: WindowEntry<R>): { snapshot: Loaded<S> } | { error: DomainError } {
    if (outcome.fingerprint !== job.fingerprint) return { error: this.aggregate.reused(id, job.context.commandId) };
    if (outcome.refusal !== undefined) return { error: withRevision(this.aggregate.refusalOf(id, outcome.refusal), outcome.revision) };
    return { snapshot: { state: this.aggregate.stateAfter(state, outcome.outcome), revision: outcome.revision } };
  }

  private toNewEvent(stream: string, event: E, index: number, context: CommandContext, content: string): NewEvent {
    const { data, schemaVersion } = this.aggregate.encode(event);
    return {
      id: eventIdFor(stream, context.commandId, index, content),
      type: event.type,
      data,
      metadata: {
        commandId: context.commandId,
        correlationId: context.correlationId,
        causationId: context.causationId,
        schemaVersion,
        ...(context.principal === undefined ? {} : { principal: context.principal }),
        ...(context.trace === undefined ? {} : { traceId: context.trace.traceId, spanId: context.trace.spanId }),
      },
    };
  }
}


/** 256 MiB of resident memory: about 4,100 accounts of 100 remembered commands, or 430 with a full window of 1,000. */
export const DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024;

/**
 * Resident memory a cached aggregate costs, estimated: what it keeps alive
 * (its state and an empty window, plus each remembered command: the map
 * entry, its id as a 36-character string, revision, fingerprint and outcome;
 * measured on V8, Node 20, as heap after GC: about 32 KB for an account of
 * 100 commands with UUID ids), times the room V8's heap takes beyond what is
 * live. So the budget bounds the RSS the cache adds, not only its live heap:
 * measured as RSS after reading 100,000 accounts under the default budget
 * against the same reads with a 1 MiB budget (docs/performance.md).
 */
function cachedBytes(rememberedCommands: number): number {
  return Math.ceil((1_000 + rememberedCommands * 310) * RESIDENT_PER_LIVE_BYTE);
}

/** RSS growth per byte of live cache (see cachedBytes): the cache added 285 MiB of RSS at 1.7 and 296 at 2 for 256 MiB, within noise. */
const RESIDENT_PER_LIVE_BYTE = 2;

/** Whether `eventId` is one of the ids this command's events get, accepted or refused (see toNewEvent). */
function producedEvent<C, S>(stream: string, job: CommandJob<C, S>, eventId: string): boolean {
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


/** A recorded refusal tells the caller the revision it was recorded at (to continue with expected_revision). */
function withRevision(error: DomainError, revision: bigint): DomainError {
  error.metadata.revision = String(revision);
  return error;
}

/** Rules that said no: the same command would be refused again, so its retry gets the same answer. */
function isFinalRejection(error: unknown, aggregate: { isNotFound(error: unknown): boolean }): error is DomainError {
  return (
    error instanceof DomainError &&
    !(error instanceof RevisionConflictError) &&
    !(error instanceof ConcurrencyRetriesExhaustedError) &&
    !(error instanceof CommandIdReusedError) &&
    !aggregate.isNotFound(error)
  );
}

function cancellationOf(signal: AbortSignal): CommandCancelledError {
  const reason: unknown = signal.reason;
  return new CommandCancelledError(reason instanceof CommandCancelledError ? reason.why : "cancelled");
}
