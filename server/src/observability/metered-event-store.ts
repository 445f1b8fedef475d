/**
 * An EventStore decorator around the real store: append latency, events and
 * bytes appended, expected-revision conflicts, errors by reason, and the
 * subscriptions' open count, events delivered and lag. The adapters stay
 * unaware of metrics (group-commit size is the one thing only SQLite knows).
 */
import {
  DuplicateEventError,
  InvalidPositionError,
  StoreUnavailableError,
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadStreamOptions,
  type ReadStreamResult,
  type SubscribeToAllOptions,
  type SubscribeToStreamOptions,
  type Subscription,
} from "../store/event-store.js";
import { TRANSFER_STREAM_PREFIX } from "../app/transfer-aggregate.js";
import type { Metrics, SubscriptionKind } from "./metrics.js";
import type { CounterChild } from "./plain-counter.js";
import type { SubscriptionLag, TrackedSubscription } from "./subscription-lag.js";

export class MeteredEventStore implements EventStore {
  readonly findEvent?: EventStore["findEvent"];
  private readonly appendOk;
  private readonly appendConflict;
  private readonly appendError;
  /** Transfer event types by the state they move a transfer into. */
  private readonly transferStates: Map<string, CounterChild>;

  constructor(
    private readonly inner: EventStore,
    private readonly metrics: Metrics,
    private readonly lag: SubscriptionLag,
  ) {
    const { appendSeconds } = metrics.store;
    this.appendOk = appendSeconds.labels("ok");
    this.appendConflict = appendSeconds.labels("conflict");
    this.appendError = appendSeconds.labels("error");
    const { transfers } = metrics;
    this.transferStates = new Map([
      ["TransferRequested", transfers.labels({ state: "requested" })],
      ["TransferCompleted", transfers.labels({ state: "completed" })],
      ["TransferFailed", transfers.labels({ state: "failed" })],
    ]);
    // Only where the real store has it: the command handler checks for its presence.
    const findEvent = inner.findEvent?.bind(inner);
    if (findEvent) this.findEvent = (stream, eventId) => this.measured("find_event", () => findEvent(stream, eventId));
  }

  async append(stream: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    const started = performance.now();
    try {
      const result = await this.inner.append(stream, events, expected);
      this.appendOk.observe((performance.now() - started) / 1000);
      const { store } = this.metrics;
      store.eventsAppended.inc(events.length);
      store.bytesAppended.inc(result.bytes ?? jsonBytes(events));
      if (stream.startsWith(TRANSFER_STREAM_PREFIX) && result.bytes !== 0) {
        for (const event of events) this.transferStates.get(event.type)?.inc();
      }
      this.lag.appended(stream, result.nextExpectedRevision, result.position);
      return result;
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) {
        this.appendConflict.observe((performance.now() - started) / 1000);
        this.metrics.store.conflicts.inc();
      } else {
        this.appendError.observe((performance.now() - started) / 1000);
        this.countError("append", error);
      }
      throw error;
    }
  }

  readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult> {
    return this.measured("read", () => this.inner.readStream(stream, options));
  }

  subscribeToStream(stream: string, options?: SubscribeToStreamOptions): Subscription {
    const subscription = this.inner.subscribeToStream(stream, options);
    const tracked = this.lag.openAccount(stream, options?.afterRevision);
    // One cheap read for where the stream's head is now; appends keep it current from here on.
    this.inner.readStream(stream, { direction: "backwards", maxCount: 1 }).then(
      (result) => {
        const last = result.status === "ok" ? result.events[0] : undefined;
        if (last) tracked.headKnown(last.revision);
      },
      () => {},
    );
    return this.metered("account", subscription, tracked);
  }

  subscribeToAll(options?: SubscribeToAllOptions): Subscription {
    const subscription = this.inner.subscribeToAll(options);
    return this.metered("all", subscription, this.lag.openAll(options?.streamPrefix, options?.afterPosition));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private metered(kind: SubscriptionKind, inner: Subscription, tracked: TrackedSubscription): Subscription {
    const { open, eventsSent } = this.metrics.subscriptions;
    const sent = eventsSent.labels({ kind });
    open.inc({ kind });
    let closed = false;
    const release = () => {
      if (closed) return;
      closed = true;
      open.dec({ kind });
      tracked.close();
    };
    const countError = (error: unknown) => this.countError("subscribe", error);
    return {
      close: async () => {
        release();
        await inner.close();
      },
      async *[Symbol.asyncIterator]() {
        try {
          for await (const message of inner) {
            if (message.type === "event") {
              tracked.delivered(message.event);
              sent.inc();
            }
            yield message;
          }
        } catch (error) {
          countError(error);
          throw error;
        } finally {
          release();
        }
      },
    };
  }

  private async measured<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      this.countError(operation, error);
      throw error;
    }
  }

  private countError(operation: string, error: unknown): void {
    this.metrics.store.errors.inc({ operation, reason: errorReason(error) });
  }
}

/** A small fixed set of reasons (never an id or a message). */
function errorReason(error: unknown): string {
  if (error instanceof StoreUnavailableError) return "unavailable";
  if (error instanceof DuplicateEventError) return "duplicate_event";
  if (error instanceof InvalidPositionError) return "invalid_position";
  if (error instanceof RangeError) return "invalid_argument";
  return "other";
}

/** For stores that do not report what they wrote (EventStoreDB: the client serializes). */
function jsonBytes(events: NewEvent[]): number {
  let bytes = 0;
  for (const event of events) bytes += Buffer.byteLength(JSON.stringify(event.data)) + Buffer.byteLength(JSON.stringify(event.metadata));
  return bytes;
}
