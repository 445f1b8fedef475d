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
});
