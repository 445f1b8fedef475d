/** Shared bits of the SDK tests: ids, an event store with injectable faults, reading subscriptions. */
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SubscriptionItem } from "../../client/src/index.js";
import type { AppendResult, EventStore, ExpectedRevision, NewEvent } from "../../server/src/store/event-store.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";

export const newId = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;

export function tempSqlitePath(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "eventbank-sdk-"));
  return { dir, file: join(dir, "events.sqlite") };
}

/** A real SQLite store whose appends can be delayed or preceded by a fault. */
export class FaultyStore implements EventStore {
  readonly inner: SqliteEventStore;
  /** Runs before every append; throw from it to fail the append, or write to `inner` to race it. */
  beforeAppend: ((stream: string) => Promise<void> | void) | undefined;

  constructor(file: string) {
    this.inner = new SqliteEventStore(file);
  }

  async append(stream: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    await this.beforeAppend?.(stream);
    return this.inner.append(stream, events, expected);
  }
  readStream(...args: Parameters<EventStore["readStream"]>) {
    return this.inner.readStream(...args);
  }
  subscribeToStream(...args: Parameters<EventStore["subscribeToStream"]>) {
    return this.inner.subscribeToStream(...args);
  }
  subscribeToAll(...args: Parameters<EventStore["subscribeToAll"]>) {
    return this.inner.subscribeToAll(...args);
  }
  close() {
    return this.inner.close();
  }
}

/** A stored event as the server writes it (for seeding and for racing writers). */
export function storedEvent(type: string, data: Record<string, unknown>): NewEvent {
  const commandId = randomUUID();
  return { id: randomUUID(), type, data, metadata: { commandId, correlationId: commandId, causationId: commandId } };
}

/** Pulls items from a subscription until `until` says stop (the item that matched included). */
export async function takeUntil(
  iterator: AsyncIterator<SubscriptionItem>,
  until: (item: SubscriptionItem, seen: SubscriptionItem[]) => boolean,
): Promise<SubscriptionItem[]> {
  const seen: SubscriptionItem[] = [];
  for (;;) {
    const next = await iterator.next();
    if (next.done) throw new Error(`subscription ended after ${seen.length} items`);
    seen.push(next.value);
    if (until(next.value, seen)) return seen;
  }
}

/** Polls until `check` passes (for effects that happen on the server after a client returns). */
export async function eventually(check: () => void, timeoutMs = 3_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      return check();
    } catch (error) {
      if (Date.now() - started > timeoutMs) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

export const rpcLines = (logs: Array<Record<string, unknown>>, rpc: string): Array<Record<string, unknown>> =>
  logs.filter((line) => line.rpc === rpc);
