/**
 * Every release's stored events, loaded by the current code over real gRPC:
 * each committed test/fixtures/<release>/ must answer exactly what its
 * expected.json recorded when that release wrote it.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startEsdbDouble } from "../support/esdb-double/server.js";
import { loadEsdb, observe, startFixtureServer, type StoredEsdbEvent } from "../fixtures/event-fixtures.js";

const fixturesDir = join(import.meta.dirname, "..", "fixtures");
const releases = readdirSync(fixturesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(fixturesDir, entry.name, "expected.json")))
  .map((entry) => entry.name);

describe("stored events of earlier releases", () => {
  it("has at least the fixtures of release 0.1.0", () => {
    expect(releases).toContain("0.1.0");
  });

  for (const release of releases) {
    const dir = join(fixturesDir, release);
    const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as {
      env: Record<string, string>;
      sqlite: { observed: unknown };
      esdb: { observed: unknown };
    };

    it(`${release}: the SQLite store file loads with the same accounts, events, subscriptions and idempotency window`, async () => {
      const work = mkdtempSync(join(tmpdir(), `eventbank-fixture-${release}-`));
      const file = join(work, "eventbank.sqlite");
      copyFileSync(join(dir, "sqlite", "eventbank.sqlite"), file);
      const server = await startFixtureServer({ ...expected.env, EVENTBANK_STORE: "sqlite", EVENTBANK_SQLITE_PATH: file });
      try {
        // Every field that release answered must be answered the same; fields added since may be there too.
        expect(await observe(server.address, "sqlite")).toMatchObject(expected.sqlite.observed as object);
      } finally {
        await server.stop();
        rmSync(work, { recursive: true, force: true });
      }
    });

    it(`${release}: the EventStoreDB events load with the same accounts, events, subscriptions and idempotency window`, async () => {
      const events = JSON.parse(readFileSync(join(dir, "esdb-events.json"), "utf8")) as StoredEsdbEvent[];
      const double = await startEsdbDouble({ seed: false }); // the fixture is the whole log
      try {
        await loadEsdb(double, events);
        const server = await startFixtureServer({ ...expected.env, EVENTBANK_STORE: "esdb", EVENTSTORE_CONNECTION_STRING: double.connectionString });
        try {
          expect(await observe(server.address, "esdb")).toMatchObject(expected.esdb.observed as object);
        } finally {
          await server.stop();
        }
      } finally {
        await double.stop();
      }
    });
  }
});
