import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/src/config.js";

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
      /EVENTBANK_TLS_CERT_FILE: cannot read/,
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
});
