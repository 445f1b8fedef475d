import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";
import { call, connect } from "../support/grpc-client.js";
import { startTestServer } from "../support/test-server.js";
import { describeAccountServiceE2E } from "./account-service-suite.js";

describeAccountServiceE2E("sqlite", async () => ({ env: { EVENTBANK_STORE: "sqlite" } }));

describe("AccountService on the embedded store", () => {
  it("writes to the file EVENTBANK_SQLITE_PATH names, readable by another connection", async () => {
    const dir = mkdtempSync(join(tmpdir(), "eventbank-path-"));
    const file = join(dir, "nested", "bank.sqlite");
    const server = await startTestServer({ env: { EVENTBANK_SQLITE_PATH: file } });
    const client = connect(server.address);
    const id = `p-${randomUUID().slice(0, 8)}`;
    try {
      await call(client, client.openAccount, { accountId: id, owner: "Ada", currency: "EUR", commandId: "c1" });
      const other = new SqliteEventStore(file);
      const read = await other.readStream(`account-${id}`);
      await other.close();
      expect(read.status === "ok" && read.events.map((e) => [e.type, e.metadata.commandId])).toEqual([["AccountOpened", "c1"]]);
    } finally {
      client.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
