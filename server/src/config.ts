import { FAILPOINTS, type Failpoint } from "./app/transfer-process.js";
// The client's own parser (not exported from the package root; the version is pinned), so a
// string is refused here exactly when the client would refuse it.
import { parseConnectionString } from "@eventstore/db-client/dist/Client/parseConnectionString.js";
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, join, resolve } from "node:path";
import { SCOPES, type ApiKey, type Scope } from "./grpc/auth.js";

/**
 * Configuration from environment variables, parsed and validated once at
 * start-up. A bad value stops the server with a message naming the variable
 * (main.ts: one JSON log line, exit code 2).
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
  /** Idempotency-window entries all cached accounts may hold together. */
  cacheMaxCommands: number;
  /** Estimated bytes all cached accounts may hold together. */
  cacheMaxBytes: number;
  /** Events between snapshots of an account; 0: no snapshots. */
  snapshotEvery: number;
  idempotencyWindow: number;
  maxAttempts: number;
  maxSubscriptions: number;
  shutdownGraceMs: number;
  reflection: boolean;
  tls: TlsConfig | undefined;
  /** Plaintext on a non-loopback address, explicitly allowed (EVENTBANK_ALLOW_INSECURE). */
  allowInsecure: boolean;
  /** Empty: authentication off (the server says so at start-up). */
  apiKeys: ApiKey[];
  maxStreamsPerConnection: number;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
  maxConnectionIdleMs: number;
  /** SQLite: how long an append waits (off the event loop) for a write lock another process holds. */
  sqliteLockTimeoutMs: number;
  /** How often the store is probed while it fails (EventStoreDB: also while it serves). */
  healthProbeIntervalMs: number;
  /** How long a transfer may stay pending before any server's transfer process drives it. */
  transferRecoveryMs: number;
  /** Tests only: step boundaries where the process kills itself (never set in production). */
  failpoints: ReadonlySet<Failpoint>;
  /** Prometheus /metrics listener; port 0: off. */
  metricsHost: string;
  metricsPort: number;
  /** OpenTelemetry tracing from the OTEL_* variables; undefined: off. */
  tracing: TracingConfig | undefined;
}

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mutual TLS). */
  clientCaFile: string | undefined;
}

/** A setting the server cannot run with: which variable, its value, and why. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly variable: string,
    readonly value: string | undefined,
    readonly reason: string,
  ) {
    super(`${variable}${value === undefined ? "" : `=${JSON.stringify(value)}`}: ${reason}`);
  }
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const store = oneOf(env, "EVENTBANK_STORE", ["sqlite", "esdb"] as const, "sqlite");
  const connectionString = env.EVENTSTORE_CONNECTION_STRING?.trim() || undefined;
  if (store === "esdb" && !connectionString) {
    throw new ConfigError("EVENTSTORE_CONNECTION_STRING", undefined, "required when EVENTBANK_STORE=esdb (e.g. esdb://127.0.0.1:2113?tls=false)");
  }
  if (connectionString) checkConnectionString(connectionString);
  const host = text(env, "HOST", "127.0.0.1");
  const tls = tlsConfig(env);
  const allowInsecure = boolean(env, "EVENTBANK_ALLOW_INSECURE", false);
  if (!tls && !allowInsecure && !isLoopback(host)) {
    throw new ConfigError(
      "HOST",
      host,
      `refusing plaintext on non-loopback HOST=${host}: set EVENTBANK_TLS_CERT_FILE and EVENTBANK_TLS_KEY_FILE, or EVENTBANK_ALLOW_INSECURE=true (e.g. behind a TLS-terminating proxy)`,
    );
  }
  return {
    host,
    port: integer(env, "PORT", 50051, 0, 65535),
    store,
    sqlitePath: text(env, "EVENTBANK_SQLITE_PATH", "./data/eventbank.sqlite"),
    eventStoreConnectionString: connectionString,
    esdbOperationTimeoutMs: integer(env, "EVENTBANK_ESDB_OPERATION_TIMEOUT_MS", 10_000, 100, 600_000),
    esdbResubscribeTimeoutMs: integer(env, "EVENTBANK_ESDB_RESUBSCRIBE_TIMEOUT_MS", 30_000, 0, 3_600_000),
    logLevel: oneOf(env, "LOG_LEVEL", ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const, "info"),
    maxRequestBytes: integer(env, "EVENTBANK_MAX_REQUEST_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
    cacheSize: integer(env, "EVENTBANK_CACHE_SIZE", 10_000, 0, 10_000_000),
    cacheMaxCommands: integer(env, "EVENTBANK_CACHE_MAX_COMMANDS", 1_000_000, 0, 1_000_000_000),
    cacheMaxBytes: integer(env, "EVENTBANK_CACHE_MAX_BYTES", 256 * 1024 * 1024, 0, 2 ** 44),
    snapshotEvery: integer(env, "EVENTBANK_SNAPSHOT_EVERY", 100, 0, 1_000_000_000),
    idempotencyWindow: integer(env, "EVENTBANK_IDEMPOTENCY_WINDOW", 1_000, 1, 1_000_000),
    maxAttempts: integer(env, "EVENTBANK_MAX_ATTEMPTS", 5, 1, 100),
    maxSubscriptions: integer(env, "EVENTBANK_MAX_SUBSCRIPTIONS", 1_000, 0, 1_000_000),
    shutdownGraceMs: integer(env, "EVENTBANK_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    reflection: boolean(env, "EVENTBANK_REFLECTION", true),
    tls,
    allowInsecure,
    apiKeys: apiKeys(env),
    maxStreamsPerConnection: integer(env, "EVENTBANK_MAX_STREAMS_PER_CONNECTION", 100, 1, 100_000),
    keepaliveTimeMs: integer(env, "EVENTBANK_KEEPALIVE_TIME_MS", 30_000, 1_000, 86_400_000),
    keepaliveTimeoutMs: integer(env, "EVENTBANK_KEEPALIVE_TIMEOUT_MS", 10_000, 100, 600_000),
    maxConnectionIdleMs: integer(env, "EVENTBANK_MAX_CONNECTION_IDLE_MS", 300_000, 1_000, 86_400_000),
    sqliteLockTimeoutMs: integer(env, "EVENTBANK_SQLITE_LOCK_TIMEOUT_MS", 5_000, 0, 600_000),
    healthProbeIntervalMs: integer(env, "EVENTBANK_HEALTH_PROBE_INTERVAL_MS", 1_000, 10, 600_000),
    transferRecoveryMs: integer(env, "EVENTBANK_TRANSFER_RECOVERY_MS", 2_000, 50, 3_600_000),
    failpoints: failpoints(env),
    metricsHost: text(env, "EVENTBANK_METRICS_HOST", "127.0.0.1"),
    metricsPort: integer(env, "EVENTBANK_METRICS_PORT", 9464, 0, 65535),
    tracing: tracingConfig(env),
  };
}

/** EVENTBANK_FAILPOINTS: a comma-separated list of FAILPOINTS (crash tests). */
function failpoints(env: Env): ReadonlySet<Failpoint> {
  const names = (env.EVENTBANK_FAILPOINTS ?? "").split(",").map((name) => name.trim()).filter((name) => name.length > 0);
  for (const name of names) {
    if (!(FAILPOINTS as readonly string[]).includes(name)) {
      throw new ConfigError("EVENTBANK_FAILPOINTS", env.EVENTBANK_FAILPOINTS ?? "", `must list names of ${FAILPOINTS.join(", ")}, not ${JSON.stringify(name)}`);
    }
  }
  return new Set(names as Failpoint[]);
}

/** The connection string as the EventStoreDB client reads it, with every port in range. The value shown hides a password. */
function checkConnectionString(connectionString: string): void {
  const shown = connectionString.replace(/^([a-z+]+:\/\/[^:@/]*):[^@/]*@/i, "$1:***@");
  const fail = (reason: string) => new ConfigError("EVENTSTORE_CONNECTION_STRING", shown, reason);
  const example = "e.g. esdb://127.0.0.1:2113?tls=false";
  // The client's parser says "Unexpected "e" at position 0" for esdb:// alone.
  const hostPart = /^[a-z+]+:\/\/([^/?]*)/i.exec(connectionString)?.[1]?.replace(/^.*@/, "");
  if (hostPart === "") throw fail(`names no host (${example})`);
  let hosts: Array<{ address: string; port: number }>;
  try {
    ({ hosts } = parseConnectionString(connectionString));
  } catch (error) {
    throw fail(`${(error as Error).message.replace(/\.$/, "")} (${example})`);
  }
  for (const { address, port } of hosts) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw fail(`port ${port} of ${address} is not from 1 to 65535`);
  }
}

/**
 * Start-up check of EVENTBANK_SQLITE_PATH, before the store opens it: the folder exists or
 * can be made, SQLite can create its files there (the database, -wal and -shm), and the path
 * is a file this process may write. Probes by doing, not by permission bits, which root ignores.
 * Creates the missing folders, as the store would.
 */
export function checkSqlitePath(path: string): void {
  if (path === ":memory:") return;
  const fail = (reason: string) => new ConfigError("EVENTBANK_SQLITE_PATH", path, reason);
  const file = resolve(path);
  const folder = dirname(file);
  // One level at a time: mkdirSync({ recursive: true }) never returns under /proc.
  const missing: string[] = [];
  for (let dir = folder; !exists(dir); dir = dirname(dir)) missing.unshift(dir);
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (error) {
      throw fail(`cannot create the folder ${dir}: ${errorCode(error)}`);
    }
  }
  if (!statSync(folder).isDirectory()) throw fail(`${folder} is not a folder`);
  const fileExists = exists(file);
  if (fileExists && !statSync(file).isFile()) throw fail(`${file} is ${statSync(file).isDirectory() ? "a folder" : "not a regular file"}, not a database file`);
  const probe = join(folder, `.eventbank-write-check-${process.pid}`);
  try {
    closeSync(openSync(probe, "wx"));
    unlinkSync(probe);
  } catch (error) {
    throw fail(`cannot create files in ${folder} (SQLite needs the database, -wal and -shm files there): ${errorCode(error)}`);
  }
  if (!fileExists) return;
  try {
    closeSync(openSync(file, "r+"));
  } catch (error) {
    throw fail(`cannot open ${file} for writing: ${errorCode(error)}`);
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if (errorCode(error) === "ENOENT") return false;
    throw new ConfigError("EVENTBANK_SQLITE_PATH", path, `cannot inspect ${path}: ${errorCode(error)}`);
  }
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}

export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "");
  if (bare === "localhost") return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  if (isIP(bare) === 6) return bare === "::1" || /^::ffff:127\./i.test(bare);
  return false;
}

function tlsConfig(env: Env): TlsConfig | undefined {
  const certFile = env.EVENTBANK_TLS_CERT_FILE?.trim();
  const keyFile = env.EVENTBANK_TLS_KEY_FILE?.trim();
  const clientCaFile = env.EVENTBANK_TLS_CLIENT_CA_FILE?.trim() || undefined;
  if (!certFile && !keyFile) {
    if (clientCaFile) throw new ConfigError("EVENTBANK_TLS_CLIENT_CA_FILE", clientCaFile, "needs EVENTBANK_TLS_CERT_FILE and EVENTBANK_TLS_KEY_FILE");
    return undefined;
  }
  if (!certFile || !keyFile) {
    const [name, value] = certFile ? ["EVENTBANK_TLS_CERT_FILE", certFile] : ["EVENTBANK_TLS_KEY_FILE", keyFile];
    throw new ConfigError(name, value, "EVENTBANK_TLS_CERT_FILE and EVENTBANK_TLS_KEY_FILE go together");
  }
  for (const [name, file] of [
    ["EVENTBANK_TLS_CERT_FILE", certFile],
    ["EVENTBANK_TLS_KEY_FILE", keyFile],
    ["EVENTBANK_TLS_CLIENT_CA_FILE", clientCaFile],
  ] as const) {
    if (file !== undefined) readable(name, file);
  }
  return { certFile, keyFile, clientCaFile };
}

/**
 * EVENTBANK_API_KEYS (or the file named by EVENTBANK_API_KEYS_FILE): a JSON
 * array of {"name", "sha256", "scopes"}; sha256 is the hex SHA-256 of the
 * token (`npm run hash-api-key -- <token>`), so no key is stored in clear.
 */
function apiKeys(env: Env): ApiKey[] {
  const inline = env.EVENTBANK_API_KEYS?.trim();
  const file = env.EVENTBANK_API_KEYS_FILE?.trim();
  if (inline && file) throw new ConfigError("EVENTBANK_API_KEYS_FILE", file, "set EVENTBANK_API_KEYS or EVENTBANK_API_KEYS_FILE, not both");
  const name = file ? "EVENTBANK_API_KEYS_FILE" : "EVENTBANK_API_KEYS";
  const raw = file ? readable(name, file) : inline;
  // The file's name, or the inline JSON itself (hashes only, no secret).
  const value = file ?? inline;
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(name, value, `must be JSON: [{"name":"...","sha256":"<64 hex>","scopes":["accounts:write", ...]}]`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new ConfigError(name, value, "must be a non-empty JSON array");
  const names = new Set<string>();
  return parsed.map((entry: unknown, index) => {
    const { name: keyName, sha256, scopes } = (entry ?? {}) as { name?: unknown; sha256?: unknown; scopes?: unknown };
    const where = `${name}[${index}]`;
    if (typeof keyName !== "string" || !/^[\w.@-]{1,64}$/.test(keyName) || names.has(keyName)) {
      throw new ConfigError(name, value, `${where}.name must be a unique name of 1-64 characters [A-Za-z0-9_.@-]`);
    }
    names.add(keyName);
    if (typeof sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
      throw new ConfigError(name, value, `${where}.sha256 must be the 64-hex-digit SHA-256 of the token`);
    }
    if (!Array.isArray(scopes) || scopes.some((scope) => !(SCOPES as readonly unknown[]).includes(scope))) {
      throw new ConfigError(name, value, `${where}.scopes must list some of ${SCOPES.join(", ")}`);
    }
    return { name: keyName, sha256: Buffer.from(sha256, "hex"), scopes: new Set(scopes as Scope[]) };
  });
}

function readable(name: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(name, file, `cannot read ${file}: ${errorCode(error)}`);
  }
}

function text(env: Env, name: string, fallback: string): string {
  const value = env[name]?.trim();
  return value ? value : fallback;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(name, raw, `must be an integer from ${min} to ${max}`);
  }
  return Number(raw);
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return fallback;
  if (["true", "1", "yes", "on"].includes(raw)) return true;
  if (["false", "0", "no", "off"].includes(raw)) return false;
  throw new ConfigError(name, env[name], "must be true or false");
}

function oneOf<const T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, raw, `must be one of ${allowed.join(", ")}`);
  }
  return raw as T;
}

// --- OpenTelemetry: the standard OTEL_* variables (a subset: traces over OTLP/HTTP, or to the console) ---

export interface TracingConfig {
  exporter: "otlp" | "console";
  protocol: "http/protobuf" | "http/json";
  /** Full URL spans are posted to. */
  endpoint: string;
  serviceName: string;
  sampler: "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";
  /** For the ratio samplers. */
  samplerRatio: number;
}

/**
 * On when OTEL_TRACES_EXPORTER names an exporter or an OTLP endpoint is set;
 * off when none is set, with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true.
 */
function tracingConfig(env: Env): TracingConfig | undefined {
  const exporterName = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase();
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const baseEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (boolean(env, "OTEL_SDK_DISABLED", false) || exporterName === "none") return undefined;
  if (!exporterName && !tracesEndpoint && !baseEndpoint) return undefined;
  if (exporterName && exporterName !== "otlp" && exporterName !== "console") {
    throw new ConfigError("OTEL_TRACES_EXPORTER", exporterName, "must be otlp, console or none");
  }
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() || env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim() || "http/protobuf";
  if (protocol !== "http/protobuf" && protocol !== "http/json") {
    throw new ConfigError("OTEL_EXPORTER_OTLP_PROTOCOL", protocol, "must be http/protobuf or http/json (grpc is not supported)");
  }
  // As the OTLP exporter specification says: the signal's endpoint is used as is, the base one gets /v1/traces.
  const endpoint = tracesEndpoint || `${(baseEndpoint || "http://localhost:4318").replace(/\/+$/, "")}/v1/traces`;
  try {
    const url = new URL(endpoint);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new ConfigError(tracesEndpoint ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT", endpoint, "must be an http(s) URL");
  }
  const sampler = oneOf(
    env,
    "OTEL_TRACES_SAMPLER",
    ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const,
    "parentbased_always_on",
  );
  const rawRatio = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const samplerRatio = rawRatio ? Number(rawRatio) : 1;
  if (!(samplerRatio >= 0 && samplerRatio <= 1)) throw new ConfigError("OTEL_TRACES_SAMPLER_ARG", rawRatio, "must be a ratio from 0 to 1");
  return {
    exporter: exporterName === "console" ? "console" : "otlp",
    protocol,
    endpoint,
    serviceName: text(env, "OTEL_SERVICE_NAME", "eventbank"),
    sampler,
    samplerRatio,
  };
}
