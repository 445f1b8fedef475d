import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { inBatches, type BatchedMessage } from "../../server/src/grpc/event-batches.js";
import type { RecordedEvent, SubscriptionMessage } from "../../server/src/store/event-store.js";

const event = (position: number): SubscriptionMessage => ({
  type: "event",
  event: { stream: "account-a", revision: BigInt(position), position: String(position), id: `id-${position}`, type: "MoneyDeposited", data: {}, metadata: {}, created: new Date(0) } as RecordedEvent,
});

/** What a consumer sees: a batch as its positions, other messages by type. */
async function collect(messages: AsyncIterable<BatchedMessage>): Promise<Array<string[] | string>> {
  const seen: Array<string[] | string> = [];
  for await (const message of messages) seen.push(message.type === "events" ? message.events.map((e) => e.position) : message.type);
  return seen;
}

describe("inBatches", () => {
  it("groups events that are ready together, up to max", async () => {
    async function* ready() {
      for (let i = 1; i <= 7; i++) yield event(i);
    }
    expect(await collect(inBatches(ready(), 3))).toEqual([["1", "2", "3"], ["4", "5", "6"], ["7"]]);
  });

  it("sends what is ready without waiting for the next event", async () => {
    async function* bursts() {
      yield event(1);
      yield event(2);
      await sleep(50);
      yield event(3);
    }
    const started = Date.now();
    const iterator = inBatches(bursts(), 100)[Symbol.asyncIterator]();
    expect((await iterator.next()).value).toEqual({ type: "events", events: [expect.objectContaining({ position: "1" }), expect.objectContaining({ position: "2" })] });
    expect(Date.now() - started).toBeLessThan(40);
    expect(await collect({ [Symbol.asyncIterator]: () => iterator })).toEqual([["3"]]);
  });

  it("closes a batch at a message that is not an event, and keeps the order", async () => {
    async function* catchUp(): AsyncGenerator<SubscriptionMessage> {
      yield event(1);
      yield event(2);
      yield { type: "caught_up" };
      yield event(3);
    }
    expect(await collect(inBatches(catchUp(), 100))).toEqual([["1", "2"], "caught_up", ["3"]]);
  });

  it("passes on the source's error after the events before it", async () => {
    async function* failing(): AsyncGenerator<SubscriptionMessage> {
      yield event(1);
      await sleep(5);
      throw new Error("store gone");
    }
    const seen: unknown[] = [];
    await expect(
      (async () => {
        for await (const message of inBatches(failing(), 10)) seen.push(message.type);
      })(),
    ).rejects.toThrow("store gone");
    expect(seen).toEqual(["events"]);
  });

  it("ends at once when the consumer stops while the source is still waiting", async () => {
    let release!: () => void;
    const waiting = new Promise<void>((resolve) => (release = resolve));
    async function* live(): AsyncGenerator<SubscriptionMessage> {
      yield event(1);
      await waiting; // as a live subscription waits for the next append
      yield event(2);
    }
    const iterator = inBatches(live(), 10)[Symbol.asyncIterator]();
    await iterator.next();
    const ended = await Promise.race([iterator.return(undefined).then(() => "ended"), sleep(200).then(() => "hung")]);
    expect(ended).toBe("ended");
    release();
  });
});
