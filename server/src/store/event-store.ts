/**
 * The EventStore port: what command handling and the gRPC layer need from an
 * event store. Adapters (sqlite, esdb) implement exactly these semantics, and
 * test/contract/ checks every adapter with one suite.
 */

/** `any` skips the check; a bigint is the exact revision of the stream's last event. */
export type ExpectedRevision = "any" | "no_stream" | "stream_exists" | bigint;

/** JSON metadata stored with every event. */
export interface EventMetadata {
  commandId: string;
  correlationId: string;
  causationId: string;
  /** Who issued the command, when authentication is on. */
  principal?: string;
  /** Version of the data's shape for this event type; absent (events of 0.1.0): 1. See app/event-codec.ts. */
  schemaVersion?: number;
  /** W3C trace and span id of the RPC that caused the event, when tracing is on. */
  traceId?: string;
  spanId?: string;
}

export interface NewEvent {
  /** UUID; derived from the command id so a retried append does not duplicate. */
  id: string;
  type: string;
  data: Record<string, unknown>;
  metadata: EventMetadata;
}

export interface RecordedEvent {
  stream: string;
  /** 0-based index within the stream. */
  revision: bigint;
  /** Opaque global position: pass it back to `subscribeToAll` to resume after this event. */
  position: string;
  id: string;
  type: string;
  data: Record<string, unknown>;
  metadata: Partial<EventMetadata> & Record<string, unknown>;
  created: Date;
}

export interface AppendResult {
  /** Revision of the last event now in the stream. */
  nextExpectedRevision: bigint;
  /** Global position of the last appended event. */
  position: string;
  /** JSON bytes of data and metadata written, where the adapter has them at hand (SQLite); 0 for a repeat. */
  bytes?: number;
}

export type ReadDirection = "forwards" | "backwards";

export interface ReadStreamOptions {
  direction?: ReadDirection;
  /** Inclusive start; default: "start" forwards, "end" backwards. */
  fromRevision?: bigint | "start" | "end";
  /** Default: the whole rest of the stream. Callers page through long streams. */
  maxCount?: number;
}

/** A missing stream is a normal outcome, not an exception. */
export type ReadStreamResult =
  | { status: "ok"; events: RecordedEvent[] }
  | { status: "no_stream" };

export type SubscriptionMessage =
  | { type: "event"; event: RecordedEvent }
  /** Sent once, after the history and before the first live event. */
  | { type: "caught_up" }
  /**
   * Only when asked for (`checkpoints`): every event of the filter up to
   * `position` has been delivered, so a consumer may persist it and resume
   * after it without rereading the other streams' events it passed over.
   */
  | { type: "checkpoint"; position: string; /** Events passed over since the previous checkpoint (or the start). */ passed: number };

/**
 * A catch-up subscription, pulled by its consumer: an adapter reads ahead at
 * most a bounded page, so a slow reader costs bounded memory. Iteration throws
 * StoreUnavailableError when the store is lost for good. `close()` (or
 * leaving a for-await loop) releases everything it holds.
 */
export interface Subscription extends AsyncIterable<SubscriptionMessage> {
  close(): Promise<void>;
}

export interface SubscribeToStreamOptions {
  /** Exclusive: delivery starts after this revision. Absent: from revision 0. */
  afterRevision?: bigint;
}

export interface SubscribeToAllOptions {
  /** Exclusive: delivery starts after this position. Absent: from the first event. */
  afterPosition?: string;
  /** Only streams whose name starts with this prefix (e.g. "account-"). */
  streamPrefix?: string;
  /**
   * Also send checkpoint messages as the filter passes over other streams'
   * events. Stores that cannot (EventStoreDB here) send none; consumers must
   * do without them.
   */
  checkpoints?: boolean;
}

export interface EventStore {
  /**
   * Atomic: all events are written or none. Throws WrongExpectedRevisionError
   * on a mismatch. Appending events whose ids are already the stream's (a
   * retried append) succeeds without writing them again. `events` must not be empty.
   */
  append(stream: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult>;
  readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult>;
  subscribeToStream(stream: string, options?: SubscribeToStreamOptions): Subscription;
  subscribeToAll(options?: SubscribeToAllOptions): Subscription;
  /**
   * Where an event with this id is in `stream`, or undefined. Only stores that
   * index events by id offer it (SQLite); the command handler uses it to
   * recognise retries older than its idempotency window.
   */
  findEvent?(stream: string, eventId: string): Promise<{ revision: bigint } | undefined>;
  /**
   * Resolves when the store can serve again, throws a StoreUnavailableError
   * (or subclass) while it cannot. The health monitor calls it while the
   * store is failing: SQLite makes a small real write (a full disk or a held
   * lock shows), EventStoreDB a cheap read.
   */
  probe?(): Promise<void>;
  close(): Promise<void>;
}

export class WrongExpectedRevisionError extends Error {
  override readonly name = "WrongExpectedRevisionError";
  constructor(
    readonly stream: string,
    readonly expected: ExpectedRevision,
    /** Revision of the stream's last event, or "no_stream". */
    readonly actual: bigint | "no_stream",
  ) {
    super(`stream ${stream}: expected revision ${String(expected)}, actual ${String(actual)}`);
  }
}

/**
 * An event id of the append is already in the stream, at `revision`: the
 * command that produced it was applied before. Nothing was appended. Stores
 * that can look events up by id (SQLite) raise it; on EventStoreDB the
 * command handler's idempotency window is the guard.
 */
export class DuplicateEventError extends Error {
  override readonly name = "DuplicateEventError";
  constructor(
    readonly stream: string,
    readonly eventId: string,
    readonly revision: bigint,
  ) {
    super(`event ${eventId} is already in ${stream} at revision ${revision}`);
  }
}

/**
 * The store cannot serve (unreachable, went away, or one of the faults
 * below); callers may retry later. Nothing of the failed operation was
 * written.
 */
export class StoreUnavailableError extends Error {
  override readonly name: string = "StoreUnavailableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Another connection (usually another process) held the write lock for longer than this server waits. */
export class StoreBusyError extends StoreUnavailableError {
  override readonly name: string = "StoreBusyError";
}

/** The disk (or volume) holding the store is full: retrying soon does not help until space is freed. */
export class StoreFullError extends StoreUnavailableError {
  override readonly name: string = "StoreFullError";
}

/** The store's file cannot be written (read-only file or file system). */
export class StoreReadOnlyError extends StoreUnavailableError {
  override readonly name: string = "StoreReadOnlyError";
}

/** A position string that this store did not issue. */
export class InvalidPositionError extends Error {
  override readonly name = "InvalidPositionError";
  constructor(readonly position: string) {
    super(`invalid position: ${JSON.stringify(position)}`);
  }
}

/** The stream of one account; ids are validated before they get here. */
export const ACCOUNT_STREAM_PREFIX = "account-";
export const accountStream = (accountId: string): string => ACCOUNT_STREAM_PREFIX + accountId;
