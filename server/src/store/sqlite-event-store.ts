/**
 * The embedded EventStore: one SQLite file through better-sqlite3.
 *
 * - WAL with synchronous=FULL: an acknowledged append is on disk. Appends
 *   arriving together share one transaction and one sync (group commit).
 *   Writes run on the calling thread: a writer thread was measured and did
 *   not pay on two cores (docs/performance.md).
 * - One table; `position` is an AUTOINCREMENT key. SQLite runs one write
 *   transaction at a time, so positions are handed out in commit order and a
 *   reader that has seen position p will never later see a new event below p:
 *   "events after p" is a gap-free way to resume, across processes too.
 * - Subscriptions are pulled: each step reads at most one page past the last
 *   delivered event, so a slow consumer holds one page, never a backlog. When
 *   caught up they wait for an append from this process or, for appends by
 *   other processes sharing the file, poll.
 */
import Database from "better-sqlite3";
import { EventEmitter } from "node:events";
import { sqliteFault } from "./sqlite-faults.js";
import { openSqlite } from "./sqlite-open.js";
import {
  DuplicateEventError,
  InvalidPositionError,
  StoreBusyError,
  StoreFullError,
  StoreUnavailableError,
  WrongExpectedRevisionError,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type ReadStreamOptions,
  type ReadStreamResult,
  type RecordedEvent,
  type SubscribeToAllOptions,
  type SubscribeToStreamOptions,
  type Subscription,
  type SubscriptionMessage,
} from "./event-store.js";

export interface SqliteEventStoreOptions {
  /** How often a caught-up subscription looks for appends by other processes. */
  pollIntervalMs?: number;
  /** Rows a subscription reads per step. */
  pageSize?: number;
  /**
   * Most appends sharing one commit. Smaller groups answer the first callers
   * sooner, so clients and server work side by side; larger ones save syncs
   * on a slow disk. (16 measured best on the bench; see docs/performance.md.)
   */
  maxGroupSize?: number;
  /**
   * How long an append waits for a write lock held by another connection
   * (another process) before it fails with StoreBusyError (default 5 s). The
   * wait is a retry off the event loop, never a block inside SQLite.
   */
  lockTimeoutMs?: number;
  /** Told the number of appends in each group commit (metrics). */
  onGroupCommit?: (appends: number) => void;
}

/** What SQLite itself may wait for a lock, blocking the thread; longer waits are retries on timers. */
const STATEMENT_BUSY_TIMEOUT_MS = 10;
/** WAL pages between automatic checkpoints (SQLite's default), so the WAL stays small, also on a small volume. */
const WAL_AUTOCHECKPOINT_PAGES = 1000;
/** A WAL file larger than this is cut back when it restarts after a checkpoint. */
const JOURNAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024;

/** Positions a prefix subscription looks through per step (a few ms of scanning). */
const PREFIX_SCAN_RANGE = 16_384n;

/** One step of a subscription: the rows read, and whether it has reached the end of the log. */
interface Page {
  rows: EventRow[];
  caughtUp: boolean;
  /** How far a filtered scan got (at or past the last row): a checkpoint. */
  scannedTo?: bigint;
  /** Events the scan passed over to get there (positions are row ids, one per event). */
  passed?: number;
}

/**
 * An event as read: the columns of EVENT_COLUMNS, as an array (better-sqlite3's
 * raw mode), which costs about 1.2 us less per row than an object per row,
 * a third of reading a row (docs/performance.md).
 */
type EventRow = [position: bigint, stream: string, revision: bigint, eventId: string, type: string, data: string, metadata: string, createdAt: bigint];
const EVENT_COLUMNS = "position, stream, revision, event_id, type, data, metadata, created_at";
const POSITION = 0;
const REVISION = 2;

// Event ids are unique per stream, as on EventStoreDB, and indexed after the stream: an append
// touches index pages of its own stream, where one index over every (random, name-based) id put
// each new event on a random page of a large file. Files made before keep UNIQUE (event_id);
// the queries by id name the stream too, so they use either index.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  position   INTEGER PRIMARY KEY AUTOINCREMENT,
  stream     TEXT    NOT NULL,
  revision   INTEGER NOT NULL,
  event_id   TEXT    NOT NULL,
  type       TEXT    NOT NULL,
  data       TEXT    NOT NULL,
  metadata   TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (stream, revision),
  UNIQUE (stream, event_id)
);
`;

interface PendingAppend {
  stream: string;
  events: NewEvent[];
  expected: ExpectedRevision;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
  /** When this append first found the write lock held by another connection. */
  lockedSince?: number;
}

type AppendOutcome = { ok: true; result: AppendResult } | { ok: false; error: unknown };

export class SqliteEventStore implements EventStore {
  private readonly db: Database.Database;
  private readonly appended = new EventEmitter();
  private readonly subscriptions = new Set<PolledSubscription>();
  private readonly pollIntervalMs: number;
  private readonly pageSize: number;
  private readonly maxGroupSize: number;
  private readonly lockTimeoutMs: number;
  private closed = false;
  /** The next group commit attempt while another connection holds the write lock. */
  private lockRetry: NodeJS.Timeout | undefined;
  private lockRetries = 0;
  /** Appends waiting for the next group commit. */
  private pending: PendingAppend[] = [];
  private readonly commitGroup: Database.Transaction<(batch: PendingAppend[]) => AppendOutcome[]>;
  private readonly probeWrite: Database.Transaction<() => void>;

  private readonly statements: {
    lastRevision: Database.Statement<[string], { revision: bigint | null }>;
    eventById: Database.Statement<[string, string], { revision: bigint; position: bigint; type: string; data: string }>;
    insert: Database.Statement<[string, bigint, string, string, string, string, number]>;
    forwards: Database.Statement<[string, bigint, number], EventRow>;
    backwards: Database.Statement<[string, bigint, number], EventRow>;
    streamAfter: Database.Statement<[string, bigint, number], EventRow>;
    allAfter: Database.Statement<[bigint, number], EventRow>;
    allAfterWithPrefix: Database.Statement<[bigint, bigint, string, string, number], EventRow>;
    lastPosition: Database.Statement<[], { position: bigint | null }>;
  };

  constructor(path: string, private readonly options: SqliteEventStoreOptions = {}) {
    this.pollIntervalMs = options.pollIntervalMs ?? 100;
    this.pageSize = options.pageSize ?? 256;
    this.maxGroupSize = options.maxGroupSize ?? 16;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 5_000;
    this.appended.setMaxListeners(0);
    try {
      this.db = openSqlite(
        path,
        (db) => {
          db.pragma("journal_mode = WAL");
          db.pragma("synchronous = FULL");
          db.defaultSafeIntegers(true);
          // A bounded WAL: a large one can fill a small volume before it is ever checkpointed,
          // and then no write can succeed again, not even after a restart.
          db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
          db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
          db.exec(SCHEMA);
        },
        { statementBusyTimeoutMs: STATEMENT_BUSY_TIMEOUT_MS },
      );
    } catch (error) {
      throw new StoreUnavailableError(`cannot open SQLite store at ${path}: ${(error as Error).message}`, { cause: error });
    }
    const db = this.db;
    const eventRows = <P extends unknown[]>(where: string) => db.prepare<P, EventRow>(`SELECT ${EVENT_COLUMNS} FROM events ${where}`).raw(true);
    this.statements = {
      lastRevision: db.prepare("SELECT MAX(revision) AS revision FROM events WHERE stream = ?"),
      eventById: db.prepare("SELECT revision, position, type, data FROM events WHERE stream = ? AND event_id = ?"),
      insert: db.prepare(
        "INSERT INTO events (stream, revision, event_id, type, data, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ),
      forwards: eventRows<[string, bigint, number]>("WHERE stream = ? AND revision >= ? ORDER BY revision ASC LIMIT ?"),
      backwards: eventRows<[string, bigint, number]>("WHERE stream = ? AND revision <= ? ORDER BY revision DESC LIMIT ?"),
      streamAfter: eventRows<[string, bigint, number]>("WHERE stream = ? AND revision > ? ORDER BY revision ASC LIMIT ?"),
      allAfter: eventRows<[bigint, number]>("WHERE position > ? ORDER BY position ASC LIMIT ?"),
      // The stream's prefix as a range of names (cheaper per row than substr), see prefixRange.
      allAfterWithPrefix: eventRows<[bigint, bigint, string, string, number]>(
        "WHERE position > ? AND position <= ? AND stream >= ? AND stream < ? ORDER BY position ASC LIMIT ?",
      ),
      lastPosition: db.prepare("SELECT MAX(position) AS position FROM events"),
    };
    const appendOne = db.transaction((append: PendingAppend) => this.appendInTransaction(append.stream, append.events, append.expected));
    this.commitGroup = db.transaction((batch: PendingAppend[]) =>
      batch.map((append): AppendOutcome => {
        try {
          return { ok: true, result: appendOne(append) };
        } catch (error) {
          // A fault of the store (disk full, I/O error) may have rolled back the whole
          // transaction: fail the whole group, so no append is answered for what was not written.
          if (sqliteFault(error, "append")) throw error;
          return { ok: false, error };
        }
      }),
    );
    this.probeWrite = db.transaction(() => {
      db.exec("CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, written_at INTEGER NOT NULL, padding BLOB NOT NULL)");
      // A few pages, so a disk with room for the probe has room for an ordinary append too.
      db.prepare(
        `INSERT INTO store_probe (id, written_at, padding) VALUES (1, ?, randomblob(8192))
         ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, padding = excluded.padding`,
      ).run(Date.now());
    });
  }

  async append(stream: string, events: NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    this.assertOpen();
    if (events.length === 0) throw new RangeError("append needs at least one event");
    return new Promise((resolve, reject) => {
      if (this.pending.push({ stream, events, expected, resolve, reject }) === 1) setImmediate(this.flush);
    });
  }

  /**
   * Group commit: the appends that arrived during one turn of the event loop
   * share one write transaction, so one sync to disk (the cost that dominates
   * an append with synchronous=FULL), up to maxGroupSize per transaction.
   * Each append runs in its own savepoint (better-sqlite3 nests transactions
   * as savepoints), so one failing its expected-revision check fails alone.
   * Every promise settles only after COMMIT has returned: an acknowledged
   * append is on disk.
   */
  private readonly flush = (): void => {
    this.lockRetry = undefined;
    // At most maxGroupSize per commit; the rest goes in the next one, right after these have been answered.
    const batch = this.pending.splice(0, this.maxGroupSize);
    if (batch.length === 0) return;
    let outcomes: AppendOutcome[];
    try {
      outcomes = this.commitGroup.immediate(batch);
    } catch (error) {
      // The transaction itself failed (e.g. the file is locked or the disk full): nothing was written.
      this.failGroup(batch, error);
      return;
    }
    this.lockRetries = 0;
    if (this.pending.length > 0) setImmediate(this.flush);
    this.appended.emit("append");
    this.options.onGroupCommit?.(batch.length);
    for (const [index, append] of batch.entries()) {
      const outcome = outcomes[index]!;
      if (outcome.ok) append.resolve(outcome.result);
      else append.reject(outcome.error);
    }
  };

  /**
   * A group commit that wrote nothing. While another connection holds the
   * write lock the group is tried again on a timer, with backoff (SQLite
   * itself waits only a few ms, since that wait blocks the event loop), and
   * each append gives up after lockTimeoutMs with StoreBusyError. Other faults
   * fail the group at once, as typed store errors.
   */
  private failGroup(batch: PendingAppend[], error: unknown): void {
    const fault = sqliteFault(error, "append");
    if (fault instanceof StoreBusyError && !this.closed) {
      const now = Date.now();
      const waiting: PendingAppend[] = [];
      for (const append of batch) {
        append.lockedSince ??= now;
        if (now - append.lockedSince < this.lockTimeoutMs) waiting.push(append);
        else {
          append.reject(
            new StoreBusyError(`the SQLite store stayed locked by another connection for ${this.lockTimeoutMs} ms`, { cause: error }),
          );
        }
      }
      this.pending.unshift(...waiting);
      if (this.pending.length > 0) {
        this.lockRetries++;
        this.lockRetry = setTimeout(this.flush, Math.min(100, 5 * 2 ** Math.min(this.lockRetries, 5)));
      }
      return;
    }
    // The WAL may be what fills the disk: checkpoint it back to (almost) nothing if that works now.
    if (fault instanceof StoreFullError) this.reclaimWal();
    for (const append of batch) append.reject(fault ?? error);
    if (this.pending.length > 0) setImmediate(this.flush);
  }

  /**
   * For the health monitor, while the store is failing: gives back what the
   * WAL holds (after a full disk), then makes a small real write, which fails
   * as long as the disk is full, the file read-only or the lock held.
   */
  async probe(): Promise<void> {
    this.assertOpen();
    this.reclaimWal();
    try {
      this.probeWrite.immediate();
    } catch (error) {
      throw sqliteFault(error, "store probe") ?? error;
    }
  }

  /** Checkpoints the whole WAL into the database and truncates it, freeing its disk space; best effort. */
  private reclaimWal(): void {
    try {
      this.db.pragma("wal_checkpoint(TRUNCATE)");
    } catch {
      // Still no room (or locked): the next probe tries again.
    }
  }

  private appendInTransaction(stream: string, events: NewEvent[], expected: ExpectedRevision): AppendResult {
    const last = this.statements.lastRevision.get(stream)?.revision ?? null;
    const actual = last === null ? "no_stream" : last;
    const matches =
      expected === "any" ||
      (expected === "no_stream" && last === null) ||
      (expected === "stream_exists" && last !== null) ||
      (typeof expected === "bigint" && last === expected);
    // A retried append succeeds again without writing, as on EventStoreDB: with an exact
    // expectation only when the same events sit right after it, otherwise anywhere in the stream.
    // When an exact expectation holds, they cannot be there (they would come after it).
    const exact = expected === "no_stream" || typeof expected === "bigint";
    if (!(exact && matches)) {
      const repeated = this.findRepeatedAppend(stream, events, exact ? (expected === "no_stream" ? 0n : (expected as bigint) + 1n) : undefined);
      if (repeated) return repeated;
    }
    if (!matches) throw new WrongExpectedRevisionError(stream, expected, actual);

    const now = Date.now();
    let revision = last ?? -1n;
    let position = 0n;
    let bytes = 0;
    for (const event of events) {
      revision += 1n;
      const data = JSON.stringify(event.data);
      const metadata = JSON.stringify(event.metadata);
      bytes += Buffer.byteLength(data) + Buffer.byteLength(metadata);
      let info: Database.RunResult;
      try {
        info = this.statements.insert.run(stream, revision, event.id, event.type, data, metadata, now);
      } catch (error) {
        // The id is taken at an older revision: not a repeat of this append.
        if ((error as { code?: unknown }).code === "SQLITE_CONSTRAINT_UNIQUE") throw this.duplicate(stream, event.id, error);
        throw error;
      }
      position = BigInt(info.lastInsertRowid);
    }
    return { nextExpectedRevision: revision, position: String(position), bytes };
  }

  async findEvent(stream: string, eventId: string): Promise<{ revision: bigint } | undefined> {
    this.assertOpen();
    const row = this.statements.eventById.get(stream, eventId);
    return row && { revision: row.revision };
  }

  /**
   * The same events (ids, types and data: an id alone is not enough) already
   * in this stream, one after the other, starting at `at` when given: a repeat
   * of an earlier append. Anything less is not a repeat.
   */
  private findRepeatedAppend(stream: string, events: NewEvent[], at: bigint | undefined): AppendResult | undefined {
    let last: { revision: bigint; position: bigint } | undefined;
    for (const [index, event] of events.entries()) {
      const row = this.statements.eventById.get(stream, event.id);
      const revision = index === 0 ? (at ?? row?.revision) : last!.revision + 1n;
      if (!row || row.revision !== revision) return undefined;
      if (row.type !== event.type || row.data !== JSON.stringify(event.data)) return undefined;
      last = row;
    }
    return last && { nextExpectedRevision: last.revision, position: String(last.position), bytes: 0 };
  }

  /** The event id is taken: say where, so the caller can answer from history. */
  private duplicate(stream: string, eventId: string, cause?: unknown): Error {
    const row = this.statements.eventById.get(stream, eventId);
    // Only in a file made before ids were unique per stream: the id is taken in another stream.
    if (!row) return new Error(`event id ${eventId} is taken by another stream`, { cause });
    return new DuplicateEventError(stream, eventId, row.revision);
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<ReadStreamResult> {
    this.assertOpen();
    const direction = options.direction ?? "forwards";
    const maxCount = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    const from = options.fromRevision ?? (direction === "forwards" ? "start" : "end");
    const fromRevision = from === "start" ? 0n : from === "end" ? BigInt(Number.MAX_SAFE_INTEGER) * 2n : from;
    const statement = direction === "forwards" ? this.statements.forwards : this.statements.backwards;
    const rows = maxCount <= 0 ? [] : statement.all(stream, fromRevision, maxCount);
    if (rows.length === 0 && (this.statements.lastRevision.get(stream)?.revision ?? null) === null) {
      return { status: "no_stream" };
    }
    return { status: "ok", events: rows.map(toRecordedEvent) };
  }

  subscribeToStream(stream: string, options: SubscribeToStreamOptions = {}): Subscription {
    this.assertOpen();
    let after = options.afterRevision ?? -1n;
    return this.track((limit) => {
      const rows = this.statements.streamAfter.all(stream, after, limit);
      if (rows.length > 0) after = rows[rows.length - 1]![REVISION];
      return { rows, caughtUp: rows.length < limit };
    });
  }

  subscribeToAll(options: SubscribeToAllOptions = {}): Subscription {
    this.assertOpen();
    let after = options.afterPosition === undefined ? 0n : parsePosition(options.afterPosition);
    const prefix = options.streamPrefix;
    if (prefix === undefined) {
      return this.track((limit) => {
        const rows = this.statements.allAfter.all(after, limit);
        if (rows.length > 0) after = rows[rows.length - 1]![POSITION];
        return { rows, caughtUp: rows.length < limit };
      });
    }
    // The rows of other streams are passed over in bounded ranges of positions, and the
    // subscription moves past them too: a prefix with few events (transfers among millions of
    // account events) then costs one pass over the log, not a pass per poll and per append.
    const [from, below] = prefixRange(prefix);
    return this.track((limit) => {
      // Read first: every event at or below it is committed, and every later one comes above it.
      const last = this.statements.lastPosition.get()?.position ?? 0n;
      const upTo = last < after + PREFIX_SCAN_RANGE ? last : after + PREFIX_SCAN_RANGE;
      const rows = upTo > after ? this.statements.allAfterWithPrefix.all(after, upTo, from, below, limit) : [];
      if (rows.length === limit) {
        after = rows[rows.length - 1]![POSITION];
        return { rows, caughtUp: false };
      }
      const passed = Number((upTo > after ? upTo : after) - after) - rows.length;
      if (upTo > after) after = upTo;
      return { rows, caughtUp: upTo >= last, ...(options.checkpoints ? { scannedTo: after, passed } : {}) };
    });
  }

  private track(readPage: (limit: number) => Page): Subscription {
    const subscription = new PolledSubscription(readPage, this.pageSize, this.pollIntervalMs, this.appended, () =>
      this.subscriptions.delete(subscription),
    );
    this.subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.lockRetry);
    while (this.pending.length > 0) this.flush(); // appends already accepted still get written (or fail, if locked)
    await Promise.all([...this.subscriptions].map((subscription) => subscription.close()));
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError("the SQLite store is closed");
  }
}

class PolledSubscription implements Subscription {
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly readPage: (limit: number) => Page,
    private readonly pageSize: number,
    private readonly pollIntervalMs: number,
    private readonly appended: EventEmitter,
    private readonly onClose: () => void,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<SubscriptionMessage> {
    let caughtUp = false;
    let checkpoint = -1n;
    let passed = 0;
    try {
      while (!this.closed) {
        const page = this.readPage(this.pageSize);
        for (const row of page.rows) {
          yield { type: "event", event: toRecordedEvent(row) };
          if (this.closed) return;
        }
        passed += page.passed ?? 0;
        if (page.scannedTo !== undefined && page.scannedTo > checkpoint) {
          checkpoint = page.scannedTo;
          yield { type: "checkpoint", position: String(checkpoint), passed };
          passed = 0;
        }
        if (page.caughtUp) {
          if (!caughtUp) {
            caughtUp = true;
            yield { type: "caught_up" };
          }
          await this.waitForAppend();
        } else if (page.rows.length === 0) {
          // Passing over other streams' events: let the event loop run between steps.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      await this.close();
    }
  }

  private waitForAppend(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.appended.off("append", done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.pollIntervalMs);
      this.appended.on("append", done);
      this.wake = done;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    this.onClose();
  }
}

function toRecordedEvent([position, stream, revision, id, type, data, metadata, createdAt]: EventRow): RecordedEvent {
  return {
    stream,
    revision,
    position: String(position),
    id,
    type,
    data: JSON.parse(data) as Record<string, unknown>,
    metadata: JSON.parse(metadata) as RecordedEvent["metadata"],
    created: new Date(Number(createdAt)),
  };
}

/**
 * The names starting with `prefix`, as [from, below): SQLite compares text as
 * UTF-8 bytes, which orders like UTF-16 code units below U+0080, so raising
 * the prefix's last character by one is the first name past them. Other
 * prefixes are not needed here and are refused.
 */
function prefixRange(prefix: string): [string, string] {
  if (!/^[\x20-\x7e]+$/.test(prefix)) throw new RangeError(`stream prefix must be printable ASCII: ${JSON.stringify(prefix)}`);
  return [prefix, prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)];
}

/** Positions are SQLite integer keys: a decimal in 0..2^63-1. */
function parsePosition(position: string): bigint {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(position)) throw new InvalidPositionError(position);
  const value = BigInt(position);
  if (value > MAX_POSITION) throw new InvalidPositionError(position);
  return value;
}

const MAX_POSITION = 2n ** 63n - 1n;
