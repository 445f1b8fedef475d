/**
 * The cache's byte budget (EVENTBANK_CACHE_MAX_BYTES): accounts are weighed
 * by the memory they are estimated to cost, and the least recently used go
 * first once the budget is spent, whatever the count limit allows.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AccountCommandHandler } from "../../server/src/app/account-command-handler.js";
import { SqliteEventStore } from "../../server/src/store/sqlite-event-store.js";

const context = (commandId: string) => ({ commandId, correlationId: commandId, causationId: commandId });

describe("cache byte budget", () => {
  let dir: string;
  let store: SqliteEventStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "eventbank-cache-budget-"));
    store = new SqliteEventStore(join(dir, "events.sqlite"));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens five accounts (one remembered command each), then reads them newest first; says which were cached. */
  async function cachedAfterOpeningFive(cacheMaxBytes: number): Promise<boolean[]> {
    const lookups: boolean[] = [];
    const handler = new AccountCommandHandler(store, { cacheSize: 100, cacheMaxBytes, hooks: { cacheLookup: (hit) => lookups.push(hit) } });
    const ids = Array.from({ length: 5 }, (_, i) => `budget-${cacheMaxBytes}-${i}`);
    for (const id of ids) await handler.execute({ type: "OpenAccount", accountId: id, owner: "Ada", currency: "EUR" }, context(`open-${id}`));
    lookups.length = 0;
    for (const id of [...ids].reverse()) await handler.getAccount(id);
    return lookups;
  }

  it("keeps as many accounts as the budget pays for, the most recent ones", async () => {
    // An account with one remembered command is estimated at (1,000 + 310) x 2 = 2,620 bytes.
    expect(await cachedAfterOpeningFive(3 * 2_620)).toEqual([true, true, true, false, false]);
    expect(await cachedAfterOpeningFive(2 * 2_620)).toEqual([true, true, false, false, false]);
    expect(await cachedAfterOpeningFive(10 * 2_620)).toEqual([true, true, true, true, true]);
  });
});
