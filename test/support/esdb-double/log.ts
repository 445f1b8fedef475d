/**
 * The double's storage: one in-memory transaction log, indexed by stream.
 *
 * Behaviour follows EventStoreDB's documentation; where it is subtle the
 * source is named next to the code.
 */
import { randomUUID } from "node:crypto";

export interface StoredEvent {
  stream: string;
  /** 0-based index in the stream. */
  revision: bigint;
  id: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  metadata: Uint8Array;
  /** "created", in 100 ns ticks since the Unix epoch, as the server sends it. */
  created: bigint;
  /**
   * Log position. Each event appended over gRPC is its own prepare record and
   * EventStoreDB reports commit == prepare for it (see
   * kurrent-io/KurrentDB-Client-Dotnet#20 and kurrent-io/KurrentDB#2522), so
   * one number stands for both.
   */
  position: bigint;
}

export interface ProposedEvent {
  id: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  metadata: Uint8Array;
}

export type Expected =
  | { kind: "any" }
  | { kind: "no_stream" }
  | { kind: "stream_exists" }
  | { kind: "revision"; revision: bigint };

export type AppendOutcome =
  | { ok: true; revision: bigint; position: bigint }
  /** `current` undefined: the stream does not exist. */
  | { ok: false; current: bigint | undefined }
  /** The stream was tombstoned: nothing can be written to it again. */
  | { ok: false; deleted: true };

/**
 * The event number EventStoreDB gives a tombstone (EventNumber.DeletedStream,
 * long.MaxValue); a soft delete sets the stream's `$tb` to the same value.
 */
export const DELETED_STREAM = (1n << 63n) - 1n;

/** A stream's access control list as stored in its metadata (`$acl`): role or user names per operation. */
export interface Acl {
  $r?: string | string[];
  $w?: string | string[];
  $d?: string | string[];
  $mr?: string | string[];
  $mw?: string | string[];
}

/** The system properties of stream metadata the double applies ("Stream metadata", EventStoreDB docs). */
export interface StreamMetadata {
  $maxCount?: number;
  /** Seconds. */
  $maxAge?: number;
  $tb?: number | bigint;
  $acl?: Acl;
  [custom: string]: unknown;
}

export const metadataStreamOf = (stream: string): string => `$$${stream}`;

/** Positions grow like byte offsets in a real log: by a record's size, not by one. */
const RECORD_HEADER_BYTES = 96n;
/** EventStoreDB's timestamps: 100 ns ticks since the Unix epoch. */
const TICKS_PER_MS = 10_000n;
/** A metadata stream keeps only its latest event (SystemStreams.MetastreamMaxCount in EventStoreDB). */
const METASTREAM_MAX_COUNT = 1;

/** What a stream read sees once the stream's metadata is applied. */
export type StreamView =
  | { status: "ok"; events: StoredEvent[] }
  | { status: "no_stream" }
  | { status: "deleted" };

export class InMemoryLog {
  readonly all: StoredEvent[] = [];
  private readonly streams = new Map<string, StoredEvent[]>();
  private readonly tombstoned = new Set<string>();
  private nextPosition = 0n;
  private readonly waiters = new Set<() => void>();
  /** Milliseconds since the epoch; tests move it to age events past `$maxAge`. */
  now: () => number = Date.now;

  /** Every stored event of a stream, metadata not applied (for assertions and idempotence checks). */
  stream(name: string): readonly StoredEvent[] | undefined {
    return this.streams.get(name);
  }

  lastRevision(name: string): bigint | undefined {
    const events = this.streams.get(name);
    return events && events.length > 0 ? BigInt(events.length - 1) : undefined;
  }

  isTombstoned(name: string): boolean {
    return this.tombstoned.has(name);
  }

  /** The stream's metadata: the data of the latest event in `$$<name>`, or {} (also when it is not JSON). */
  metadata(name: string): StreamMetadata {
    const latest = this.streams.get(metadataStreamOf(name))?.at(-1);
    if (!latest) return {};
    try {
      const parsed: unknown = JSON.parse(Buffer.from(latest.data).toString("utf8"), (key, value: unknown) =>
        // $tb of a soft-deleted stream is long.MaxValue, beyond a double's precision.
        key === "$tb" && typeof value === "number" && value >= Number(DELETED_STREAM) ? DELETED_STREAM : value,
      );
      return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as StreamMetadata) : {};
    } catch {
      return {};
    }
  }

  /**
   * A stream as reads see it ("Stream metadata" and "Deleting events" in
   * EventStoreDB's docs): a tombstoned stream is deleted; a soft-deleted one
   * (`$tb` = long.MaxValue) or one without events is not found; otherwise
   * events before `$tb`, beyond the last `$maxCount` or older than `$maxAge`
   * seconds are left out (they stay in `$all` until a scavenge, which the
   * double never runs).
   */
  view(name: string): StreamView {
    if (this.tombstoned.has(name)) return { status: "deleted" };
    const events = this.streams.get(name);
    if (!events || events.length === 0) return { status: "no_stream" };
    const metadata = this.metadata(name);
    const tb = metadata.$tb === undefined ? 0n : BigInt(metadata.$tb);
    if (tb >= DELETED_STREAM) return { status: "no_stream" };
    const last = BigInt(events.length - 1);
    const maxCount = name.startsWith("$$") ? METASTREAM_MAX_COUNT : metadata.$maxCount;
    let first = tb;
    if (maxCount !== undefined && last - BigInt(maxCount) + 1n > first) first = last - BigInt(maxCount) + 1n;
    const oldest = metadata.$maxAge === undefined ? undefined : BigInt(this.now() - metadata.$maxAge * 1000) * TICKS_PER_MS;
    return {
      status: "ok",
      events: events.filter((e) => e.revision >= first && (oldest === undefined || e.created >= oldest)),
    };
  }

  /**
   * Atomic: every proposed event is written, or none.
   *
   * Expected revisions and idempotence as documented in "Appending events"
   * (developers.eventstore.com/clients/grpc/appending-events, sections
   * "Handling concurrency" and "Idempotence"): re-sending the same event ids
   * in the same order succeeds without writing again. With an exact revision
   * (or no_stream, i.e. -1) the events right after that revision are
   * compared; with any/stream_exists the first id is looked up in the stream.
   * A partial match is a conflict ("corrupted idempotency" in the server,
   * reported as a wrong expected version).
   *
   * A tombstoned stream refuses every write (StreamDeleted). Appending to a
   * soft-deleted stream brings it back: its metadata gets `$tb` = the next
   * revision, so the old events stay hidden and revisions go on.
   */
  append(name: string, proposed: ProposedEvent[], expected: Expected): AppendOutcome {
    if (this.tombstoned.has(name)) return { ok: false, deleted: true };
    const existing = this.streams.get(name) ?? [];
    const current = this.lastRevision(name);

    const repeat = this.findRepeat(existing, proposed, expected);
    if (repeat === "conflict") return { ok: false, current };
    if (repeat) return { ok: true, revision: repeat.revision, position: repeat.position };

    if (!matches(expected, current)) return { ok: false, current };
    // An empty append to a missing stream creates nothing (EventStoreDB behaves the same).
    if (proposed.length === 0) return { ok: true, revision: current ?? -1n, position: this.nextPosition };

    const metadata = this.metadata(name);
    if (metadata.$tb !== undefined && BigInt(metadata.$tb) >= DELETED_STREAM) {
      this.write(metadataStreamOf(name), [metadataEvent({ ...metadata, $tb: (current ?? -1n) + 1n })]);
    }
    return this.write(name, proposed);
  }

  /** Streams.Delete: a soft delete, written as `$tb` = long.MaxValue in the stream's metadata. */
  softDelete(name: string, expected: Expected): AppendOutcome {
    if (this.tombstoned.has(name)) return { ok: false, deleted: true };
    const current = this.lastRevision(name);
    if (!matches(expected, current)) return { ok: false, current };
    return this.write(metadataStreamOf(name), [metadataEvent({ ...this.metadata(name), $tb: DELETED_STREAM })]);
  }

  /** Streams.Tombstone: a `$streamDeleted` record at long.MaxValue; the name can never be used again. */
  tombstone(name: string, expected: Expected): AppendOutcome {
    if (this.tombstoned.has(name)) return { ok: false, deleted: true };
    const current = this.lastRevision(name);
    if (!matches(expected, current)) return { ok: false, current };
    this.tombstoned.add(name);
    const record: StoredEvent = {
      stream: name,
      revision: DELETED_STREAM,
      id: randomUUID(),
      type: "$streamDeleted",
      contentType: "application/octet-stream",
      data: new Uint8Array(),
      metadata: new Uint8Array(),
      created: BigInt(this.now()) * TICKS_PER_MS,
      position: this.nextPosition,
    };
    this.nextPosition += RECORD_HEADER_BYTES + BigInt(name.length);
    this.all.push(record);
    this.wakeWaiters();
    return { ok: true, revision: DELETED_STREAM, position: record.position };
  }

  /** Writes events as they are, with `created` set `agoMs` in the past (the seeded history of a node). */
  write(name: string, proposed: ProposedEvent[], agoMs = 0): { ok: true; revision: bigint; position: bigint } {
    const created = BigInt(this.now() - agoMs) * TICKS_PER_MS;
    let stream = this.streams.get(name);
    if (!stream) this.streams.set(name, (stream = []));
    let last!: StoredEvent;
    for (const event of proposed) {
      last = { ...event, stream: name, revision: BigInt(stream.length), created, position: this.nextPosition };
      this.nextPosition += RECORD_HEADER_BYTES + BigInt(name.length + event.data.length + event.metadata.length);
      stream.push(last);
      this.all.push(last);
    }
    this.wakeWaiters();
    return { ok: true, revision: last.revision, position: last.position };
  }

  private wakeWaiters(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private findRepeat(
    existing: StoredEvent[],
    proposed: ProposedEvent[],
    expected: Expected,
  ): StoredEvent | "conflict" | undefined {
    if (proposed.length === 0) return undefined;
    let start: number;
    if (expected.kind === "revision" || expected.kind === "no_stream") {
      start = expected.kind === "revision" ? Number(expected.revision) + 1 : 0;
      if (existing[start]?.id !== proposed[0]!.id) return undefined;
    } else {
      start = existing.findIndex((e) => e.id === proposed[0]!.id);
      if (start < 0) return undefined;
    }
    for (const [i, event] of proposed.entries()) {
      if (existing[start + i]?.id !== event.id) return "conflict";
    }
    return existing[start + proposed.length - 1];
  }

  /** Index in `all` of the first event strictly after `position`. */
  indexAfter(position: bigint): number {
    let low = 0;
    let high = this.all.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.all[mid]!.position <= position) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Resolves at the next append; `cancel` drops the wait. */
  nextAppend(): { promise: Promise<void>; cancel: () => void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => {
      wake = () => {
        this.waiters.delete(wake);
        resolve();
      };
    });
    this.waiters.add(wake);
    return { promise, cancel: wake };
  }
}

function matches(expected: Expected, current: bigint | undefined): boolean {
  return (
    expected.kind === "any" ||
    (expected.kind === "no_stream" && current === undefined) ||
    (expected.kind === "stream_exists" && current !== undefined) ||
    (expected.kind === "revision" && current === expected.revision)
  );
}

/** A `$metadata` event; bigints (long.MaxValue) are written as exact JSON numbers. */
export function metadataEvent(metadata: StreamMetadata): ProposedEvent {
  const json = JSON.stringify(metadata, (_key, value: unknown) => (typeof value === "bigint" ? `#big:${value}` : value)).replace(
    /"#big:(-?\d+)"/g,
    "$1",
  );
  return jsonProposed("$metadata", json);
}

export function jsonProposed(type: string, json: string): ProposedEvent {
  return {
    id: randomUUID(),
    type,
    contentType: "application/json",
    data: Uint8Array.from(Buffer.from(json, "utf8")),
    metadata: new Uint8Array(),
  };
}
