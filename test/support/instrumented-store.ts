/**
 * A real store with hooks: counts what subscriptions pull from it and can
 * slow down reads. For tests of flow control and deadlines.
 */
import type {
  AppendResult,
  EventStore,
  ExpectedRevision,
  NewEvent,
  ReadStreamOptions,
  ReadStreamResult,
  SubscribeToAllOptions,
  SubscribeToStreamOptions,
  Subscription,
} from "../../server/src/store/event-store.js";

export class InstrumentedStore implements EventStore {
  /** Messages pulled out of store subscriptions so far. */
  pulled = 0;
  /** Store subscriptions opened and not yet closed. */
  openSubscriptions = 0;
  /** Added to every readStream. */
  readDelayMs = 0;
  /** The stream of every append, in order. */
  readonly appendedStreams: string[] = [];

  constructor(readonly inner: EventStore) {}

  append(stream: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    this.appendedStreams.push(stream);
    return this.inner.append(stream, events, expected);
  }

  async readStream(stream: string, options?: ReadStreamOptions): Promise<ReadStreamResult> {
    if (this.readDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.readDelayMs));
    return this.inner.readStream(stream, options);
  }

  subscribeToStream(stream: string, options?: SubscribeToStreamOptions): Subscription {
    return this.counted(this.inner.subscribeToStream(stream, options));
  }

  subscribeToAll(options?: SubscribeToAllOptions): Subscription {
    return this.counted(this.inner.subscribeToAll(options));
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private counted(subscription: Subscription): Subscription {
    const counter = this;
    counter.openSubscriptions++;
    let open = true;
    const close = async () => {
      if (open) {
        open = false;
        counter.openSubscriptions--;
      }
      await subscription.close();
    };
    return {
      close,
      async *[Symbol.asyncIterator]() {
        try {
          for await (const message of subscription) {
            counter.pulled++;
            yield message;
          }
        } finally {
          await close();
        }
      },
    };
  }
}
