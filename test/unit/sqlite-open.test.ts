import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSqlite } from "../../server/src/store/sqlite-open.js";

const dirs: string[] = [];
function freshFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "eventbank-open-"));
  dirs.push(dir);
  return join(dir, "db", "events.sqlite");
}
afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** The error better-sqlite3 throws when another process holds the lock SQLite needs. */
const busy = () => new Database.SqliteError("database is locked", "SQLITE_BUSY");

describe("openSqlite", () => {
  it("runs set-up again while another connection holds the lock, then returns the open database", () => {
    let attempts = 0;
    const db = openSqlite(freshFile(), (db) => {
      attempts++;
      if (attempts < 3) throw busy();
      db.pragma("journal_mode = WAL");
    });
    expect(attempts).toBe(3);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.close();
  });

  it("gives up with the lock error once the busy timeout is over", () => {
    let attempts = 0;
    const started = Date.now();
    expect(() =>
      openSqlite(
        freshFile(),
        () => {
          attempts++;
          throw busy();
        },
        { busyTimeoutMs: 200 },
      ),
    ).toThrow("database is locked");
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(attempts).toBeGreaterThan(1);
  });

  it("does not retry an error that is not a lock conflict", () => {
    let attempts = 0;
    expect(() =>
      openSqlite(freshFile(), (db) => {
        attempts++;
        db.exec("CREATE TABLE broken (");
      }),
    ).toThrow(/syntax error|incomplete input/);
    expect(attempts).toBe(1);
  });
});
