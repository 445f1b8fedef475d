import { describe, expect, it } from "vitest";
import { LruCache } from "../../server/src/app/lru-cache.js";

describe("LruCache", () => {
  it("forgets the least recently used entry beyond its size", () => {
    const cache = new LruCache<string, number>(2);
    cache.set("a", 1);
    cache.set("b", 2);
    expect(cache.get("a")).toBe(1); // a is now the most recent
    cache.set("c", 3);
    expect(cache.get("b")).toBeUndefined();
    expect([cache.get("a"), cache.get("c"), cache.size]).toEqual([1, 3, 2]);
  });

  it("keeps the total weight bounded, counting a grown value anew on set", () => {
    const cache = new LruCache<string, { n: number }>(100, { weigh: (v) => v.n, maxWeight: 10 });
    const a = { n: 4 };
    cache.set("a", a);
    cache.set("b", { n: 4 });
    expect(cache.weight).toBe(8);
    a.n = 7; // grew in place
    cache.set("a", a);
    // 7 + 4 > 10: the oldest other entry (b) goes.
    expect(cache.get("b")).toBeUndefined();
    expect(cache.weight).toBe(7);
    cache.set("c", { n: 20 }); // heavier than the budget alone: kept, everything older goes
    expect([cache.get("a"), cache.size, cache.weight]).toEqual([undefined, 1, 20]);
  });

  it("keeps the estimated bytes under their budget, the least recently used going first", () => {
    const cache = new LruCache<string, string>(100, { sizeOf: (v) => 100 + v.length, maxBytes: 350 });
    cache.set("a", "x".repeat(20));
    cache.set("b", "x".repeat(20));
    cache.set("c", "x".repeat(20));
    expect(cache.bytes).toBe(240); // two of 120 bytes fit in 350: the third pushed a out
    expect([cache.get("a"), cache.size]).toEqual([undefined, 2]);
    cache.get("b"); // b is now the most recent
    cache.set("d", "x".repeat(50)); // 150: c (least recently used) goes
    expect([cache.get("c"), cache.get("b") !== undefined, cache.get("d") !== undefined, cache.bytes]).toEqual([undefined, true, true, 270]);
    cache.delete("b");
    expect(cache.bytes).toBe(150);
  });

  it("stores nothing with a size of 0", () => {
    const cache = new LruCache<string, number>(0);
    cache.set("a", 1);
    expect(cache.get("a")).toBeUndefined();
  });
});
