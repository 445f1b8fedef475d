import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { SCOPES, type ApiKey, type Scope } from "./grpc/auth.js";

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
  /** Idempotency-window entries all cached accounts may hold together. */
  cacheMaxCommands: number;
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
  const host = text(env, "HOST", "127.0.0.1");
  const tls = tlsConfig(env);
  const allowInsecure = boolean(env, "EVENTBANK_ALLOW_INSECURE", false);
  if (!tls && !allowInsecure && !isLoopback(host)) {
    throw new ConfigError(
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
    metricsHost: text(env, "EVENTBANK_METRICS_HOST", "127.0.0.1"),
    metricsPort: integer(env, "EVENTBANK_METRICS_PORT", 9464, 0, 65535),
    tracing: tracingConfig(env),
  };
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
    if (clientCaFile) throw new ConfigError("EVENTBANK_TLS_CLIENT_CA_FILE needs EVENTBANK_TLS_CERT_FILE and EVENTBANK_TLS_KEY_FILE");
    return undefined;
  }
  if (!certFile || !keyFile) throw new ConfigError("EVENTBANK_TLS_CERT_FILE and EVENTBANK_TLS_KEY_FILE go together");
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
  if (inline && file) throw new ConfigError("set EVENTBANK_API_KEYS or EVENTBANK_API_KEYS_FILE, not both");
  const name = file ? "EVENTBANK_API_KEYS_FILE" : "EVENTBANK_API_KEYS";
  const raw = file ? readable(name, file) : inline;
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(`${name} must be JSON: [{"name":"...","sha256":"<64 hex>","scopes":["accounts:write", ...]}]`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new ConfigError(`${name} must be a non-empty JSON array`);
  const names = new Set<string>();
  return parsed.map((entry: unknown, index) => {
    const { name: keyName, sha256, scopes } = (entry ?? {}) as { name?: unknown; sha256?: unknown; scopes?: unknown };
    const where = `${name}[${index}]`;
    if (typeof keyName !== "string" || !/^[\w.@-]{1,64}$/.test(keyName) || names.has(keyName)) {
      throw new ConfigError(`${where}.name must be a unique name of 1-64 characters [A-Za-z0-9_.@-]`);
    }
    names.add(keyName);
    if (typeof sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(sha256)) {
      throw new ConfigError(`${where}.sha256 must be the 64-hex-digit SHA-256 of the token`);
    }
    if (!Array.isArray(scopes) || scopes.some((scope) => !(SCOPES as readonly unknown[]).includes(scope))) {
      throw new ConfigError(`${where}.scopes must list some of ${SCOPES.join(", ")}`);
    }
    return { name: keyName, sha256: Buffer.from(sha256, "hex"), scopes: new Set(scopes as Scope[]) };
  });
}

function readable(name: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`${name}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
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
    throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp, console or none, got ${JSON.stringify(exporterName)}`);
  }
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() || env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim() || "http/protobuf";
  if (protocol !== "http/protobuf" && protocol !== "http/json") {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or http/json (grpc is not supported), got ${JSON.stringify(protocol)}`);
  }
  // As the OTLP exporter specification says: the signal's endpoint is used as is, the base one gets /v1/traces.
  const endpoint = tracesEndpoint || `${(baseEndpoint || "http://localhost:4318").replace(/\/+$/, "")}/v1/traces`;
  try {
    const url = new URL(endpoint);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new ConfigError(`OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  }
  const sampler = oneOf(
    env,
    "OTEL_TRACES_SAMPLER",
    ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const,
    "parentbased_always_on",
  );
  const rawRatio = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const samplerRatio = rawRatio ? Number(rawRatio) : 1;
  if (!(samplerRatio >= 0 && samplerRatio <= 1)) throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got ${JSON.stringify(rawRatio)}`);
  return {
    exporter: exporterName === "console" ? "console" : "otlp",
    protocol,
    endpoint,
    serviceName: text(env, "OTEL_SERVICE_NAME", "eventbank"),
    sampler,
    samplerRatio,
  };
}
