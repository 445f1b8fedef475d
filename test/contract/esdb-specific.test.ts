/**
 * What the shared contract cannot show about the EventStoreDB adapter:
 * positions, resubscription after drops, an unreachable store and its return,
 * bounded read-ahead. All through the gRPC double, on 127.0.0.1.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  InvalidPositionError,
  StoreUnavailableError,
  WrongExpectedRevisionError,
  type RecordedEvent,
  type Subscription,
  type SubscriptionMessage,
} from "../../server/src/store/event-store.js";
import { createEsdbEventStore, type EsdbEventStore } from "../../server/src/store/esdb-event-store.js";
import { decodePosition, encodePosition } from "../../server/src/store/esdb-position.js";
import { startEsdbDouble, type EsdbDouble } from "../support/esdb-double/server.js";
import { event } from "./event-store-contract.js";

describe("EventStoreDB positions", () => {
  it("round-trips commit and prepare through the opaque string", () => {
    const position = { commit: 18446744073709551615n, prepare: 4096n };
    expect(encodePosition(position)).toBe("18446744073709551615/4096");
    expect(decodePosition(encodePosition(position))).toEqual(position);
    expect(decodePosition("0/0")).toEqual({ commit: 0n, prepare: 0n });
  });

  it.each(["", "12", "1/2", "01/0", "-1/0", "1/-1", " 1/1", "1/1 ", "a/b", "18446744073709551616/0", "1.5/1"])(
    "rejects %j",
    (text) => {
      expect(() => decodePosition(text)).toThrow(InvalidPositionError);
    },
  );
});

describe("EsdbEventStore against the gRPC double", () => {
  let double: EsdbDouble;
  let store: EsdbEventStore;
  let stream: string;

  beforeEach(async () => {
    double = await startEsdbDouble();
    store = createEsdbEventStore(double.connectionString, {
      operationTimeoutMs: 2_000,
      resubscribeTimeoutMs: 3_000,
      initialBackoffMs: 20,
      maxBackoffMs: 200,
    });
    stream = `account-${randomUUID().slice(0, 8)}`;
  });
  afterEach(async () => {
    await store.close();
    await double.stop();
  });

  it("rejects a malformed position before subscribing", () => {
    expect(() => store.subscribeToAll({ afterPosition: "5" })).toThrow(InvalidPositionError);
    expect(() => store.subscribeToAll({ afterPosition: "7/9" })).toThrow(InvalidPositionError);
  });

  it("reports append positions that resume $all right after the appended event", async () => {
    const first = await store.append(stream, [event("A")], "no_stream");
    await store.append(stream, [event("B"), event("C")], 0n);
    const seen = await take(store.subscribeToAll({ afterPosition: first.position, streamPrefix: stream }), 2);
    expect(seen.map((e) => e.type)).toEqual(["B", "C"]);
    const read = await store.readStream(stream);
    expect(read.status === "ok" && read.events[0]!.position).toBe(first.position);
  });

  it("resubscribes to a stream after the server drops it, without gap or duplicate", async () => {
    await store.append(stream, [event("E0"), event("E1"), event("E2")], "no_stream");
    const subscription = store.subscribeToStream(stream);
    const iterator = subscription[Symbol.asyncIterator]();
    const messages: SubscriptionMessage[] = [];
    messages.push(await pull(iterator), await pull(iterator)); // E0, E1
    double.dropSubscriptions();
    messages.push(await pull(iterator), await pull(iterator)); // E2, caught_up
    double.dropSubscriptions();
    await store.append(stream, [event("E3")], 2n);
    double.dropSubscriptions();
    await store.append(stream, [event("E4")], 3n);
    messages.push(await pull(iterator), await pull(iterator));
    await subscription.close();
    expect(messages.map(describeMessage)).toEqual(["0:E0", "1:E1", "2:E2", "caught_up", "3:E3", "4:E4"]);
  });

  it("resubscribes to $all after a drop, from the last delivered position", async () => {
    const prefix = `${stream}-`;
    for (let i = 0; i < 4; i++) await store.append(`${prefix}${i}`, [event(`E${i}`)], "no_stream");
    await store.append(`other-${stream}`, [event("Other")], "no_stream");
    const subscription = store.subscribeToAll({ streamPrefix: prefix });
    const iterator = subscription[Symbol.asyncIterator]();
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) seen.push(describeMessage(await pull(iterator)));
    double.dropSubscriptions();
    for (let i = 0; i < 3; i++) seen.push(describeMessage(await pull(iterator)));
    await store.append(`${prefix}4`, [event("E4")], "no_stream");
    seen.push(describeMessage(await pull(iterator)));
    await subscription.close();
    expect(seen).toEqual(["0:E0", "0:E1", "0:E2", "0:E3", "caught_up", "0:E4"]);
  });

  it("turns an unreachable store into StoreUnavailableError and recovers when it returns", async () => {
    await store.append(stream, [event("A")], "no_stream");
    await double.pause();
    await expect(store.append(stream, [event("B")], 0n)).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.readStream(stream)).rejects.toBeInstanceOf(StoreUnavailableError);
    // Still down a while later: the client must not be stuck in a long reconnect backoff afterwards.
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    await expect(store.append(stream, [event("B")], 0n)).rejects.toBeInstanceOf(StoreUnavailableError);
    await double.resume();
    const started = Date.now();
    const result = await eventually(() => store.append(stream, [event("B")], 0n));
    expect(result.nextExpectedRevision).toBe(1n);
    expect(Date.now() - started).toBeLessThan(3_000);
    const read = await store.readStream(stream);
    expect(read.status === "ok" && read.events.map((e) => e.type)).toEqual(["A", "B"]);
  });

  it("fails fast when nothing listens on the port at all", async () => {
    const port = await freePort();
    const offline = createEsdbEventStore(`esdb://127.0.0.1:${port}?tls=false`, { operationTimeoutMs: 10_000 });
    try {
      const started = Date.now();
      await expect(offline.append(stream, [event("A")], "no_stream")).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(offline.readStream(stream)).rejects.toBeInstanceOf(StoreUnavailableError);
      // Well under the operation timeout: a refused connection is reported, not waited out.
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await offline.close();
    }
  });

  it("keeps a subscription going across an outage of the store", async () => {
    await store.append(stream, [event("E0")], "no_stream");
    const subscription = store.subscribeToStream(stream);
    const iterator = subscription[Symbol.asyncIterator]();
    expect(describeMessage(await pull(iterator))).toBe("0:E0");
    expect(describeMessage(await pull(iterator))).toBe("caught_up");
    await double.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await double.resume();
    await eventually(() => store.append(stream, [event("E1")], 0n));
    expect(describeMessage(await pull(iterator))).toBe("1:E1");
    await subscription.close();
  });

  it("gives up a subscription with StoreUnavailableError when the store stays away", async () => {
    const subscription = store.subscribeToStream(stream);
    const iterator = subscription[Symbol.asyncIterator]();
    expect(describeMessage(await pull(iterator))).toBe("caught_up");
    const started = Date.now();
    await double.pause();
    await expect(iterator.next()).rejects.toBeInstanceOf(StoreUnavailableError);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(2_500);
    expect(waited).toBeLessThan(6_000);
  });

  it("does not let a stalled consumer make the server send the whole history", async () => {
    const batch = Array.from({ length: 500 }, (_, i) => event(`E${i}`, { padding: "x".repeat(400) }));
    await store.append(stream, batch.slice(0, 250), "no_stream");
    await store.append(stream, batch.slice(250), 249n);
    const subscription = store.subscribeToStream(stream);
    const iterator = subscription[Symbol.asyncIterator]();
    await pull(iterator);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // HTTP/2 flow control plus the client's small read-ahead hold the rest back.
    expect(double.sentEvents()).toBeLessThan(400);
    let count = 1;
    while (count < 500) if ((await pull(iterator)).type === "event") count++;
    expect(double.sentEvents()).toBe(500);
    await subscription.close();
  });

  it("ends every subscription and the client when the store closes", async () => {
    const subscription = store.subscribeToStream(stream);
    const iterator = subscription[Symbol.asyncIterator]();
    expect(describeMessage(await pull(iterator))).toBe("caught_up");
    const pending = iterator.next();
    await store.close();
    expect((await pending).done).toBe(true);
    await expect(store.append(stream, [event("A")], "any")).rejects.toBeInstanceOf(StoreUnavailableError);
    await eventually(async () => expect(double.activeSubscriptions()).toBe(0));
  });
});

describe("EsdbEventStore through plain Append (server without BatchAppend)", () => {
  let double: EsdbDouble;
  let store: EsdbEventStore;
  beforeEach(async () => {
    double = await startEsdbDouble({ batchAppend: false });
    store = createEsdbEventStore(double.connectionString);
  });
  afterEach(async () => {
    await store.close();
    await double.stop();
  });

  it("keeps expected revisions and idempotent retries", async () => {
    const stream = `account-${randomUUID().slice(0, 8)}`;
    const batch = [event("A"), event("B")];
    expect((await store.append(stream, batch, "no_stream")).nextExpectedRevision).toBe(1n);
    expect((await store.append(stream, batch, "no_stream")).nextExpectedRevision).toBe(1n);
    const conflict = await store.append(stream, [event("C")], 0n).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(WrongExpectedRevisionError);
    expect((conflict as WrongExpectedRevisionError).actual).toBe(1n);
    const missing = await store.append(`${stream}-x`, [event("C")], "stream_exists").catch((e: unknown) => e);
    expect((missing as WrongExpectedRevisionError).actual).toBe("no_stream");
    expect(double.events.filter((e) => e.stream === stream)).toHaveLength(2);
  });
});

const STEP_MS = 5_000;

async function pull(iterator: AsyncIterator<SubscriptionMessage>): Promise<SubscriptionMessage> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("nothing delivered in time")), STEP_MS);
  });
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    if (result.done) throw new Error("subscription ended");
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

function describeMessage(message: SubscriptionMessage): string {
  return message.type === "event" ? `${message.event.revision}:${message.event.type}` : message.type;
}

async function take(subscription: Subscription, count: number): Promise<RecordedEvent[]> {
  const iterator = subscription[Symbol.asyncIterator]();
  const seen: RecordedEvent[] = [];
  try {
    while (seen.length < count) {
      const message = await pull(iterator);
      if (message.type === "event") seen.push(message.event);
    }
  } finally {
    await subscription.close();
  }
  return seen;
}

/** Retry `attempt` every 20 ms for up to 3 s. */
async function eventually<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** A port nothing listens on: bind an ephemeral one, then release it. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
