/**
 * The production EventStore: EventStoreDB (KurrentDB) through
 * `@eventstore/db-client` 6.x.
 *
 * - Every append passes an explicit expected revision (the client's default
 *   is ANY, which would silently drop the concurrency check).
 * - Event ids are the caller's, so EventStoreDB's idempotent appends make a
 *   retried command a no-op.
 * - Subscriptions are the server's catch-up subscriptions, pulled through
 *   the client's Readable (its async iterator honours backpressure, so a slow
 *   consumer holds a few buffered events, not a backlog). The client never
 *   resubscribes by itself; this adapter does, from the last delivered
 *   revision/position, so a drop costs neither a gap nor a duplicate.
 * - `caught_up` comes from the server's CaughtUp message (EventStoreDB 23.10+,
 *   and for streams that do not exist yet 24.2+). See docs/eventstoredb.md.
 * - An unreachable store is a StoreUnavailableError, never a hang: the client
 *   runs reads and batch appends without a deadline, so every call here has
 *   its own time limit.
 * - In a cluster (`esdb+discover://`, leader preferred), appends and reads
 *   ask for the leader (`requiresLeader`), so a node that lost leadership
 *   answers not-leader instead of serving a stale read; the client then
 *   reconnects to the leader it names, and the call is tried again there.
 *   Subscriptions may run on any node. See docs/eventstoredb.md.
 */
import {
  AccessDeniedError,
  BACKWARDS,
  CancelledError,
  DeadlineExceededError,
  END,
  EventStoreDBClient,
  excludeSystemEvents,
  FORWARDS,
  jsonEvent,
  MaxAppendSizeExceededError,
  NotLeaderError,
  START,
  StreamDeletedError,
  StreamNotFoundError,
  streamNameFilter,
  TimeoutError,
  UnavailableError,
  WrongExpectedVersionError,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type ResolvedEvent,
  type StreamSubscription,
} from "@eventstore/db-client";
import {
  StoreUnavailableError,
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadStreamOptions,
  type ReadStreamResult,
  type RecordedEvent,
  type SubscribeToAllOptions,
  type SubscribeToStreamOptions,
  type Subscription,
  type SubscriptionMessage,
} from "./event-store.js";
import { decodePosition, encodePosition, type EsdbPosition } from "./esdb-position.js";
import { AppendOutcomeUnknownError, AppendTooLargeError, StoreAccessDeniedError, StoreStreamDeletedError } from "./store-errors.js";

export interface EsdbEventStoreOptions {
  /** Upper bound for one append or read, in ms (default 10 s, the client's own default deadline). */
  operationTimeoutMs?: number;
  /** How long a dropped subscription keeps trying to resubscribe before it fails (default 30 s). */
  resubscribeTimeoutMs?: number;
  /** First pause between resubscribe attempts, doubled each time (default 100 ms). */
  initialBackoffMs?: number;
  /** Longest pause between resubscribe attempts (default 5 s). */
  maxBackoffMs?: number;
  /** Events a subscription buffers ahead of its consumer (default 32). */
  readAhead?: number;
}

/**
 * Connect to EventStoreDB, e.g. `esdb://127.0.0.1:2113?tls=false`. The client
 * connects lazily, so this does not fail when the store is down; the first
 * operation does, with StoreUnavailableError. Keep-alive (keepAliveInterval,
 * keepAliveTimeout) and defaultDeadline can be tuned in the connection
 * string; the client's defaults are 10 s each.
 */
export function createEsdbEventStore(connectionString: string, options: EsdbEventStoreOptions = {}): EsdbEventStore {
  return new EsdbEventStore(EventStoreDBClient.connectionString(connectionString), options);
}

type AnyResolvedEvent = ResolvedEvent | AllStreamResolvedEvent;
type ClientSubscription = StreamSubscription | AllStreamSubscription;

export class EsdbEventStore implements EventStore {
  private readonly subscriptions = new Set<ResubscribingSubscription>();
  private readonly settings: Required<EsdbEventStoreOptions>;
  private closed = false;

  constructor(
    private readonly client: EventStoreDBClient,
    options: EsdbEventStoreOptions = {},
  ) {
    this.settings = {
      operationTimeoutMs: options.operationTimeoutMs ?? 10_000,
      resubscribeTimeoutMs: options.resubscribeTimeoutMs ?? 30_000,
      initialBackoffMs: options.initialBackoffMs ?? 100,
      maxBackoffMs: options.maxBackoffMs ?? 5_000,
      readAhead: options.readAhead ?? 32,
    };
  }

  async append(stream: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    this.assertOpen();
    if (events.length === 0) throw new RangeError("append needs at least one event");
    const proposed = events.map((e) => jsonEvent({ id: e.id, type: e.type, data: e.data, metadata: e.metadata }));
    try {
      // Tried again on the new leader after not-leader: the same event ids at
      // the same expected revision are idempotent if the first try was written.
      const result = await onLeader(() =>
        withTimeout(
          // The deadline travels to the server (inside BatchAppend's options), so it gives up the write too.
          this.client.appendToStream(stream, proposed, {
            expectedRevision: expected,
            deadline: this.settings.operationTimeoutMs,
            requiresLeader: true,
          }),
          this.settings.operationTimeoutMs,
          `append to ${stream}`,
          undefined,
          () => new AppendOutcomeUnknownError(stream),
        ),
      );
      return {
        nextExpectedRevision: result.nextExpectedRevision,
        position: result.position ? encodePosition(result.position) : "",
      };
    } catch (error) {
      if (error instanceof WrongExpectedVersionError) {
        throw new WrongExpectedRevisionError(stream, expected, error.actualVersion);
      }
      if (error instanceof MaxAppendSizeExceededError) throw new AppendTooLargeError(stream, error.maxAppendSize);
      // The server may have written it (or may still): never assume either way.
      // Not-leader too: it ends a whole BatchAppend call, appends the old
      // leader had already taken included.
      if (error instanceof DeadlineExceededError || error instanceof TimeoutError || error instanceof NotLeaderError) {
        throw new AppendOutcomeUnknownError(stream, { cause: error });
      }
      throw toStoreError(error, `append to ${stream}`, stream);
    }
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<ReadStreamResult> {
    this.assertOpen();
    const direction = options.direction ?? "forwards";
    const from = options.fromRevision ?? (direction === "forwards" ? "start" : "end");
    const maxCount = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    if (maxCount <= 0) {
      // Nothing to read, but the caller still learns whether the stream exists.
      const probe = await this.readStream(stream, { direction: "backwards", maxCount: 1 });
      return probe.status === "ok" ? { status: "ok", events: [] } : probe;
    }
    const readOnce = (): Promise<ReadStreamResult> => {
      const read = this.client.readStream(stream, {
        direction: direction === "forwards" ? FORWARDS : BACKWARDS,
        fromRevision: from === "start" ? START : from === "end" ? END : from,
        maxCount,
        requiresLeader: true,
      });
      const collect = async (): Promise<ReadStreamResult> => {
        const events: RecordedEvent[] = [];
        for await (const resolved of read) {
          const event = toRecordedEvent(resolved);
          if (event) events.push(event);
        }
        return { status: "ok", events };
      };
      return withTimeout(collect(), this.settings.operationTimeoutMs, `read of ${stream}`, () => read.cancel());
    };
    try {
      return await onLeader(readOnce);
    } catch (error) {
      if (error instanceof StreamNotFoundError) return { status: "no_stream" };
      throw toStoreError(error, `read of ${stream}`, stream);
    }
  }

  subscribeToStream(stream: string, options: SubscribeToStreamOptions = {}): Subscription {
    this.assertOpen();
    let after = options.afterRevision;
    return this.track(
      stream,
      () =>
        this.client.subscribeToStream(
          stream,
          { fromRevision: after ?? START },
          { highWaterMark: this.settings.readAhead },
        ),
      (event) => {
        after = event.revision;
      },
    );
  }

  subscribeToAll(options: SubscribeToAllOptions = {}): Subscription {
    this.assertOpen();
    // Decoded now, so a bad position fails the call rather than the first pull.
    let after: EsdbPosition | undefined =
      options.afterPosition === undefined ? undefined : decodePosition(options.afterPosition);
    // Filtered on the server. Without a prefix, EventStoreDB's own system
    // events ($-types: stats, metadata, links) are left out.
    const filter =
      options.streamPrefix === undefined
        ? excludeSystemEvents()
        : streamNameFilter({ prefixes: [options.streamPrefix] });
    return this.track(
      "$all",
      () =>
        this.client.subscribeToAll({ fromPosition: after ?? START, filter }, { highWaterMark: this.settings.readAhead }),
      (_event, position) => {
        if (position) after = position;
      },
    );
  }

  private track(
    stream: string,
    open: () => ClientSubscription,
    delivered: (event: RecordedEvent, position: EsdbPosition | undefined) => void,
  ): Subscription {
    const subscription = new ResubscribingSubscription(
      open,
      delivered,
      this.settings,
      () => this.subscriptions.delete(subscription),
      stream,
    );
    this.subscriptions.add(subscription);
    return subscription;
  }

  /**
   * For the health monitor, at start-up and then periodically: the store is
   * reachable, and this server's user may do what serving needs. It reads
   * `$all` (SubscribeAll; on a secure EventStoreDB only `$admins` and `$ops`
   * may) and tries an append that cannot succeed (expected `stream_exists`
   * on a stream that never exists; access is checked before the expected
   * revision), so nothing is written. Throws StoreAccessDeniedError, saying
   * which, or StoreUnavailableError; other refusals mean it is reachable.
   */
  async probe(): Promise<void> {
    try {
      await onLeader(() => {
        const read = this.client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1, requiresLeader: true });
        return withTimeout(
          (async () => {
            for await (const _ of read);
          })(),
          this.settings.operationTimeoutMs,
          "probe read of $all",
          () => read.cancel(),
        );
      });
    } catch (error) {
      if (error instanceof AccessDeniedError) {
        throw new StoreAccessDeniedError(
          "read",
          "$all",
          "the configured EventStoreDB user may not read $all: SubscribeAll needs a user in $admins or $ops",
          { cause: error },
        );
      }
      if (isTransient(error)) throw toStoreError(error, "probe read of $all");
    }
    try {
      await onLeader(() =>
        withTimeout(
          this.client.appendToStream(PROBE_STREAM, jsonEvent({ type: "EventbankProbe", data: {} }), {
            expectedRevision: "stream_exists",
            requiresLeader: true,
          }),
          this.settings.operationTimeoutMs,
          "probe append",
        ),
      );
    } catch (error) {
      if (error instanceof AccessDeniedError) {
        throw new StoreAccessDeniedError(
          "write",
          PROBE_STREAM,
          `the configured EventStoreDB user may not write account streams (denied on ${PROBE_STREAM})`,
          { cause: error },
        );
      }
      if (isTransient(error)) throw toStoreError(error, "probe append");
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    await this.client.dispose();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError("the EventStoreDB store is closed");
  }
}

/** An account stream no account can have ("$" is not allowed in account ids), used only to probe write access. */
const PROBE_STREAM = "account-$eventbank-probe";

/** Pushed into the client's subscription stream when the server says it caught up, to keep it in order with events. */
const CAUGHT_UP = Object.freeze({ caughtUp: true });

/**
 * One logical catch-up subscription over any number of server subscriptions:
 * when one drops for a transient reason it opens the next from the last
 * delivered event, with exponential backoff, and gives up with
 * StoreUnavailableError after `resubscribeTimeoutMs` without a confirmed
 * subscription.
 */
class ResubscribingSubscription implements Subscription {
  private closed = false;
  private current: ClientSubscription | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly open: () => ClientSubscription,
    private readonly delivered: (event: RecordedEvent, position: EsdbPosition | undefined) => void,
    private readonly settings: Required<EsdbEventStoreOptions>,
    private readonly onClose: () => void,
    /** The stream, or "$all", for error messages. */
    private readonly stream: string,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<SubscriptionMessage> {
    let caughtUpSent = false;
    let failingSince: number | undefined;
    let backoff = this.settings.initialBackoffMs;
    try {
      while (!this.closed) {
        const subscription = this.open();
        this.current = subscription;
        let confirmed = false;
        subscription.once("confirmation", () => {
          confirmed = true;
        });
        subscription.on("caughtUp", () => subscription.push(CAUGHT_UP));
        let failure: unknown;
        try {
          for await (const item of subscription as AsyncIterable<AnyResolvedEvent | typeof CAUGHT_UP>) {
            if (item === CAUGHT_UP) {
              if (!caughtUpSent) {
                caughtUpSent = true;
                yield { type: "caught_up" };
              }
              continue;
            }
            const resolved = item as AnyResolvedEvent;
            const event = toRecordedEvent(resolved);
            if (!event) continue;
            this.delivered(event, resolved.event?.position);
            yield { type: "event", event };
            if (this.closed) return;
          }
          // The server ended the subscription without an error: treat it like a drop.
        } catch (error) {
          failure = error;
        } finally {
          this.current = undefined;
          release(subscription);
        }
        if (this.closed) return;
        if (failure !== undefined && !isTransient(failure)) throw toStoreError(failure, "subscription", this.stream);

        const now = Date.now();
        if (confirmed || failingSince === undefined) {
          failingSince = now;
          backoff = this.settings.initialBackoffMs;
        }
        if (now - failingSince >= this.settings.resubscribeTimeoutMs) {
          throw new StoreUnavailableError(
            `subscription lost and not re-established within ${this.settings.resubscribeTimeoutMs} ms`,
            { cause: failure },
          );
        }
        await this.sleep(Math.min(backoff, this.settings.resubscribeTimeoutMs - (now - failingSince)));
        backoff = Math.min(backoff * 2, this.settings.maxBackoffMs);
      }
    } finally {
      await this.close();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    if (this.current) release(this.current);
    this.onClose();
  }
}

/** Cancel the gRPC call and end the Readable, so a pending pull settles. */
function release(subscription: ClientSubscription): void {
  void subscription.unsubscribe().catch(() => undefined);
  subscription.destroy();
}

function toRecordedEvent(resolved: AnyResolvedEvent): RecordedEvent | undefined {
  const event = resolved.event;
  if (!event) return undefined;
  return {
    stream: event.streamId,
    revision: event.revision,
    position: event.position ? encodePosition(event.position) : "",
    id: event.id,
    type: event.type,
    data: asObject(event.data),
    metadata: asObject(event.metadata) as RecordedEvent["metadata"],
    created: event.created,
  };
}

/** JSON objects pass through; anything else (binary, arrays, nothing) reads as an empty object or a parsed buffer. */
function asObject(value: unknown): Record<string, unknown> {
  if (value instanceof Uint8Array) {
    try {
      return asObject(JSON.parse(Buffer.from(value).toString("utf8")));
    } catch {
      return {};
    }
  }
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** gRPC UNAVAILABLE and DEADLINE_EXCEEDED, raw or wrapped by the client. */
const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;

/** Worth retrying: the store (or the way to it) is down, restarting, or changing leader. */
function isTransient(error: unknown): boolean {
  if (
    error instanceof UnavailableError ||
    error instanceof DeadlineExceededError ||
    error instanceof CancelledError || // a server shutting down cancels its calls (EventStoreDB 24.4+)
    error instanceof NotLeaderError ||
    error instanceof TimeoutError ||
    error instanceof StoreUnavailableError
  ) {
    return true;
  }
  const code = (error as { code?: unknown } | null)?.code;
  return code === UNAVAILABLE || code === DEADLINE_EXCEEDED || code === "ERR_STREAM_PREMATURE_CLOSE";
}

function toStoreError(error: unknown, what: string, stream = "$all"): unknown {
  if (error instanceof StoreUnavailableError) return error;
  if (error instanceof AccessDeniedError) return new StoreAccessDeniedError(what.split(" ")[0]!, stream, undefined, { cause: error });
  if (error instanceof StreamDeletedError) return new StoreStreamDeletedError(stream);
  if (isTransient(error)) {
    return new StoreUnavailableError(`EventStoreDB unavailable during ${what}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return error;
}

/** Tries after a not-leader answer, the first included. */
const NOT_LEADER_ATTEMPTS = 3;

/**
 * Runs `call` again when a node answers not-leader (it lost leadership, or
 * the client reached a follower). The client reconnects to the leader the
 * answer names on its next call, once it has seen the failed call end
 * (Client.handleError), so each retry waits a moment first.
 */
async function onLeader<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof NotLeaderError) || attempt >= NOT_LEADER_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
    }
  }
}

/** Rejects with StoreUnavailableError (or `timeoutError()`) after `ms`; `onTimeout` may cancel the work. */
async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  what: string,
  onTimeout?: () => unknown,
  timeoutError: () => Error = () => new StoreUnavailableError(`EventStoreDB did not answer ${what} within ${ms} ms`),
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void Promise.resolve(onTimeout?.()).catch(() => undefined);
      reject(timeoutError());
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
