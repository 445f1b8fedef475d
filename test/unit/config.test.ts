import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkSqlitePath, ConfigError, loadConfig } from "../../server/src/config.js";

/** The ConfigError that `action` throws, for its fields. */
function configError(action: () => unknown): ConfigError {
  try {
    action();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("no ConfigError thrown");
}

describe("configuration", () => {
  it("has working defaults", () => {
    expect(loadConfig({})).toMatchObject({
      host: "127.0.0.1",
      port: 50051,
      store: "sqlite",
      sqlitePath: "./data/eventbank.sqlite",
      logLevel: "info",
    });
  });

  it("requires a connection string for the EventStoreDB store", () => {
    expect(() => loadConfig({ EVENTBANK_STORE: "esdb" })).toThrow(/EVENTSTORE_CONNECTION_STRING/);
    expect(loadConfig({ EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: "esdb://127.0.0.1:2113?tls=false" }).store).toBe("esdb");
  });

  it.each([
    ["PORT", "http"],
    ["PORT", "70000"],
    ["EVENTBANK_STORE", "postgres"],
    ["LOG_LEVEL", "loud"],
    ["EVENTBANK_CACHE_SIZE", "-1"],
    ["EVENTBANK_REFLECTION", "maybe"],
  ])("stops on a bad %s with a message naming it", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(name);
  });

  it("refuses plaintext on a non-loopback address unless explicitly allowed", () => {
    expect(() => loadConfig({ HOST: "0.0.0.0" })).toThrow(/EVENTBANK_ALLOW_INSECURE/);
    expect(() => loadConfig({ HOST: "10.1.2.3" })).toThrow(ConfigError);
    expect(loadConfig({ HOST: "0.0.0.0", EVENTBANK_ALLOW_INSECURE: "true" }).host).toBe("0.0.0.0");
    for (const host of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"]) expect(loadConfig({ HOST: host }).host).toBe(host);
  });

  it("needs both TLS files, readable", () => {
    expect(() => loadConfig({ EVENTBANK_TLS_CERT_FILE: "/nonexistent/cert.pem" })).toThrow(/go together/);
    expect(() => loadConfig({ EVENTBANK_TLS_CERT_FILE: "/nonexistent/c.pem", EVENTBANK_TLS_KEY_FILE: "/nonexistent/k.pem" })).toThrow(
      /EVENTBANK_TLS_CERT_FILE="\/nonexistent\/c.pem": cannot read/,
    );
  });

  it("parses hashed API keys with scopes and rejects malformed ones", () => {
    const sha256 = "a".repeat(64);
    const [key] = loadConfig({ EVENTBANK_API_KEYS: JSON.stringify([{ name: "teller", sha256, scopes: ["accounts:write"] }]) }).apiKeys;
    expect(key?.name).toBe("teller");
    expect(key?.sha256).toHaveLength(32);
    expect([...key!.scopes]).toEqual(["accounts:write"]);
    for (const bad of [
      "not json",
      "[]",
      JSON.stringify([{ name: "x", sha256: "short", scopes: ["accounts:read"] }]),
      JSON.stringify([{ name: "x", sha256, scopes: ["admin"] }]),
      JSON.stringify([
        { name: "x", sha256, scopes: [] },
        { name: "x", sha256, scopes: [] },
      ]),
    ]) {
      expect(() => loadConfig({ EVENTBANK_API_KEYS: bad })).toThrow(ConfigError);
    }
  });

  it("names the variable, its value and why in each error", () => {
    expect(configError(() => loadConfig({ PORT: "70000" }))).toMatchObject({ variable: "PORT", value: "70000", reason: "must be an integer from 0 to 65535" });
    expect(configError(() => loadConfig({ EVENTBANK_STORE: "esdb" }))).toMatchObject({ variable: "EVENTSTORE_CONNECTION_STRING", value: undefined });
    expect(configError(() => loadConfig({ HOST: "0.0.0.0" }))).toMatchObject({ variable: "HOST", value: "0.0.0.0" });
  });

  it.each([
    ["esdb://", /names no host/],
    ["esdb://?tls=false", /names no host/],
    ["esdb://127.0.0.1:99999?tls=false", /port 99999 of 127\.0\.0\.1 is not from 1 to 65535/],
    ["esdb://a:2113,b:0", /port 0 of b/],
    ["esdb://127.0.0.1:2113?tls=maybe", /expected true or false/],
    ["esdb://127.0.0.1:abc", /expected port number/],
    ["http://127.0.0.1:2113", /expected esdb:\/\/ or esdb\+discover:\/\//],
  ])("refuses the connection string %s as the EventStoreDB client would", (connectionString, reason) => {
    const error = configError(() => loadConfig({ EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: connectionString }));
    expect(error).toMatchObject({ variable: "EVENTSTORE_CONNECTION_STRING", value: connectionString });
    expect(error.reason).toMatch(reason);
  });

  it("accepts the connection strings the README and compose files use, and hides a password in the value it shows", () => {
    for (const connectionString of [
      "esdb://127.0.0.1:2113?tls=false",
      "esdb://eventstore:2113?tls=false",
      "esdb://admin:changeit@172.30.240.11:2113,172.30.240.12:2113,172.30.240.13:2113?tls=true&tlsCAFile=/certs/ca/ca.crt&nodePreference=leader",
      "esdb+discover://cluster.example:2113",
    ]) {
      expect(loadConfig({ EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: connectionString }).eventStoreConnectionString).toBe(connectionString);
    }
    const error = configError(() => loadConfig({ EVENTSTORE_CONNECTION_STRING: "esdb://admin:changeit@host:0" }));
    expect(error.value).toBe("esdb://admin:***@host:0");
    expect(error.message).not.toContain("changeit");
  });

  describe("EVENTBANK_SQLITE_PATH start-up check", () => {
    const inTemp = (test: (dir: string) => void) => () => {
      const dir = mkdtempSync(join(tmpdir(), "eventbank-config-"));
      try {
        test(dir);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };

    it("creates missing folders and accepts a new or an existing database file", inTemp((dir) => {
      const path = join(dir, "a", "b", "events.sqlite");
      checkSqlitePath(path);
      expect(statSync(join(dir, "a", "b")).isDirectory()).toBe(true);
      expect(existsSync(path)).toBe(false); // the store creates it, not the check
      writeFileSync(path, "");
      checkSqlitePath(path);
    }));

    it("refuses a folder, a path below a file, and a folder it cannot create (/proc) without hanging", inTemp((dir) => {
      expect(configError(() => checkSqlitePath(dir))).toMatchObject({ variable: "EVENTBANK_SQLITE_PATH", value: dir, reason: expect.stringMatching(/is a folder/) });
      writeFileSync(join(dir, "file"), "");
      expect(configError(() => checkSqlitePath(join(dir, "file", "events.sqlite"))).reason).toMatch(/is not a folder/);
      if (existsSync("/proc/self")) expect(configError(() => checkSqlitePath("/proc/eventbank/events.sqlite")).reason).toMatch(/cannot create the folder \/proc\/eventbank: ENOENT/);
    }));
  });
});
