/**
 * Opens a SQLite file and runs its one-time set-up (journal mode, pragmas,
 * schema), for every connection this project makes.
 *
 * Several processes may open one fresh file at the same moment (two servers
 * started together, a rolling deploy). Switching a new file to WAL and
 * creating the schema then race, and SQLite reports some of those lock
 * conflicts as SQLITE_BUSY at once instead of calling the busy handler. The
 * set-up is idempotent, so it is simply run again until it succeeds or the
 * time allowed is over.
 */
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { isSqliteBusy } from "./sqlite-faults.js";

export interface OpenSqliteOptions {
  /** How long set-up may wait for another connection's lock (default 5 s). */
  busyTimeoutMs?: number;
  /**
   * How long each later statement may wait inside SQLite for another
   * connection's lock (default: busyTimeoutMs). That wait blocks the thread,
   * so connections serving calls keep it tiny and retry off the event loop.
   */
  statementBusyTimeoutMs?: number;
}

export function openSqlite(path: string, setUp: (db: Database.Database) => void, options: OpenSqliteOptions = {}): Database.Database {
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: busyTimeoutMs });
  const giveUpAt = Date.now() + busyTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      setUp(db);
      if (options.statementBusyTimeoutMs !== undefined) db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.statementBusyTimeoutMs))}`);
      return db;
    } catch (error) {
      if (!isSqliteBusy(error) || Date.now() >= giveUpAt) {
        db.close();
        throw error;
      }
      sleepSync(Math.min(5 * attempt, 100));
    }
  }
}

/** Set-up runs in a constructor, before the server listens, so blocking the thread is acceptable. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
