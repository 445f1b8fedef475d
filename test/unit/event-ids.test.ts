import { describe, expect, it } from "vitest";
import { eventIdFor } from "../../server/src/app/event-ids.js";

describe("deterministic event ids", () => {
  it("derives the same UUID v5 from the same stream, command and index", () => {
    const id = eventIdFor("account-a", "cmd-1", 0);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(eventIdFor("account-a", "cmd-1", 0)).toBe(id);
  });

  it("differs when any input differs", () => {
    const ids = new Set([
      eventIdFor("account-a", "cmd-1", 0),
      eventIdFor("account-b", "cmd-1", 0),
      eventIdFor("account-a", "cmd-2", 0),
      eventIdFor("account-a", "cmd-1", 1),
    ]);
    expect(ids.size).toBe(4);
  });
});
