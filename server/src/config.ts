/**
 * Configuration from environment variables, parsed and validated once at
 * start-up. A bad value stops the server with a message naming the variable.
 */

export type StoreKind = "sqlite" | "esdb";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface Config {
  host: string;
  port: number;
  store: StoreKind;
  sqlitePath: string;
  eventStoreConnectionString: string | undefined;
  /** EventStoreDB: upper bound for one append or read. */
  esdbOperationTimeoutMs: number;
  /** EventStoreDB: how long a dropped subscription tries to resubscribe before the gRPC stream ends UNAVAILABLE. */
  esdbResubscribeTimeoutMs: number;
  logLevel: LogLevel;
  maxRequestBytes: number;
  cacheSize: number;
  idempotencyWindow: number;
  maxAttempts: number;
  maxSubscriptions: number;
  shutdownGraceMs: number;
  reflection: boolean;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const store = oneOf(env, "EVENTBANK_STORE", ["sqlite", "esdb"] as const, "sqlite");
  const connectionString = env.EVENTSTORE_CONNECTION_STRING?.trim() || undefined;
  if (store === "esdb" && !connectionString) {
    throw new ConfigError("EVENTSTORE_CONNECTION_STRING is required when EVENTBANK_STORE=esdb (e.g. esdb://127.0.0.1:2113?tls=false)");
  }
  if (connectionString && !/^(esdb|esdb\+discover|kurrentdb|kurrentdb\+discover|kdb|kdb\+discover):\/\//.test(connectionString)) {
    throw new ConfigError("EVENTSTORE_CONNECTION_STRING must start with esdb:// or esdb+discover://");
  }
  return {
    host: text(env, "HOST", "127.0.0.1"),
    port: integer(env, "PORT", 50051, 0, 65535),
    store,
    sqlitePath: text(env, "EVENTBANK_SQLITE_PATH", "./data/eventbank.sqlite"),
    eventStoreConnectionString: connectionString,
    esdbOperationTimeoutMs: integer(env, "EVENTBANK_ESDB_OPERATION_TIMEOUT_MS", 10_000, 100, 600_000),
    esdbResubscribeTimeoutMs: integer(env, "EVENTBANK_ESDB_RESUBSCRIBE_TIMEOUT_MS", 30_000, 0, 3_600_000),
    logLevel: oneOf(env, "LOG_LEVEL", ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const, "info"),
    maxRequestBytes: integer(env, "EVENTBANK_MAX_REQUEST_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
    cacheSize: integer(env, "EVENTBANK_CACHE_SIZE", 10_000, 0, 10_000_000),
    idempotencyWindow: integer(env, "EVENTBANK_IDEMPOTENCY_WINDOW", 1_000, 1, 1_000_000),
    maxAttempts: integer(env, "EVENTBANK_MAX_ATTEMPTS", 5, 1, 100),
    maxSubscriptions: integer(env, "EVENTBANK_MAX_SUBSCRIPTIONS", 1_000, 0, 1_000_000),
    shutdownGraceMs: integer(env, "EVENTBANK_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    reflection: boolean(env, "EVENTBANK_REFLECTION", true),
  };
}

function text(env: Env, name: string, fallback: string): string {
  const value = env[name]?.trim();
  return value ? value : fallback;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (["true", "1", "yes", "on"].includes(raw)) return true;
  if (["false", "0", "no", "off"].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got ${JSON.stringify(raw)}`);
}

function oneOf<const T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}
