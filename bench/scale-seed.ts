/**
 * Seeds a large store for `npm run bench -- --scale`: `accounts` accounts of
 * `events / accounts` events each, written straight into the adapter's table
 * with better-sqlite3 (the server's own schema, created by SqliteEventStore;
 * the same columns, JSON, ids and metadata the server writes), in large
 * transactions without a sync per commit. Activity is interleaved the way
 * years of use spread it: revision r of every account, then r + 1, so one
 * account's events sit on many pages. The file is built under a temporary
 * name and renamed when complete, so a file that exists is whole and reused.
 */
import Database from "better-sqlite3";
import { existsSync, renameSync, rmSync } from "node:fs";
import { encodeEventData, eventSchemaVersion } from "../server/src/app/event-codec.js";
import { eventIdFor } from "../server/src/app/event-ids.js";
import type { AccountEvent } from "../server/src/domain/account.js";
import { accountStream } from "../server/src/store/event-store.js";
import { SqliteEventStore } from "../server/src/store/sqlite-event-store.js";
import { SqliteSnapshotStore } from "../server/src/store/sqlite-snapshot-store.js";

const ROWS_PER_TRANSACTION = 100_000;

export const scaleAccountId = (index: number): string => `scale-${index}`;

/** Creates `file` unless it exists; returns the seconds spent (0 when reused). */
export async function seedScaleStore(
  file: string,
  { events, accounts }: { events: number; accounts: number },
  progress: (line: string) => void = () => {},
): Promise<number> {
  if (existsSync(file)) return 0;
  const building = `${file}.building`;
  for (const suffix of ["", "-wal", "-shm"]) rmSync(building + suffix, { force: true });
  // The server's own schema and journal mode, then its snapshot table.
  await new SqliteEventStore(building).close();
  await new SqliteSnapshotStore(building).close();

  const started = performance.now();
  const db = new Database(building);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF"); // a seed, not an acknowledged write: rebuilt if interrupted
  db.pragma("cache_size = -1000000"); // 1 GB: the random event-id index stays in memory while it grows
  db.pragma("wal_autocheckpoint = 100000");
  const insert = db.prepare(
    "INSERT INTO events (stream, revision, event_id, type, data, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const perAccount = Math.max(1, Math.floor(events / accounts));
  const opened = (index: number): AccountEvent => ({
    type: "AccountOpened",
    data: { accountId: scaleAccountId(index), owner: "Bench", currency: "EUR" },
  });
  const depositData = JSON.stringify(encodeEventData({ type: "MoneyDeposited", data: { amount: 1n } }));
  const depositMetadata = (commandId: string) =>
    JSON.stringify({ commandId, correlationId: commandId, causationId: commandId, schemaVersion: eventSchemaVersion("MoneyDeposited") });
  const writeRows = db.transaction((from: number, to: number) => {
    const now = Date.now();
    for (let row = from; row < to; row++) {
      const revision = Math.floor(row / accounts);
      const index = row % accounts;
      const stream = accountStream(scaleAccountId(index));
      const commandId = `seed-${revision}`;
      if (revision === 0) {
        const event = opened(index);
        const metadata = JSON.stringify({ commandId, correlationId: commandId, causationId: commandId, schemaVersion: eventSchemaVersion(event.type) });
        insert.run(stream, revision, eventIdFor(stream, commandId, 0), event.type, JSON.stringify(encodeEventData(event)), metadata, now);
      } else {
        insert.run(stream, revision, eventIdFor(stream, commandId, 0), "MoneyDeposited", depositData, depositMetadata(commandId), now);
      }
    }
  });
  const total = perAccount * accounts;
  let lastReport = performance.now();
  for (let from = 0; from < total; from += ROWS_PER_TRANSACTION) {
    writeRows(from, Math.min(total, from + ROWS_PER_TRANSACTION));
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      progress(`seeded ${(from + ROWS_PER_TRANSACTION).toLocaleString("en-US")} of ${total.toLocaleString("en-US")} events`);
    }
  }
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  for (const suffix of ["-wal", "-shm"]) rmSync(building + suffix, { force: true });
  renameSync(building, file);
  return (performance.now() - started) / 1000;
}
