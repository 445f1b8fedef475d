/**
 * The double's storage: one in-memory transaction log, indexed by stream.
 *
 * Behaviour follows EventStoreDB's documentation; where it is subtle the
 * source is named next to the code.
 */

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
  | { ok: false; current: bigint | undefined };

/** Positions grow like byte offsets in a real log: by a record's size, not by one. */
const RECORD_HEADER_BYTES = 96n;

export class InMemoryLog {
  readonly all: StoredEvent[] = [];
  private readonly streams = new Map<string, StoredEvent[]>();
  private nextPosition = 1024n;
  private readonly waiters = new Set<() => void>();

  stream(name: string): readonly StoredEvent[] | undefined {
    return this.streams.get(name);
  }

  lastRevision(name: string): bigint | undefined {
    const events = this.streams.get(name);
    return events && events.length > 0 ? BigInt(events.length - 1) : undefined;
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
   */
  append(name: string, proposed: ProposedEvent[], expected: Expected): AppendOutcome {
    const existing = this.streams.get(name) ?? [];
    const current = this.lastRevision(name);

    const repeat = this.findRepeat(existing, proposed, expected);
    if (repeat === "conflict") return { ok: false, current };
    if (repeat) return { ok: true, revision: repeat.revision, position: repeat.position };

    const matches =
      expected.kind === "any" ||
      (expected.kind === "no_stream" && current === undefined) ||
      (expected.kind === "stream_exists" && current !== undefined) ||
      (expected.kind === "revision" && current === expected.revision);
    if (!matches) return { ok: false, current };
    // An empty append to a missing stream creates nothing (EventStoreDB behaves the same).
    if (proposed.length === 0) return { ok: true, revision: current ?? -1n, position: this.nextPosition };

    const created = BigInt(Date.now()) * 10_000n;
    const stream = existing.length > 0 ? existing : [];
    if (stream.length === 0) this.streams.set(name, stream);
    let last: StoredEvent | undefined;
    for (const event of proposed) {
      last = { ...event, stream: name, revision: BigInt(stream.length), created, position: this.nextPosition };
      this.nextPosition += RECORD_HEADER_BYTES + BigInt(name.length + event.data.length + event.metadata.length);
      stream.push(last);
      this.all.push(last);
    }
    for (const wake of [...this.waiters]) wake();
    return { ok: true, revision: last!.revision, position: last!.position };
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
