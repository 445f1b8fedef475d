/**
 * Groups a subscription's events into batches for one gRPC message each:
 * grpc-js spends about 17 us of server CPU per message on a stream, several
 * times what reading and encoding one event costs, so a catch-up sent one
 * event per message is bound by messages, not by the store.
 *
 * A batch holds the events that are ready together: it closes at `max`
 * events, at a non-event message (caught up, checkpoint), or when the next
 * event is not ready by the next turn of the event loop (a catch-up reads
 * whole pages at once; a live subscription waits for appends), so batching
 * never holds back an event that could be sent now.
 */
import type { RecordedEvent, SubscriptionMessage } from "../store/event-store.js";

export type BatchedMessage = Exclude<SubscriptionMessage, { type: "event" }> | { type: "events"; events: RecordedEvent[] };

const NOT_READY = Symbol("not ready");

export async function* inBatches(source: AsyncIterable<SubscriptionMessage>, max: number): AsyncGenerator<BatchedMessage> {
  const iterator = source[Symbol.asyncIterator]();
  let next = iterator.next();
  try {
    for (;;) {
      const first = await next;
      if (first.done) return;
      next = iterator.next();
      if (first.value.type !== "event") {
        yield first.value;
        continue;
      }
      const events = [first.value.event];
      // One timer per batch: while events come ready within this turn, the race never reaches it.
      const turnEnds = new Promise<typeof NOT_READY>((resolve) => setImmediate(resolve, NOT_READY));
      let after: BatchedMessage | undefined;
      let ended = false;
      while (events.length < max) {
        const ready = await Promise.race([next, turnEnds]);
        if (ready === NOT_READY) break;
        if (ready.done) {
          ended = true;
          break;
        }
        next = iterator.next();
        if (ready.value.type !== "event") {
          after = ready.value;
          break;
        }
        events.push(ready.value.event);
      }
      yield { type: "events", events };
      if (after) yield after;
      if (ended) return;
    }
  } finally {
    // Not awaited: a pending next() settles only once the caller closes the source (see subscription()).
    next.catch(() => {});
    void iterator.return?.().catch(() => {});
  }
}
