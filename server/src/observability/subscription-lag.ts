/**
 * How far open subscriptions are behind the head of the store, in events,
 * computed cheaply: appends through this server move the head, each delivered
 * event moves its subscription, and the scrape takes the difference.
 *
 * - account subscriptions: revisions (the head of the stream is read once
 *   when the subscription opens, then followed through appends);
 * - all subscriptions: global positions, where the store's positions count
 *   events (SQLite). EventStoreDB's $all positions are byte offsets, not
 *   counts, so those subscriptions are left out of the gauge.
 * The head is the latest this server has seen: its own appends, and events
 * its subscriptions delivered (which shows other servers' appends too).
 */
import type { SubscriptionKind } from "./metrics.js";

export interface TrackedSubscription {
  /** An event was delivered, at this revision (account) or position (all). */
  delivered(event: { revision: bigint; position: string }): void;
  /** The head of the stream, read when the subscription opened (account subscriptions). */
  headKnown(revision: bigint): void;
  close(): void;
}

interface Entry {
  kind: SubscriptionKind;
  /** The stream (account) or stream-name prefix (all) whose appends move this subscription's head. */
  key: string;
  /** Last delivered revision/position; undefined where positions do not count events. */
  delivered: bigint | undefined;
}

export class SubscriptionLag {
  private readonly open = new Set<Entry>();
  /** Heads of the streams with an account subscription. */
  private readonly streamHeads = new Map<string, { head: bigint; subscribers: number }>();
  /** Head position among appends to streams with this prefix ("" for all streams). */
  private readonly prefixHeads = new Map<string, bigint>();

  openAccount(stream: string, afterRevision: bigint | undefined): TrackedSubscription {
    const head = this.streamHeads.get(stream) ?? { head: -1n, subscribers: 0 };
    head.subscribers++;
    this.streamHeads.set(stream, head);
    const entry: Entry = { kind: "account", key: stream, delivered: afterRevision ?? -1n };
    return this.track(entry, (event) => event.revision, () => {
      if (--head.subscribers === 0) this.streamHeads.delete(stream);
    });
  }

  openAll(prefix: string | undefined, afterPosition: string | undefined): TrackedSubscription {
    const key = prefix ?? "";
    if (!this.prefixHeads.has(key)) this.prefixHeads.set(key, 0n);
    const entry: Entry = { kind: "all", key, delivered: afterPosition === undefined ? 0n : eventCount(afterPosition) };
    return this.track(entry, (event) => eventCount(event.position), () => {});
  }

  /** An append through this server: the stream's last revision and the append's last position. */
  appended(stream: string, revision: bigint, position: string): void {
    const streamHead = this.streamHeads.get(stream);
    if (streamHead && revision > streamHead.head) streamHead.head = revision;
    if (this.prefixHeads.size === 0) return;
    const count = eventCount(position);
    if (count === undefined) return;
    for (const [prefix, head] of this.prefixHeads) {
      if (count > head && stream.startsWith(prefix)) this.prefixHeads.set(prefix, count);
    }
  }

  /** Largest lag per kind over the open subscriptions, in events. */
  largest(): Record<SubscriptionKind, number> {
    const largest = { account: 0, all: 0 };
    for (const entry of this.open) {
      if (entry.delivered === undefined) continue;
      const head = entry.kind === "account" ? this.streamHeads.get(entry.key)?.head : this.prefixHeads.get(entry.key);
      if (head === undefined) continue;
      const lag = Number(head - entry.delivered);
      if (lag > largest[entry.kind]) largest[entry.kind] = lag;
    }
    return largest;
  }

  private track(entry: Entry, ordinal: (event: { revision: bigint; position: string }) => bigint | undefined, onClose: () => void): TrackedSubscription {
    this.open.add(entry);
    let closed = false;
    return {
      delivered: (event) => {
        const at = ordinal(event);
        entry.delivered = at;
        if (at === undefined) return;
        // What a subscription delivered is in the store: the head is at least there.
        if (entry.kind === "account") {
          const head = this.streamHeads.get(entry.key);
          if (head && at > head.head) head.head = at;
        } else if (at > (this.prefixHeads.get(entry.key) ?? 0n)) {
          this.prefixHeads.set(entry.key, at);
        }
      },
      headKnown: (revision) => {
        const head = this.streamHeads.get(entry.key);
        if (head && revision > head.head) head.head = revision;
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.open.delete(entry);
        onClose();
        if (entry.kind === "all" && ![...this.open].some((other) => other.kind === "all" && other.key === entry.key)) this.prefixHeads.delete(entry.key);
      },
    };
  }
}

/** A position that counts events (SQLite: a plain decimal), else undefined. */
function eventCount(position: string): bigint | undefined {
  return /^[0-9]{1,19}$/.test(position) ? BigInt(position) : undefined;
}
