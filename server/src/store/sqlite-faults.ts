/**
 * Which SQLite errors mean "the store cannot serve right now" (a fault of the
 * disk, the file or another process), as typed store errors, so callers get
 * a clear status instead of INTERNAL. Everything else (constraint errors, a
 * bad statement) is not a store fault and passes through unchanged.
 */
import { StoreBusyError, StoreFullError, StoreReadOnlyError, StoreUnavailableError } from "./event-store.js";

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

/** Another connection holds a lock this statement needs (SQLITE_BUSY*, SQLITE_LOCKED*). */
export function isSqliteBusy(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** The typed store error for a SQLite fault, or undefined when `error` is not one. */
export function sqliteFault(error: unknown, what: string): StoreUnavailableError | undefined {
  if (error instanceof StoreUnavailableError) return error;
  const code = codeOf(error);
  if (code === undefined) return undefined;
  const message = `${what}: ${(error as Error).message} (${code})`;
  if (isSqliteBusy(error)) return new StoreBusyError(message, { cause: error });
  if (code === "SQLITE_FULL") return new StoreFullError(message, { cause: error });
  if (code.startsWith("SQLITE_READONLY")) return new StoreReadOnlyError(message, { cause: error });
  if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_CANTOPEN") || code === "SQLITE_PROTOCOL" || code === "SQLITE_NOMEM") {
    return new StoreUnavailableError(message, { cause: error });
  }
  return undefined;
}
