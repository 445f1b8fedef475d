/**
 * Snapshots in the embedded SQLite file, in their own table next to the
 * events, one row per stream (the latest snapshot only).
 *
 * It has its own connection with synchronous=NORMAL: a snapshot is a cache,
 * so it does not pay for a sync to disk of its own; after a power loss the
 * worst case is an older snapshot (or none) and a longer replay. Its writes
 * are synchronous on the calling thread, so they never wait behind the event
 * store's transaction in the same process. It waits for another process's
 * lock only a few ms (that wait blocks the thread): a snapshot that cannot
 * be written now is skipped, the next one comes later. Faults are typed
 * store errors (a full disk is a StoreFullError), so the caller can log them
 * and the health monitor hears of them.
 */
import Database from "better-sqlite3";
import { StoreUnavailableError } from "./event-store.js";
import { sqliteFault } from "./sqlite-faults.js";
import { openSqlite } from "./sqlite-open.js";
import type { SnapshotStore, StoredSnapshot } from "./snapshot-store.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  stream   TEXT    PRIMARY KEY,
  revision INTEGER NOT NULL,
  version  INTEGER NOT NULL,
  state    TEXT    NOT NULL
);
`;

export class SqliteSnapshotStore implements SnapshotStore {
  private readonly db: Database.Database;
  private readonly select: Database.Statement<[string], { revision: bigint; version: bigint; state: string }>;
  private readonly upsert: Database.Statement<[string, bigint, number, string]>;
  private closed = false;

  constructor(path: string) {
    try {
      this.db = openSqlite(
        path,
        (db) => {
          db.pragma("journal_mode = WAL");
          db.pragma("synchronous = NORMAL");
          // The WAL is shared with the event store's connection, which checkpoints it
          // on its own schedule and bounds its size; this one should not add more.
          db.pragma("wal_autocheckpoint = 0");
          db.pragma(`journal_size_limit = ${4 * 1024 * 1024}`);
          db.defaultSafeIntegers(true);
          db.exec(SCHEMA);
        },
        { statementBusyTimeoutMs: 10 },
      );
    } catch (error) {
      throw new StoreUnavailableError(`cannot open SQLite snapshots at ${path}: ${(error as Error).message}`, { cause: error });
    }
    this.select = this.db.prepare("SELECT revision, version, state FROM snapshots WHERE stream = ?");
    // Never replace a snapshot with an older one (writes may finish out of order).
    this.upsert = this.db.prepare(
      `INSERT INTO snapshots (stream, revision, version, state) VALUES (?, ?, ?, ?)
       ON CONFLICT (stream) DO UPDATE SET revision = excluded.revision, version = excluded.version, state = excluded.state
       WHERE excluded.revision >= snapshots.revision OR excluded.version <> snapshots.version`,
    );
  }

  async read(stream: string): Promise<StoredSnapshot | undefined> {
    this.assertOpen();
    let row: { revision: bigint; version: bigint; state: string } | undefined;
    try {
      row = this.select.get(stream);
    } catch (error) {
      throw sqliteFault(error, `read of the snapshot of ${stream}`) ?? error;
    }
    return row && { stream, revision: row.revision, version: Number(row.version), state: row.state };
  }

  async write(snapshot: StoredSnapshot): Promise<void> {
    this.assertOpen();
    try {
      this.upsert.run(snapshot.stream, snapshot.revision, snapshot.version, snapshot.state);
    } catch (error) {
      throw sqliteFault(error, `write of the snapshot of ${snapshot.stream}`) ?? error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError("the SQLite snapshot store is closed");
  }
}
