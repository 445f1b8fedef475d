/**
 * Copies the WAL back into the database file from a worker thread.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL
 * past `wal_autocheckpoint` pages, on the event loop. On a large store the
 * pages an append dirties (the event-id index above all) are scattered, so
 * that COMMIT writes a thousand random pages back and syncs them while every
 * caller waits: the warm-Deposit p99 on a 10,000,000-event file. A PASSIVE
 * checkpoint from a second connection does the same copying without taking
 * the write lock, so the writer keeps going; the writer's own autocheckpoint
 * stays as the bound on the WAL and then finds little left to copy.
 *
 * The worker is a few lines of CommonJS run with `eval`, so it works the same
 * from tsx, vitest and the compiled dist/ (no second entry file to resolve).
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.betterSqlite3);
const db = new Database(workerData.path, { fileMustExist: true, timeout: 0 });
db.pragma("synchronous = FULL");
let timer;
const tick = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch {
    // Busy, or the disk is full: the writer's connection meets and reports such faults; try again later.
  }
  timer = setTimeout(tick, workerData.intervalMs);
};
tick();
parentPort.once("message", () => {
  clearTimeout(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  close(): Promise<void>;
}

/** Starts checkpointing `path` every `intervalMs`; undefined where there is no file to share (":memory:"). */
export function startBackgroundCheckpointer(path: string, intervalMs: number, onError: (error: Error) => void): Checkpointer | undefined {
  if (path === ":memory:" || path === "") return undefined;
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { path, intervalMs, betterSqlite3: createRequire(import.meta.url).resolve("better-sqlite3") },
  });
  worker.unref();
  let exited = false;
  const exit = new Promise<void>((resolve) => worker.once("exit", () => ((exited = true), resolve())));
  // Not fatal: without it the writer checkpoints in its COMMITs, as SQLite does by default.
  worker.on("error", onError);
  return {
    close: async () => {
      if (exited) return;
      worker.postMessage("close");
      const timeout = setTimeout(() => void worker.terminate(), 2_000);
      await exit;
      clearTimeout(timeout);
    },
  };
}
