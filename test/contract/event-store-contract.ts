/**
 * The store contract: the semantics every EventStore adapter must keep
 * (docs/design.md, "Store semantics"). Each adapter runs this whole suite through
 * its own factory; see sqlite.test.ts and esdb.test.ts.
 */
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  InvalidPositionError,
  WrongExpectedRevisionError,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
  type Subscription,
  type SubscriptionMessage,
} from "../../server/src/store/event-store.js";

export interface StoreUnderTest {
  store: EventStore;
  cleanup: () => Promise<void>;
}

export function describeEventStoreContract(name: string, factory: () => Promise<StoreUnderTest>): void {
  describe(`EventStore contract: ${name}`, () => {
    let subject: StoreUnderTest;
    let store: EventStore;
    // Unique names, so the suite also runs against a real, persistent store.
    let stream: string;
    let prefix: string;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
      prefix = `t${randomUUID().slice(0, 8)}-`;
      stream = `${prefix}a`;
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    describe("append", () => {
      it("creates a stream at revision 0 with no_stream and continues with exact revisions", async () => {
        const first = await store.append(stream, [event("Opened")], "no_stream");
        expect(first.nextExpectedRevision).toBe(0n);
        const second = await store.append(stream, [event("A"), event("B")], 0n);
        expect(second.nextExpectedRevision).toBe(2n);
        expect(await types(store, stream)).toEqual(["Opened", "A", "B"]);
      });

      it("rejects a stale exact revision with the actual revision", async () => {
        await store.append(stream, [event("A"), event("B")], "no_stream");
        const error = await store.append(stream, [event("C")], 0n).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WrongExpectedRevisionError);
        expect((error as WrongExpectedRevisionError).actual).toBe(1n);
        expect(await types(store, stream)).toEqual(["A", "B"]);
      });

      it("rejects no_stream on an existing stream and stream_exists on a missing one", async () => {
        await store.append(stream, [event("A")], "no_stream");
        const exists = await store.append(stream, [event("B")], "no_stream").catch((e: unknown) => e);
        expect((exists as WrongExpectedRevisionError).actual).toBe(0n);
        const missing = await store.append(`${prefix}missing`, [event("B")], "stream_exists").catch((e: unknown) => e);
        expect(missing).toBeInstanceOf(WrongExpectedRevisionError);
        expect((missing as WrongExpectedRevisionError).actual).toBe("no_stream");
      });

      it("reports no_stream as the actual revision of a missing stream on an exact expectation", async () => {
        const error = await store.append(stream, [event("A")], 3n).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(WrongExpectedRevisionError);
        expect((error as WrongExpectedRevisionError).actual).toBe("no_stream");
      });

      it("accepts stream_exists and any", async () => {
        await store.append(stream, [event("A")], "any");
        await store.append(stream, [event("B")], "stream_exists");
        const result = await store.append(stream, [event("C")], "any");
        expect(result.nextExpectedRevision).toBe(2n);
      });

      it("does not duplicate a retried append with the same event ids", async () => {
        const batch = [event("A"), event("B")];
        const first = await store.append(stream, batch, "no_stream");
        const again = await store.append(stream, batch, "no_stream");
        expect(again.nextExpectedRevision).toBe(first.nextExpectedRevision);
        expect(await types(store, stream)).toEqual(["A", "B"]);
      });

      it("keeps ids per stream: the same event id in another stream is that stream's own event", async () => {
        const shared = event("A");
        await store.append(stream, [shared], "no_stream");
        const other = `${stream}-other`;
        const result = await store.append(other, [shared], "no_stream");
        expect(result.nextExpectedRevision).toBe(0n);
        expect(await types(store, stream)).toEqual(["A"]);
        expect(await types(store, other)).toEqual(["A"]);
      });

      it("writes a multi-event append all or nothing", async () => {
        await store.append(stream, [event("A")], "no_stream");
        await expect(store.append(stream, [event("B"), event("C"), event("D")], 5n)).rejects.toBeInstanceOf(
          WrongExpectedRevisionError,
        );
        expect(await types(store, stream)).toEqual(["A"]);
      });

      it("lets exactly one of many concurrent appends at the same revision win", async () => {
        await store.append(stream, [event("A")], "no_stream");
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) => store.append(stream, [event(`B${i}`)], 0n)),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results) {
          if (r.status === "rejected") expect(r.reason).toBeInstanceOf(WrongExpectedRevisionError);
        }
        expect(await types(store, stream)).toHaveLength(2);
      });

      it("keeps data and metadata as JSON", async () => {
        const sent = event("A", { amount: "12", nested: { ok: true } });
        await store.append(stream, [sent], "no_stream");
        const [read] = await events(store, stream);
        expect(read!.id).toBe(sent.id);
        expect(read!.data).toEqual({ amount: "12", nested: { ok: true } });
        expect(read!.metadata).toMatchObject(sent.metadata);
        expect(read!.created).toBeInstanceOf(Date);
        expect(read!.stream).toBe(stream);
      });
    });

    describe("readStream", () => {
      it("returns no_stream for a stream never written", async () => {
        expect(await store.readStream(`${prefix}never`)).toEqual({ status: "no_stream" });
        expect(await store.readStream(`${prefix}never`, { direction: "backwards" })).toEqual({ status: "no_stream" });
      });

      it("reads forwards from an inclusive revision with a max count", async () => {
        await store.append(stream, ["A", "B", "C", "D"].map((t) => event(t)), "no_stream");
        const result = await store.readStream(stream, { fromRevision: 1n, maxCount: 2 });
        expect(result.status === "ok" && result.events.map((e) => [e.revision, e.type])).toEqual([
          [1n, "B"],
          [2n, "C"],
        ]);
      });

      it("reads backwards from the end or from a revision", async () => {
        await store.append(stream, ["A", "B", "C", "D"].map((t) => event(t)), "no_stream");
        const fromEnd = await store.readStream(stream, { direction: "backwards", maxCount: 2 });
        expect(fromEnd.status === "ok" && fromEnd.events.map((e) => e.type)).toEqual(["D", "C"]);
        const fromOne = await store.readStream(stream, { direction: "backwards", fromRevision: 1n });
        expect(fromOne.status === "ok" && fromOne.events.map((e) => e.type)).toEqual(["B", "A"]);
      });

      it("returns an empty page past the end of an existing stream", async () => {
        await store.append(stream, [event("A")], "no_stream");
        expect(await store.readStream(stream, { fromRevision: 5n })).toEqual({ status: "ok", events: [] });
      });

      it("gives later events higher positions", async () => {
        await store.append(stream, [event("A")], "no_stream");
        await store.append(`${prefix}b`, [event("B")], "no_stream");
        await store.append(stream, [event("C")], 0n);
        const all = await collect(store.subscribeToAll({ streamPrefix: prefix }), 3);
        expect(all.map((e) => e.type)).toEqual(["A", "B", "C"]);
      });
    });

    describe("subscribeToStream", () => {
      it("delivers history, caught_up, then live events", async () => {
        await store.append(stream, [event("A"), event("B")], "no_stream");
        const subscription = store.subscribeToStream(stream);
        const iterator = subscription[Symbol.asyncIterator]();
        expect(await nextEventType(iterator)).toBe("A");
        expect(await nextEventType(iterator)).toBe("B");
        expect((await next(iterator)).type).toBe("caught_up");
        await store.append(stream, [event("C")], 1n);
        expect(await nextEventType(iterator)).toBe("C");
        await subscription.close();
      });

      it("starts after the given revision", async () => {
        await store.append(stream, ["A", "B", "C"].map((t) => event(t)), "no_stream");
        const seen = await collect(store.subscribeToStream(stream, { afterRevision: 0n }), 2);
        expect(seen.map((e) => [e.revision, e.type])).toEqual([
          [1n, "B"],
          [2n, "C"],
        ]);
      });

      it("waits for a stream that does not exist yet", async () => {
        const subscription = store.subscribeToStream(stream);
        const iterator = subscription[Symbol.asyncIterator]();
        expect((await next(iterator)).type).toBe("caught_up");
        await store.append(stream, [event("A")], "no_stream");
        expect(await nextEventType(iterator)).toBe("A");
        await subscription.close();
      });

      it("loses and repeats nothing while appends race the catch-up", async () => {
        await store.append(stream, [event("E0")], "no_stream");
        const subscription = store.subscribeToStream(stream);
        const writing = (async () => {
          for (let i = 1; i < 40; i++) await store.append(stream, [event(`E${i}`)], "any");
        })();
        const seen = await collect(subscription, 40);
        await writing;
        expect(seen.map((e) => e.type)).toEqual(Array.from({ length: 40 }, (_, i) => `E${i}`));
        expect(seen.map((e) => e.revision)).toEqual(Array.from({ length: 40 }, (_, i) => BigInt(i)));
      });

      it("ends iteration when closed while waiting", async () => {
        const subscription = store.subscribeToStream(stream);
        const iterator = subscription[Symbol.asyncIterator]();
        expect((await next(iterator)).type).toBe("caught_up");
        const pending = iterator.next();
        await subscription.close();
        expect((await pending).done).toBe(true);
      });
    });

    describe("subscribeToAll", () => {
      it("delivers every stream with the prefix in order, then caught_up, then live", async () => {
        await store.append(`${prefix}x`, [event("X0")], "no_stream");
        await store.append(`other-${prefix}`, [event("Other")], "no_stream");
        await store.append(`${prefix}y`, [event("Y0")], "no_stream");
        const subscription = store.subscribeToAll({ streamPrefix: prefix });
        const iterator = subscription[Symbol.asyncIterator]();
        expect(await nextEventType(iterator)).toBe("X0");
        expect(await nextEventType(iterator)).toBe("Y0");
        expect((await next(iterator)).type).toBe("caught_up");
        await store.append(`${prefix}x`, [event("X1")], 0n);
        expect(await nextEventType(iterator)).toBe("X1");
        await subscription.close();
      });

      it("resumes after a delivered position without gap or duplicate", async () => {
        for (let i = 0; i < 5; i++) await store.append(`${prefix}s${i}`, [event(`E${i}`)], "no_stream");
        const firstRun = await collect(store.subscribeToAll({ streamPrefix: prefix }), 2);
        const resumed = await collect(
          store.subscribeToAll({ streamPrefix: prefix, afterPosition: firstRun[1]!.position }),
          3,
        );
        expect([...firstRun, ...resumed].map((e) => e.type)).toEqual(["E0", "E1", "E2", "E3", "E4"]);
      });

      it("rejects a position it did not issue", async () => {
        expect(() => store.subscribeToAll({ afterPosition: "not a position" })).toThrow(InvalidPositionError);
      });
    });
  });
}

export function event(type: string, data: Record<string, unknown> = {}): NewEvent {
  return {
    id: randomUUID(),
    type,
    data,
    metadata: { commandId: randomUUID(), correlationId: randomUUID(), causationId: randomUUID() },
  };
}

async function events(store: EventStore, stream: string): Promise<RecordedEvent[]> {
  const result = await store.readStream(stream);
  if (result.status !== "ok") throw new Error(`stream ${stream} not found`);
  return result.events;
}

async function types(store: EventStore, stream: string): Promise<string[]> {
  return (await events(store, stream)).map((e) => e.type);
}

const STEP_TIMEOUT_MS = 5_000;

async function next(iterator: AsyncIterator<SubscriptionMessage>): Promise<SubscriptionMessage> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("subscription delivered nothing in time")), STEP_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    if (result.done) throw new Error("subscription ended early");
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

async function nextEventType(iterator: AsyncIterator<SubscriptionMessage>): Promise<string> {
  const message = await next(iterator);
  if (message.type !== "event") throw new Error(`expected an event, got ${message.type}`);
  return message.event.type;
}

/** The first `count` events of a subscription (caught_up markers skipped), then close it. */
async function collect(subscription: Subscription, count: number): Promise<RecordedEvent[]> {
  const iterator = subscription[Symbol.asyncIterator]();
  const seen: RecordedEvent[] = [];
  try {
    while (seen.length < count) {
      const message = await next(iterator);
      if (message.type === "event") seen.push(message.event);
    }
  } finally {
    await subscription.close();
  }
  return seen;
}
